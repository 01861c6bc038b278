"""What a precision promise rests on: the bars that keep it, and the statistics that say whether
it holds. Pure functions over (probability, right?) pairs, shared by ``triage calibrate``
(fitting each value's bar on history) and the worker (checking it live, tightening it).

* ``wilson_lower`` / ``wilson_upper``: the 95% Wilson score interval of a precision;
* ``fit_thresholds``: per proposed value (category, priority), the lowest probability bar
  whose precision on earlier tickets meets the target with a Wilson lower bound (or, pooled
  over values, with enough answers of the value's own); a value without enough evidence gets
  no bar (``None``: never answered from memory);
* ``live_check``: the online self-correction rule (tighten on a breach, never loosen);
* ``expected_calibration_error``.

This module must never do I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def wilson_lower(correct: int, total: int, z: float = 1.96) -> float:
    if total <= 0:
        return 0.0
    p = correct / total
    centre = p + z * z / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (centre - spread) / (1 + z * z / total)


def wilson_upper(correct: int, total: int, z: float = 1.96) -> float:
    if total <= 0:
        return 1.0
    return 1.0 - wilson_lower(total - correct, total, z)


def minimum_evidence(target: float, z: float = 1.96) -> int:
    """The fewest answers, all right, whose Wilson lower bound reaches ``target``:
    n / (n + z^2) >= target, i.e. n >= z^2 * target / (1 - target)."""
    return math.ceil(z * z * target / (1.0 - target))


def threshold_for(
    probabilities: Sequence[float],
    outcomes: Sequence[int],
    *,
    target: float,
    z: float = 1.96,
    rule: str = "wilson",
) -> dict[str, object]:
    """The lowest bar for one group, from (cross-fitted probability, right?) of earlier tickets;
    ``threshold`` None where no bar qualifies (the group answers nothing from memory).

    * ``wilson``: the Wilson lower bound of the precision of the answers at or above the bar
      is >= ``target``. Needs at least ``minimum_evidence(target, z)`` answers.
    * ``expected``: the model's own estimate of that precision, the mean probability of the
      answers at or above the bar, is >= ``target``; at least ``minimum_evidence`` answers;
      and their record does not refute it (Wilson upper bound >= ``target``).
    * ``pointwise``: the bar is ``target`` itself (each answer individually likely enough),
      with the same evidence count and no-refutation check as ``expected``.
    """
    pairs = sorted(zip(probabilities, outcomes, strict=True), key=lambda item: -item[0])
    need = minimum_evidence(target, z)
    best: dict[str, object] = {"threshold": None, "answered": 0, "correct": 0, "lower": 0.0, "seen": len(pairs)}
    correct = 0
    mass = 0.0
    for index, (p, outcome) in enumerate(pairs):
        correct += int(outcome)
        mass += p
        answered = index + 1
        if index + 1 < len(pairs) and pairs[index + 1][0] == p:
            continue  # a bar cannot split tied probabilities
        lower = wilson_lower(correct, answered, z)
        if rule == "wilson":
            ok = lower >= target
        elif rule == "expected":
            ok = answered >= need and mass / answered >= target and wilson_upper(correct, answered, z) >= target
        elif rule == "pointwise":
            ok = p >= target and answered >= need and wilson_upper(correct, answered, z) >= target
        else:
            raise ValueError(f"unknown rule {rule!r}")
        if ok:
            best = {"threshold": p, "answered": answered, "correct": correct, "lower": lower, "seen": len(pairs)}
    return best


def fit_thresholds(
    probabilities: Sequence[float],
    outcomes: Sequence[int],
    groups: Sequence[str],
    *,
    target: float,
    z: float = 1.96,
    rule: str = "wilson",
    pooled: bool = True,
    min_answers: int | None = None,
    check: str = "point",
) -> dict[str, dict[str, object]]:
    """A bar per group (the proposed category, or priority value) from earlier tickets'
    (cross-fitted probability, right?) pairs.

    * own bar: ``threshold_for`` on the group's own record (Wilson lower bound >= target,
      which alone needs ``minimum_evidence(target, z)`` answers: 124 at 0.97);
    * pooled bar (``pooled``): the probability model is shared, so the bar ``threshold_for``
      fits on all groups together certifies the target for answers at or above it taken
      together. A group may answer at or above it, or at a higher bar, only with evidence
      of its own there: at least ``min_answers`` earlier answers (default ceil(1/(1 - target)),
      the answers in which one error is expected at the target: 34 at 0.97), whose precision
      meets the target (``check="point"``) or is not refuted by its Wilson upper bound
      (``check="upper"``, weaker). The lowest such bar is the group's.

    Each group takes the lower bar it qualifies for; a group with neither has ``threshold``
    None and answers nothing from memory. The pooled bar is stored under "*"."""
    need = math.ceil(1.0 / (1.0 - target) - 1e-9) if min_answers is None else min_answers
    by_group: dict[str, tuple[list[float], list[int]]] = {}
    for p, outcome, group in zip(probabilities, outcomes, groups, strict=True):
        ps, os_ = by_group.setdefault(group, ([], []))
        ps.append(p)
        os_.append(int(outcome))
    pool = threshold_for(probabilities, outcomes, target=target, z=z, rule=rule) if pooled else {"threshold": None}
    bars: dict[str, dict[str, object]] = {"*": pool}
    for group, (ps, os_) in by_group.items():
        chosen = threshold_for(ps, os_, target=target, z=z, rule=rule)
        chosen["source"] = "own" if chosen["threshold"] is not None else "none"
        floor = pool.get("threshold")
        if floor is not None:
            pairs = sorted(zip(ps, os_, strict=True), key=lambda item: -item[0])
            correct = 0
            for index, (p, outcome) in enumerate(pairs):
                if p < floor:  # type: ignore[operator]
                    break
                correct += outcome
                answered = index + 1
                if index + 1 < len(pairs) and pairs[index + 1][0] == p:
                    continue
                if chosen["threshold"] is not None and p >= chosen["threshold"]:  # type: ignore[operator]
                    continue  # not lower than the bar it has
                ok = correct >= target * answered if check == "point" else wilson_upper(correct, answered, z) >= target
                if answered >= need and ok:
                    chosen = {
                        "threshold": p,
                        "answered": answered,
                        "correct": correct,
                        "lower": wilson_lower(correct, answered, z),
                        "seen": len(ps),
                        "source": "pooled",
                    }
        bars[group] = chosen
    return bars


def answers(probability: float, group: str, thresholds: Mapping[str, Mapping[str, object]]) -> bool:
    bar = thresholds.get(group, {}).get("threshold")
    return bar is not None and probability >= float(bar)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- calibration error


def expected_calibration_error(probabilities: Sequence[float], outcomes: Sequence[int], bins: int = 10) -> float:
    """Equal-width bins on [0, 1]; the weighted mean |accuracy - confidence|."""
    totals = [0] * bins
    confidence = [0.0] * bins
    right = [0] * bins
    for p, outcome in zip(probabilities, outcomes, strict=True):
        b = min(int(p * bins), bins - 1)
        totals[b] += 1
        confidence[b] += p
        right[b] += int(outcome)
    n = sum(totals)
    return sum(abs(right[b] - confidence[b]) for b in range(bins) if totals[b]) / n if n else 0.0


# --------------------------------------------------------------------------- self-correction


def holds(
    source: str, correct: int, answered: int, *, target: float, z: float = 1.96, min_answers: int | None = None
) -> bool:
    """Does a bar's record still meet the rule that set it? ``own`` (and ``*``, the pooled
    bar itself): Wilson lower bound >= target; ``pooled`` (a group on the pooled bar): at
    least ``min_answers`` answers with precision >= target."""
    need = math.ceil(1.0 / (1.0 - target) - 1e-9) if min_answers is None else min_answers
    if source == "pooled":
        return answered >= need and correct >= target * answered
    return wilson_lower(correct, answered, z) >= target


def live_check(
    bar: Mapping[str, object],
    record: Sequence[tuple[float, int]],
    *,
    target: float,
    z: float = 1.96,
    min_answers: int | None = None,
) -> dict[str, object]:
    """The online self-correction rule for one group (category or priority value).

    ``record``: (probability, right?) of every outcome known for this group: the calibration
    pairs the bar was fitted on, plus each audited memory answer (the classifier of record
    agreed or not), each human confirmation (right) and each human correction of a memory
    answer (wrong), each with the probability the decision gave it. Re-applies the rule that
    set the bar to the answers at or above it. While it holds the bar stays. When it fails
    the bar rises to the lowest probability above it at which the rule holds on this record,
    so it tightens exactly as much as the evidence requires; where none does, ``threshold``
    is None and the group answers nothing from memory. Loosening is never done here: only a
    new fit (``triage calibrate``, on a labelled file or, with ``--from-memory``, on the entries of
    the tenant's memory that the classifier of record or a person labelled, corrections included)
    sets a lower bar, under the same rule."""
    threshold = bar.get("threshold")
    source = str(bar.get("source", "own"))
    if threshold is None:
        return dict(bar)
    above = [(p, o) for p, o in record if p >= threshold]  # type: ignore[operator]
    correct = sum(o for _, o in above)
    if holds(source, correct, len(above), target=target, z=z, min_answers=min_answers):
        return {**bar, "answered": len(above), "correct": correct, "changed": False}
    pairs = sorted(record, key=lambda item: -item[0])
    chosen: dict[str, object] = {**bar, "threshold": None, "answered": 0, "correct": 0, "changed": True}
    correct = 0
    for index, (p, outcome) in enumerate(pairs):
        if p < threshold:  # type: ignore[operator]
            break
        correct += outcome
        if index + 1 < len(pairs) and pairs[index + 1][0] == p:
            continue
        if p > threshold and holds(source, correct, index + 1, target=target, z=z, min_answers=min_answers):  # type: ignore[operator]
            chosen = {**bar, "threshold": p, "answered": index + 1, "correct": correct, "changed": True}
    return chosen
