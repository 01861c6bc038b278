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


def _columns(parser: argparse.ArgumentParser, *, labels: str, required: bool = True) -> None:
    group = parser.add_argument_group("columns", COLUMN_HELP)
    group.add_argument("--title-column", required=required, help="the ticket's title, or its whole text")
    group.add_argument("--description-column", help="the ticket's description (optional)")
    group.add_argument("--category-column", required=required, help=f"the category: {labels}")
    group.add_argument("--priority-column", help="the priority (optional)")
    group.add_argument("--group-column", help="the assignment group (optional)")
    group.add_argument("--id-column", help="a unique id per row (default: a hash of the text)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="triage",
        description="Operate the triage engine: its semantic memory, and its stopped or failed tickets. "
        "Settings come from the environment, "
        "as for the functions (CHROMA_HOST, CHROMA_COLLECTION, MEMORY_COLLECTION, EMBEDDING_MODEL, TAXONOMY_FILE, "
        "MEMORY_*, ...).",
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
    backfill.add_argument(
        "--shard",
        default="0/1",
        help="load only shard I of N (0-based), e.g. 2/8; 'auto' takes a Cloud Run job task's "
        "CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT. Each row is in exactly one shard (a hash of its id): "
        "N shards in parallel load what one run loads (0/1)",
    )
    backfill.add_argument("--json", action="store_true", help="print the report as JSON")
    backfill.set_defaults(run=commands.backfill)

    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--seed", type=int, default=0, help="stream order: numpy RandomState(seed).permutation (0)")
    shared.add_argument(
        "--taxonomy",
        action="store_true",
        help="check labels against TAXONOMY_FILE (default: take the dataset's own labels as the taxonomy)",
    )
    shared.add_argument("--json", action="store_true", help="print the results as JSON")

    target = argparse.ArgumentParser(add_help=False)
    target.add_argument(
        "--target-precision",
        type=float,
        help="the precision memory answers must keep, per label and value (default: MEMORY_TARGET_PRECISION)",
    )

    evaluate = subcommands.add_parser(
        "evaluate",
        parents=[shared, target],
        help="replay a labelled dataset: LLM calls avoided, memory precision, calibration, classifier accuracy",
        description="Replay a labelled dataset offline as a stream, each ticket seeing only the tickets before it, "
        "through the calibrated decision (its model and bars refitted every 100 tickets on earlier tickets only) "
        "and the local classifier. Scores the category, and the priority and assignment group where their columns "
        "are given. Prints, from the same run and beside today's fixed policy (MEMORY_* settings), GPTCache-style "
        "1-NN, TF-IDF + LinearSVC and a ServiceNow-style baseline: the share of LLM calls avoided, the precision of "
        "memory answers (all labels, and per label), the decision's expected calibration error on the held-out end "
        "of the stream, and the local classifier's accuracy and macro-F1 on a held-out split.",
    )
    evaluate.add_argument("file", type=Path, help="the labelled CSV (with a header row) or JSON Lines file")
    _columns(evaluate, labels="any values")
    evaluate.add_argument("--train-fraction", type=float, default=0.8, help="memory share of the split (0.8)")
    evaluate.add_argument("--baseline-threshold", type=float, default=0.80, help="the fixed baseline's cosine (0.80)")
    evaluate.add_argument(
        "--no-servicenow",
        action="store_true",
        help="skip the ServiceNow-style baseline: its refits (12 SVM fits per label every 100 tickets) take most "
        "of the run on a few thousand tickets",
    )
    evaluate.add_argument(
        "--nightly",
        type=int,
        default=0,
        metavar="TICKETS",
        help="also replay production's loop: the decision refitted every TICKETS tickets as the nightly "
        "calibrate --from-memory fits it, on what the memory holds as history (the classifier's tickets and the "
        "audited memory answers), beside the same loop with every outcome known (default 0: skip)",
    )
    evaluate.add_argument(
        "--audit-rate",
        type=float,
        default=None,
        help="the share of memory answers audited in that loop (default: MEMORY_AUDIT_RATE)",
    )
    evaluate.set_defaults(run=commands.evaluate)

    calibrate = subcommands.add_parser(
        "calibrate",
        parents=[shared, target],
        help="fit the calibrated decision on labelled history and store it for the worker",
        description="Replay the tenant's labelled history as a stream (what the worker would have known of each "
        "ticket), fit the decision's probability model per label and, per category and priority, the lowest bar "
        "whose precision keeps the target with a Wilson 95% lower bound, and store them in Firestore "
        "(CALIBRATION_COLLECTION), where the worker reads them. Prints each value's bar with what it answered of "
        "the history, and what an honest replay (each ticket decided by fits on earlier tickets only) answers. "
        "The history is a labelled file, or (--from-memory) what the tenant's memory holds: every entry labelled by "
        "the classifier of record or a person, or imported by backfill (entries answered from memory are left out: "
        "their labels are the memory's own guess).",
    )
    calibrate.add_argument(
        "file", type=Path, nargs="?", help="the labelled CSV (with a header row) or JSON Lines file (or --from-memory)"
    )
    calibrate.add_argument(
        "--from-memory",
        action="store_true",
        help="fit on the tenant's memory record in Firestore (MEMORY_COLLECTION) instead of a file; scores the "
        "category, and the priority and assignment group where they vary within a category",
    )
    _columns(calibrate, labels="any values (with a file)", required=False)
    calibrate.add_argument("--tenant", help="the tenant the history belongs to (default: DEFAULT_TENANT)")
    calibrate.add_argument(
        "--all-tenants",
        action="store_true",
        help="with --from-memory: fit every tenant the memory holds, each on its own entries; a tenant with too "
        "few is skipped (what the scheduled refit runs)",
    )
    calibrate.add_argument("--no-store", action="store_true", help="fit and print, but store nothing")
    calibrate.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw each category's precision against its share answered from memory, its bar and the target",
    )
    calibrate.set_defaults(run=commands.calibrate)

    rebuild = subcommands.add_parser(
        "rebuild",
        help="build the memory's Chroma index again from its record in Firestore",
        description="Embed every memory entry on record in Firestore (MEMORY_COLLECTION) with EMBEDDING_MODEL into "
        "a staging collection per tenant, beside the live one, and put it in the live one's place when complete. "
        "For a Chroma that lost its data, another embedding model, or the first version's single collection "
        "(--import-collection). Resumable: run it again after an interruption and what was staged is kept.",
    )
    rebuild.add_argument("--tenant", action="append", help="only this tenant (repeatable; default: every tenant)")
    rebuild.add_argument("--fresh", action="store_true", help="discard what an interrupted run staged; start over")
    rebuild.add_argument(
        "--import-collection",
        metavar="NAME",
        help="first put on record every entry of this first-version Chroma collection (all tenants in one)",
    )
    rebuild.add_argument("--batch-size", type=int, default=1024, help="entries embedded together (1024)")
    rebuild.add_argument("--json", action="store_true", help="print the result as JSON")
    rebuild.set_defaults(run=commands.rebuild)

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
