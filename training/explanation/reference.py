"""The reference client: the typical client every explanation compares with.

Training computes it (`reference_clients`: the median development example per landmark) and
stores it in the model's metadata["reference"]; serving turns it into an occlusion plan, the
arrays attribution replaces a group with. The plan is built once per loaded model and kept
with the rest of the model's serving data (service.scoring.score, the one cache of
model-derived data, keyed by the model object).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from training.explanation.groups import (
    GROUP_CODES,
    GUARD,
    MEMBERSHIP,
    FloatArray,
    IntArray,
    Reference,
)
from training.features import FEATURES


def reference_clients(
    X: npt.NDArray[np.float64], landmark: npt.NDArray[np.int64], landmarks: tuple[int, ...]
) -> dict[str, list[float | None]]:
    """Median development example per landmark: the 'typical client' explanations compare
    against (None where a feature is never observed at that landmark)."""
    out: dict[str, list[float | None]] = {}
    for k in landmarks:
        rows = X[landmark == k]
        medians: list[float | None] = []
        for column in rows.T:
            seen = column[~np.isnan(column)]
            medians.append(float(np.median(seen)) if seen.size else None)
        out[str(k)] = medians
    return out


@dataclass(frozen=True)
class OcclusionPlan:
    """What occlusion needs, precomputed once per reference client (the arrays are what
    `stack_kernel` takes)."""

    values: dict[int, list[float]]  # landmark -> the reference client, NaN where None
    slot: IntArray  # landmark -> its index in replace/fill, -1 where there is no reference
    replace: npt.NDArray[np.bool_]  # (L, F, G + 1): copy g takes the reference value here
    fill: FloatArray  # (L, F, G + 1): those reference values
    guard: IntArray  # (F,): feature f keeps the client's value where X[guard[f]] is missing


def occlusion_plan(reference: Reference) -> OcclusionPlan:
    """The plan of a reference client (a model's metadata["reference"]). Not cached here:
    serving builds it once per model (service.scoring.score); `explain` and `contributions`
    called directly (analysis, tests) build it per call."""
    values: dict[int, list[float]] = {}
    for key, raw in reference.items():
        if len(raw) != len(FEATURES):
            raise ValueError(f"reference for landmark {key} has {len(raw)} values")
        values[int(key)] = [math.nan if v is None else float(v) for v in raw]
    slot = np.full(max(values, default=0) + 1, -1, dtype=np.int64)
    replace = np.zeros((len(values), len(FEATURES), len(GROUP_CODES) + 1), dtype=bool)
    fill = np.zeros(replace.shape)
    for s, (k, ref) in enumerate(values.items()):
        slot[k] = s
        replace[s, :, 1:] = (MEMBERSHIP & ~np.isnan(ref)).T
        fill[s] = np.where(replace[s], np.nan_to_num(ref)[:, None], 0.0)
    return OcclusionPlan(values, slot, replace, fill, GUARD)


def check_covered(plan: OcclusionPlan, landmarks: list[int]) -> None:
    """Every landmark must have a reference client: a row at landmark 0 (no session yet)
    has no prediction to explain."""
    missing = set(landmarks) - plan.values.keys()
    if missing:
        raise ValueError(f"no reference client for landmark(s) {sorted(missing)}")
