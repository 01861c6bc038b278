"""The ``triage`` command line's arguments: one sub-command per operation, each pointing at its
function in ``commands``."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import commands

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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="triage",
        description="Operate the triage engine: its semantic memory, and its stopped or failed tickets. "
        "Settings come from the environment, "
        "as for the functions (CHROMA_HOST, CHROMA_COLLECTION, EMBEDDING_MODEL, TAXONOMY_FILE, MEMORY_*, ...).",
    )
    subcommands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    backfill = subcommands.add_parser(
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
    backfill.set_defaults(run=commands.backfill)

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("file", type=Path, help="the labelled CSV (with a header row) or JSON Lines file")
    shared.add_argument("--seed", type=int, default=0, help="stream order: numpy RandomState(seed).permutation (0)")
    shared.add_argument(
        "--taxonomy",
        action="store_true",
        help="check labels against TAXONOMY_FILE (default: take the dataset's own labels as the taxonomy)",
    )
    shared.add_argument("--json", action="store_true", help="print the results as JSON")

    evaluate = subcommands.add_parser(
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
    evaluate.set_defaults(run=commands.evaluate)

    calibrate = subcommands.add_parser(
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
    calibrate.set_defaults(run=commands.calibrate)

    reindex = subcommands.add_parser(
        "reindex",
        help="rebuild the memory with the configured embedding model",
        description="Re-embed every entry of CHROMA_COLLECTION (its stored text) with EMBEDDING_MODEL into a new "
        "collection, then put it in place of the old one. Labels, tenants and who gave the labels are kept.",
    )
    reindex.add_argument("--batch-size", type=int, default=512, help="entries embedded together (512)")
    reindex.add_argument("--json", action="store_true", help="print the result as JSON")
    reindex.set_defaults(run=commands.reindex)

    reconcile = subcommands.add_parser(
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
    reconcile.set_defaults(run=commands.reconcile)

    failed = subcommands.add_parser(
        "failed", help="list Failed tickets with their last error", description="List Failed tickets, oldest first."
    )
    failed.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    failed.add_argument("--json", action="store_true", help="print the list as JSON")
    failed.set_defaults(run=commands.failed)

    replay = subcommands.add_parser(
        "replay",
        help="send Failed tickets through the pipeline again",
        description="Set the given Failed tickets (or, with --all-failed, the oldest --limit of them) back to "
        "Pending with fresh attempts, and publish them.",
    )
    replay.add_argument("ticket_ids", nargs="*", metavar="TICKET_ID", help="the tickets to replay")
    replay.add_argument("--all-failed", action="store_true", help="replay the oldest Failed tickets")
    replay.add_argument("--limit", type=int, default=100, help="with --all-failed, at most this many (100)")
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.set_defaults(run=commands.replay)
    return root
