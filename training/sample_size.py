"""Minimum development sample size for a binary-outcome prediction model (Riley et al. 2020).

Riley RD, Ensor J, Snell KIE, et al. Calculating the sample size required for developing a
clinical prediction model. BMJ 2020;368:m441. For P candidate predictor parameters, outcome
prevalence phi and an anticipated Cox-Snell R-squared R2, the development data need at least
the largest of:

1. n such that the expected uniform shrinkage is S = 0.9 (little overfitting):
   n = P / ((S - 1) ln(1 - R2 / S));
2. n such that apparent and adjusted Nagelkerke R-squared differ by at most delta = 0.05:
   the same formula with S = R2 / (R2 + delta * max R2), max R2 = 1 - (phi^phi (1-phi)^(1-phi))^2;
3. n that estimates the overall risk within +-0.05: n = (1.96 / 0.05)^2 phi (1 - phi);
4. n that keeps the mean absolute prediction error at or below 0.05 (van Smeden M, Moons KGM,
   de Groot JAH, et al. Stat Methods Med Res 2019;28:2455-2474, which Riley et al. cite):
   ln MAPE = -0.508 + 0.259 ln phi + 0.504 ln P - 0.544 ln n.

The Python package `pmsampsize` implements criteria 1-3 but is not installable from PyPI here,
so the formulas live in this one module; tests/training/test_sample_size.py checks them against the
paper's worked example (P = 24, phi = 0.174, R2 = 0.288: 623, 662 and 221 clients).

Without an earlier model to take R2 from, Riley et al. suggest a conservative anticipated
Nagelkerke R-squared of 0.15, i.e. R2 = 0.15 * max R2; that is the default here. The unit is a
client (one outcome per client), never a landmark row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from training.artifact_schema import SampleSizeRecord
from training.errors import DropoutRiskError
from training.model import linear_preprocessing

SHRINKAGE = 0.9
OPTIMISM_DELTA = 0.05
RISK_MARGIN = 0.05
MAX_MAPE = 0.05
ANTICIPATED_NAGELKERKE = 0.15
Z_95 = 1.96
CRITERIA: tuple[str, ...] = (
    "shrinkage 0.9",
    "optimism in R-squared <= 0.05",
    "overall risk within +-0.05",
    "mean absolute prediction error <= 0.05",
)


@dataclass(frozen=True)
class SampleSize:
    """The four criteria's minimum numbers of clients for one model and outcome."""

    parameters: int
    prevalence: float
    r2_cox_snell: float
    max_r2_cox_snell: float
    criteria: tuple[int, int, int, int]

    @property
    def minimum(self) -> int:
        """Clients needed: the largest of the four criteria."""
        return max(self.criteria)

    def describe(self) -> str:
        """One line naming every number behind the minimum (for messages and the card)."""
        parts = ", ".join(f"{name}: {n:,}" for name, n in zip(CRITERIA, self.criteria, strict=True))
        return (
            f"at least {self.minimum:,} clients for {self.parameters} predictor parameters at "
            f"prevalence {self.prevalence:.3f} and anticipated Cox-Snell R-squared "
            f"{self.r2_cox_snell:.3f} (Riley et al. 2020; {parts})"
        )


def max_r2_cox_snell(prevalence: float) -> float:
    """The largest Cox-Snell R-squared a binary outcome of this prevalence allows."""
    log_null = prevalence * math.log(prevalence) + (1 - prevalence) * math.log(1 - prevalence)
    return 1.0 - math.exp(2.0 * log_null)


def _shrinkage_n(parameters: int, r2: float, shrinkage: float) -> int:
    return math.ceil(parameters / ((shrinkage - 1.0) * math.log(1.0 - r2 / shrinkage)))


def required_sample_size(
    parameters: int, prevalence: float, r2_cox_snell: float | None = None
) -> SampleSize:
    """The four criteria of Riley et al. 2020 (binary outcome); R2 defaults to 0.15 * max R2.

    Raises ValueError for a prevalence outside (0, 1), fewer than one parameter, or an R2
    outside (0, max R2): no sample size is defined for them.
    """
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence must lie strictly between 0 and 1, got {prevalence}")
    if parameters < 1:
        raise ValueError(f"parameters must be at least 1, got {parameters}")
    max_r2 = max_r2_cox_snell(prevalence)
    r2 = ANTICIPATED_NAGELKERKE * max_r2 if r2_cox_snell is None else r2_cox_snell
    if not 0.0 < r2 < max_r2:
        raise ValueError(f"Cox-Snell R-squared must lie in (0, {max_r2:.3f}), got {r2}")
    optimism_shrinkage = r2 / (r2 + OPTIMISM_DELTA * max_r2)
    mape = (
        -0.508 + 0.259 * math.log(prevalence) + 0.504 * math.log(parameters) - math.log(MAX_MAPE)
    ) / 0.544
    criteria = (
        _shrinkage_n(parameters, r2, SHRINKAGE),
        _shrinkage_n(parameters, r2, optimism_shrinkage),
        math.ceil((Z_95 / RISK_MARGIN) ** 2 * prevalence * (1.0 - prevalence)),
        math.ceil(math.exp(mape)),
    )
    return SampleSize(parameters, prevalence, r2, max_r2, criteria)


class SampleSizeError(DropoutRiskError):
    """The development data are below the Riley et al. minimum and --allow-small was not set."""


def parameter_count(X: npt.NDArray[np.float64]) -> int:
    """Predictor parameters of the linear candidate on these rows: the columns its
    preprocessing hands the logistic regression (every feature, plus a missingness
    indicator for each feature with a missing value)."""
    preprocessing = linear_preprocessing().fit(X)
    return int(preprocessing.transform(X[:1]).shape[1])


def check_sample_size(
    X: npt.NDArray[np.float64], y_client: npt.NDArray[np.float64], allow_small: bool
) -> SampleSizeRecord:
    """The check of the development data; raises SampleSizeError when they are too small,
    unless allow_small. X holds the development rows, y_client one outcome per client."""
    n, events = int(y_client.size), int(y_client.sum())
    if events in (0, n):
        raise SampleSizeError(
            f"sample size: the development clients have {events} dropouts among {n}: "
            "both outcomes are needed to train a model"
        )
    need = required_sample_size(parameter_count(X), events / n)
    if n < need.minimum and not allow_small:
        raise SampleSizeError(
            f"sample size: the development part of the cohort has {n:,} clients "
            f"({events:,} dropouts); a model needs {need.describe()}. Use a larger cohort, "
            "or pass --allow-small to train anyway (recorded in the metadata and on the card)"
        )
    return SampleSizeRecord(
        development_clients=n,
        development_dropouts=events,
        parameters=need.parameters,
        prevalence=need.prevalence,
        anticipated_r2_cox_snell=need.r2_cox_snell,
        anticipated_r2_nagelkerke=need.r2_cox_snell / need.max_r2_cox_snell,
        criteria=dict(zip(CRITERIA, need.criteria, strict=True)),
        minimum=need.minimum,
        met=n >= need.minimum,
        allow_small=allow_small,
    )
