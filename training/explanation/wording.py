"""A factor's words: the largest contributions of a row as clinical statements with the
client's own numbers, chosen to agree with the factor's direction (see the words section).
"""

from __future__ import annotations

from collections.abc import Callable
from math import isnan

from training.explanation.groups import (
    FEATURE_INDEX,
    GROUP_CODES,
    Factor,
    FloatArray,
    IntArray,
    Row,
)
from training.explanation.reference import OcclusionPlan
from training.features import SRS_CUTOFF

# A fall worth naming: a quarter point on the WAI-SR item mean (about half a between-client
# SD) or a 0.5 dip; 2 points on the SRS total or a 3-point dip (PCOMS flags SRS drops).
# A facet is named when it sits at least a quarter point below (above) the typical client.
WAI_FALL, WAI_DIP, SRS_FALL, SRS_DIP, FACET_GAP = 0.25, 0.5, 2.0, 3.0, 0.25


def worded(
    X: FloatArray,
    marks: IntArray,
    C: FloatArray,
    plan: OcclusionPlan,
    top: int = 3,
    min_abs: float = 0.005,
) -> list[list[Factor]]:
    """Per row, its largest contributions C (as `contributions` gives them) in words. A
    group whose words have nothing true to say in its direction (skipped measures that
    lower the risk) is passed over, so it never crowds out a reason."""
    out: list[list[Factor]] = []
    groups = range(len(GROUP_CODES))
    for row, k, row_c in zip(X.tolist(), marks.tolist(), C.tolist(), strict=True):
        # Largest first; sorted() is stable, so ties keep the table's order. Plain Python:
        # six numbers per client cost less than numpy's per-call overhead at one client.
        magnitude = [-abs(c) for c in row_c]
        factors: list[Factor] = []
        for g in sorted(groups, key=magnitude.__getitem__):
            size = round(row_c[g], 3)  # filter on what the caller sees; rounding keeps the
            if len(factors) >= top or size == 0.0 or abs(size) < min_abs:  # order, so every
                break  # later factor fails too
            named = _WORDS[GROUP_CODES[g]](row, plan.values[k], k, size > 0)
            if named is not None:
                factors.append(Factor(named[0], named[1], "raises" if size > 0 else "lowers", size))
        out.append(factors)
    return out


# --- words --------------------------------------------------------------------------------
# A group's words are chosen from what is true of the client's values (compared with the
# typical, reference, client) AND agrees with the group's direction: a fall, a weak facet or
# a low level for a group that raises the risk; a rise, a strong facet or a high level for
# one that lowers it. So a label never says "lower than typical" beside "lowers risk". When
# no such statement is true (the model weighs the values against intuition), the label
# states the values without a comparison. No identifiers ever enter a label. Feature
# positions are module constants: labels run per shown factor, in batches of 1,000.

(
    _WAI_LAST,
    _WAI_CHANGE,
    _WAI_DROP,
    _GOAL,
    _TASK,
    _BOND,
    _SRS_LAST,
    _SRS_CHANGE,
    _SRS_MIN,
    _SRS_DROP,
    _ORS,
    _ORS_CHANGE,
    _PHQ,
    _PHQ_CHANGE,
    _GAP_MEAN,
    _GAP_MAX,
    _AGE,
    _WAI_MISSING,
    _SRS_MISSING,
) = (
    FEATURE_INDEX[name]
    for name in (
        "wai_last",
        "wai_change",
        "wai_drop_max",
        "wai_goal_last",
        "wai_task_last",
        "wai_bond_last",
        "srs_last",
        "srs_change",
        "srs_min",
        "srs_drop_max",
        "ors_last",
        "ors_change",
        "phq9_last",
        "phq9_change",
        "gap_mean_days",
        "gap_max_days",
        "age",
        "wai_missing",
        "srs_missing",
    )
)
_MISSING_WORDS = tuple(
    (word, FEATURE_INDEX[name])
    for word, name in (
        ("WAI-SR", "wai_missing"),
        ("SRS", "srs_missing"),
        ("ORS", "ors_missing"),
        ("PHQ-9", "phq9_missing"),
    )
)
Named = tuple[str, str] | None  # (factor code, label), or None: nothing to show


def _short(value: float, typical: float, raises: bool) -> float:
    """How far the client sits on the side the direction names: below the typical value
    for a group that raises the risk (where higher is better), above it for one that
    lowers it; negative on the other side, NaN when either is unknown."""
    return typical - value if raises else value - typical


def _wai(value: float) -> str:
    """WAI-SR item means: two decimals (quarter steps), trailing zero dropped (4.0, 3.25)."""
    text = f"{value:.2f}"
    return text[:-1] if text[-1] == "0" else text


def _one(value: float) -> str:
    return f"{value:.1f}"


def _count(value: float) -> str:
    return f"{round(value, 1):g}"


def _trend(
    row: Row, k: int, at: tuple[int, int, int, int], words: tuple[str, str], raises: bool
) -> str:
    """A fall, a dip or a rise with first and last rating. at = (last, change, drop,
    missing) positions; words = (subject, scale). 'From session 1 to k' only when every
    session was rated: otherwise the first rating may come from a later session. A dip
    that ended higher is worded as the dip when the group raises the risk."""
    last, change = row[at[0]], row[at[1]]
    subject, scale = words
    show = _wai if scale == "WAI-SR" else _one
    numbers = f"{scale} {show(last - change)} → {show(last)}"
    span = f"from session 1 to {k}" if row[at[3]] == 0 else "since first rated"
    if change < 0:
        return f"{subject} fell {span} ({numbers})"
    if change > 0 and not raises:
        return f"{subject} rose {span} ({numbers})"
    return f"{subject} dipped and recovered ({numbers}, largest fall {show(row[at[2]])})"


_WAI_AT = (_WAI_LAST, _WAI_CHANGE, _WAI_DROP, _WAI_MISSING)
_SRS_AT = (_SRS_LAST, _SRS_CHANGE, _SRS_DROP, _SRS_MISSING)


def _alliance(row: Row, ref: Row, k: int, raises: bool) -> Named:
    """A fall (rise); else the facet that stands a quarter point further from typical than
    the level does (the one to work on); else the level; else any facet on that side."""
    last, change, drop = row[_WAI_LAST], row[_WAI_CHANGE], row[_WAI_DROP]
    if (change <= -WAI_FALL or drop >= WAI_DIP) if raises else change >= WAI_FALL:
        return ("alliance_decline" if raises else "alliance_low"), _trend(
            row, k, _WAI_AT, ("Alliance", "WAI-SR"), raises
        )
    level = _short(last, ref[_WAI_LAST], raises)
    gap, facet = _weakest_facet(row, ref, raises)
    if gap - (level if level > 0 else 0.0) >= FACET_GAP:
        return facet(row, raises)
    if level > 0:
        word = "lower" if raises else "higher"
        return "alliance_low", f"Alliance {word} than typical (latest WAI-SR {_wai(last)} of 5)"
    if gap > 0:
        return facet(row, raises)
    return "alliance_low", f"Alliance ratings (latest WAI-SR {_wai(last)} of 5)"


def _weakest_facet(row: Row, ref: Row, raises: bool) -> tuple[float, Callable[[Row, bool], Named]]:
    """The facet furthest from typical on the direction's side (goal and task as their
    mean, over the ones rated), with its words; NaN when neither was rated."""
    goal, task = row[_GOAL], row[_TASK]
    if isnan(goal):
        pair = _short(task, ref[_TASK], raises)
    elif isnan(task):
        pair = _short(goal, ref[_GOAL], raises)
    else:
        pair = _short(goal + task, ref[_GOAL] + ref[_TASK], raises) / 2
    bond = _short(row[_BOND], ref[_BOND], raises)
    return (bond, _bond) if bond > pair or isnan(pair) else (pair, _goal_task)


def _goal_task(row: Row, raises: bool) -> Named:
    goal, task = row[_GOAL], row[_TASK]
    numbers = ", ".join(
        f"{name} {_wai(v)}" for name, v in (("goal", goal), ("task", task)) if not isnan(v)
    )
    word = "Less" if raises else "More"
    return "goal_task_low", f"{word} agreement on goals and tasks than typical ({numbers} of 5)"


def _bond(row: Row, raises: bool) -> Named:
    word = "Weaker" if raises else "Stronger"
    return "bond_low", f"{word} emotional bond than typical (bond {_wai(row[_BOND])} of 5)"


def _session_rating(row: Row, ref: Row, k: int, raises: bool) -> Named:
    last, lowest, change = row[_SRS_LAST], row[_SRS_MIN], row[_SRS_CHANGE]
    if (change <= -SRS_FALL or row[_SRS_DROP] >= SRS_DIP) if raises else change >= SRS_FALL:
        code = "srs_decline" if raises else "srs_low"
        return code, _trend(row, k, _SRS_AT, ("Session rating", "SRS"), raises)
    if raises and last < SRS_CUTOFF:
        return "srs_low", f"Session rating below the cut-off of 36 (last SRS {_one(last)} of 40)"
    if raises and lowest < SRS_CUTOFF:
        return "srs_low", f"Session rating was below 36 earlier (lowest SRS {_one(lowest)} of 40)"
    if _short(last, ref[_SRS_LAST], raises) > 0 and (raises or last >= SRS_CUTOFF):
        word = "lower" if raises else "higher"
        return "srs_low", f"Session ratings {word} than typical (last SRS {_one(last)} of 40)"
    return "srs_low", f"Session ratings (last SRS {_one(last)} of 40)"


def _symptoms(row: Row, ref: Row, k: int, raises: bool) -> Named:
    """Trend when there are two ratings, else level against the clinical cut-offs
    (PHQ-9 >= 10, ORS < 25); a high PHQ-9 and a low ORS mean distress. Improvement may
    raise the risk (some clients stop once they feel better) and worsening lower it: a trend
    has no one direction in the literature, so it is worded as what it is either way."""
    phq, phq_change, ors, ors_change = row[_PHQ], row[_PHQ_CHANGE], row[_ORS], row[_ORS_CHANGE]
    parts, signs = [], []  # signs: +1 better than at the first rating, -1 worse, 0 same
    if not isnan(phq):
        if isnan(phq_change):
            parts.append(f"PHQ-9 {_count(phq)} of 27")
        else:
            parts.append(f"PHQ-9 {_count(phq - phq_change)} → {_count(phq)}")
            signs.append((phq_change < 0) - (phq_change > 0))
    if not isnan(ors):
        if isnan(ors_change):
            parts.append(f"ORS {_one(ors)} of 40")
        else:
            parts.append(f"ORS {_one(ors - ors_change)} → {_one(ors)}")
            signs.append((ors_change > 0) - (ors_change < 0))
    return "symptoms", f"{_symptom_head(signs, phq, ors, raises)} ({'; '.join(parts)})"


def _symptom_head(signs: list[int], phq: float, ors: float, raises: bool) -> str:
    if not signs:  # NaN compares False: a missing measure never counts as distress
        clinical = phq >= 10 or ors < 25
        if clinical == raises:
            return (
                "Distress in the clinical range" if clinical else "Distress below clinical cut-offs"
            )
        return "Symptom scores"
    if max(signs) > 0 and min(signs) < 0:
        return "Symptom scores moved in different directions"
    if max(signs) > 0:
        return "Symptoms improving"
    if min(signs) < 0:
        return "Symptoms worsening"
    return "Symptoms unchanged"


def _gaps(row: Row, ref: Row, k: int, raises: bool) -> Named:
    mean, longest = row[_GAP_MEAN], row[_GAP_MAX]
    longer = max(_short(-mean, -ref[_GAP_MEAN], raises), _short(-longest, -ref[_GAP_MAX], raises))
    if longer > 0 and raises:
        return (
            "attendance_gaps",
            f"Longer gaps between sessions than typical (up to {longest:.0f} days)",
        )
    if longer > 0:
        return "attendance_gaps", f"Sessions close together (at most {longest:.0f} days apart)"
    return "attendance_gaps", f"Sessions up to {longest:.0f} days apart"


def _age(row: Row, ref: Row, k: int, raises: bool) -> Named:
    age = row[_AGE]
    if _short(age, ref[_AGE], raises) > 0:  # younger raises, older lowers
        return "age", f"{'Younger' if raises else 'Older'} client (age {age:.0f})"
    return "age", f"Client aged {age:.0f}"


def _missing(row: Row, ref: Row, k: int, raises: bool) -> Named:
    """Only measures taken in some sessions and skipped in others; only when the skips
    raise the risk (a skip is a reason to ask for the measure, never one for less worry)."""
    skipped = [
        f"{word} skipped in {_count(row[j])} of {k} sessions"
        for word, j in _MISSING_WORDS
        if 0 < row[j] < k
    ]
    if not raises or not skipped:
        return None
    return "measures_missing", "; ".join(skipped)


# Group -> its words: (row, reference row, landmark, raises) -> (code, label) or None.
_WORDS: dict[str, Callable[[Row, Row, int, bool], Named]] = {
    "alliance": _alliance,
    "session_rating": _session_rating,
    "symptoms": _symptoms,
    "attendance_gaps": _gaps,
    "age": _age,
    "measures_missing": _missing,
}
