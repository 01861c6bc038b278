"""Does infra/ deploy what functions/ needs? Checks that parse the Terraform (python-hcl2)
and the code, and return the problems they find as sentences (empty: consistent).

Used by tests/infra/test_terraform.py on the real tree and on mutated copies of it.
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path
from typing import Any

import hcl2
from pydantic import SecretStr

from triage.adapters.embedder import WORKER_MEMORY_MIB
from triage.config import Settings

# Read by libraries, not by Settings.
LIBRARY_VARIABLES = frozenset({"HF_HUB_OFFLINE"})
# Settings whose default only makes sense on a laptop: Terraform must set them, per function.
REQUIRED = {
    "api": {"GOOGLE_CLOUD_PROJECT", "TICKETS_TOPIC", "CHROMA_HOST", "CHROMA_PORT", "CHROMA_SSL", "PUBLIC_BASE_URL"},
    "worker": {"GOOGLE_CLOUD_PROJECT", "TICKETS_TOPIC", "WRITEBACK_TOPIC", "CHROMA_HOST", "CHROMA_PORT", "CHROMA_SSL"},
}
_KEY = re.compile(r"\b([A-Z][A-Z0-9_]+)\s*=")
_LOCAL = re.compile(r"\blocal\.([a-z_][a-z0-9_]*)")


def _clean(value: Any) -> Any:
    """python-hcl2 keeps the quotes of keys and literal strings; drop them."""
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


class Terraform:
    """All .tf files of a folder, merged: resources by type and name, variables, locals."""

    def __init__(self, folder: Path):
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.text = ""
        for path in sorted(Path(folder).glob("*.tf")):
            self.text += path.read_text(encoding="utf-8")
            with path.open(encoding="utf-8") as handle:
                parsed = _clean(hcl2.load(handle))
            for block in parsed.get("resource", []):
                for kind, named in block.items():
                    self.resources.setdefault(kind, {}).update(named)
            for block in parsed.get("variable", []):
                self.variables.update(block)
            for block in parsed.get("locals", []):
                self.locals.update(block)

    def resource(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(kind, {})

    def expand(self, expression: Any, seen: frozenset[str] = frozenset()) -> str:
        """The text of an expression with every ``local.x`` it uses appended, recursively."""
        text = str(expression)
        for name in _LOCAL.findall(text):
            if name in self.locals and name not in seen:
                text += "\n" + self.expand(self.locals[name], seen | {name})
        return text

    def literal_list(self, local: str) -> list[str]:
        value = self.locals.get(local)
        return list(value) if isinstance(value, list) else []


def _block(value: Any) -> dict[str, Any]:
    """A nested block parses as a one-element list."""
    if isinstance(value, list):
        return value[0] if value else {}
    return value or {}


def entry_points(main: Path) -> set[str]:
    tree = ast.parse(main.read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if "functions_framework" in ast.unparse(decorator):
                    found.add(node.name)
    return found


def secret_settings() -> set[str]:
    hints = typing.get_type_hints(Settings)
    return {name.upper() for name in Settings.model_fields if SecretStr in typing.get_args(hints[name])}


def _memory_mib(size: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi|M|G)", size)
    if not match:
        return 0
    number, unit = int(match.group(1)), match.group(2)
    return number * 1024 if unit.startswith("G") else number


def _default(terraform: Terraform, expression: str) -> Any:
    match = re.fullmatch(r"\$\{var\.([a-z_0-9]+)\}", str(expression))
    if match:
        return terraform.variables.get(match.group(1), {}).get("default")
    return expression


def problems(infra: Path, functions: Path) -> list[str]:
    terraform = Terraform(infra)
    found: list[str] = []
    settings = {name.upper() for name in Settings.model_fields}
    secrets = secret_settings()
    # None today; a setting added without a default must then be set by Terraform.
    without_default = {field.upper() for field, info in Settings.model_fields.items() if info.is_required()}
    functions_tf = terraform.resource("google_cloudfunctions2_function")

    # Each function: its entry point exists, its environment is known to the code.
    points = entry_points(functions / "main.py")
    roles = {"api": None, "worker": None}
    for name, function in functions_tf.items():
        build = _block(function.get("build_config"))
        entry = build.get("entry_point")
        if entry not in points:
            found.append(f"function {name}: entry point {entry!r} is not a function in functions/main.py")
        role = "api" if entry == "api" else "worker" if entry == "process_ticket" else None
        if role:
            roles[role] = name
        service = _block(function.get("service_config"))
        environment = terraform.expand(service.get("environment_variables", ""))
        keys = set(_KEY.findall(environment))
        for key in sorted(keys - settings - LIBRARY_VARIABLES):
            found.append(f"function {name}: sets {key}, which the code never reads")
        for key in sorted(keys & secrets):
            found.append(f"function {name}: sets secret {key} as a plain environment variable")
        if role:
            for key in sorted(REQUIRED[role] - keys):
                found.append(f"function {name}: does not set {key}")
        for key in sorted(without_default - keys - secrets):
            found.append(f"function {name}: does not set {key}, which has no default")
        # Secrets come through secret_environment_variables, from the locals secrets.tf declares.
        wired = terraform.expand(service.get("dynamic", ""))
        expected = {"api": "api_secrets", "worker": "worker_secrets"}.get(role or "")
        if expected and f"local.{expected}" not in wired:
            found.append(f"function {name}: its secret environment variables do not come from local.{expected}")
        if role == "worker":
            memory = _default(terraform, service.get("available_memory", ""))
            if _memory_mib(str(memory)) < WORKER_MEMORY_MIB:
                found.append(
                    f"function {name}: memory {memory} is below the {WORKER_MEMORY_MIB} MiB the embedding model needs"
                )
    for role, name in roles.items():
        if name is None:
            found.append(f"no function deploys the {role} entry point")

    # Secrets: every SecretStr setting is wired to some function, and the allowed list matches.
    wired_secrets = set(terraform.literal_list("api_secrets")) | set(terraform.literal_list("worker_secrets"))
    for key in sorted(secrets - wired_secrets):
        found.append(f"secret {key} (a SecretStr setting) is wired to no function")
    for key in sorted(wired_secrets - secrets):
        found.append(f"secret {key} is wired, but the code reads no such secret")
    allowed = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', str(terraform.variables.get("secrets", {}).get("validation"))))
    if allowed != secrets:
        found.append(f"var.secrets allows {sorted(allowed)}, but the code's secrets are {sorted(secrets)}")
    if "GEMINI_API_KEY" not in terraform.literal_list("worker_secrets"):
        found.append("the worker is not given GEMINI_API_KEY")

    # Dead letters: the topic exists, every worker subscription routes to it, something reads it.
    topics = terraform.resource("google_pubsub_topic")
    subscriptions = terraform.resource("google_pubsub_subscription")
    if "dead_letter" not in topics:
        found.append("there is no google_pubsub_topic.dead_letter")
    reading_dead_letters = [
        name for name, s in subscriptions.items() if "google_pubsub_topic.dead_letter." in str(s.get("topic"))
    ]
    if not reading_dead_letters:
        found.append("no subscription reads the dead-letter topic")
    for name, subscription in subscriptions.items():
        if name in reading_dead_letters or "push_config" not in subscription:
            continue
        policy = _block(subscription.get("dead_letter_policy"))
        if "google_pubsub_topic.dead_letter." not in str(policy.get("dead_letter_topic")):
            found.append(f"subscription {name} pushes to the worker without a dead-letter policy to the DLQ")
        if "oidc_token" not in str(subscription.get("push_config")):
            found.append(f"subscription {name} pushes without an OIDC token")
    grants = terraform.resource("google_pubsub_topic_iam_member")
    if not any(
        "dead_letter" in str(g.get("topic")) and "pubsub_agent" in str(g.get("member")) for g in grants.values()
    ):
        found.append("the Pub/Sub service agent may not publish to the dead-letter topic")

    # Firestore: a composite index whose first field is each equality the store queries on.
    store = (functions / "triage" / "adapters" / "firestore.py").read_text(encoding="utf-8")
    queried = set(re.findall(r'FieldFilter\("([a-z_.]+)", "=="', store))
    indexed_fields = set()
    for index in terraform.resource("google_firestore_index").values():
        fields = index.get("fields", [])
        first = (fields[0] if isinstance(fields, list) else fields).get("field_path", "")
        if first.startswith("${each.value"):
            # One resource per entry of a local table: read the table.
            local = _LOCAL.search(str(index.get("for_each", "")))
            table = (terraform.locals.get(local.group(1)) if local else None) or {}
            key = first.removeprefix("${each.value").removesuffix("}").lstrip(".")
            indexed_fields |= {entry[key] if key else entry for entry in table.values()}
        else:
            indexed_fields.add(first)
    for field in sorted(queried - indexed_fields):
        found.append(f"the store queries on {field}, but no Firestore index starts with it")
    if "expire_at" in store and not terraform.resource("google_firestore_field"):
        found.append("the store writes expire_at, but no TTL policy deletes expired records")
    return found
