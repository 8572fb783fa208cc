"""Warnings when the input to `predict` or `evaluate` is not what the model was made for.

Why: a model scores any well-formed cohort, and a cohort that differs from its training
data (an instrument the site does not collect, values beyond anything seen in training,
a flag rate far from the one its thresholds were set for) still gets numbers that look as
trustworthy as any. Three checks, one line each on stderr (and in the evaluation report):

- an instrument the model was trained with has no value in the input. The instruments
  are the typed metadata's (ModelMetadata.instruments, which every artifact has).
- more than 5% of the scored rows fall outside the model's training range on a feature.
  The range is ModelMetadata.feature_range ({feature: [lo, hi]}); an artifact without it
  skips this check.
- the share flagged moderate-or-high, or high, differs from the design by more than 10
  points. The design is the flag rate the thresholds had on the validation examples
  (ModelMetadata.thresholds.validation): every landmark each client reached, which is
  what `evaluate` scores. `predict` scores each client at its latest landmark only, where
  risk is lower (dropouts leave early): it is compared with the test set's flag rates per
  landmark (the metrics' per-landmark figures) mixed as its rows are, for each level
  that has them at every landmark scored (the high level, in current artifacts); a level
  without them is skipped.

Counts are gathered per batch into a `ShiftTally`, so that `predict`, which streams the
file in chunks and in forked parts, can add them up; no client id ever enters a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.artifact_schema import ModelMetadata
from training.features import FEATURES
from training.figures import LandmarkFigures
from training.train import _instruments
from training.vocabulary import FLAG_LEVELS, RiskLevel

FloatArray = npt.NDArray[np.float64]

OUTSIDE_SHARE = 0.05  # share of scored rows outside the training range worth a warning
FLAG_RATE_GAP = 0.10  # flag-rate difference from the design worth a warning (10 points)
# Instrument (as in ModelMetadata.instruments) -> its name for people, its contract column(s)
# and the feature that has a value whenever the instrument was ever taken.
_INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "wai_sr": ("WAI-SR", "wai_goal, wai_task, wai_bond", "wai_last"),
    "srs": ("SRS", "srs_total", "srs_last"),
    "ors": ("ORS", "ors_total", "ors_last"),
    "phq9": ("PHQ-9", "phq9_total", "phq9_last"),
}


@dataclass
class ShiftTally:
    """What the checks need of the scored rows, added up over batches and parts."""

    rows: int = 0
    outside: FloatArray = field(default_factory=lambda: np.zeros(len(FEATURES)))
    moderate: int = 0  # flagged moderate or high
    high: int = 0
    instruments: set[str] = field(default_factory=set)  # with at least one value
    landmarks: dict[int, int] = field(default_factory=dict)  # landmark -> rows scored there

    def add(self, other: ShiftTally) -> None:
        self.rows += other.rows
        self.outside = self.outside + other.outside
        self.moderate += other.moderate
        self.high += other.high
        self.instruments |= other.instruments
        for k, n in other.landmarks.items():
            self.landmarks[k] = self.landmarks.get(k, 0) + n


def tally(
    meta: ModelMetadata,
    sessions: pd.DataFrame,
    X: FloatArray,
    levels: npt.NDArray[np.object_],
) -> ShiftTally:
    """The counts of one batch: its session rows, and the feature rows and risk levels
    (training.publish) of what was scored from them."""
    out = ShiftTally(rows=int(X.shape[0]), instruments=set(_instruments(sessions)))
    marks, n = np.unique(X[:, FEATURES.index("landmark")], return_counts=True)
    out.landmarks = {int(k): int(c) for k, c in zip(marks.tolist(), n.tolist(), strict=True)}
    for name, (lo, hi) in clipped_ranges(meta.feature_range).items():
        column = X[:, FEATURES.index(name)]
        out.outside[FEATURES.index(name)] = np.count_nonzero((column < lo) | (column > hi))
    out.moderate = int(np.count_nonzero(levels != "low"))
    out.high = int(np.count_nonzero(levels == "high"))
    return out


def shift_warnings(
    meta: ModelMetadata, counts: ShiftTally, file: str, every_landmark: bool
) -> list[str]:
    """At most one warning line per check. every_landmark: the rows are every landmark
    each client reached (evaluate), not each client's latest (predict)."""
    if not counts.rows:
        return []
    design = _design(meta) if every_landmark else _latest_design(meta, counts.landmarks)
    lines = [
        _absent_instruments(meta, counts, file),
        _outside(meta, counts),
        _flags(design, counts),
    ]
    return [line for line in lines if line]


def _design(meta: ModelMetadata) -> dict[str, float]:
    validation = meta.thresholds.validation or {}
    return {level: design.flag_rate for level, design in validation.items()}


def _latest_design(meta: ModelMetadata, landmarks: dict[int, int]) -> dict[str, float]:
    """Per level, the test set's flag rate at each landmark, weighted by the rows scored
    there; a level missing at any of those landmarks is left out."""
    figures = meta.metrics
    total = sum(landmarks.values())
    out: dict[str, float] = {}
    for level in FLAG_LEVELS:
        at = [_rate(figures.landmark(k), level) for k in landmarks]
        known = [rate for rate in at if rate is not None]
        if len(known) == len(at):
            weights = [n / total for n in landmarks.values()]
            out[level] = float(np.dot(known, weights))
    return out


def _rate(row: LandmarkFigures | None, level: RiskLevel) -> float | None:
    """A landmark's flag rate at `level`; None where the row does not report it."""
    figures = row.level(level) if row is not None else None
    return None if figures is None else figures.flag_rate.estimate


def _absent_instruments(meta: ModelMetadata, counts: ShiftTally, file: str) -> str:
    absent = [
        f"{_INSTRUMENTS[name][0]} ({_INSTRUMENTS[name][1]})"
        for name in meta.instruments
        if name in _INSTRUMENTS and name not in counts.instruments
    ]
    if not absent:
        return ""
    return (
        f"warning: {file}: no values of {', '.join(absent)}, which the model was trained "
        "with; it scores these clients as if the measure was never taken"
    )


# A model's feature ranges (ModelMetadata.feature_range, or the one train is writing); None:
# none recorded.
Ranges = Mapping[str, Sequence[float] | None] | None


def clipped_ranges(ranges: Ranges) -> dict[str, tuple[float, float]]:
    """The feature ranges without the features that have no range (None: never recorded
    in training, so not clipped and nothing to fall outside of)."""
    return {name: (bounds[0], bounds[1]) for name, bounds in (ranges or {}).items() if bounds}


def range_arrays(ranges: Ranges) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """clipped_ranges as (low, high) per feature in FEATURES order, unbounded where a
    feature has no range (what monitoring and a reference profile compare rows with)."""
    low, high = np.full(len(FEATURES), -np.inf), np.full(len(FEATURES), np.inf)
    for name, (lo, hi) in clipped_ranges(ranges).items():
        low[FEATURES.index(name)], high[FEATURES.index(name)] = lo, hi
    return low, high


def _outside(meta: ModelMetadata, counts: ShiftTally) -> str:
    share = counts.outside / counts.rows
    found = [
        f"{name} {share[FEATURES.index(name)]:.1%} (trained on {lo:g} to {hi:g})"
        for name, (lo, hi) in clipped_ranges(meta.feature_range).items()
        if share[FEATURES.index(name)] > OUTSIDE_SHARE
    ]
    if not found:
        return ""
    return (
        f"warning: more than {OUTSIDE_SHARE:.0%} of scored rows lie outside the model's "
        f"training range on: {', '.join(found)}"
    )


_FLAG_WORDS = {"moderate": "flagged moderate or high", "high": "flagged high"}


def _flags(design: dict[str, float], counts: ShiftTally) -> str:
    rates = {"moderate": counts.moderate / counts.rows, "high": counts.high / counts.rows}
    if all(abs(rates[level] - planned) <= FLAG_RATE_GAP for level, planned in design.items()):
        return ""
    parts = [
        f"{rates[level]:.1%} {_FLAG_WORDS[level]} (designed: {planned:.1%})"
        for level, planned in design.items()
    ]
    return (
        f"warning: of the scored rows, {' and '.join(parts)}: this cohort differs from the "
        "one the thresholds were set on"
    )
