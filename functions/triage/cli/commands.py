"""The ``triage`` sub-commands. Each reads the same settings as the functions, runs a use case
bound by the composition root, and returns its result as a dict (printed as JSON with --json)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import bootstrap, service, views
from ..errors import ConfigurationError
from .report import plot_calibration, print_calibration, print_evaluation, progress_bar


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
    from ..offline.backfill import Shard, backfill
    from ..offline.datasets import labelled_rows

    try:
        shard = Shard.parse(arguments.shard, os.environ)
    except ValueError as error:
        raise ConfigurationError(f"--shard: {error}") from None
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
            shard=shard,
        )
    result = report.as_dict() | {"shard": f"{shard.index}/{shard.count}"}
    if not arguments.json:
        print(f"loaded   {report.loaded:>8,}  ({report.texts_per_second:,.0f} texts/s over {report.seconds:.1f}s)")
        print(f"skipped  {report.skipped:>8,}  (already in memory)")
        if shard.count > 1:
            print(f"other shards {report.other_shards:>4,}  (this is shard {shard.index}/{shard.count})")
        print(f"rejected {report.rejected_total:>8,}")
        for reason, count in report.rejected.most_common():
            print(f"  {count:>8,}  {reason}")
    return result


def _scored_labels(arguments: argparse.Namespace) -> list[str]:
    """The labels the file has columns for: the category always, the priority and group if given."""
    optional = (("priority", arguments.priority_column), ("assignment_group", arguments.group_column))
    return ["category", *(label for label, column in optional if column)]


def _target_precision(arguments: argparse.Namespace) -> float:
    target = arguments.target_precision
    target = bootstrap.settings().memory_target_precision if target is None else target
    if not 0.0 < target < 1.0:
        raise ConfigurationError(f"--target-precision must be between 0 and 1 (exclusive), got {target}")
    return target


def _stream(
    arguments: argparse.Namespace, labels: Sequence[str], history: tuple[list, list, Any] | None = None
) -> tuple[list, list, Any, Any, Any]:
    """The history's rows (the file's, unless ``history`` is given) in stream order, with what the
    worker would have known of each ticket."""
    from ..offline import calibration, evaluation

    settings = bootstrap.settings()
    rows, rejected, taxonomy = history or _load_rows(arguments, taxonomy_required=False)
    embeddings = _embed([r.text for r in rows])
    prepared = evaluation.prepare(rows, embeddings, neighbours=settings.memory_neighbours, seed=arguments.seed)
    with progress_bar(len(rows), "evidence") as bar:
        stream = calibration.stream_evidence(prepared, taxonomy, _local_classifier(), labels, progress=bar.update)
    return rows, rejected, taxonomy, prepared, stream


def _local_classifier() -> Any:
    from ..adapters.local_classifier import LocalEmbeddingClassifier

    return LocalEmbeddingClassifier(bootstrap.embedder(), human_weight=bootstrap.settings().memory_human_weight)


def evaluate(arguments: argparse.Namespace) -> dict[str, Any]:
    from ..offline import baselines, calibration, evaluation

    settings = bootstrap.settings()
    target, labels = _target_precision(arguments), _scored_labels(arguments)
    rate = settings.memory_audit_rate if arguments.audit_rate is None else arguments.audit_rate
    if arguments.nightly < 0 or not 0.0 <= rate <= 1.0:
        raise ConfigurationError(
            f"--nightly is 0 or more and --audit-rate between 0 and 1, got {arguments.nightly} and {rate}"
        )
    rows, rejected, taxonomy, prepared, stream = _stream(arguments, labels)
    with progress_bar(len(rows), "stream replay") as bar:
        ours = calibration.replay(stream, target=target, progress=bar.update)
    threshold = arguments.baseline_threshold
    memories = {"triage": evaluation.StreamAnswers(ours.answered, {k: v.astype(bool) for k, v in ours.correct.items()})}
    loops = _production_loops(arguments, prepared, stream, taxonomy, labels, target, rate) if arguments.nightly else {}
    memories |= {name: answers for name, (answers, _) in loops.items()}
    memories |= {
        "fixed_policy": baselines.fixed_policy(prepared, settings.memory_policy, labels),
        f"fixed_1nn_{threshold:.2f}": baselines.nearest_neighbour(prepared, threshold, labels),
    }
    if not arguments.no_servicenow:
        with progress_bar(len(labels), "ServiceNow-style baseline") as bar:
            bare, guarded = baselines.servicenow(prepared, labels, target=target, progress=bar.update)
        memories |= {"servicenow": bare, "servicenow_wilson": guarded}
    cut = evaluation.split(prepared, arguments.train_fraction)
    with progress_bar(len(rows) - cut, "held-out split") as bar:
        local, one_nn = evaluation.held_out_local(
            prepared,
            taxonomy,
            _local_classifier,
            neighbours=settings.memory_neighbours,
            few_shot_max_examples=settings.few_shot_max_examples,
            few_shot_max_chars=settings.few_shot_max_chars,
            train_fraction=arguments.train_fraction,
            progress=bar.update,
        )
    classifiers = {"triage": local, f"fixed_1nn_{threshold:.2f}": one_nn}
    classifiers["tfidf_linear_svc"] = evaluation.held_out_tfidf_svm(prepared, arguments.train_fraction)
    systems = {
        name: evaluation.system_figures(memories.get(name), classifiers.get(name), cut)
        for name in [*memories, "tfidf_linear_svc"]
    }
    result = {
        "file": str(arguments.file),
        "tickets": len(rows),
        "rejected": len(rejected),
        "categories": len(taxonomy.categories),
        "labels": labels,
        "target_precision": target,
        "seed": arguments.seed,
        "refit": calibration.REFIT,
        "train_fraction": arguments.train_fraction,
        "held_out": len(rows) - cut,
        "policy": {k: v for k, v in vars(settings.memory_policy).items()},
        "systems": systems,
        "decision": calibration.label_figures(ours, cut),
        "hindsight": calibration.hindsight(ours, target),
    }
    if loops:
        result["nightly"] = {"every": arguments.nightly, "audit_rate": rate} | {n: ns for n, (_, ns) in loops.items()}
    if not arguments.json:
        print_evaluation(result, threshold)
    return result


def _production_loops(
    arguments: argparse.Namespace,
    prepared: Any,
    stream: Any,
    taxonomy: Any,
    labels: Sequence[str],
    target: float,
    rate: float,
) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    """Production's loop (``offline.feedback_loop``) at the audit rate, and with every outcome known."""
    from ..offline import evaluation, feedback_loop

    settings = bootstrap.settings()
    loops = {}
    for name, audit_rate in (("nightly_audited", rate), ("nightly_all_known", 1.0)):
        with progress_bar(len(prepared.rows), f"nightly loop, audit {audit_rate:.0%}") as bar:
            replayed, nights = feedback_loop.loop(
                prepared,
                stream,
                taxonomy,
                _local_classifier(),
                labels,
                target=target,
                audit_rate=audit_rate,
                every=arguments.nightly,
                neighbours=settings.memory_neighbours,
                seed=arguments.seed,
                progress=bar.update,
            )
        answers = evaluation.StreamAnswers(replayed.answered, {k: v.astype(bool) for k, v in replayed.correct.items()})
        loops[name] = (answers, nights)
    return loops


def calibrate(arguments: argparse.Namespace) -> dict[str, Any]:
    target = _target_precision(arguments)
    if not arguments.all_tenants:
        return _calibrate(arguments, arguments.tenant or bootstrap.settings().default_tenant, target)
    if not arguments.from_memory or arguments.tenant or arguments.plot is not None:
        raise ConfigurationError("--all-tenants goes with --from-memory, and without --tenant or --plot")
    # The scheduled refit (infra/calibrate.tf): every tenant on its own memory; one with too little
    # history yet is skipped (its worker keeps answering nothing from memory), and the run succeeds.
    fitted: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for tenant in bootstrap.memory_records().tenants():
        try:
            fitted[tenant] = _calibrate(arguments, tenant, target)
        except TooLittleHistory as error:
            skipped[tenant] = str(error)
            if not arguments.json:
                print(f"\ntenant {tenant} skipped: {error}")
    if not arguments.json:
        print(f"\nfitted {len(fitted)} tenant(s), skipped {len(skipped)}")
    return {"tenants": fitted, "skipped": skipped}


class TooLittleHistory(ConfigurationError):
    """A tenant's memory holds too few labelled entries to fit on."""


def _calibrate(arguments: argparse.Namespace, tenant: str, target: float) -> dict[str, Any]:
    from ..offline import calibration, datasets, evaluation

    history, left_out, source = _history(arguments, tenant)
    labels = datasets.varying_labels(history[0]) if arguments.from_memory else _scored_labels(arguments)
    rows, _, _, prepared, stream = _stream(arguments, labels, history)
    with progress_bar(len(rows), "stream replay") as bar:
        honest = calibration.replay(stream, target=target, progress=bar.update)
    fitted_at = datetime.now(UTC).isoformat(timespec="seconds")
    fitted, fits = calibration.fit(stream, tenant=tenant, target=target, fitted_at=fitted_at, source=source)
    if not arguments.no_store:
        bootstrap.calibrations().save(fitted)
    cut = evaluation.split(prepared)
    replayed = evaluation.StreamAnswers(honest.answered, {k: v.astype(bool) for k, v in honest.correct.items()})
    result: dict[str, Any] = {
        "file": source,
        "tickets": len(rows),
        "left_out": left_out,
        "tenant": tenant,
        "labels": labels,
        "target_precision": target,
        "fitted_at": fitted_at,
        "stored": not arguments.no_store,
        "replay": evaluation.system_figures(replayed, None, cut) | {"decision": calibration.label_figures(honest, cut)},
        "bars": calibration.bars(fitted),
        "models": {label: f.calibration.model for label, f in fits.items()},
    }
    if arguments.plot is not None:
        plot_calibration(arguments.plot, fits, target, arguments)
        result["plot"] = str(arguments.plot)
    if not arguments.json:
        print_calibration(result)
    return result


def _history(arguments: argparse.Namespace, tenant: str) -> tuple[tuple[list, list, Any], int, str]:
    """What ``calibrate`` fits on: (rows, rejected, taxonomy), the memory entries left out, and the
    history's name (stored with the calibration)."""
    from ..offline import datasets

    if not arguments.from_memory:
        if arguments.file is None or not (arguments.title_column and arguments.category_column):
            raise ConfigurationError("give a labelled file with --title-column and --category-column, or --from-memory")
        return _load_rows(arguments, taxonomy_required=False), 0, str(arguments.file)
    if arguments.file is not None:
        raise ConfigurationError("give a labelled file or --from-memory, not both")
    rows, left_out = datasets.memory_history(entry for _, entry in bootstrap.memory_records().scan(tenant))
    taxonomy = bootstrap.taxonomy() if arguments.taxonomy else None
    if taxonomy is not None:  # entries labelled before the taxonomy last changed are not history for it
        kept = [r for r in rows if r.labels.category in taxonomy.category_names]
        rows, left_out = kept, left_out + len(rows) - len(kept)
    source = f"memory of tenant {tenant}"
    if len(rows) < 2:
        raise TooLittleHistory(f"the {source} holds {len(rows)} labelled entries ({left_out} left out): too few")
    return (rows, [], taxonomy or datasets.taxonomy_from_labels(rows)), left_out, source


def rebuild(arguments: argparse.Namespace) -> dict[str, Any]:
    from ..offline.rebuild import import_collection, rebuild

    records, index, embedder = bootstrap.memory_records(), bootstrap.memory_index(), bootstrap.embedder()
    imported = None
    if arguments.import_collection:
        collection = index.named(arguments.import_collection)
        imported = import_collection(collection, records, model=index.model)
    embedder.embed(["warm up"])
    tenants = arguments.tenant or records.tenants()
    total = sum(records.count(t) for t in tenants)
    with progress_bar(total, "rebuild") as bar:
        report = rebuild(
            records=records,
            index=index,
            embedder=embedder,
            tenants=tenants,
            batch_size=arguments.batch_size,
            fresh=arguments.fresh,
            progress=bar.update,
        )
    result = report.as_dict() | {"model": index.model, "imported": imported}
    if not arguments.json:
        for tenant, count in report.entries.items():
            print(f"{tenant}: {count:,} entries indexed")
        print(
            f"rebuilt {len(report.entries)} tenant(s) with {index.model} in {report.seconds:.1f}s "
            f"({report.embedded:,} embedded by this run)"
        )
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
