"""cloudbuild.yaml: the steps the deployment issue asks for, pinned images, no key files."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

BUILD = yaml.safe_load((Path(__file__).resolve().parents[2] / "cloudbuild.yaml").read_text(encoding="utf-8"))
STEPS = {step["id"]: step for step in BUILD["steps"]}


def test_every_stage_is_a_step_with_an_id():
    for needed in ("install", "lint", "unit-tests", "emulator-tests", "terraform-fmt", "terraform-validate"):
        assert needed in STEPS
    assert {"terraform-plan", "terraform-apply"} <= set(STEPS)


def test_builder_images_come_from_pinned_substitutions():
    for step in BUILD["steps"]:
        assert re.fullmatch(r"\$\{_[A-Z_]+\}", step["name"]), step["id"]
    for name, image in BUILD["substitutions"].items():
        if name.endswith("_IMAGE"):
            assert re.search(r":\d+\.\d+\.\d+", image), f"{name} is not pinned to a version: {image}"


def test_apply_runs_only_on_the_deploy_branch_and_after_the_plan():
    apply = STEPS["terraform-apply"]
    assert apply["waitFor"] == ["terraform-plan"]
    script = " ".join(apply["args"])
    assert '"$BRANCH_NAME" != "${_DEPLOY_BRANCH}"' in script and "tfplan" in script
    assert "emulator-tests" in STEPS["terraform-plan"]["waitFor"]


def test_terraform_impersonates_the_deploy_account_and_no_key_file_is_used():
    for step_id in ("terraform-init", "terraform-plan", "terraform-apply"):
        assert "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT=${_DEPLOY_SA}" in STEPS[step_id]["env"]
    text = yaml.safe_dump(BUILD)
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in text and ".json" not in text
