"""The factors: groups of features that are explained together, the factor codes each group
can carry, and `Factor`, one reason behind a risk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from training.features import FEATURES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Reference = Mapping[str, Sequence[float | None]]
Row = list[float]


@dataclass
class Factor:
    """One reason behind a risk, in words a clinician reads and a signed size.

    Not frozen: a frozen dataclass takes three times as long to create, and a 1,000-client
    batch creates 3,000 of them. Nothing changes a factor once `explain` has made it."""

    code: str  # e.g. "alliance_decline"
    label: str  # plain clinical words with the client's own numbers
    direction: Literal["raises", "lowers"]
    contribution: float  # signed, probability points (0.07 = +7 points), 3 decimals


# The groups partition the explained features: each feature belongs to exactly one group,
# so for a linear model the groups' logit differences add up exactly to the client's logit
# difference from the reference. Features that describe one concept are explained together.
# The alliance's level, minimum, trend and its subscales all come from the same 2-3 ratings
# (the composite is the mean of goal, task and bond), and a model splits its weight between
# such features arbitrarily: occluding the goal/task facet alone, with the composite held at
# the client's own values, said "lowers" for every client of an independent cohort whose
# goal/task agreement was below typical. So the whole alliance is one group, facets
# included, and the words name the part of it the client's values and the group's direction
# agree on: a fall, the weakest facet, or the level (see `_alliance`).
FACTOR_GROUPS: dict[str, tuple[str, ...]] = {
    "alliance": (
        "wai_mean",
        "wai_last",
        "wai_min",
        "wai_change",
        "wai_drop_max",
        "wai_goal_last",
        "wai_task_last",
        "wai_bond_last",
    ),
    "session_rating": (
        "srs_mean",
        "srs_last",
        "srs_min",
        "srs_below36",
        "srs_change",
        "srs_drop_max",
    ),
    "symptoms": ("ors_last", "ors_change", "phq9_last", "phq9_change"),
    "attendance_gaps": ("gap_mean_days", "gap_max_days"),
    "age": ("age",),
    "measures_missing": ("wai_missing", "srs_missing", "ors_missing", "phq9_missing"),
}
# Factor code -> its group; every code a Factor can carry.
GROUP_OF: dict[str, str] = {
    "alliance_low": "alliance",
    "alliance_decline": "alliance",
    "goal_task_low": "alliance",
    "bond_low": "alliance",
    "srs_low": "session_rating",
    "srs_decline": "session_rating",
    **{g: g for g in FACTOR_GROUPS if g not in ("alliance", "session_rating")},
}
# A measure the client has no value of is not a reason (a site may not collect it, and a
# request cannot tell a site's choice from a skip): its features keep the client's values in
# every occluded copy, so they contribute exactly 0. A count of sessions without the measure
# is kept when the measure has no value at all (its last value is missing); it is a reason
# only when the measure was taken in some sessions and skipped in others.
_COUNT_OF = {
    "wai_missing": "wai_last",
    "srs_missing": "srs_last",
    "ors_missing": "ors_last",
    "phq9_missing": "phq9_last",
}


FEATURE_INDEX = {name: j for j, name in enumerate(FEATURES)}
GROUP_CODES = tuple(FACTOR_GROUPS)
# (groups, features): True where the feature belongs to the group.
MEMBERSHIP = np.zeros((len(GROUP_CODES), len(FEATURES)), dtype=bool)
for _g, _names in enumerate(FACTOR_GROUPS.values()):
    MEMBERSHIP[_g, [FEATURE_INDEX[name] for name in _names]] = True
# Feature -> the feature whose missing value in the client's row keeps it unoccluded.
GUARD = np.array([FEATURE_INDEX[_COUNT_OF.get(name, name)] for name in FEATURES], dtype=np.int64)
