"""The benchmark's table: each figure, its baseline from the same run, their ratio (its key in
benchmark.json says what it compares), and the previous run's figure and ratio."""

from __future__ import annotations

import argparse
from typing import Any

# (label, figure, baseline, ratio): dotted keys into the results; the ratio's key names what it compares.
Row = tuple[str, str, str | None, str | None]


def rows(results: dict[str, Any], arguments: argparse.Namespace) -> list[Row]:
    clients = results["ingest"]["clients"]
    found: list[Row] = [
        (f"ingest requests/s, {clients} clients, vs the primitives without HTTP", "ingest.engine.rps",
         "ingest.primitives.rps", "ingest.ratio_vs_primitives"),
        ("ingest requests/s, vs the same primitives behind functions-framework (the cost of the engine's own code)",
         "ingest.engine.rps", "ingest.framework_primitives.rps", "ingest.ratio_vs_framework_primitives"),
        ("  primitives behind functions-framework, requests/s, vs the primitives without HTTP (the framework's cost)",
         "ingest.framework_primitives.rps", "ingest.primitives.rps", "ingest.framework_primitives_ratio_vs_primitives"),
        ("ingest requests/s, vs a trivial functions-framework function", "ingest.engine.rps",
         "ingest.trivial_function.rps", "ingest.ratio_vs_trivial_function"),
        ("ingest p50 ms, vs the primitives", "ingest.engine.p50_ms", "ingest.primitives.p50_ms", None),
        ("ingest p99 ms, vs its p50 (target <= 2x)", "ingest.engine.p99_ms", "ingest.engine.p50_ms",
         "ingest.p99_over_p50"),
        ("  primitives without HTTP: p99 ms, vs their p50 (the same tail with no code of ours)",
         "ingest.primitives.p99_ms", "ingest.primitives.p50_ms", "ingest.primitives_p99_over_p50"),
        ("  primitives behind functions-framework: p99 ms, vs their p50", "ingest.framework_primitives.p99_ms",
         "ingest.framework_primitives.p50_ms", "ingest.framework_primitives_p99_over_p50"),
        ("ingest CPU ms per request, the API process alone, vs the primitives without HTTP (their process)",
         "ingest.engine.cpu_ms_per_request", "ingest.primitives.cpu_ms_per_request", None),
        ("  primitives behind functions-framework, CPU ms per request, their process alone",
         "ingest.framework_primitives.cpu_ms_per_request", None, None),
        ("first POST /classify of a fresh API instance, ms (median of --cold-starts instances), vs its warm p50 "
         "(1 client; target <= 2x)",
         "first_request.first_ms", "first_request.warm_p50_ms", "first_request.ratio_vs_warm_p50"),
        ("first POST /classify of a fresh stack (emulators cold too), ms, vs the warm p50",
         "first_request.first_of_fresh_stack_ms", "first_request.warm_p50_ms",
         "first_request.fresh_stack_ratio_vs_warm_p50"),
        (f"worker tickets/s, memory path (burst of {results['worker']['burst']['tickets']}), vs the stage-sum "
         "bound of one thread (target >= 0.7x)", "worker.tickets_per_second", "worker.stage_bound_tickets_per_second",
         "worker.ratio_vs_stage_bound"),
        ("worker CPU ms per memory-path ticket, the worker process alone", "worker.burst.worker_cpu_ms_per_ticket",
         None, None),
        ("Chroma server CPU ms per memory-path ticket (query + upsert)", "worker.burst.chroma_cpu_ms_per_ticket",
         None, None),
        ("worker stage sum ms (embed + query + memory write + ticket read + 2 ticket writes)",
         "worker.stages.stage_sum_ms", None, None),
        ("  stage embed p50 ms, vs raw encode of 1 text", "worker.stages.embed.p50_ms",
         "worker.stages.raw_encode_one.p50_ms", None),
    ]  # fmt: skip
    for stage in ("query", "memory_write", "ticket_read", "ticket_write"):
        found.append((f"  stage {stage.replace('_', ' ')} p50 ms", f"worker.stages.{stage}.p50_ms", None, None))
    for path in ("classifier", "memory"):
        figures = results["end_to_end"][path]
        for q in ("p50", "p95") if figures.get("tickets") else ():
            found.append((f"POST->classified {q} ms, {path} path (n={figures['tickets']})",
                          f"end_to_end.{path}.{q}_ms", None, None))  # fmt: skip
    if "lookup" in results:
        entries = f"{results['lookup']['entries']:,}"
        found += [
            (f"memory lookup p50 ms, {entries} entries, vs a bare unfiltered query (target <= 10 ms)",
             "lookup.engine.p50_ms", "lookup.unfiltered.p50_ms", "lookup.ratio_vs_unfiltered_query"),
            ("memory lookup p95 ms, vs a bare unfiltered query", "lookup.engine.p95_ms", "lookup.unfiltered.p95_ms",
             None),
        ]  # fmt: skip
    found.append(
        (f"backfill texts/s ({results['backfill']['texts']} texts, Firestore + Chroma), vs raw batch-64 encode "
         "(target >= 0.8x)", "backfill.backfill_texts_per_second", "backfill.raw_encode_texts_per_second",
         "backfill.ratio_vs_raw_encode")
    )  # fmt: skip
    found += [
        ("worker cold start s, import + model load + first embed (target <= 2.5), ONNX vs sentence-transformers",
         "cold_start.worker.total_s", "cold_start.worker-torch.total_s", "cold_start.worker_ratio_vs_torch"),
        ("  of which import and prepare", "cold_start.worker.import_and_prepare_s",
         "cold_start.worker-torch.import_and_prepare_s", None),
        ("  of which model load and first embed", "cold_start.worker.model_load_and_first_embed_s",
         "cold_start.worker-torch.model_load_and_first_embed_s", None),
        ("worker cold start peak RSS MiB (target <= 450), ONNX vs sentence-transformers",
         "cold_start.worker.peak_rss_mib", "cold_start.worker-torch.peak_rss_mib",
         "cold_start.worker_rss_ratio_vs_torch"),
        ("api cold start s: import and prepare", "cold_start.api.import_and_prepare_s", None, None),
        ("api cold start peak RSS MiB", "cold_start.api.peak_rss_mib", None, None),
    ]  # fmt: skip
    for name in results["memory"]:
        found.append((f"peak RSS MiB: {name}", f"memory.{name}.peak_rss_mib", None, None))
        found.append((f"  PSS MiB now (shared pages once): {name}", f"memory.{name}.pss_mib", None, None))
    return found


def value(results: dict[str, Any] | None, key: str | None) -> Any:
    """The figure under a dotted key, or None."""
    if key is None or not isinstance(results, dict):
        return None
    first, _, rest = key.partition(".")
    return value(results.get(first), rest) if rest else results.get(first)


def number(figure: Any) -> str:
    return f"{figure:,.1f}" if isinstance(figure, int | float) else ""


def times(figure: Any) -> str:
    return f"{figure:.2f}x" if isinstance(figure, int | float) else ""


def render(results: dict[str, Any], previous: dict[str, Any] | None, arguments: argparse.Namespace) -> str:
    header = (
        f"Benchmark: {arguments.requests} ingest requests x {arguments.concurrency} clients, {arguments.tickets} "
        f"tickets per path; {results['machine']}, Python {results['python']}"
    )
    lines = [
        header,
        "",
        "| measure | engine | baseline | ratio | previous run |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, figure_key, baseline_key, ratio_key in rows(results, arguments):
        figure, baseline = value(results, figure_key), value(results, baseline_key)
        ratio = value(results, ratio_key)
        if ratio is None and isinstance(figure, int | float) and isinstance(baseline, int | float) and baseline:
            ratio = figure / baseline
        earlier = number(value(previous, figure_key))
        if earlier and value(previous, ratio_key) is not None:
            earlier += f" ({times(value(previous, ratio_key))})"
        lines.append(f"| {label} | {number(figure)} | {number(baseline)} | {times(ratio)} | {earlier} |")
    lookup = results.get("lookup")
    lines += [
        "",
        "Ratio keys in benchmark.json: ingest.ratio_vs_primitives, ingest.ratio_vs_framework_primitives, "
        "ingest.framework_primitives_ratio_vs_primitives, ingest.ratio_vs_trivial_function, "
        "ingest.p99_over_p50, ingest.primitives_p99_over_p50, ingest.framework_primitives_p99_over_p50, "
        "first_request.ratio_vs_warm_p50, first_request.fresh_stack_ratio_vs_warm_p50, "
        "worker.ratio_vs_stage_bound, "
        "lookup.ratio_vs_unfiltered_query, backfill.ratio_vs_raw_encode, cold_start.worker_ratio_vs_torch, "
        "cold_start.worker_rss_ratio_vs_torch.",
    ]
    if lookup:
        how = "reused from an earlier run" if lookup["reused"] else f"loaded in {lookup['loaded_seconds']:,.0f} s"
        lines.append(f"Lookup collection: {lookup['entries']:,} synthetic unit vectors, {how}.")
    lines.append(
        f"Ingest: the engine and both primitive baselines take turns in {results['ingest']['rounds']} interleaved "
        "rounds (ABBA) on the same emulators, which keep warming up as they serve."
    )
    return "\n".join(lines)
