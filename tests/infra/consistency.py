"""Does infra/ deploy what functions/ needs? Checks that parse the Terraform (python-hcl2)
and the code, and return the problems they find as sentences (empty: consistent).

Used by tests/infra/test_terraform.py on the real tree and on mutated copies of it. The
checks of how the deployment is deployed (IAM waits, APIs, the pipeline) are in
deployment.py, those of the memory's hosting in memory.py, the dashboards' in dashboards.py;
this module also holds the parsing they share.
"""

from __future__ import annotations

import ast
import functools
import re
import typing
from pathlib import Path
from typing import Any

import hcl2
from pydantic import SecretStr

from triage.adapters.embedder import WORKER_MEMORY_MIB
from triage.config import Settings

# Read by libraries, not by Settings: functions-framework reads THREADS (gunicorn's threads,
# functions_framework/_http/gunicorn.py) and LOG_EXECUTION_ID; huggingface_hub reads HF_HUB_OFFLINE.
LIBRARY_VARIABLES = frozenset({"HF_HUB_OFFLINE", "THREADS", "LOG_EXECUTION_ID"})
_BOTH = {
    "GOOGLE_CLOUD_PROJECT",
    "TICKETS_TOPIC",
    "WRITEBACK_TOPIC",
    "TICKETS_COLLECTION",
    "MEMORY_COLLECTION",
    "CALIBRATION_COLLECTION",
    "CHROMA_HOST",
    "CHROMA_PORT",
    "CHROMA_SSL",
    "CHROMA_AUTH",
    # Write-back: the worker writes back, the API queues a correction's write-back.
    "JIRA_WRITEBACK",
    "SERVICENOW_WRITEBACK",
    # gunicorn's threads, matched to the declared concurrency (checked below).
    "THREADS",
    # Declared as the platform sets it, so plans do not churn.
    "LOG_EXECUTION_ID",
}
# Settings whose default only makes sense on a laptop: Terraform must set them, per function.
REQUIRED = {
    "api": _BOTH | {"PUBLIC_BASE_URL"},
    "worker": _BOTH
    | {"GEMINI_BACKEND", "GEMINI_PROJECT", "GEMINI_LOCATION", "MEMORY_TARGET_PRECISION", "MEMORY_AUDIT_RATE"},
}
# The write-back credentials the API needs too (config.py refuses write-back without them).
WRITEBACK_SECRETS = {"JIRA_API_TOKEN", "SERVICENOW_PASSWORD"}
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


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> dict[str, Any]:
    """One file's HCL; cached by its text, so a broken copy reparses only what was broken."""
    return _clean(hcl2.loads(text))


class Terraform:
    """All .tf files of a folder, merged: resources by type and name, variables, locals."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.terraform: dict[str, Any] = {}
        self.text = ""
        for path in sorted(self.folder.glob("*.tf")):
            text = path.read_text(encoding="utf-8")
            self.text += text
            parsed = _parse(text)
            for block in parsed.get("resource", []):
                for kind, named in block.items():
                    self.resources.setdefault(kind, {}).update(named)
            for block in parsed.get("variable", []):
                self.variables.update(block)
            for block in parsed.get("locals", []):
                self.locals.update(block)
            for block in parsed.get("terraform", []):
                self.terraform.update(block)

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

    def default(self, variable: str) -> Any:
        return self.variables.get(variable, {}).get("default")


def block(value: Any) -> dict[str, Any]:
    """A nested block parses as a one-element list."""
    if isinstance(value, list):
        return value[0] if value else {}
    return value or {}


def _account_ids(terraform: Terraform) -> list[str]:
    """Every service account's id fits Google's 6 to 30 characters with the longest name_prefix
    its validation admits."""
    condition = str(block(terraform.variables.get("name_prefix", {}).get("validation")).get("condition"))
    bound = re.search(r"\{1,(\d+)\}", condition)
    longest = int(bound.group(1)) + 1 if bound else 0
    found = []
    for name, account in terraform.resource("google_service_account").items():
        account_id = str(account.get("account_id", ""))
        suffix = account_id.removeprefix("${var.name_prefix}")
        length = longest + len(suffix)
        if suffix != account_id and not 6 <= length <= 30:
            found.append(f"service account {name}: {account_id} is {length} characters at the longest prefix")
    return found


def _mixed_queries(adapters: list[Path]) -> list[tuple[str, set[str], set[str]]]:
    """Per function of the Firestore adapters: the fields it filters on by equality and by range,
    where it has both."""
    mixed = []
    for path in adapters:
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, ast.FunctionDef):
                continue
            equal: set[str] = set()
            ranged: set[str] = set()
            for call in ast.walk(function):
                if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "FieldFilter":
                    field, operator = (a.value if isinstance(a, ast.Constant) else None for a in call.args[:2])
                    if isinstance(field, str) and operator in ("<", "<=", ">", ">="):
                        ranged.add(field)
                    elif isinstance(field, str) and operator == "==":
                        equal.add(field)
            if equal and ranged:
                mixed.append((f"{path.name} {function.name}", equal, ranged))
    return mixed


def entry_points(main: Path) -> set[str]:
    tree = ast.parse(main.read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if "functions_framework" in ast.unparse(decorator):
                    found.add(node.name)
    return found


def settings_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


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
        return terraform.default(match.group(1))
    return expression


def _function_roles(terraform: Terraform) -> dict[str, str]:
    """Which google_cloudfunctions2_function deploys the api and which the worker."""
    roles = {}
    for name, function in terraform.resource("google_cloudfunctions2_function").items():
        entry = block(function.get("build_config")).get("entry_point")
        role = {"api": "api", "process_ticket": "worker"}.get(entry)
        if role:
            roles[role] = name
    return roles


def _environment(terraform: Terraform, function: dict[str, Any]) -> str:
    return terraform.expand(block(function.get("service_config")).get("environment_variables", ""))


def problems(infra: Path, functions: Path) -> list[str]:
    terraform = Terraform(infra)
    found: list[str] = []
    settings = settings_names()
    secrets = secret_settings()
    # None today; a setting added without a default must then be set by Terraform.
    without_default = {field.upper() for field, info in Settings.model_fields.items() if info.is_required()}
    functions_tf = terraform.resource("google_cloudfunctions2_function")

    # Each function: its entry point exists, its environment is known to the code.
    points = entry_points(functions / "main.py")
    roles = {"api": None, "worker": None} | _function_roles(terraform)
    for name, function in functions_tf.items():
        service = block(function.get("service_config"))
        entry = block(function.get("build_config")).get("entry_point")
        if entry not in points:
            found.append(f"function {name}: entry point {entry!r} is not a function in functions/main.py")
        role = next((r for r, n in roles.items() if n == name), None)
        environment = _environment(terraform, function)
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
        # gunicorn runs THREADS threads: as many as the requests Cloud Run sends at once.
        concurrency = str(service.get("max_instance_request_concurrency", ""))
        threads = re.search(r"\bTHREADS\s*=\s*(?:\$\{)?tostring\((var\.[a-z_0-9]+)\)", environment)
        if "THREADS" in keys and (not threads or f"${{{threads.group(1)}}}" != concurrency):
            found.append(
                f"function {name}: THREADS is not its max_instance_request_concurrency ({concurrency}): "
                "gunicorn would queue requests Cloud Run believes are being served"
            )
        # The platform adds LOG_EXECUTION_ID; declared (or ignored) it does not churn every plan.
        ignored = str(block(function.get("lifecycle")).get("ignore_changes", ""))
        if "LOG_EXECUTION_ID" not in keys and "LOG_EXECUTION_ID" not in ignored:
            found.append(f"function {name}: neither sets LOG_EXECUTION_ID nor ignores it, so every plan redeploys it")
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
    api_secrets, worker_secrets = (
        set(terraform.literal_list("api_secrets")),
        set(terraform.literal_list("worker_secrets")),
    )
    for key in sorted(secrets - api_secrets - worker_secrets):
        found.append(f"secret {key} (a SecretStr setting) is wired to no function")
    for key in sorted((api_secrets | worker_secrets) - secrets):
        found.append(f"secret {key} is wired, but the code reads no such secret")
    allowed = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', str(terraform.variables.get("secrets", {}).get("validation"))))
    if allowed != secrets:
        found.append(f"var.secrets allows {sorted(allowed)}, but the code's secrets are {sorted(secrets)}")
    if "GEMINI_API_KEY" not in worker_secrets:
        found.append("the worker is not given GEMINI_API_KEY")
    for key in sorted(WRITEBACK_SECRETS - api_secrets):
        found.append(f"the API is not given {key}, which it needs to queue a correction's write-back")

    found += _writeback_queue(terraform, roles)
    found += _vertex(terraform)
    found += _dead_letters(terraform)
    found += _firestore(terraform, functions)
    found += _account_ids(terraform)
    return found


def _writeback_queue(terraform: Terraform, roles: dict[str, str | None]) -> list[str]:
    """The API queues a correction's write-back: it may publish to the write-back topic."""
    grants = terraform.resource("google_pubsub_topic_iam_member")
    for grant in grants.values():
        member, topics = str(grant.get("member")), terraform.expand(grant.get("for_each", "")) + str(grant.get("topic"))
        if "google_service_account.api." in member and "google_pubsub_topic.writeback" in topics:
            return []
    return ["the API may not publish to the write-back topic, where it queues a correction's write-back"]


def _vertex(terraform: Terraform) -> list[str]:
    """Gemini on Vertex AI by default, with the worker's service account and no API key."""
    found = []
    if terraform.default("gemini_backend") != "vertex":
        found.append(f"var.gemini_backend defaults to {terraform.default('gemini_backend')!r}, not vertex")
    if "aiplatform.googleapis.com" not in str(terraform.locals.get("apis")):
        found.append("aiplatform.googleapis.com is not enabled for gemini_backend = vertex")
    roles = str(terraform.locals.get("project_roles"))
    if not re.search(r"google_service_account\.worker\.member, role = \"roles/aiplatform\.user\"", roles):
        found.append("the worker's service account is not granted roles/aiplatform.user for Vertex AI")
    secret = terraform.resource("google_secret_manager_secret").get("secret", {})
    if 'GEMINI_API_KEY" && var.gemini_backend == "vertex' not in str(block(secret.get("lifecycle"))):
        found.append("nothing stops a GEMINI_API_KEY secret from being made in vertex mode")
    return found


def _dead_letters(terraform: Terraform) -> list[str]:
    """The dead-letter topic exists, every worker subscription routes to it, something reads it."""
    found = []
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
        policy = block(subscription.get("dead_letter_policy"))
        if "google_pubsub_topic.dead_letter." not in str(policy.get("dead_letter_topic")):
            found.append(f"subscription {name} pushes to the worker without a dead-letter policy to the DLQ")
        if "oidc_token" not in str(subscription.get("push_config")):
            found.append(f"subscription {name} pushes without an OIDC token")
    grants = terraform.resource("google_pubsub_topic_iam_member")
    if not any(
        "dead_letter" in str(g.get("topic")) and "pubsub_agent" in str(g.get("member")) for g in grants.values()
    ):
        found.append("the Pub/Sub service agent may not publish to the dead-letter topic")
    return found


def _firestore(terraform: Terraform, functions: Path) -> list[str]:
    """A composite index holding each equality the stores query on (the first field of one, or
    the second of a two-equality query's); and, where a query adds a range to an equality, an
    index holding both (Firestore refuses such a query without one)."""
    found = []
    adapters = sorted((functions / "triage" / "adapters").glob("firestore*.py"))
    store = "\n".join(path.read_text(encoding="utf-8") for path in adapters)
    queried = set(re.findall(r'FieldFilter\("([a-z_.]+)", "=="', store))
    indexed_fields = set()
    indexes: list[set[str]] = []  # the fields of each composite index
    for index in terraform.resource("google_firestore_index").values():
        fields = index.get("fields", [])
        fields = fields if isinstance(fields, list) else [fields]
        first = fields[0].get("field_path", "") if fields else ""
        if first.startswith("${each.value"):
            # One resource per entry of a local table: read the table.
            local = _LOCAL.search(str(index.get("for_each", "")))
            table = (terraform.locals.get(local.group(1)) if local else None) or {}
            key = first.removeprefix("${each.value").removesuffix("}").lstrip(".")
            indexed_fields |= {entry[key] if key else entry for entry in table.values()}
            indexed_fields |= {entry["then"] for entry in table.values() if isinstance(entry, dict) and "then" in entry}
            indexes += [{entry["equality"], entry["then"]} for entry in table.values() if isinstance(entry, dict)]
        else:
            indexed_fields.add(first)
            indexes.append({str(f.get("field_path", "")) for f in fields})
    for field in sorted(queried - indexed_fields):
        found.append(f"the store queries on {field}, but no Firestore index starts with it")
    for where, equal, ranged in _mixed_queries(adapters):
        for pair in sorted((e, r) for e in equal for r in ranged):
            if not any(set(pair) <= index for index in indexes):
                found.append(f"{where} filters on {pair[0]} and a range of {pair[1]}, but no index holds both")
    if "expire_at" in store and not terraform.resource("google_firestore_field"):
        found.append("the store writes expire_at, but no TTL policy deletes expired records")
    return found
