"""cloudbuild.yaml: the stages the deployment needs, in order. What makes it safe (the apply
switch, the lock file, pinned and mirrored images, no key file, no impersonation) is checked
by deployment.py and shown to fail on broken copies in test_terraform.py."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.infra.deployment import pipeline_problems

ROOT = Path(__file__).resolve().parents[2]
BUILD = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text(encoding="utf-8"))
STEPS = {step["id"]: step for step in BUILD["steps"]}


def test_every_stage_is_a_step_with_an_id():
    for needed in ("install", "lint", "unit-tests", "emulator-tests", "backfill-image", "terraform-fmt"):
        assert needed in STEPS
    assert {"terraform-init", "terraform-validate", "terraform-plan", "terraform-apply"} <= set(STEPS)


def test_the_plan_waits_for_every_test_and_the_image_it_deploys():
    assert {"emulator-tests", "lint", "terraform-validate", "backfill-image"} <= set(STEPS["terraform-plan"]["waitFor"])
    assert "backfill_image=" in " ".join(STEPS["terraform-plan"]["args"])


def test_the_pipeline_passes_the_deployment_checks():
    assert pipeline_problems(BUILD) == []


def test_the_backfill_image_is_pushed_only_when_applying():
    script = " ".join(STEPS["backfill-image"]["args"])
    assert 'if [ "${_APPLY}" = "true" ]; then' in script
    assert script.index('if [ "${_APPLY}" = "true" ]') < script.index("docker push")


def test_the_build_exports_the_workers_onnx_model_before_anything_zips_functions():
    """Terraform zips functions/ with the export in it; the worker requires it (EMBEDDING_BACKEND=onnx)."""
    assert "-m triage.offline.onnx_export" in " ".join(STEPS["install"]["args"])
    assert STEPS["backfill-image"]["waitFor"] == ["install"]  # the image's functions/ holds it too
    functions_tf = (ROOT / "infra" / "functions.tf").read_text()
    worker_env = functions_tf[functions_tf.index("worker_env = ") :]
    assert 'EMBEDDING_BACKEND = "onnx"' in worker_env[: worker_env.index("})")]
    backfill_tf = (ROOT / "infra" / "backfill.tf").read_text()
    job_env = backfill_tf[backfill_tf.index("backfill_env = ") :]
    assert 'EMBEDDING_BACKEND = "onnx"' in job_env[: job_env.index("})")]  # its image has no torch either
