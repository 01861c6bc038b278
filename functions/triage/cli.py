"""``triage``: the operator's command line (backfill, evaluate, calibrate, reindex, and
reconcile, failed, replay for stopped or failed tickets).

Every command reads the same settings as the functions (CHROMA_*, EMBEDDING_MODEL,
TAXONOMY_FILE, MEMORY_*, ...), so what it measures or writes is what the deployed
engine will use. Progress bars go to stderr; results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import bootstrap, logs
from .config import load_settings
from .errors import ConfigurationError, TriageError

COLUMN_HELP = (
    "Columns are named as in the file's header (CSV) or keys (JSON Lines). The ticket text is the "
    "title column, plus the description column if given, exactly as a live ticket's title and "
    "description are combined."
)


def _columns(parser: argparse.ArgumentParser, *, labels: str) -> None:
    group = parser.add_argument_group("columns", COLUMN_HELP)
    group.add_argument("--title-column", required=True, help="the ticket's title, or its whole text")
    group.add_argument("--description-column", help="the ticket's description (optional)")
    group.add_argument("--category-column", required=True, help=f"the category: {labels}")
    group.add_argument("--priority-column", help="the priority (optional)")
    group.add_argument("--group-column", help="the assignment group (optional)")
    group.add_argument("--id-column", help="a unique id per row (default: a hash of the text)")


def _progress(total: int | None, description: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="row", file=sys.stderr, disable=None, dynamic_ncols=True)


@contextlib.contextmanager
def _bar(total: int | None, description: str) -> Iterator[Any]:
    bar = _progress(total, description)
    try:
        yield bar
    finally:
        bar.close()


def _columns_of(arguments: argparse.Namespace) -> Any:
    from .datasets import Columns

    return Columns(
        title=arguments.title_column,
        description=arguments.description_column,
        category=arguments.category_column,
        priority=arguments.priority_column,
        assignment_group=arguments.group_column,
        row_id=arguments.id_column,
    )


def _load_rows(arguments: argparse.Namespace, *, taxonomy_required: bool) -> tuple[list, list, Any]:
    from .datasets import LabelledRow, labelled_rows, taxonomy_from_labels

    columns = _columns_of(arguments)
    settings = bootstrap.settings()
    taxonomy = bootstrap.taxonomy() if taxonomy_required or arguments.taxonomy else None
    rows, rejected = [], []
    redact = bootstrap.processing_options().redact
    rows_read = labelled_rows(
        arguments.file, columns, taxonomy=taxonomy, max_chars=settings.model_text_max_chars, redact=redact
    )
    for item in rows_read:
        (rows if isinstance(item, LabelledRow) else rejected).append(item)
    if not rows:
        reasons = sorted({r.reason for r in rejected})[:5]
        raise ConfigurationError(f"no usable rows in {arguments.file} ({len(rejected)} rejected: {reasons})")
    return rows, rejected, taxonomy or taxonomy_from_labels(rows)


def _embed(texts: Sequence[str]) -> Any:
    import numpy as np

    embedder = bootstrap.embedder()
    vectors = []
    with _bar(len(texts), "embedding") as bar:
        for start in range(0, len(texts), 512):
            chunk = texts[start : start + 512]
            vectors.extend(embedder.embed(chunk))
            bar.update(len(chunk))
    return np.asarray(vectors, dtype=np.float32)


# --------------------------------------------------------------------------- commands


def command_backfill(arguments: argparse.Namespace) -> dict[str, Any]:
    from .backfill import backfill
    from .datasets import labelled_rows

    settings = bootstrap.settings()
    taxonomy = bootstrap.taxonomy()
    columns = _columns_of(arguments)
    with arguments.file.open("rb") as handle:
        total = sum(1 for _ in handle) - (0 if arguments.file.suffix.lower() in {".jsonl", ".ndjson", ".json"} else 1)
    bootstrap.embedder().embed(["warm up"])  # the model load is not part of the throughput
    rows = labelled_rows(
        arguments.file,
        columns,
        taxonomy=taxonomy,
        max_chars=settings.model_text_max_chars,
        redact=bootstrap.processing_options().redact,
    )
    with _bar(total, "backfill") as bar:
        report = backfill(
            rows,
            embedder=bootstrap.embedder(),
            memory=bootstrap.memory(),
            tenant=arguments.tenant or settings.default_tenant,
            chunk_size=arguments.chunk_size,
            progress=bar.update,
        )
    result = report.as_dict()
    if not arguments.json:
        print(f"loaded   {report.loaded:>8,}  ({report.texts_per_second:,.0f} texts/s over {report.seconds:.1f}s)")
        print(f"skipped  {report.skipped:>8,}  (already in memory)")
        print(f"rejected {report.rejected_total:>8,}")
        for reason, count in report.rejected.most_common():
            print(f"  {count:>8,}  {reason}")
    return result


def command_evaluate(arguments: argparse.Namespace) -> dict[str, Any]:
    from . import evaluation
    from .adapters.local_classifier import LocalEmbeddingClassifier

    settings = bootstrap.settings()
    rows, rejected, taxonomy = _load_rows(arguments, taxonomy_required=False)
    embeddings = _embed([r.text for r in rows])
    prepared = evaluation.prepare(rows, embeddings, neighbours=settings.memory_neighbours, seed=arguments.seed)
    with _bar(len(rows), "stream replay") as bar:
        ours = evaluation.replay(prepared, settings.memory_policy, progress=bar.update)
    fixed = evaluation.replay_fixed_threshold(prepared, arguments.baseline_threshold)
    cut = evaluation.split(prepared, arguments.train_fraction)
    with _bar(len(rows) - cut, "held-out split") as bar:
        local, one_nn = evaluation.held_out_local(
            prepared,
            taxonomy,
            lambda: LocalEmbeddingClassifier(bootstrap.embedder(), human_weight=settings.memory_human_weight),
            neighbours=settings.memory_neighbours,
            few_shot_max_examples=settings.few_shot_max_examples,
            few_shot_max_chars=settings.few_shot_max_chars,
            train_fraction=arguments.train_fraction,
            progress=bar.update,
        )
    svm = evaluation.held_out_tfidf_svm(prepared, arguments.train_fraction)
    result = {
        "file": str(arguments.file),
        "tickets": len(rows),
        "rejected": len(rejected),
        "categories": len(taxonomy.categories),
        "seed": arguments.seed,
        "train_fraction": arguments.train_fraction,
        "held_out": len(rows) - cut,
        "policy": {k: v for k, v in vars(settings.memory_policy).items()},
        "systems": {
            "triage": _system(ours, local),
            f"fixed_1nn_{arguments.baseline_threshold:.2f}": _system(fixed, one_nn),
            "tfidf_linear_svc": _system(None, svm),
        },
    }
    if not arguments.json:
        _print_evaluation(result, arguments.baseline_threshold)
    return result


def _system(memory: Any, classifier: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {"llm_calls_avoided": None, "memory_answers": None, "memory_precision": None}
    if memory is not None:
        figures = {
            "llm_calls_avoided": round(memory.answered_share, 4),
            "memory_answers": memory.answered,
            "memory_precision": round(memory.precision, 4),
        }
    figures |= {"accuracy": round(classifier.accuracy, 4), "macro_f1": round(classifier.macro_f1, 4)}
    return figures


def _print_evaluation(result: dict[str, Any], threshold: float) -> None:
    names = {
        "triage": "triage: memory policy + local classifier",
        f"fixed_1nn_{threshold:.2f}": f"fixed 1-NN >= {threshold:.2f} (GPTCache-style)",
        "tfidf_linear_svc": "TF-IDF + LinearSVC",
    }
    print(
        f"\n{result['file']}: {result['tickets']:,} tickets ({result['rejected']} rejected), "
        f"{result['categories']} categories; stream in numpy seed-{result['seed']} order; "
        f"held-out split {result['train_fraction']:.0%}/{1 - result['train_fraction']:.0%} "
        f"({result['held_out']:,} tickets)\n"
    )
    header = ("system", "LLM calls avoided", "memory precision", "accuracy", "macro-F1")
    print(f"| {header[0]:<42} | {header[1]:>17} | {header[2]:>16} | {header[3]:>8} | {header[4]:>8} |")
    print(f"|{'-' * 44}|{'-' * 19}|{'-' * 18}|{'-' * 10}|{'-' * 10}|")
    for key, figures in result["systems"].items():
        avoided = f"{figures['llm_calls_avoided']:.1%}" if figures["llm_calls_avoided"] is not None else "n/a"
        precision = f"{figures['memory_precision']:.1%}" if figures["memory_precision"] is not None else "n/a"
        print(
            f"| {names[key]:<42} | {avoided:>17} | {precision:>16} | "
            f"{figures['accuracy']:>8.3f} | {figures['macro_f1']:>8.3f} |"
        )
    print(
        "\nLLM calls avoided and memory precision: stream replay, every earlier ticket in memory under its "
        "true label.\nAccuracy and macro-F1: the held-out tickets, classified from the rest (the 1-NN row "
        "takes its nearest\nticket's label; TF-IDF + LinearSVC is a classifier, not a memory).\n"
    )


def _plot(path: Path, points, curve, chosen, current, arguments: argparse.Namespace) -> None:
    """Precision against the share answered from memory: every policy, the frontier, the choice."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'ticket-triage[tools]' (make install has it)") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=120)
    axes.scatter(
        [p.figures.answered_share * 100 for p in points],
        [p.figures.precision * 100 for p in points],
        s=8,
        color="#9ca3af",
        label=f"policies tried ({len(points)})",
    )
    axes.plot(
        [p.figures.answered_share * 100 for p in curve],
        [p.figures.precision * 100 for p in curve],
        color="#2563eb",
        marker="o",
        markersize=3,
        label="best precision for each share answered",
    )
    axes.axhline(arguments.target_precision * 100, color="#b91c1c", linestyle="--", linewidth=1, label="target")
    axes.scatter(
        [current.answered_share * 100], [current.precision * 100], marker="s", color="#6b7280", label="current settings"
    )
    if chosen is not None:
        x, y = chosen.figures.answered_share * 100, chosen.figures.precision * 100
        axes.scatter([x], [y], marker="*", s=220, color="#f59e0b", zorder=5, label="chosen")
        axes.annotate(f"chosen: {x:.1f}% at {y:.1f}%", (x, y), textcoords="offset points", xytext=(8, -14))
    axes.set_xlabel("tickets answered from memory (%)")
    axes.set_ylabel("precision of memory answers (%)")
    axes.set_title(f"triage calibrate {Path(arguments.file).name}")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def command_calibrate(arguments: argparse.Namespace) -> dict[str, Any]:
    from . import evaluation

    settings = bootstrap.settings()
    rows, _, _ = _load_rows(arguments, taxonomy_required=False)
    embeddings = _embed([r.text for r in rows])
    prepared = evaluation.prepare(rows, embeddings, neighbours=settings.memory_neighbours, seed=arguments.seed)
    policies = evaluation.calibration_grid(settings.memory_policy)
    # Choose on the first part of the stream; the last part, never used to choose, checks the choice.
    cut = evaluation.split(prepared, 1.0 - arguments.check_fraction)
    with _bar(len(policies), "calibrate") as bar:
        points = evaluation.calibrate(prepared, policies, progress=bar.update, stop=cut)
    curve = evaluation.frontier(points)
    chosen = evaluation.choose(points, arguments.target_precision)
    current = evaluation.replay(prepared, settings.memory_policy, stop=cut)
    check = evaluation.replay(prepared, chosen.policy, start=cut) if chosen and cut < len(rows) else None
    result: dict[str, Any] = {
        "file": str(arguments.file),
        "tickets": len(rows),
        "target_precision": arguments.target_precision,
        "policies_tried": len(points),
        "chosen_on": cut,
        "current": {"answered": round(current.answered_share, 4), "precision": round(current.precision, 4)},
        "curve": [
            {
                "answered": round(p.figures.answered_share, 4),
                "precision": round(p.figures.precision, 4),
                "policy": _policy_settings(p.policy),
            }
            for p in curve
        ],
        "chosen": None,
    }
    if chosen is not None:
        result["chosen"] = {
            "answered": round(chosen.figures.answered_share, 4),
            "precision": round(chosen.figures.precision, 4),
            "settings": _policy_settings(chosen.policy),
        }
        if check is not None:
            result["check"] = {
                "tickets": check.tickets,
                "answered": round(check.answered_share, 4),
                "precision": round(check.precision, 4),
            }
        lines = [
            f"# triage calibrate {arguments.file} --target-precision {arguments.target_precision}",
            f"# answered {chosen.figures.answered_share:.1%} of the first {cut:,} tickets from memory at "
            f"{chosen.figures.precision:.1%} precision (stream replay)",
        ]
        if check is not None:
            lines.append(
                f"# check on the last {check.tickets:,}: {check.answered_share:.1%} answered at {check.precision:.1%}"
            )
        lines += [f"{name}={value}" for name, value in _policy_settings(chosen.policy).items()]
        arguments.output.write_text("\n".join(lines) + "\n")
        result["written"] = str(arguments.output)
    if arguments.plot is not None:
        _plot(arguments.plot, points, curve, chosen, current, arguments)
        result["plot"] = str(arguments.plot)
    if not arguments.json:
        print(
            f"\n{arguments.file}: {len(rows):,} tickets; {len(points)} policies replayed over the first {cut:,} "
            f"of the stream; trade-off curve:\n"
        )
        print(f"| {'answered from memory':>20} | {'precision':>9} | policy")
        print(f"|{'-' * 22}|{'-' * 11}|{'-' * 60}")
        for point in curve:
            marker = "  <- chosen" if chosen is not None and point.policy == chosen.policy else ""
            print(
                f"| {point.figures.answered_share:>20.1%} | {point.figures.precision:>9.1%} | "
                f"{_short(point.policy)}{marker}"
            )
        print(f"\ncurrent settings: {current.answered_share:.1%} answered at {current.precision:.1%}")
        if chosen is None:
            print(f"no policy reaches {arguments.target_precision:.1%} precision on this history; nothing written")
        else:
            print(
                f"chosen for precision >= {arguments.target_precision:.1%}: {chosen.figures.answered_share:.1%} "
                f"answered at {chosen.figures.precision:.1%}; written to {arguments.output}"
            )
            if check is not None:
                print(
                    f"check on the last {check.tickets:,} tickets (not used to choose): "
                    f"{check.answered_share:.1%} answered at {check.precision:.1%}"
                )
    return result


def _policy_settings(policy: Any) -> dict[str, Any]:
    return {f"MEMORY_{name.upper()}": value for name, value in vars(policy).items()}


def _short(policy: Any) -> str:
    return (
        f"near {policy.near_duplicate_similarity:.2f}; {policy.agreement_min_voters}+ of "
        f"{policy.agreement_neighbours} at >= {policy.agreement_similarity:.2f}, share "
        f"{policy.agreement_share:.2f}, ^{policy.similarity_exponent:g}"
    )


def command_reindex(arguments: argparse.Namespace) -> dict[str, Any]:
    memory = bootstrap.memory()
    reindex = getattr(memory, "reindex", None)
    if reindex is None:
        raise ConfigurationError("the configured memory cannot be reindexed")
    embedder = bootstrap.embedder()
    embedder.embed(["warm up"])
    started = time.perf_counter()
    with _bar(None, "reindex") as bar:
        total = reindex(embedder, batch_size=arguments.batch_size, progress=bar.update)
    seconds = time.perf_counter() - started
    result = {"entries": total, "model": f"{embedder.name}@{embedder.version}", "seconds": round(seconds, 1)}
    if not arguments.json:
        print(f"rebuilt {total:,} entries with {result['model']} in {seconds:.1f}s")
    return result


def command_reconcile(arguments: argparse.Namespace) -> dict[str, Any]:
    result = bootstrap.reconcile(older_than_seconds=arguments.older_than, limit=arguments.limit).as_dict()
    if not arguments.json:
        print(
            f"republished {result['republished']}, failed as stuck {result['failed']}, "
            f"write-backs queued {result['writebacks']}, sent to the memory {result['remembered']}"
        )
    return result


def command_failed(arguments: argparse.Namespace) -> dict[str, Any]:
    from .domain import Status

    tickets = bootstrap.store().find(status=Status.FAILED, limit=arguments.limit)
    result = {
        "tickets": [
            {
                "ticket_id": t.ticket_id,
                "source": t.source,
                "external_id": t.external_id,
                "attempts": t.attempts,
                "updated_at": t.updated_at.isoformat(),
                "last_error": t.last_error,
            }
            for t in tickets
        ]
    }
    if not arguments.json:
        if not tickets:
            print("no failed tickets")
        for t in tickets:
            print(f"{t.ticket_id}  {t.updated_at:%Y-%m-%d %H:%M}  attempts {t.attempts}  {t.last_error}")
    return result


def command_replay(arguments: argparse.Namespace) -> dict[str, Any]:
    from . import service

    if not arguments.ticket_ids and not arguments.all_failed:
        raise ConfigurationError("name the tickets to replay, or give --all-failed")
    replayed = service.replay_failed(
        None if arguments.all_failed else arguments.ticket_ids,
        store=bootstrap.store(),
        publisher=bootstrap.publisher(),
        clock=bootstrap.clock(),
        limit=arguments.limit,
    )
    if not arguments.json:
        print(f"replayed {len(replayed)} ticket(s)" + (": " + " ".join(replayed) if replayed else ""))
    return {"replayed": replayed}


# --------------------------------------------------------------------------- parser


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="triage",
        description="Operate the triage engine: its semantic memory, and its stopped or failed tickets. "
        "Settings come from the environment, "
        "as for the functions (CHROMA_HOST, CHROMA_COLLECTION, EMBEDDING_MODEL, TAXONOMY_FILE, MEMORY_*, ...).",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    backfill = commands.add_parser(
        "backfill",
        help="load historical labelled tickets into the memory",
        description="Load labelled tickets from a CSV or JSON Lines file into the memory, in chunks. Idempotent "
        "by id: rows already in the memory are skipped, so an interrupted run is finished by running it again. "
        "Labels must be in the taxonomy (TAXONOMY_FILE); a missing priority or group takes its default. "
        "Reports rows loaded, skipped and rejected, with reasons.",
    )
    backfill.add_argument("file", type=Path, help="the CSV (with a header row) or JSON Lines file")
    _columns(backfill, labels="must be in the taxonomy")
    backfill.add_argument("--tenant", help="the tenant the tickets belong to (default: DEFAULT_TENANT)")
    backfill.add_argument("--chunk-size", type=int, default=2048, help="rows embedded and written together (2048)")
    backfill.add_argument("--json", action="store_true", help="print the report as JSON")
    backfill.set_defaults(run=command_backfill)

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("file", type=Path, help="the labelled CSV (with a header row) or JSON Lines file")
    shared.add_argument("--seed", type=int, default=0, help="stream order: numpy RandomState(seed).permutation (0)")
    shared.add_argument(
        "--taxonomy",
        action="store_true",
        help="check labels against TAXONOMY_FILE (default: take the dataset's own labels as the taxonomy)",
    )
    shared.add_argument("--json", action="store_true", help="print the results as JSON")

    evaluate = commands.add_parser(
        "evaluate",
        parents=[shared],
        help="replay a labelled dataset: LLM calls avoided, memory precision, classifier accuracy",
        description="Replay a labelled dataset offline as a stream through the decision policy (MEMORY_* "
        "settings) and the local classifier, and print one table from the same run: share of LLM calls "
        "avoided, precision of memory answers, accuracy and macro-F1 of the local classifier on a held-out "
        "split, and the same for a fixed 1-nearest-neighbour threshold (GPTCache-style) and TF-IDF + LinearSVC.",
    )
    _columns(evaluate, labels="any values")
    evaluate.add_argument("--train-fraction", type=float, default=0.8, help="memory share of the split (0.8)")
    evaluate.add_argument("--baseline-threshold", type=float, default=0.80, help="the fixed baseline's cosine (0.80)")
    evaluate.set_defaults(run=command_evaluate)

    calibrate = commands.add_parser(
        "calibrate",
        parents=[shared],
        help="choose the policy that answers most from memory at a target precision",
        description="Replay the dataset as a stream under a grid of policies, print the trade-off curve "
        "(share answered from memory against precision) and write the policy that answers the most at "
        "precision >= the target as MEMORY_* settings (an env file).",
    )
    _columns(calibrate, labels="any values")
    calibrate.add_argument("--target-precision", type=float, required=True, help="e.g. 0.97")
    calibrate.add_argument(
        "--check-fraction",
        type=float,
        default=0.2,
        help="the end of the stream kept out of the choice, to check it (0.2; 0 uses everything)",
    )
    calibrate.add_argument(
        "--output", type=Path, default=Path("memory-policy.env"), help="where to write the settings (memory-policy.env)"
    )
    calibrate.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw the precision against answered-from-memory curve, the chosen point marked, as a PNG",
    )
    calibrate.set_defaults(run=command_calibrate)

    reindex = commands.add_parser(
        "reindex",
        help="rebuild the memory with the configured embedding model",
        description="Re-embed every entry of CHROMA_COLLECTION (its stored text) with EMBEDDING_MODEL into a new "
        "collection, then put it in place of the old one. Labels, tenants and who gave the labels are kept.",
    )
    reindex.add_argument("--batch-size", type=int, default=512, help="entries embedded together (512)")
    reindex.add_argument("--json", action="store_true", help="print the result as JSON")
    reindex.set_defaults(run=command_reindex)

    reconcile = commands.add_parser(
        "reconcile",
        help="restart stopped work: stuck tickets, pending write-backs, tickets missing from the memory",
        description="Publish again the Pending tickets untouched for --older-than seconds (each at most "
        "RECONCILE_MAX_REPUBLISH times, then Failed with the reason), queue again the write-backs pending "
        "that long, and send to the memory the tickets classified while it was down. In production Cloud "
        "Scheduler publishes a reconcile message that the worker runs, and POST /admin/reconcile does the same.",
    )
    reconcile.add_argument("--older-than", type=float, help="seconds (default RECONCILE_AFTER_SECONDS)")
    reconcile.add_argument("--limit", type=int, help="tickets per kind (default RECONCILE_LIMIT)")
    reconcile.add_argument("--json", action="store_true", help="print the result as JSON")
    reconcile.set_defaults(run=command_reconcile)

    failed = commands.add_parser(
        "failed", help="list Failed tickets with their last error", description="List Failed tickets, oldest first."
    )
    failed.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    failed.add_argument("--json", action="store_true", help="print the list as JSON")
    failed.set_defaults(run=command_failed)

    replay = commands.add_parser(
        "replay",
        help="send Failed tickets through the pipeline again",
        description="Set the given Failed tickets (or, with --all-failed, the oldest --limit of them) back to "
        "Pending with fresh attempts, and publish them.",
    )
    replay.add_argument("ticket_ids", nargs="*", metavar="TICKET_ID", help="the tickets to replay")
    replay.add_argument("--all-failed", action="store_true", help="replay the oldest Failed tickets")
    replay.add_argument("--limit", type=int, default=100, help="with --all-failed, at most this many (100)")
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.set_defaults(run=command_replay)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print(f"triage: {error}", file=sys.stderr)
        return 2
    # Results go to stdout; the engine's JSON logs to stderr, warnings only unless LOG_LEVEL says more.
    logs.configure(settings.log_level if settings.log_level.upper() == "DEBUG" else "WARNING", stream=sys.stderr)
    bootstrap.override(settings=settings)
    if getattr(arguments, "file", None) is not None and not arguments.file.is_file():
        print(f"triage: no such file: {arguments.file}", file=sys.stderr)
        return 2
    try:
        result = arguments.run(arguments)
    except TriageError as error:
        print(f"triage {arguments.command}: {error}", file=sys.stderr)
        return 1
    if arguments.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
