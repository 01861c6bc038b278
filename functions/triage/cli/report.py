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


def print_evaluation(result: dict[str, Any], threshold: float) -> None:
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


def plot(path: Path, points, curve, chosen, current, arguments: argparse.Namespace) -> None:
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
