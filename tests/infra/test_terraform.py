"""Offline checks of infra/: formatting, checkov, and consistency with the code, each shown
to fail on a copy of the tree with one reference deliberately broken."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.consistency import problems

ROOT = Path(__file__).resolve().parents[2]
INFRA, FUNCTIONS = ROOT / "infra", ROOT / "functions"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
TERRAFORM = shutil.which("terraform")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of infra/ and functions/ to break."""
    shutil.copytree(INFRA, tmp_path / "infra", ignore=shutil.ignore_patterns(".terraform", ".build"))
    shutil.copytree(FUNCTIONS, tmp_path / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}: the mutation no longer applies"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_terraform_is_consistent_with_the_code():
    assert problems(INFRA, FUNCTIONS) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("infra/functions.tf", 'entry_point     = "process_ticket"', 'entry_point     = "process"', "entry point"),
        ("functions/main.py", "def process_ticket(", "def handle_ticket(", "entry point 'process_ticket'"),
        ("infra/functions.tf", "TICKETS_TOPIC         =", "TICKET_TOPIC          =", "TICKET_TOPIC"),
        ("infra/functions.tf", "PUBLIC_BASE_URL       = local.api_url", "", "does not set PUBLIC_BASE_URL"),
        ("infra/functions.tf", 'LOG_LEVEL             = "INFO"', 'GEMINI_API_KEY = "AIza..."', "plain environment"),
        ("infra/secrets.tf", '"GEMINI_API_KEY",      # the LLM classifier', "", "GEMINI_API_KEY"),
        ("infra/functions.tf", "in local.worker_secrets", "in local.api_secrets", "local.worker_secrets"),
        ("infra/pubsub.tf", "dead_letter_topic     = google_pubsub_topic.dead_letter.id", "", "dead-letter"),
        ("infra/pubsub.tf", '"google_pubsub_topic" "dead_letter"', '"google_pubsub_topic" "parked"', "dead_letter"),
        ("infra/variables.tf", 'default     = "2Gi"', 'default     = "512Mi"', "memory 512Mi"),
        ("infra/firestore.tf", "remembered_updated = {", "# remembered_updated = {", "classification.remembered"),
        ("infra/variables.tf", '"SERVICENOW_PASSWORD",\n    ], name)', "\n    ], name)", "var.secrets allows"),
    ],
    ids=[
        "unknown-entry-point",
        "entry-point-renamed-in-code",
        "misspelt-variable",
        "required-variable-missing",
        "secret-as-plain-variable",
        "secret-not-wired",
        "secrets-not-from-local",
        "no-dead-letter-policy",
        "no-dead-letter-topic",
        "worker-memory-too-small",
        "missing-index",
        "secret-list-out-of-date",
    ],
)
def test_a_broken_reference_is_reported(tree: Path, file, old, new, expected):
    edit(tree / file, old, new)
    found = problems(tree / "infra", tree / "functions")
    assert found, "the mutation went unnoticed"
    assert any(expected in problem for problem in found), found


@pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")
def test_terraform_fmt_passes_and_catches_a_misformatted_file(tree: Path):
    assert subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", str(INFRA)], capture_output=True).returncode == 0
    edit(tree / "infra/outputs.tf", 'description = "Base URL', 'description =     "Base URL')
    check = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", str(tree / "infra")], capture_output=True)
    assert check.returncode != 0


def checkov(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHECKOV), "-d", str(folder), "--framework", "terraform", "--skip-download", "--compact", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed (make install makes .venv-checkov)")
def test_checkov_passes_and_fails_once_an_inline_skip_is_removed(tree: Path):
    passed = checkov(INFRA)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    edit(tree / "infra/functions.tf", "#checkov:skip=CKV_GCP_124:", "# no skip: ")
    failed = checkov(tree / "infra")
    assert failed.returncode != 0 and "CKV_GCP_124" in failed.stdout


def pins(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if "==" in line]


def test_the_deployed_requirements_are_the_runtime_lock_with_a_cpu_only_torch():
    deployed = (FUNCTIONS / "requirements.txt").read_text(encoding="utf-8")
    locked = pins(ROOT / "requirements.txt")
    assert pins(FUNCTIONS / "requirements.txt") == locked, "run: make functions/requirements.txt"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in deployed.splitlines()
    torch = [pin for pin in pins(FUNCTIONS / "requirements.txt") if pin.startswith("torch==")]
    assert torch and torch[0].endswith("+cpu")
    assert not [pin for pin in pins(FUNCTIONS / "requirements.txt") if pin.startswith("nvidia-")]
