"""The ``triage`` sub-commands. Each reads the same settings as the functions, runs a use case
bound by the composition root, and returns its result as a dict (printed as JSON with --json)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .. import bootstrap, service, views
from ..errors import ConfigurationError
from .report import plot, print_evaluation, progress_bar


def _columns_of(arguments: argparse.Namespace) -> Any:
    from ..offline.datasets import Columns

    return Columns(
        title=arguments.title_column,
        description=arguments.description_column,
        category=arguments.category_column,
        priority=arguments.priority_column,
        assignment_group=arguments.group_column,
        row_id=arguments.id_column,
    )


def _load_rows(arguments: argparse.Namespace, *, taxonomy_required: bool) -> tuple[list, list, Any]:
    from ..offline.datasets import LabelledRow, labelled_rows, taxonomy_from_labels

    columns = _columns_of(arguments)
    settings = bootstrap.settings()
    taxonomy = bootstrap.taxonomy() if taxonomy_required or arguments.taxonomy else None
    rows, rejected = [], []
    redact = bootstrap.redact()
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
    with progress_bar(len(texts), "embedding") as bar:
        for start in range(0, len(texts), 512):
            chunk = texts[start : start + 512]
            vectors.extend(embedder.embed(chunk))
            bar.update(len(chunk))
    return np.asarray(vectors, dtype=np.float32)


# --------------------------------------------------------------------------- commands


def backfill(arguments: argparse.Namespace) -> dict[str, Any]:
    from ..offline.backfill import backfill
    from ..offline.datasets import labelled_rows

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
        redact=bootstrap.redact(),
    )
    with progress_bar(total, "backfill") as bar:
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


def evaluate(arguments: argparse.Namespace) -> dict[str, Any]:
    from ..adapters.local_classifier import LocalEmbeddingClassifier
    from ..offline import evaluation

    settings = bootstrap.settings()
    rows, rejected, taxonomy = _load_rows(arguments, taxonomy_required=False)
    embeddings = _embed([r.text for r in rows])
    prepared = evaluation.prepare(rows, embeddings, neighbours=settings.memory_neighbours, seed=arguments.seed)
    with progress_bar(len(rows), "stream replay") as bar:
        ours = evaluation.replay(prepared, settings.memory_policy, progress=bar.update)
    fixed = evaluation.replay_fixed_threshold(prepared, arguments.baseline_threshold)
    cut = evaluation.split(prepared, arguments.train_fraction)
    with progress_bar(len(rows) - cut, "held-out split") as bar:
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
        print_evaluation(result, arguments.baseline_threshold)
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


def calibrate(arguments: argparse.Namespace) -> dict[str, Any]:
    from ..offline import evaluation

    settings = bootstrap.settings()
    rows, _, _ = _load_rows(arguments, taxonomy_required=False)
    embeddings = _embed([r.text for r in rows])
    prepared = evaluation.prepare(rows, embeddings, neighbours=settings.memory_neighbours, seed=arguments.seed)
    policies = evaluation.calibration_grid(settings.memory_policy)
    # Choose on the first part of the stream; the last part, never used to choose, checks the choice.
    cut = evaluation.split(prepared, 1.0 - arguments.check_fraction)
    with progress_bar(len(policies), "calibrate") as bar:
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
        plot(arguments.plot, points, curve, chosen, current, arguments)
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


def reindex(arguments: argparse.Namespace) -> dict[str, Any]:
    memory = bootstrap.memory()
    reindex = getattr(memory, "reindex", None)
    if reindex is None:
        raise ConfigurationError("the configured memory cannot be reindexed")
    embedder = bootstrap.embedder()
    embedder.embed(["warm up"])
    started = time.perf_counter()
    with progress_bar(None, "reindex") as bar:
        total = reindex(embedder, batch_size=arguments.batch_size, progress=bar.update)
    seconds = time.perf_counter() - started
    result = {"entries": total, "model": f"{embedder.name}@{embedder.version}", "seconds": round(seconds, 1)}
    if not arguments.json:
        print(f"rebuilt {total:,} entries with {result['model']} in {seconds:.1f}s")
    return result


def reconcile(arguments: argparse.Namespace) -> dict[str, Any]:
    older_than = timedelta(seconds=arguments.older_than) if arguments.older_than else None
    result = bootstrap.bind(service.reconcile)(older_than, arguments.limit).as_dict()
    if not arguments.json:
        print(
            f"republished {result['republished']}, failed as stuck {result['failed']}, "
            f"write-backs queued {result['writebacks']}, sent to the memory {result['remembered']}"
        )
    return result


def failed(arguments: argparse.Namespace) -> dict[str, Any]:
    tickets = bootstrap.bind(views.failed_tickets)(arguments.limit)
    if not arguments.json:
        if not tickets:
            print("no failed tickets")
        for t in tickets:
            print(f"{t['ticket_id']}  {t['updated_at']:%Y-%m-%d %H:%M}  attempts {t['attempts']}  {t['last_error']}")
    return {"tickets": [{**t, "updated_at": t["updated_at"].isoformat()} for t in tickets]}


def replay(arguments: argparse.Namespace) -> dict[str, Any]:
    if not arguments.ticket_ids and not arguments.all_failed:
        raise ConfigurationError("name the tickets to replay, or give --all-failed")
    replayed = bootstrap.bind(service.replay_failed)(
        None if arguments.all_failed else arguments.ticket_ids, arguments.limit
    )
    if not arguments.json:
        print(f"replayed {len(replayed)} ticket(s)" + (": " + " ".join(replayed) if replayed else ""))
    return {"replayed": replayed}
