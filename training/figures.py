"""The figures of an evaluation, typed: what `training.evaluation.evaluate` returns and what
a model's metadata.json keeps under "metrics".

Each metric has one name, and a level's figures are read as `<level>.<figure>` wherever
they are shown: `overall.high.flag_rate`, `per_landmark[0].high.flag_rate`,
`subgroups["gender"][0].moderate.false_negative_rate`. A figure a panel does not report
(the PPV of a landmark row, say) is None, not a number.

metadata.json is an artifact format: the shipped model and the models in clinics'
registries were written with the per-landmark and subgroup rows spelling a level's figures
flat ("high_flag_rate", "false_negative_rate_moderate") and the overall figures nested
("high": {"flag_rate": ...}). `Evaluation.to_json` writes exactly that layout and
`EvaluationDocument` reads it, both through the one table `_FLAT_KEYS`, so the layout is
written down once. Figures added after the first artifacts (a landmark's calibration slope,
the bootstrap's cluster count) read as missing when an older artifact has none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from training.vocabulary import FLAG_LEVELS, RiskLevel

# pydantic accepts only instances for a stdlib dataclass in strict mode, so the figures are
# validated in its lax mode (a JSON array for a tuple, an int for a float) even inside the
# strict documents of training.artifact_schema; types and required fields are still checked.
_LAX = ConfigDict(strict=False)


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """A figure's point estimate and percentile 95% interval (None where undefined: no
    interval from too few replicates or clusters); `too_few` when it needs both outcomes
    and its panel has too few clients of one (training.evaluation.MIN_CLIENTS_PER_CLASS)."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    estimate: float | None = None
    ci95: tuple[float | None, float | None] = (None, None)
    too_few: bool = False


@dataclass(frozen=True, kw_only=True)
class LevelFigures:
    """Flagging at one risk level (p >= its threshold): the share flagged and, where the
    panel reports them, sensitivity, PPV and the share of dropouts missed."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    flag_rate: Estimate
    sensitivity: Estimate | None = None
    ppv: Estimate | None = None
    false_negative_rate: Estimate | None = None


@dataclass(frozen=True, kw_only=True)
class _Levels:
    """A panel's two flagging levels, readable by the vocabulary's names (FLAG_LEVELS)."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    moderate: LevelFigures
    high: LevelFigures

    def level(self, level: RiskLevel) -> LevelFigures:
        """The figures of flagging at `level` ("moderate" or "high")."""
        figures = _level_of(self, level)
        assert figures is not None  # both levels are fields of every panel with _Levels
        return figures

    def flag_rates(self) -> dict[str, float]:
        """The share flagged at each level (0 where undefined): the rates the clinic rules
        are compared at (training.comparison, training.compare)."""
        return {level: float(self.level(level).flag_rate.estimate or 0.0) for level in FLAG_LEVELS}


@dataclass(frozen=True, kw_only=True)
class OverallFigures(_Levels):
    """The whole evaluation data: discrimination, accuracy, calibration and both levels."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    auc: Estimate
    brier: Estimate
    log_loss: Estimate
    calibration_slope: Estimate
    calibration_intercept: Estimate


@dataclass(frozen=True, kw_only=True)
class LandmarkFigures:
    """The rows of one landmark session (only the high level is reported per landmark)."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    landmark: int
    n: int
    prevalence: float
    auc: Estimate
    brier: Estimate
    calibration_slope: Estimate = field(default_factory=Estimate)  # absent before 2026-12
    calibration_intercept: Estimate
    high: LevelFigures

    def level(self, level: RiskLevel) -> LevelFigures | None:
        """The figures of flagging at `level`; None for a level a landmark row does not
        report (the moderate one)."""
        return _level_of(self, level)


@dataclass(frozen=True, kw_only=True)
class SubgroupFigures(_Levels):
    """One group of a fairness factor (gender, age band, therapist volume, instruments)."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    group: str
    n: int
    n_clients: int
    prevalence: float
    auc: Estimate
    calibration_intercept: Estimate
    observed_expected: Estimate


@dataclass(frozen=True, kw_only=True)
class Bootstrap:
    """How the intervals were drawn: replicates, seed, the resampled unit ("therapist" or
    "client") and its number of clusters (absent from the first artifacts)."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    replicates: int
    seed: int
    unit: str
    clusters: int | None = None


@dataclass(frozen=True, kw_only=True)
class RuleLevelFigures:
    """Sensitivity and PPV of the model and of a clinic rule flagging the same share of
    the rows where the rule applies."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    flag_rate: float
    model_sensitivity: float | None
    model_ppv: float | None
    baseline_sensitivity: float | None
    baseline_ppv: float | None


@dataclass(frozen=True, kw_only=True)
class RuleAsApplied:
    """An SRS rule at its own cut-off (SRS below 36): what the clinic does today."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    flag_rate: float | None
    sensitivity: float | None
    ppv: float | None


@dataclass(frozen=True, kw_only=True)
class RuleFigures:
    """One clinic rule next to the model on the rows where the rule applies; no figures
    (`too_few`) when fewer than MIN_CLIENTS_PER_CLASS clients of an outcome back them."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    name: str
    label: str
    n_examples: int
    n_dropouts: int
    model_auc: float | None
    baseline_auc: float | None
    model_beats_it: bool | None  # None when an AUC is undefined or too few clients
    levels: Mapping[str, RuleLevelFigures]  # per flag level, at the model's flag rate
    own_cutoff: RuleAsApplied | None  # the SRS rules only
    too_few: bool = False  # absent from the first artifacts, which had no such rows


@dataclass(frozen=True, kw_only=True)
class WaiLogistic:
    """The alliance-only logistic baseline as fitted: logit p = intercept + coef x WAI-SR."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    coef: float | None  # None: not fitted (the rows with a WAI-SR lack an outcome)
    intercept: float | None


@dataclass(frozen=True, kw_only=True)
class RuleComparison:
    """The model against the clinic's own rules (training.comparison), at the model's flag
    rates per level."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    flag_rates: Mapping[str, float]
    wai_logistic: WaiLogistic | None = None
    rules: tuple[RuleFigures, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """Overall, per-landmark and subgroup figures of a scored, labelled cohort.

    `baselines` is the comparison with the clinic's own rules (training.comparison), when
    the evaluation was made with it."""

    __pydantic_config__: ClassVar[ConfigDict] = _LAX

    n_examples: int
    n_clients: int
    prevalence: float
    overall: OverallFigures
    per_landmark: tuple[LandmarkFigures, ...]
    subgroups: Mapping[str, tuple[SubgroupFigures, ...]]
    bootstrap: Bootstrap
    baselines: RuleComparison | None = None

    def landmark(self, k: int) -> LandmarkFigures | None:
        """The row of landmark k, if the evaluation has one."""
        return next((row for row in self.per_landmark if row.landmark == k), None)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of metadata.json's "metrics", in its artifact layout."""
        o = self.overall
        doc: dict[str, Any] = {
            "n_examples": self.n_examples,
            "n_clients": self.n_clients,
            "prevalence": self.prevalence,
            "overall": {
                **_estimates(o, ("auc", "brier", "log_loss", "calibration_slope")),
                **_estimates(o, ("calibration_intercept",)),
                **{level: _level_json(o.level(level)) for level in FLAG_LEVELS},
            },
            "per_landmark": [_row_json(row) for row in self.per_landmark],
            "subgroups": {k: [_row_json(r) for r in rows] for k, rows in self.subgroups.items()},
            "bootstrap": {
                k: v for k, v in dataclasses.asdict(self.bootstrap).items() if v is not None
            },
        }
        if self.baselines is not None:
            doc["baselines"] = dataclasses.asdict(self.baselines)
        return doc


def _level_of(figures: object, level: RiskLevel) -> LevelFigures | None:
    """A panel's figures at a flagging level, by the vocabulary's name (None: not reported)."""
    if level not in FLAG_LEVELS:
        raise ValueError(f"level: value {level!r} is not one of {FLAG_LEVELS}")
    found = getattr(figures, level, None)
    return found if isinstance(found, LevelFigures) else None


# (level, figure) of a row's LevelFigures and its flat key in metadata.json's per-landmark
# and subgroup rows, in the order the rows are written: the one place the layout spells a
# level's figures flat.
_FLAT_KEYS: dict[tuple[RiskLevel, str], str] = {
    ("moderate", "flag_rate"): "moderate_flag_rate",
    ("high", "flag_rate"): "high_flag_rate",
    ("high", "sensitivity"): "high_sensitivity",
    ("moderate", "false_negative_rate"): "false_negative_rate_moderate",
}


def _estimate_json(e: Estimate) -> dict[str, Any]:
    """An Estimate as written: "too_few" only when it is true."""
    out: dict[str, Any] = {"estimate": e.estimate, "ci95": list(e.ci95)}
    return {**out, "too_few": True} if e.too_few else out


def _estimates(figures: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _estimate_json(getattr(figures, name)) for name in names}


def _level_json(level: LevelFigures) -> dict[str, Any]:
    """A level's reported figures, nested (the overall layout)."""
    return {
        f.name: _estimate_json(value)
        for f in dataclasses.fields(level)
        if (value := getattr(level, f.name)) is not None
    }


def _row_json(row: LandmarkFigures | SubgroupFigures) -> dict[str, Any]:
    """A per-landmark or subgroup row: its own figures in field order, then its levels'
    reported figures under their flat keys."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(row):
        value = getattr(row, f.name)
        if isinstance(value, Estimate):
            out[f.name] = _estimate_json(value)
        elif not isinstance(value, LevelFigures):
            out[f.name] = value
    for (level, figure), flat in _FLAT_KEYS.items():
        figures = getattr(row, level, None)
        value = getattr(figures, figure) if figures is not None else None
        if value is not None:
            out[flat] = _estimate_json(value)
    return out


def _nested_row(row: Any) -> Any:
    """A written row with its flat level keys gathered under the levels (the typed shape)."""
    if not isinstance(row, Mapping):
        return row
    out: dict[str, Any] = {k: v for k, v in row.items() if k not in _FLAT_KEYS.values()}
    for (level, figure), flat in _FLAT_KEYS.items():
        if flat in row:
            out.setdefault(level, {})[figure] = row[flat]
    return out


def _typed_shape(doc: Any) -> Any:
    """metadata.json's "metrics" in the typed shape, for the validator to check; anything
    that is not a document passes through for the validator to refuse."""
    if isinstance(doc, Evaluation) or not isinstance(doc, Mapping):
        return doc
    out = dict(doc)
    if isinstance(out.get("per_landmark"), list | tuple):
        out["per_landmark"] = [_nested_row(r) for r in out["per_landmark"]]
    if isinstance(out.get("subgroups"), Mapping):
        out["subgroups"] = {
            k: [_nested_row(r) for r in rows] if isinstance(rows, list | tuple) else rows
            for k, rows in out["subgroups"].items()
        }
    return out


# The typed figures as a document field: read from the artifact layout, written back to it.
EvaluationDocument = Annotated[
    Evaluation,
    BeforeValidator(_typed_shape),
    PlainSerializer(lambda e: e.to_json(), return_type=dict[str, Any]),
]


class _Metrics(BaseModel):
    # Strict, as the artifact's other documents (training.artifact_schema) are.
    model_config = ConfigDict(frozen=True, strict=True)

    metrics: EvaluationDocument


def figures_from_json(doc: Mapping[str, Any]) -> Evaluation:
    """metadata.json's "metrics" typed; a pydantic ValidationError names each field
    ("metrics.overall.auc.estimate") that does not fit."""
    return _Metrics.model_validate({"metrics": doc}).metrics
