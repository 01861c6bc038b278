"""How the command line shows its work: progress bars on stderr, tables on stdout, plots as PNG."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def progress(total: int | None, description: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="row", file=sys.stderr, disable=None, dynamic_ncols=True)


@contextlib.contextmanager
def progress_bar(total: int | None, description: str) -> Iterator[Any]:
    shown = progress(total, description)
    try:
        yield shown
    finally:
        shown.close()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def print_evaluation(result: dict[str, Any], threshold: float) -> None:
    names = {
        "triage": "triage: calibrated decision + local classifier",
        "fixed_policy": "today's fixed policy (MEMORY_* settings)",
        f"fixed_1nn_{threshold:.2f}": f"fixed 1-NN >= {threshold:.2f} (GPTCache-style)",
        "servicenow": "ServiceNow-style: calibrated TF-IDF SVM, class bars",
        "servicenow_wilson": "  same, bars with a Wilson 95% bound",
        "tfidf_linear_svc": "TF-IDF + LinearSVC",
    }
    if "nightly" in result:
        every, rate = result["nightly"]["every"], result["nightly"]["audit_rate"]
        names["nightly_audited"] = f"  refit every {every:,} on its memory, audit {rate:.0%}"
        names["nightly_all_known"] = f"  refit every {every:,} on its memory, all known"
    systems, labels = result["systems"], result["labels"]
    tail = 1 - result["train_fraction"]
    print(
        f"\n{result['file']}: {result['tickets']:,} tickets ({result['rejected']} rejected), "
        f"{result['categories']} categories; labels scored: {', '.join(labels)}; target precision "
        f"{result['target_precision']:.1%}; stream in numpy seed-{result['seed']} order, fits refitted every "
        f"{result['refit']} tickets on earlier ones; held-out split {result['train_fraction']:.0%}/{tail:.0%} "
        f"({result['held_out']:,} tickets)\n"
    )
    header = (
        "system",
        "LLM calls avoided",
        "memory precision",
        "Wilson 95%",
        f"last {tail:.0%}",
        "accuracy",
        "macro-F1",
    )
    print(f"| {header[0]:<52} | {header[1]:>17} | {header[2]:>16} | {header[3]:>10} | {header[4]:>17} | "
          f"{header[5]:>8} | {header[6]:>8} |")  # fmt: skip
    print(f"|{'-' * 54}|{'-' * 19}|{'-' * 18}|{'-' * 12}|{'-' * 19}|{'-' * 10}|{'-' * 10}|")
    for key, figures in systems.items():
        end = figures["tail"]
        last = "n/a" if end is None else f"{end['llm_calls_avoided']:.1%}"
        if end and end["memory_precision"] is not None:
            last += f" at {end['memory_precision']:.1%}"
        accuracy = "n/a" if figures["accuracy"] is None else f"{figures['accuracy']:.3f}"
        macro_f1 = "n/a" if figures["macro_f1"] is None else f"{figures['macro_f1']:.3f}"
        avoided = _percent(figures["llm_calls_avoided"])
        if figures["memory_answers"] is not None:
            avoided = f"{avoided} ({figures['memory_answers']:,})"
        print(
            f"| {names.get(key, key):<52} | {avoided:>17} | {_percent(figures['memory_precision']):>16} | "
            f"{_percent(figures['memory_precision_lower95']):>10} | {last:>17} | {accuracy:>8} | {macro_f1:>8} |"
        )
    print("\nPrecision of each label on the tickets each memory answered:\n")
    print(f"| {'system':<52} | " + " | ".join(f"{label:>16}" for label in labels) + " |")
    print(f"|{'-' * 54}|" + "|".join("-" * 18 for _ in labels) + "|")
    for key, figures in systems.items():
        if figures["per_label_precision"] is not None:
            cells = " | ".join(f"{_percent(figures['per_label_precision'][label]):>16}" for label in labels)
            print(f"| {names.get(key, key):<52} | {cells} |")
    print(
        "\nThe calibrated decision, label by label: a label is answered where its probability clears its value's "
        f"bar;\nECE: expected calibration error of that probability on the last {tail:.0%} of the stream "
        "(10 bins).\n"
    )
    print(f"| {'label':<16} | {'answered':>16} | {'precision':>9} | {'Wilson 95%':>10} | {'ECE':>5} | "
          f"{'mean p / accuracy':>17} |")  # fmt: skip
    print(f"|{'-' * 18}|{'-' * 18}|{'-' * 11}|{'-' * 12}|{'-' * 7}|{'-' * 19}|")
    for label in labels:
        figures = result["decision"][label]
        answered = f"{figures['answered_share']:.1%} ({figures['answered']:,})"
        mean = (
            f"{figures['mean_probability']:.3f} / {figures['accuracy']:.3f}" if figures["accuracy"] is not None else ""
        )
        print(
            f"| {label:<16} | {answered:>16} | {_percent(figures['precision']):>9} | "
            f"{_percent(figures['precision_lower95']):>10} | {figures['ece']:>5.3f} | {mean:>17} |"
        )
    if "all" in result["decision"]:
        print(f"| {'all (product)':<16} | {'':>16} | {'':>9} | {'':>10} | {result['decision']['all']['ece']:>5.3f} | "
              f"{'':>17} |")  # fmt: skip
    ceiling = result.get("hindsight")
    if ceiling and ceiling["answered"]:
        print(
            f"\nHindsight: one bar chosen after the fact on the same probabilities answers "
            f"{ceiling['answered_share']:.1%} ({ceiling['answered']:,}) at {ceiling['precision']:.1%}: what the "
            "probabilities' ranking allows one global bar."
        )
    print(
        "\nLLM calls avoided: tickets with every scored label answered from memory (the count in brackets); memory "
        "precision:\nthose with every scored label right, with its Wilson 95% lower bound; last "
        f"{tail:.0%}: the same on the end of the stream.\nStream replay: every earlier ticket in memory under its "
        "true label; whatever a system fits is fitted on earlier\ntickets only. Accuracy and macro-F1: the held-out "
        "tickets' category, classified from the rest (the 1-NN row takes\nits nearest ticket's label; TF-IDF + "
        "LinearSVC is a classifier, not a memory).\n"
    )


def _left_out(count: int) -> str:
    return f" ({count:,} memory entries left out: answered from memory, or outside the taxonomy)" if count else ""


def print_calibration(result: dict[str, Any]) -> None:
    replay = result["replay"]
    tail = replay["tail"]
    print(
        f"\n{result['file']}: {result['tickets']:,} tickets{_left_out(result.get('left_out', 0))}; "
        f"tenant {result['tenant']}; labels: "
        f"{', '.join(result['labels'])}; target precision {result['target_precision']:.1%}\n"
        f"\nHonest replay of this history (each ticket decided by fits on earlier tickets only): "
        f"{replay['llm_calls_avoided']:.1%} of LLM calls avoided at {_percent(replay['memory_precision'])} "
        f"precision; last {tail['tickets']:,} tickets: {tail['llm_calls_avoided']:.1%} at "
        f"{_percent(tail['memory_precision'])}."
    )
    for label in result["labels"]:
        print(
            f"\nPer {label.replace('_', ' ')}: the bar fitted on all {result['tickets']:,} tickets (cross-fitted "
            "probabilities) and what it answered of them:\n"
        )
        print(f"| {label:<34} | target | {'bar':>6} | {'answered':>15} | precision | Wilson 95% | source |")
        print(f"|{'-' * 36}|--------|--------|{'-' * 17}|-----------|------------|--------|")
        for value, bar in sorted(result["bars"][label].items(), key=lambda item: (item[0] == "*", item[0])):
            name = "(every value, pooled)" if value == "*" else value
            threshold = "none" if bar["threshold"] is None else f"{bar['threshold']:.3f}"
            answered = (
                f"{bar['answered']:,} of {bar['seen']:,}" if bar["threshold"] is not None else f"0 of {bar['seen']:,}"
            )
            print(
                f"| {name[:34]:<34} | {result['target_precision']:>6.1%} | {threshold:>6} | {answered:>15} | "
                f"{_percent(bar['precision'] if bar['threshold'] is not None else None):>9} | "
                f"{_percent(bar['lower95'] if bar['threshold'] is not None else None):>10} | {bar['source']:<6} |"
            )
    print(
        "\nsource: own (the value's own answers keep the target with a Wilson 95% lower bound), pooled (the bar "
        "of every value\ntogether, with at least 1/(1 - target) answers of the value's own at the target), none "
        "(not enough evidence: the\nmemory never answers it; the LLM does)."
    )
    print("stored for the worker" if result["stored"] else "not stored (--no-store)")
    if result.get("plot"):
        print(f"plot: {result['plot']}")


def plot_calibration(path: Path, fits: dict[str, Any], target: float, arguments: argparse.Namespace) -> None:
    """Per category: precision against the share of its tickets answered, as its bar is lowered
    (cross-fitted probabilities of the history), the bar fitted marked, and the target."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'ticket-triage[tools]' (make install has it)") from None
    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot

    category = fits["category"]
    proposed = np.array(category.proposed, dtype=object)
    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=120)
    for value in sorted(set(category.proposed)):
        mine = proposed == value
        order = np.argsort(-category.probabilities[mine], kind="stable")
        ranked, right = category.probabilities[mine][order], category.correct[mine][order]
        answered = np.arange(1, len(ranked) + 1)
        share, precision = answered / len(ranked) * 100, np.cumsum(right) / answered * 100
        (line,) = axes.plot(share, precision, linewidth=1.2, label=value[:28])
        bar = category.calibration.bar(value)
        if bar is not None:
            at = int((ranked >= bar).sum()) - 1
            axes.scatter([share[at]], [precision[at]], marker="o", s=36, color=line.get_color(), zorder=5)
    axes.axhline(target * 100, color="#b91c1c", linestyle="--", linewidth=1, label=f"target {target:.1%}")
    axes.set_xlabel("tickets of the category answered from memory (%)")
    axes.set_ylabel("precision of memory answers (%)")
    axes.set_ylim(max(0.0, min(80.0, target * 100 - 20)), 100.5)
    history = Path(arguments.file).name if arguments.file else "--from-memory"
    axes.set_title(f"triage calibrate {history}: per category, dot = its bar")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
