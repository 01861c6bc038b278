"""Is the memory hosted so that it survives? Checks of infra/ for Chroma on Compute Engine
(issue 17): the pinned server on a persistent disk with snapshots, a single-instance managed
group that brings a dead VM back with its disk and address, no external IP, private traffic
only from the functions' connector, token auth from Secret Manager; the sharded backfill
job with its image; and the scheduled calibration job on that image. Each returns sentences
(empty: fine).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.consistency import LIBRARY_VARIABLES, Terraform, block, settings_names

_KEY = re.compile(r"\b([A-Z][A-Z0-9_]+)\s*=")


def problems(root: Path) -> list[str]:
    terraform = Terraform(root / "infra")
    return (
        _modes(terraform)
        + _chroma_vm(terraform, root)
        + _private_path(terraform)
        + _backfill(terraform, root)
        + _calibrate(terraform)
    )


def _modes(terraform: Terraform) -> list[str]:
    found = []
    if terraform.default("chroma_mode") != "gce":
        found.append(f"chroma_mode defaults to {terraform.default('chroma_mode')!r}, not gce (a persistent disk)")
    allowed = str(block(terraform.variables.get("chroma_mode", {}).get("validation")).get("condition"))
    if "cloud_run" in allowed:
        found.append("chroma_mode still allows cloud_run (Chroma's files on a Cloud Storage FUSE volume)")
    for kind in ("google_cloud_run_v2_service", "google_cloud_run_v2_job"):
        for name, resource in terraform.resource(kind).items():
            if re.search(r"'gcs': \[\{[^]]*'read_only': False", str(resource)):
                found.append(f"{kind}.{name} writes to a Cloud Storage FUSE volume (no locking, last write wins)")
    return found


def _chroma_vm(terraform: Terraform, root: Path) -> list[str]:
    found = []
    pinned = re.search(r"^chromadb==(\S+)", (root / "emulators/requirements-chroma.txt").read_text(), re.MULTILINE)
    image = str(terraform.default("chroma_image"))
    if not pinned or not image.endswith(f":{pinned.group(1)}"):
        found.append(f"chroma_image {image} is not the Chroma version the tests run ({pinned and pinned.group(1)})")

    templates = terraform.resource("google_compute_instance_template")
    template = templates.get("chroma")
    if template is None:
        return [*found, "there is no google_compute_instance_template.chroma"]
    for interface in template.get("network_interface", []):
        if "access_config" in interface:
            found.append("the Chroma VM has an external IP (access_config)")
    user_data = str(block(template.get("metadata")).get("user-data", ""))
    if "token_version" not in user_data or 'google_secret_manager_secret.secret["CHROMA_TOKEN"]' not in user_data:
        found.append("the Chroma VM does not take its token from the CHROMA_TOKEN secret")
    cloud_init = (root / "infra" / "chroma-vm.yaml.tftpl").read_text(encoding="utf-8")
    if "$http_x_chroma_token" not in cloud_init or "return 401" not in cloud_init:
        found.append("the proxy on the Chroma VM does not refuse requests without the x-chroma-token")
    if "127.0.0.1:${chroma_port}:8000" not in cloud_init:
        found.append("the Chroma server on the VM listens beyond 127.0.0.1, around its token-checking proxy")
    readers = [g for g in terraform.resource("google_secret_manager_secret_iam_member").values()]
    if not any(
        "google_service_account.chroma" in str(g.get("member")) and "CHROMA_TOKEN" in str(g.get("secret_id"))
        for g in readers
    ):
        found.append("the Chroma VM's account may not read CHROMA_TOKEN")

    groups = terraform.resource("google_compute_instance_group_manager")
    group = groups.get("chroma", {})
    if not group.get("auto_healing_policies"):
        found.append("the Chroma group has no autohealing: a hung VM is never replaced")
    configs = terraform.resource("google_compute_per_instance_config")
    state = block(configs.get("chroma", {}).get("preserved_state"))
    disk = block(state.get("disk"))
    if "google_compute_disk.chroma" not in str(disk.get("source")) or disk.get("delete_rule") != "NEVER":
        found.append("the Chroma VM does not keep its disk through recreation (per-instance config, delete_rule NEVER)")
    if "google_compute_address.chroma" not in str(state.get("internal_ip")):
        found.append("the Chroma VM does not keep its reserved address through recreation")
    attachments = terraform.resource("google_compute_disk_resource_policy_attachment")
    if not any(
        "google_compute_disk.chroma" in str(a.get("disk")) and "chroma_snapshots" in str(a.get("name"))
        for a in attachments.values()
    ):
        found.append("Chroma's disk has no snapshot schedule attached")
    policy = block(
        block(
            terraform.resource("google_compute_resource_policy")
            .get("chroma_snapshots", {})
            .get("snapshot_schedule_policy")
        ).get("retention_policy")
    )
    if policy.get("on_source_disk_delete") != "KEEP_AUTO_SNAPSHOTS":
        found.append("the snapshots of Chroma's disk are deleted with the disk")
    return found


def _private_path(terraform: Terraform) -> list[str]:
    """Both functions and the job reach Chroma through the connector, and only they may."""
    found = []
    for name, function in terraform.resource("google_cloudfunctions2_function").items():
        service = block(function.get("service_config"))
        connector = terraform.expand(service.get("vpc_connector", ""))
        egress = terraform.expand(service.get("vpc_connector_egress_settings", ""))
        if "google_vpc_access_connector.functions" not in connector or "PRIVATE_RANGES_ONLY" not in egress:
            found.append(f"function {name} does not reach Chroma through the VPC connector (PRIVATE_RANGES_ONLY)")
    environment = terraform.expand(terraform.locals.get("chroma_env", ""))
    if "google_compute_address.chroma" not in environment or "local.chroma_proxy_port" not in environment:
        found.append("CHROMA_HOST/CHROMA_PORT in gce mode are not the VM's reserved address and the proxy's port")
    if 'CHROMA_AUTH = "google_id_token"' in environment:
        found.append("a Chroma mode still authenticates with Google ID tokens (the Cloud Run mode)")
    firewalls = terraform.resource("google_compute_firewall")
    to_chroma = [
        f for f in firewalls.values() if "google_service_account.chroma" in str(f.get("target_service_accounts"))
    ]
    if not to_chroma:
        found.append("no firewall rule admits the functions to the Chroma VM")
    for name, rule in firewalls.items():
        sources = [str(s) for s in rule.get("source_ranges", [])]
        ports = [str(p) for allow in rule.get("allow", []) for p in allow.get("ports", [])]
        if "0.0.0.0/0" in sources:
            found.append(f"firewall {name} admits the whole internet")
        if rule in to_chroma and ports != ["${tostring(local.chroma_proxy_port)}"]:
            found.append(f"firewall {name} opens ports {ports} on the Chroma VM, not only the proxy's")
        if rule in to_chroma and not all(
            s in ("${var.vpc_connector_cidr}", "35.191.0.0/16", "130.211.0.0/22") for s in sources
        ):
            found.append(f"firewall {name} admits {sources} to the Chroma VM, not only the connector and health checks")
    return found


def _backfill(terraform: Terraform, root: Path) -> list[str]:
    found = []
    job = terraform.resource("google_cloud_run_v2_job").get("backfill")
    if job is None:
        return ["there is no google_cloud_run_v2_job.backfill"]
    outer = block(job.get("template"))
    if outer.get("task_count") != "${var.backfill_tasks}":
        found.append("the backfill job's task count is not var.backfill_tasks")
    inner = block(outer.get("template"))
    container = block(inner.get("containers"))
    command = str(container.get("command")) + str(container.get("args"))
    for part in ('"backfill"', "local.history_mount", '"--shard", "auto"', '"--title-column"', '"--category-column"'):
        if part not in command:
            found.append(
                f"the backfill job's command lacks {part} (triage backfill /history/<object> --shard auto ...)"
            )
    volume = block(block(inner.get("volumes")).get("gcs"))
    if volume.get("read_only") is not True or "google_storage_bucket.history" not in str(volume.get("bucket")):
        found.append("the backfill job does not mount the history bucket read-only")
    if "local.history_mount" not in str(container.get("volume_mounts")):
        found.append("the backfill job does not mount the history where its command reads it")
    if "var.backfill_image" not in str(container.get("image")):
        found.append("the backfill job's image is not var.backfill_image")
    environment = terraform.expand(terraform.locals.get("backfill_env", ""))
    for key in sorted(set(_KEY.findall(environment)) - settings_names() - LIBRARY_VARIABLES):
        found.append(f"the backfill job sets {key}, which the code never reads")
    if "secret_key_ref" not in str(container.get("dynamic")):
        found.append("the backfill job does not read CHROMA_TOKEN from Secret Manager")
    vpc = str(inner.get("dynamic"))
    if "google_vpc_access_connector.functions" not in vpc or "PRIVATE_RANGES_ONLY" not in vpc:
        found.append("the backfill job does not reach Chroma through the VPC connector")

    dockerfile = root / "infra" / "backfill" / "Dockerfile"
    if not dockerfile.exists():
        return [*found, "infra/backfill/Dockerfile, the backfill image, is missing"]
    text = dockerfile.read_text(encoding="utf-8")
    if not re.search(r"pip install .*-r requirements\.txt", text) or not re.search(
        r"pip install --no-deps -e \.", text
    ):
        found.append(
            "infra/backfill/Dockerfile does not install requirements.txt and then the package with --no-deps -e ."
        )
    build = (root / "cloudbuild.yaml").read_text(encoding="utf-8")
    if "infra/backfill/Dockerfile" not in build or "backfill_image=" not in build:
        found.append("cloudbuild.yaml does not build the backfill image and hand it to terraform plan")
    return found


def _calibrate(terraform: Terraform) -> list[str]:
    """The refit of the calibrated decision: a job on the backfill image whose command the CLI
    takes, with settings the code reads, started on a schedule through the Cloud Run Admin API
    by an account that may run that job."""
    from triage.cli.parser import parser

    job = terraform.resource("google_cloud_run_v2_job").get("calibrate")
    if job is None:
        return ["there is no google_cloud_run_v2_job.calibrate (the scheduled refit of the calibrated decision)"]
    found = []
    container = block(block(block(job.get("template")).get("template")).get("containers"))
    if "var.backfill_image" not in str(container.get("image")):
        found.append("the calibration job's image is not var.backfill_image")
    arguments = [str(a) for a in container.get("args", [])]
    try:
        parsed = parser().parse_args(arguments)
    except SystemExit:
        parsed = None
    if parsed is None or parsed.command != "calibrate" or not (parsed.from_memory and parsed.all_tenants):
        found.append(f"the calibration job runs {arguments}, not `triage calibrate --from-memory --all-tenants`")
    environment = terraform.expand(terraform.locals.get("calibrate_env", ""))
    keys = set(_KEY.findall(environment))
    for key in sorted(keys - settings_names() - LIBRARY_VARIABLES):
        found.append(f"the calibration job sets {key}, which the code never reads")
    for key in ("MEMORY_COLLECTION", "CALIBRATION_COLLECTION", "EMBEDDING_BACKEND"):
        if key not in keys:
            found.append(f"the calibration job does not set {key}")

    schedule = terraform.resource("google_cloud_scheduler_job").get("calibrate")
    target = block(schedule.get("http_target")) if schedule else {}
    if "google_cloud_run_v2_job.calibrate[0].name}:run" not in str(target.get("uri")):
        found.append("no Cloud Scheduler job runs the calibration job (POST .../jobs/NAME:run)")
    invoker = block(target.get("oauth_token")).get("service_account_email", "")  # an access token: a Google API
    granted = [
        m
        for m in terraform.resource("google_cloud_run_v2_job_iam_member").values()
        if m.get("role") == "roles/run.invoker" and "google_cloud_run_v2_job.calibrate" in str(m.get("name"))
    ]
    account = str(invoker).removesuffix(".email}").removeprefix("${")
    if not invoker or not any(account in str(m.get("member")) for m in granted):
        found.append("the scheduler's account (an OAuth token) may not run the calibration job (roles/run.invoker)")
    return found
