"""What a probability looks like once published: rounded to 4 decimals, with its risk level.

Batch scoring (training.predict) and the service (service.scoring.score) both publish through
`publish_kernel`, so a client scored either way gets the same number and the same level.
The level comes from the rounded probability, so the two always agree as shown. The
kernel is compiled so that the service can run it inside its own scoring kernel; numba's
np.round is numpy's formula (multiply by 10^4, round half to even, divide), which a test
holds equal to numpy's on a million probabilities.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import numpy.typing as npt

from training.vocabulary import RISK_LEVELS, Thresholds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LEVELS = np.array(RISK_LEVELS, dtype=object)  # by level index: 0 low, 1 moderate, 2 high
DECIMALS = 4


def _publish_loop(p: FloatArray, moderate: float, high: float) -> tuple[FloatArray, IntArray]:
    """(rounded p, level index: 0 low, 1 moderate, 2 high). A probability equal to a
    threshold reaches that level."""
    rounded = np.round(p, DECIMALS)
    level = np.empty(p.shape[0], dtype=np.int64)
    for i in range(p.shape[0]):
        level[i] = (rounded[i] >= moderate) + (rounded[i] >= high)
    return rounded, level


publish_kernel: Callable[[FloatArray, float, float], tuple[FloatArray, IntArray]] = numba.njit(
    cache=True, nogil=True
)(_publish_loop)


def published(
    p: npt.ArrayLike, thresholds: Thresholds
) -> tuple[FloatArray, npt.NDArray[np.object_]]:
    """Rounded probabilities and their levels (low / moderate / high), for p without NaN."""
    rounded, level = publish_kernel(
        np.asarray(p, dtype=np.float64), float(thresholds.moderate), float(thresholds.high)
    )
    words: npt.NDArray[np.object_] = LEVELS[level]
    return rounded, words


def risk_levels(p: npt.ArrayLike, thresholds: Thresholds) -> npt.NDArray[np.object_]:
    """low / moderate / high of already published (rounded) probabilities."""
    return published(p, thresholds)[1]
