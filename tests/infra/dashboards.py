"""Do the dashboards show metrics that exist? The Cloud Monitoring dashboard (infra/
dashboard.json.tftpl, rendered by google_monitoring_dashboard.triage) may name only the
log-based metrics infra/monitoring.tf declares and the built-in metric types below; the
Grafana dashboard (docs/dashboards/triage.json) only the Prometheus metrics
functions/triage/metrics.py declares (tests/e2e/test_dashboards.py checks them against a
running stack's /metrics). Both must cover the views issue 15 lists.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from tests.infra.consistency import Terraform

# Metric types Google defines (Cloud Run and Pub/Sub), by the documented name.
BUILT_IN = frozenset(
    {
        "pubsub.googleapis.com/subscription/num_undelivered_messages",
        "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
        "run.googleapis.com/request_count",
        "run.googleapis.com/request_latencies",
        "run.googleapis.com/container/instance_count",
    }
)
# The views: a phrase of each tile's title, and what it must show.
CLOUD_VIEWS = {
    "by path": "tickets_classified",
    "memory hit ratio": "tickets_classified",
    "llm calls": "tickets_classified",
    "llm tokens": "llm_input_tokens",
    "latency p50 and p95, by path": "classification_latency",
    "failed": "tickets_failed",
    "corrections": "tickets_corrected",
    "memory answers right and wrong": "memory_outcomes",
    "dead letters": "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "oldest unacknowledged": "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
    "api 5xx": "run.googleapis.com/request_count",
    "api latency": "run.googleapis.com/request_latencies",
}
GRAFANA_VIEWS = {
    "by path": "triage_classification_seconds_count",
    "memory hit ratio": "triage_memory_lookups_total",
    "llm calls": "triage_llm_calls_total",
    "classification latency": "triage_classification_seconds_bucket",
    "failures": "triage_failures_total",
    "tickets by status": "triage_tickets_total",
    "memory precision by category": "triage_memory_precision",
    "llm tokens": "triage_llm_tokens_total",
    "corrections": "triage_reviews_total",
    "api 5xx": "triage_http_requests_total",
    "api latency": "triage_http_request_seconds_bucket",
    "configuration errors": "triage_configuration_errors_total",
}
# Pub/Sub's dead-letter depth and oldest unacknowledged message are Pub/Sub's own metrics: only the
# Cloud Monitoring dashboard can show them (no process's /metrics knows them).
_PLACEHOLDER = re.compile(r"(?<!\$)\$\{([a-z_.]+)\}")
_PROMQL_WORDS = frozenset(
    {
        "sum",
        "rate",
        "irate",
        "increase",
        "by",
        "without",
        "histogram_quantile",
        "avg",
        "max",
        "min",
        "count",
        "le",
        "on",
        "ignoring",
        "and",
        "or",
        "unless",
        "clamp_min",
        "vector",
        "bool",
        "offset",
        "topk",
    }
)


def rendered_template(path: Path) -> Any:
    """The template's JSON with each placeholder replaced by its own name (valid JSON either way)."""
    text = path.read_text(encoding="utf-8")
    return json.loads(_PLACEHOLDER.sub(lambda m: "PLACEHOLDER_" + m.group(1), text).replace("$${", "${"))


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _tiles(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    tiles = dashboard.get("mosaicLayout", {}).get("tiles", [])
    return [(tile["widget"].get("title", ""), " ".join(_strings(tile["widget"]))) for tile in tiles]


def cloud_problems(root: Path) -> list[str]:
    terraform = Terraform(root / "infra")
    found = []
    dashboards = terraform.resource("google_monitoring_dashboard")
    if "triage" not in dashboards:
        return ["there is no google_monitoring_dashboard.triage"]
    call = str(dashboards["triage"].get("dashboard_json"))
    template = re.search(r'templatefile\("\$\{path\.module\}/([a-z_.]+)"', call)
    if not template:
        return ["google_monitoring_dashboard.triage is not rendered from a template in infra/"]
    dashboard = rendered_template(root / "infra" / template.group(1))
    passed = dict(re.findall(r"\b([a-z_]+) = google_logging_metric\.([a-z_0-9]+)\.name", call))
    declared = set(terraform.resource("google_logging_metric"))
    text = json.dumps(dashboard)
    for placeholder in sorted(
        set(re.findall(r"logging\.googleapis\.com/user/PLACEHOLDER_metrics\.([a-z_0-9]+)", text))
    ):
        if placeholder not in passed:
            found.append(f"the dashboard names the metric {placeholder}, which the templatefile call does not pass")
        elif passed[placeholder] not in declared:
            found.append(
                f"the dashboard names google_logging_metric.{passed[placeholder]}, which monitoring.tf does not declare"
            )
    for kind in sorted(set(re.findall(r'metric\.type=\\"([^"\\]+)\\"', text))):
        if kind.startswith("logging.googleapis.com/user/"):
            continue
        if kind not in BUILT_IN:
            found.append(f"the dashboard names the metric type {kind}, which is neither declared here nor built in")
    for name in sorted(set(re.findall(r"PLACEHOLDER_([a-z_]+)", text)) - {"metrics"}):
        if not re.search(rf"\b{name} = ", call):
            found.append(f"the dashboard template uses ${{{name}}}, which the templatefile call does not pass")
    if "PLACEHOLDER_hold_subscription" in text and "dead_letter_hold" not in call:
        found.append("the dashboard's dead-letter tile does not watch the hold subscription")
    if "PLACEHOLDER_work_subscriptions" in text and "local.work_subscriptions" not in call:
        found.append("the dashboard's message-age tile does not watch the work subscriptions")
    tiles = _tiles(dashboard)
    for phrase, metric in CLOUD_VIEWS.items():
        if not any(phrase in title.lower() and metric in body for title, body in tiles):
            found.append(f"the Cloud Monitoring dashboard has no tile '{phrase}' showing {metric}")
    return found


def prometheus_metrics(metrics_py: Path) -> dict[str, str]:
    """The metric names functions/triage/metrics.py declares, with their kind."""
    declared = {}
    for node in ast.walk(ast.parse(metrics_py.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("Counter", "Histogram", "Gauge")
        ):
            if node.args and isinstance(node.args[0], ast.Constant):
                declared[node.args[0].value] = node.func.id
    return declared


def exported_names(declared: dict[str, str]) -> set[str]:
    """The sample names a declaration exports (prometheus-client's text format)."""
    names = set()
    for name, kind in declared.items():
        base = name.removesuffix("_total")
        if kind == "Counter":
            names |= {f"{base}_total", f"{base}_created"}
        elif kind == "Histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
        else:
            names.add(name)
    return names


def promql_metrics(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers that are neither functions,
    keywords, label names inside braces, nor range durations)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expression)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    without_grouping = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", without_grouping))
    return {name for name in names if name not in _PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", name)}


def grafana_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every target of every panel."""
    queries = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append((panel.get("title", ""), target["expr"]))
    return queries


def grafana_problems(root: Path) -> list[str]:
    found = []
    path = root / "docs" / "dashboards" / "triage.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    exported = exported_names(prometheus_metrics(root / "functions" / "triage" / "metrics.py"))
    queries = grafana_queries(dashboard)
    for title, expression in queries:
        for metric in sorted(promql_metrics(expression) - exported):
            found.append(f"Grafana panel '{title}' queries {metric}, which functions/triage/metrics.py does not export")
    for panel in dashboard.get("panels", []):
        if panel.get("targets") and "${datasource}" not in json.dumps(panel.get("datasource")):
            found.append(
                f"Grafana panel '{panel.get('title')}' is not on the dashboard's Prometheus data source variable"
            )
    for phrase, metric in GRAFANA_VIEWS.items():
        if not any(phrase in title.lower() and metric in expression for title, expression in queries):
            found.append(f"the Grafana dashboard has no panel '{phrase}' querying {metric}")
    return found
