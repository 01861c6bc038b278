"""Will the deployment deploy, first time and every time? Checks of infra/ and cloudbuild.yaml
for the faults a line-by-line review found (issue 15): grants and the waits they need, the
APIs, alerts, the dead-letter budget, secret versions, provider pins and the pipeline's
accounts and switch. Each returns sentences (empty: fine); test_terraform.py runs them on the
real tree and on broken copies.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from tests.infra.consistency import Terraform, block

# The API each kind of resource is served by: a resource whose API is not enabled fails the
# first apply. iamcredentials has no resource of its own (impersonation: Terraform run by hand as
# the apply account) and cloudresourcemanager serves data.google_project and project IAM: both
# are required outright.
API_OF = {
    "google_artifact_registry": "artifactregistry.googleapis.com",
    "google_cloud_run": "run.googleapis.com",
    "google_cloud_scheduler": "cloudscheduler.googleapis.com",
    "google_cloudbuild": "cloudbuild.googleapis.com",
    "google_cloudfunctions2": "cloudfunctions.googleapis.com",
    "google_compute": "compute.googleapis.com",
    "google_firestore": "firestore.googleapis.com",
    "google_logging": "logging.googleapis.com",
    "google_monitoring": "monitoring.googleapis.com",
    "google_project_iam": "cloudresourcemanager.googleapis.com",
    "google_pubsub": "pubsub.googleapis.com",
    "google_secret_manager": "secretmanager.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_storage": "storage.googleapis.com",
    "google_vpc_access": "vpcaccess.googleapis.com",
}
ALWAYS = {"cloudresourcemanager.googleapis.com", "iamcredentials.googleapis.com", "serviceusage.googleapis.com"}
# Roles a read-only account may hold.
READ_ONLY = re.compile(r"roles/(viewer|iam\.securityReviewer|logging\.logWriter|[a-zA-Z.]*\.(viewer|reader))$")
MEASURED_TICKETS_PER_SECOND = 11  # one worker instance, 1 vCPU (make bench: 11.6/s on torch; 14.9/s on ONNX)


def problems(root: Path) -> list[str]:
    terraform = Terraform(root / "infra")
    build = yaml.safe_load((root / "cloudbuild.yaml").read_text(encoding="utf-8"))
    return (
        _build_account(terraform)
        + _log_metric_alerts(terraform)
        + _apis(terraform)
        + _alert_subscriptions(terraform)
        + _dead_letter_budget(terraform)
        + _secret_versions(terraform)
        + _providers(terraform, root)
        + _ci_accounts(terraform)
        + pipeline_problems(build)
    )


# ---------------------------------------------------------------- 1. the build account, the wait


def _build_account(terraform: Terraform) -> list[str]:
    found = []
    roles = str(terraform.locals.get("project_roles", ""))
    sources = terraform.expand(terraform.locals.get("function_sources_bucket", ""))
    reads_sources = re.search(
        r"google_service_account\.build\.member, role = \"roles/storage\.object(Viewer|Admin)\"", roles
    )
    if not reads_sources or "gcf-v2-sources-" not in sources or "local.function_sources_bucket" not in roles:
        found.append(
            "the functions' build account may not read gcf-v2-sources-<number>-<region>, "
            "where 2nd gen builds fetch the source (terraform-provider-google #20571)"
        )
    waits = terraform.resource("time_sleep")
    propagation = [
        name
        for name, wait in waits.items()
        if "google_project_iam_member.role" in str(wait.get("depends_on"))
        and "google_secret_manager_secret_iam_member" in str(wait.get("depends_on"))
    ]
    if not propagation:
        found.append("no time_sleep waits for the functions' grants (project roles and secrets) to propagate")
    for name, function in terraform.resource("google_cloudfunctions2_function").items():
        if not any(f"time_sleep.{wait}" in str(function.get("depends_on")) for wait in propagation):
            found.append(f"function {name} does not wait for its grants to propagate before it is built")
    return found


# ---------------------------------------------------------------- 2. alerts on new log-based metrics


def _log_metric_alerts(terraform: Terraform) -> list[str]:
    found = []
    waits = terraform.resource("time_sleep")
    for name, policy in terraform.resource("google_monitoring_alert_policy").items():
        metrics = set(
            re.findall(r"logging\.googleapis\.com/user/\$\{google_logging_metric\.([a-z_0-9]+)\.name\}", str(policy))
        )
        for metric in sorted(metrics):
            covered = [
                wait
                for wait, sleep in waits.items()
                if f"google_logging_metric.{metric}." in str(sleep)
                and f"time_sleep.{wait}" in str(policy.get("depends_on"))
            ]
            if not covered:
                found.append(
                    f"alert policy {name} is created on the new log-based metric {metric} without waiting for "
                    "Cloud Monitoring to know it (404 for up to 10 minutes: terraform-provider-google #11102)"
                )
    return found


# ---------------------------------------------------------------- 4. APIs


def _apis(terraform: Terraform) -> list[str]:
    enabled = set(re.findall(r"[a-z]+\.googleapis\.com", str(terraform.locals.get("apis", ""))))
    needed = set(ALWAYS)
    for kind in terraform.resources:
        for prefix, api in API_OF.items():
            if kind.startswith(prefix):
                needed.add(api)
    return [f"{api} is not enabled (apis.tf), but the deployment needs it" for api in sorted(needed - enabled)]


# ---------------------------------------------------------------- 9. alerts on the work subscriptions


def _alert_subscriptions(terraform: Terraform) -> list[str]:
    found = []
    work = terraform.expand(terraform.locals.get("work_subscriptions", ""))
    if "dead_letter_hold" in work:
        found.append("local.work_subscriptions includes the -hold subscription, which nobody acknowledges")
    for name, policy in terraform.resource("google_monitoring_alert_policy").items():
        text = str(policy)
        if "pubsub_subscription" not in text:
            continue
        if re.search(r"starts_with|monitoring\.regex|ends_with", text):
            found.append(f"alert policy {name} selects subscriptions by a pattern, which also matches the -hold one")
        if "oldest_unacked_message_age" in text and "local.work_subscriptions" not in text:
            found.append(f"alert policy {name} watches message age on subscriptions other than the work ones")
        if "num_undelivered_messages" in text and "dead_letter_hold" not in text:
            found.append(f"alert policy {name} does not watch the dead-letter hold subscription")
    return found


# ---------------------------------------------------------------- 10. the dead-letter budget


def refusals(drain_seconds: float, minimum: float, maximum: float) -> int:
    """Pushes one message can be refused while a burst drains, the backoff doubling from
    minimum to maximum (the arithmetic pubsub.tf documents), plus the first push."""
    doublings = math.ceil(math.log2(maximum / minimum))
    ramp = minimum * (2**doublings - 1)
    if drain_seconds <= ramp:
        return 1 + math.ceil(math.log2(drain_seconds / minimum + 1))
    return 1 + doublings + math.ceil((drain_seconds - ramp) / maximum)


def _seconds(value: Any, terraform: Terraform) -> float:
    text = str(value)
    match = re.fullmatch(r"\$\{local\.([a-z_0-9]+)\}s", text)
    if match:
        text = str(terraform.locals.get(match.group(1)))
    return float(text.rstrip("s"))


def _dead_letter_budget(terraform: Terraform) -> list[str]:
    found = []
    worker_attempts = terraform.default("max_delivery_attempts")
    rate = terraform.default("worker_tickets_per_second")
    instances = terraform.default("worker_max_instances")
    burst = terraform.default("burst_tickets")
    if not all(isinstance(v, int | float) for v in (worker_attempts, rate, instances, burst)):
        return [
            "the dead-letter budget's inputs (max_delivery_attempts, worker_tickets_per_second, "
            "worker_max_instances, burst_tickets) are not all declared with defaults"
        ]
    if rate > MEASURED_TICKETS_PER_SECOND:
        found.append(
            f"worker_tickets_per_second defaults to {rate}/s, above the {MEASURED_TICKETS_PER_SECOND}/s measured"
        )
    for name, subscription in terraform.resource("google_pubsub_subscription").items():
        policy = block(subscription.get("dead_letter_policy"))
        if not policy:
            continue
        expression = str(policy.get("max_delivery_attempts"))
        retry = block(subscription.get("retry_policy"))
        minimum = _seconds(retry.get("minimum_backoff", "10s"), terraform)
        maximum = _seconds(retry.get("maximum_backoff", "600s"), terraform)
        needed = worker_attempts + 2 + refusals(burst / (instances * rate), minimum, maximum)
        if expression == "${local.pubsub_max_delivery_attempts}":
            formula = terraform.expand(expression)
            inputs = (
                "var.max_delivery_attempts",
                "var.worker_tickets_per_second",
                "var.worker_max_instances",
                "var.burst_tickets",
            )
            budget = needed if all(i in formula for i in inputs) else 0
        elif (literal := re.fullmatch(r"\$\{var\.max_delivery_attempts \+ (\d+)\}", expression)) is not None:
            budget = worker_attempts + int(literal.group(1))
        elif expression.isdigit():
            budget = int(expression)
        else:
            budget = 0
        if budget < needed:
            found.append(
                f"subscription {name}: Pub/Sub dead-letters after {budget or expression} deliveries, but a burst of "
                f"{burst} tickets at {instances} x {rate} tickets/s can refuse a push {needed - worker_attempts - 2} "
                f"times before the worker's own {worker_attempts} attempts: it needs {needed}"
            )
    return found


# ---------------------------------------------------------------- 13. secret versions


def _secret_versions(terraform: Terraform) -> list[str]:
    found = []
    if "var.secret_versions" not in str(terraform.locals.get("secret_version")):
        found.append("local.secret_version does not come from var.secret_versions")
    readers = [
        ("function", name, resource) for name, resource in terraform.resource("google_cloudfunctions2_function").items()
    ] + [("job", name, resource) for name, resource in terraform.resource("google_cloud_run_v2_job").items()]
    for kind, name, resource in readers:
        versions = re.findall(r"'version': '([^']*)'", str(resource))
        for version in versions:
            if "local.secret_version[" not in version:
                found.append(f"{kind} {name} reads a secret at version {version!r}, not the pinned one")
    return found


# ---------------------------------------------------------------- 12. providers and their lock


def _providers(terraform: Terraform, root: Path) -> list[str]:
    found = []
    required = block(terraform.terraform.get("required_providers"))
    for name, provider in required.items():
        constraint = str(provider.get("version", ""))
        if not re.fullmatch(r"~> ?\d+\.\d+(\.\d+)?", constraint):
            found.append(f"provider {name} is constrained by {constraint!r}, not a pessimistic ~> constraint")
    ignored = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    if any(".terraform.lock.hcl" in line and not line.startswith("!") for line in ignored):
        found.append(".gitignore ignores .terraform.lock.hcl, which must be committed")
    lock = root / "infra" / ".terraform.lock.hcl"
    if lock.exists():
        text = lock.read_text(encoding="utf-8")
        for name, provider in required.items():
            if f'provider "registry.terraform.io/{provider.get("source")}"' not in text:
                found.append(f"infra/.terraform.lock.hcl does not lock provider {name}")
    return found


# ---------------------------------------------------------------- 3, 12. the pipeline's accounts


def _ci_accounts(terraform: Terraform) -> list[str]:
    found = []
    plan_roles = terraform.locals.get("plan_roles", {}) or {}
    apply_roles = terraform.locals.get("apply_roles", {}) or {}
    for role in plan_roles:
        if not READ_ONLY.match(role):
            found.append(f"the plan account (pull requests) holds {role}, which is not read-only")
    for role in apply_roles:
        if role in ("roles/owner", "roles/editor"):
            found.append(f"the apply account holds {role}: grant the roles infra/ needs instead")
    state = terraform.resource("google_storage_bucket_iam_member")
    plan_state = [g for g in state.values() if "ci_plan" in str(g.get("member"))]
    if any(g.get("role") != "roles/storage.objectViewer" for g in plan_state):
        found.append("the plan account may write the Terraform state")
    triggers = terraform.resource("google_cloudbuild_trigger")
    expected = {
        "plan": ("google_service_account.ci_plan", "pull_request", "false"),
        "apply": ("google_service_account.ci_apply", "push", "true"),
    }
    for name, (account, event, apply) in expected.items():
        trigger = triggers.get(name)
        if trigger is None:
            found.append(f"there is no {name} trigger (google_cloudbuild_trigger.{name})")
            continue
        if account not in str(trigger.get("service_account")):
            found.append(
                f"trigger {name} does not name its build account ({account}): it would build as the project's "
                "default (the Compute Engine default account in projects made since mid-2024)"
            )
        if event not in block(trigger.get("github")):
            found.append(f"trigger {name} does not run on {event} events")
        if str(block(trigger.get("substitutions")).get("_APPLY")) != apply:
            found.append(
                f"trigger {name} sets _APPLY to {block(trigger.get('substitutions')).get('_APPLY')!r}, not {apply!r}"
            )
    return found


# ---------------------------------------------------------------- 5, 11, 12. cloudbuild.yaml


def _script(step: dict[str, Any]) -> str:
    return " ".join(str(arg) for arg in step.get("args", []))


def pipeline_problems(build: dict[str, Any]) -> list[str]:
    found = []
    steps = {step.get("id"): step for step in build.get("steps", [])}
    substitutions = build.get("substitutions", {})
    apply = steps.get("terraform-apply", {})
    script = _script(apply)
    if not re.search(r'"\$\{_APPLY\}" != "true"', script) or "BRANCH_NAME" in script:
        found.append(
            "terraform-apply is not switched by _APPLY=true (a branch test never fires outside trigger builds)"
        )
    if str(substitutions.get("_APPLY")) != "false":
        found.append("_APPLY does not default to false")
    if apply.get("waitFor") != ["terraform-plan"] or "tfplan" not in script:
        found.append("terraform-apply does not apply the saved plan right after terraform-plan")
    if "-lockfile=readonly" not in _script(steps.get("terraform-init", {})):
        found.append("terraform-init does not insist on the committed lock file (-lockfile=readonly)")
    plan = _script(steps.get("terraform-plan", {}))
    if "-lock=false" not in plan:
        found.append("terraform-plan takes the state lock in plan-only builds, whose account may not write the state")
    if "emulator-tests" not in steps.get("terraform-plan", {}).get("waitFor", []):
        found.append("terraform-plan does not wait for the emulator tests")
    text = yaml.safe_dump(build)
    if "GOOGLE_APPLICATION_CREDENTIALS" in text or ".json" in text:
        found.append("the build uses a key file")
    if "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT" in text:
        found.append("the build impersonates a deploy account; the trigger's own account decides what it may do")
    for step in build.get("steps", []):
        if not re.fullmatch(r"\$\{_MIRROR\}/\$\{_[A-Z_]+_IMAGE\}", str(step.get("name"))):
            found.append(f"step {step.get('id')} does not pull a pinned image through ${{_MIRROR}}")
    for name, image in substitutions.items():
        if name.endswith("_IMAGE") and not re.search(r":\d+\.\d+\.\d+", str(image)):
            found.append(f"{name} is not pinned to a version: {image}")
    emulators = _script(steps.get("emulator-tests", {}))
    if "sys.version_info[:2] != (3, 11)" not in emulators:
        found.append("emulator-tests does not stop on an emulators image with another Python than the lock's 3.11")
    return found
