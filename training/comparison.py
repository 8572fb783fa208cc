"""The model against the clinic's own rules, on the same rows and at the same flag rate.

A model that does worse than "last SRS < 36" at a clinic should say so before anything else
(issue 12). Each baseline of `training.baselines` is compared on the rows where it applies
(the SRS rules need an SRS): both the model and the rule flag the same share of those rows,
the model's own flag rate at its moderate and high thresholds on the evaluation data, so
sensitivity and PPV compare like with like. The SRS rules are also shown at their own
cut-off (SRS below 36), which is what the clinic does today. The verdict is on AUC: the model
"does not beat" a baseline whose AUC on the same rows is at least the model's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from training.baselines import (
    LABELS,
    SRS_ANY,
    SRS_LAST,
    Baselines,
    ScoreStats,
    at_flag_rate,
    at_threshold,
)
from training.evaluation import (
    TOO_FEW,
    EvalData,
    evaluate,
    format_metric,
    too_few_clients,
)
from training.figures import (
    Estimate,
    Evaluation,
    RuleAsApplied,
    RuleComparison,
    RuleFigures,
    RuleLevelFigures,
    WaiLogistic,
)
from training.vocabulary import Thresholds

FloatArray = npt.NDArray[np.float64]
_RULES_WITH_A_CUTOFF = (SRS_LAST, SRS_ANY)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _level(rate: float, model: ScoreStats, baseline: ScoreStats) -> RuleLevelFigures:
    return RuleLevelFigures(
        flag_rate=rate,
        model_sensitivity=_finite(model.sensitivity),
        model_ppv=_finite(model.ppv),
        baseline_sensitivity=_finite(baseline.sensitivity),
        baseline_ppv=_finite(baseline.ppv),
    )


def _compare(
    name: str,
    y: FloatArray,
    p: FloatArray,
    client: npt.NDArray[np.str_],
    score: FloatArray,
    rates: Mapping[str, float],
) -> RuleFigures:
    applies = np.isfinite(score)
    y_rows, p_rows, s_rows = y[applies], p[applies], score[applies]
    if too_few_clients(y_rows, client[applies]):
        return RuleFigures(
            name=name,
            label=LABELS[name],
            n_examples=int(applies.sum()),
            n_dropouts=int(y_rows.sum()),
            model_auc=None,
            baseline_auc=None,
            model_beats_it=None,
            levels={},
            own_cutoff=None,
            too_few=True,
        )
    levels = {
        level: _level(rate, at_flag_rate(y_rows, p_rows, rate), at_flag_rate(y_rows, s_rows, rate))
        for level, rate in rates.items()
    }
    model_auc = at_flag_rate(y_rows, p_rows, 0.0).auc  # the AUC does not depend on the rate
    baseline_auc = at_flag_rate(y_rows, s_rows, 0.0).auc
    defined = math.isfinite(model_auc) and math.isfinite(baseline_auc)
    own = None
    if name in _RULES_WITH_A_CUTOFF:
        rule = at_threshold(y_rows, s_rows, 0.0)
        own = RuleAsApplied(
            flag_rate=_finite(rule.flag_rate),
            sensitivity=_finite(rule.sensitivity),
            ppv=_finite(rule.ppv),
        )
    return RuleFigures(
        name=name,
        label=LABELS[name],
        n_examples=int(applies.sum()),
        n_dropouts=int(y_rows.sum()),
        model_auc=_finite(model_auc),
        baseline_auc=_finite(baseline_auc),
        model_beats_it=bool(model_auc > baseline_auc) if defined else None,
        levels=levels,
        own_cutoff=own,
        too_few=False,
    )


def compare_with_baselines(
    data: EvalData, baselines: Baselines, results: Evaluation
) -> RuleComparison:
    """Every baseline next to the model, at the model's flag rates in `results`."""
    if data.features is None:
        raise ValueError("comparing with the baselines needs the rows' features")
    y = np.asarray(data.y, dtype=np.float64)
    p = np.asarray(data.p, dtype=np.float64)
    rates = results.overall.flag_rates()
    scores = baselines.scores(data.features)
    client = np.asarray(data.client).astype(str)
    rows = [_compare(name, y, p, client, score, rates) for name, score in scores.items()]
    wai = WaiLogistic(coef=baselines.wai_coef, intercept=baselines.wai_intercept)
    return RuleComparison(flag_rates=rates, wai_logistic=wai, rules=tuple(rows))


def evaluate_with_baselines(
    data: EvalData,
    thresholds: Thresholds,
    baselines: Baselines,
    n_boot: int = 200,
    seed: int = 0,
) -> Evaluation:
    """`training.evaluation.evaluate` plus the "baselines" comparison: what reports show."""
    results = evaluate(data, thresholds, n_boot=n_boot, seed=seed)
    return dataclasses.replace(results, baselines=compare_with_baselines(data, baselines, results))


def baseline_warnings(results: Evaluation | None) -> list[str]:
    """One sentence per baseline the model does not beat on AUC (empty when it beats all,
    or when there are no figures or no comparison)."""
    lines = []
    for row in _rules(results):
        if row.model_beats_it is False:
            model = format_metric(Estimate(estimate=row.model_auc))
            rule = format_metric(Estimate(estimate=row.baseline_auc))
            lines.append(
                f'The model does not beat the clinic rule "{row.label}": AUC {model} for '
                f"the model against {rule} for the rule, on the same {row.n_examples:,} "
                "examples."
            )
    return lines


def _rules(results: Evaluation | None) -> tuple[RuleFigures, ...]:
    """The clinic rules an evaluation was compared with (none when it was not)."""
    comparison = results.baselines if results is not None else None
    return comparison.rules if comparison is not None else ()


def _pct(x: float | None) -> str:
    return format_metric(Estimate(estimate=x), pct=True)


def baseline_lines(results: Evaluation) -> list[str]:
    """One line per baseline for the command line: AUC, then sensitivity and PPV at each of
    the model's flag rates, model first and rule second."""
    rates: Mapping[str, float] = results.baselines.flag_rates if results.baselines else {}
    lines = []
    for row in _rules(results):
        if row.too_few:
            lines.append(f"vs {row.label} ({row.n_examples:,} examples): {TOO_FEW}")
            continue
        model = format_metric(Estimate(estimate=row.model_auc))
        rule = format_metric(Estimate(estimate=row.baseline_auc))
        parts = [f"vs {row.label} ({row.n_examples:,} examples): AUC {model} / {rule}"]
        for level, rate in rates.items():
            fig = row.levels[level]
            parts.append(
                f"{level} ({_pct(rate)} flagged) sensitivity "
                f"{_pct(fig.model_sensitivity)} / {_pct(fig.baseline_sensitivity)}, "
                f"PPV {_pct(fig.model_ppv)} / {_pct(fig.baseline_ppv)}"
            )
        lines.append("; ".join(parts))
    return lines
