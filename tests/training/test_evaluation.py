"""Metrics against hand-computed values, and the bootstrap's statistical behaviour."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from training.evaluation import (
    INSTRUMENT_SETS,
    EvalData,
    auc,
    brier,
    calibration_slope_intercept,
    evaluate,
    format_metric,
    instrument_sets,
    level_stats,
    log_loss,
    net_benefit,
)
from training.features import FEATURES
from training.figures import Estimate, figures_from_json
from training.strict_json import dumps
from training.vocabulary import Thresholds

# Positives score 0.35, 0.8, 0.9; negatives 0.1, 0.4, 0.35. Of the 9 pairs the positive wins
# 7 and ties 1 (0.35 vs 0.35): AUC = 7.5 / 9.
Y_SMALL = np.array([0, 0, 1, 1, 0, 1], dtype=np.int8)
P_SMALL = np.array([0.1, 0.4, 0.35, 0.8, 0.35, 0.9])


def _expit(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return out


def _logit(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.log(p / (1.0 - p))
    return out


def _calibrated(n: int, seed: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """Outcomes drawn from the probabilities themselves: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = _expit(rng.normal(-1.2, 0.8, n))
    y = (rng.random(n) < p).astype(np.int8)
    return y, p


def make_data(n_clients: int, seed: int, rows_per_client: int = 2) -> EvalData:
    """A calibrated cohort with every client scored at landmarks 1..rows_per_client."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(-1.2, 0.7, n_clients)
    owner = np.repeat(np.arange(n_clients), rows_per_client)
    p = _expit(risk[owner] + rng.normal(0.0, 0.2, owner.size))
    y_client = (rng.random(n_clients) < _expit(risk)).astype(np.int8)
    genders = np.array(["female", "male", "other", "unknown"], dtype=object)
    age = rng.uniform(18, 75, n_clients)
    age[::10] = np.nan
    return EvalData(
        y=y_client[owner],
        p=p,
        client=np.array([f"c{i}" for i in owner], dtype=object),
        landmark=np.tile(np.arange(1, rows_per_client + 1), n_clients),
        gender=genders[rng.choice(4, n_clients, p=[0.6, 0.34, 0.03, 0.03])][owner],
        age=age[owner],
        therapist_volume=rng.choice([0, 5, 30, 80], n_clients)[owner],
    )


def test_auc_matches_hand_computed_value_with_ties() -> None:
    assert auc(Y_SMALL, P_SMALL) == pytest.approx(7.5 / 9)


def test_auc_weights_act_as_repeated_rows() -> None:
    # Weight 2 on the 0.1 negative: pairs 3 x 4 = 12, positive wins 2.5 + 4 + 4 = 10.5.
    w = np.array([2, 1, 1, 1, 1, 1], dtype=np.float64)
    assert auc(Y_SMALL, P_SMALL, w) == pytest.approx(10.5 / 12)
    assert auc(Y_SMALL, P_SMALL, w) == pytest.approx(auc(np.r_[Y_SMALL, 0], np.r_[P_SMALL, 0.1]))


def test_auc_extremes_and_undefined() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert math.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(auc(Y_SMALL, P_SMALL, Y_SMALL == 1))  # all negatives weighted 0


def test_brier_and_log_loss_hand_values() -> None:
    assert brier([1, 0], [0.8, 0.3]) == pytest.approx((0.2**2 + 0.3**2) / 2)
    assert log_loss([1, 0], [0.8, 0.3]) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2)
    assert brier([1, 0], [0.8, 0.3], [3, 1]) == pytest.approx((3 * 0.04 + 0.09) / 4)


def test_log_loss_clips_certain_wrong_predictions() -> None:
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))


def test_perfectly_calibrated_probabilities_give_slope_one_intercept_zero() -> None:
    y, p = _calibrated(100_000, seed=1)
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(1.0, abs=0.03)
    assert intercept == pytest.approx(0.0, abs=0.02)


def test_too_extreme_predictions_give_slope_below_one() -> None:
    y, p = _calibrated(100_000, seed=2)
    extreme = _expit(2.0 * _logit(p))  # pushed away from 0.5: true slope 0.5
    slope, _ = calibration_slope_intercept(y, extreme)
    assert slope == pytest.approx(0.5, abs=0.03)


def test_under_predicted_risk_gives_positive_intercept() -> None:
    y, p = _calibrated(100_000, seed=3)
    slope, intercept = calibration_slope_intercept(y, _expit(_logit(p) - 0.5))
    assert intercept == pytest.approx(0.5, abs=0.03)
    assert slope == pytest.approx(1.0, abs=0.03)


def test_calibration_weights_act_as_repeated_rows() -> None:
    y, p = _calibrated(2_000, seed=4)
    w = np.random.default_rng(5).poisson(1.0, y.size)
    repeated = np.repeat(np.arange(y.size), w)
    weighted = calibration_slope_intercept(y, p, w)
    assert weighted == pytest.approx(calibration_slope_intercept(y[repeated], p[repeated]))


def test_calibration_undefined_without_both_classes() -> None:
    slope, intercept = calibration_slope_intercept([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(slope)
    assert math.isnan(intercept)


def test_net_benefit_of_treat_all_matches_formula() -> None:
    y, _ = _calibrated(1_000, seed=6)
    t = np.array([0.05, 0.2, 0.5])
    prevalence = y.mean()
    expected = prevalence - (1 - prevalence) * t / (1 - t)
    assert net_benefit(y, np.ones(y.size), t) == pytest.approx(expected)
    assert net_benefit(y, np.zeros(y.size), t) == pytest.approx(np.zeros(3))


def test_net_benefit_hand_value() -> None:
    # At t = 0.3: flagged p >= 0.3 are 0.4, 0.35, 0.8, 0.35, 0.9 -> TP 3, FP 2, n 6.
    expected = 3 / 6 - 2 / 6 * 0.3 / 0.7
    assert net_benefit(Y_SMALL, P_SMALL, [0.3]) == pytest.approx([expected])


def test_level_stats_hand_values() -> None:
    stats = level_stats(Y_SMALL, P_SMALL, 0.35)  # flags 0.4, 0.35, 0.8, 0.35, 0.9
    assert stats["flag_rate"] == pytest.approx(5 / 6)
    assert stats["sensitivity"] == pytest.approx(1.0)
    assert stats["ppv"] == pytest.approx(3 / 5)
    assert stats["false_negative_rate"] == pytest.approx(0.0)
    assert level_stats(Y_SMALL, P_SMALL, 0.85)["sensitivity"] == pytest.approx(1 / 3)
    assert math.isnan(level_stats(Y_SMALL, P_SMALL, 0.95)["ppv"])  # nobody flagged


def test_invalid_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="length"):
        auc([0, 1], [0.5])
    with pytest.raises(ValueError, match="0 and 1"):
        auc([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        brier([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="thresholds"):
        net_benefit([0, 1], [0.5, 0.5], [1.0])


TH = Thresholds(moderate=0.25, high=0.4)


def _width(m: Estimate) -> float:
    lo, hi = m.ci95
    return float(hi) - float(lo)


def test_evaluate_estimates_match_the_metric_functions() -> None:
    data = make_data(400, seed=7)
    res = evaluate(data, TH, n_boot=20, seed=0)
    assert res.n_examples == 800
    assert res.n_clients == 400
    assert res.prevalence == pytest.approx(data.y.mean())
    assert res.overall.auc.estimate == pytest.approx(auc(data.y, data.p))
    slope, intercept = calibration_slope_intercept(data.y, data.p)
    assert res.overall.calibration_slope.estimate == pytest.approx(slope)
    assert res.overall.calibration_intercept.estimate == pytest.approx(intercept)
    high = level_stats(data.y, data.p, TH.high)
    assert res.overall.high.sensitivity.estimate == pytest.approx(high["sensitivity"])
    first = data.landmark == 1
    row = res.per_landmark[0]
    assert (row.landmark, row.n) == (1, 400)
    assert row.auc.estimate == pytest.approx(auc(data.y[first], data.p[first]))


def test_bootstrap_interval_contains_estimate_and_narrows_with_more_data() -> None:
    small = evaluate(make_data(200, seed=8), TH, n_boot=60, seed=0)
    large = evaluate(make_data(2_000, seed=8), TH, n_boot=60, seed=0)
    for res in (small, large):
        for key in ("auc", "brier", "calibration_slope", "calibration_intercept"):
            m = getattr(res.overall, key)
            assert m.ci95[0] <= m.estimate <= m.ci95[1], key
    for key in ("auc", "brier", "calibration_intercept"):
        assert _width(getattr(large.overall, key)) < 0.6 * _width(getattr(small.overall, key)), key


def test_bootstrap_resamples_clients_not_rows() -> None:
    # Tripling every client's rows adds no information; a row bootstrap would narrow the
    # interval by about sqrt(3), the client bootstrap must leave it unchanged.
    one = make_data(500, seed=9, rows_per_client=1)
    tripled = EvalData(*(np.repeat(np.asarray(a), 3) for a in list(vars(one).values())[:7]))
    res_one = evaluate(one, TH, n_boot=50, seed=3)
    res_three = evaluate(tripled, TH, n_boot=50, seed=3)
    assert res_three.overall.auc.ci95 == pytest.approx(res_one.overall.auc.ci95)


def test_evaluate_is_deterministic_and_seeded() -> None:
    data = make_data(300, seed=10)
    first = evaluate(data, TH, n_boot=30, seed=5)
    assert evaluate(data, TH, n_boot=30, seed=5) == first
    other = evaluate(data, TH, n_boot=30, seed=6)
    assert other.overall.auc.ci95 != first.overall.auc.ci95
    assert other.overall.auc.estimate == first.overall.auc.estimate


def test_evaluate_output_is_strict_json() -> None:
    res = evaluate(make_data(200, seed=11), TH, n_boot=10, seed=0)
    doc = res.to_json()
    json.dumps(doc, allow_nan=False)
    assert list(doc) == [
        "n_examples",
        "n_clients",
        "prevalence",
        "overall",
        "per_landmark",
        "subgroups",
        "bootstrap",
    ]


def test_subgroup_bands_and_tiny_groups() -> None:
    base = make_data(8, seed=12, rows_per_client=1)
    data = replace(
        base,
        y=np.array([1, 0, 1, 0, 1, 0, 0, 0], dtype=np.int8),
        age=np.array([24.9, 25.0, 39.9, 40.0, 59.9, 60.0, np.nan, 80.0]),
        therapist_volume=np.array([0, 1, 19, 20, 49, 50, 0, 7]),
        gender=np.array(["female"] * 7 + ["other"], dtype=object),
    )
    res = evaluate(data, TH, n_boot=20, seed=0)
    ages = {r.group: r.n for r in res.subgroups["age_band"]}
    assert ages == {"<25": 1, "25-39": 2, "40-59": 2, "60+": 2, "unknown": 1}
    volumes = {r.group: r.n for r in res.subgroups["therapist_volume"]}
    assert volumes == {"unknown therapist": 2, "1-19": 3, "20-49": 2, "50+": 1}
    other = next(r for r in res.subgroups["gender"] if r.group == "other")
    too_few = Estimate(too_few=True)
    assert other.auc == too_few  # one client, no dropout
    female = next(r for r in res.subgroups["gender"] if r.group == "female")
    assert female.auc == too_few  # 3 dropouts and 4 completers: below 10 clients each
    assert female.moderate.flag_rate.estimate == pytest.approx((data.p[:7] >= 0.25).mean())


def test_too_few_counts_clients_not_rows() -> None:
    """9 dropouts with 3 landmark rows each are 27 rows but 9 clients: too few for an AUC,
    the 0.500 (0.500-0.500) a 4-client model used to print; 10 dropouts are enough."""
    for dropouts, expected_too_few in ((9, True), (10, False)):
        base = make_data(40, seed=13, rows_per_client=3)
        y = np.repeat((np.arange(40) < dropouts).astype(np.int8), 3)
        res = evaluate(replace(base, y=y), TH, n_boot=20, seed=0)
        overall = res.overall
        assert overall.auc.too_few is expected_too_few
        assert overall.calibration_slope.too_few is expected_too_few
        assert overall.brier.estimate == pytest.approx(brier(y, base.p))
        if not expected_too_few:
            assert overall.auc.estimate == pytest.approx(auc(y, base.p))
    assert format_metric(Estimate(too_few=True)) == ("too few clients")


def _therapist_cohort(seed: int) -> EvalData:
    """60 therapists x 20 clients; each therapist shifts dropout by N(0, 1) on the logit and the
    scores ignore it, as at a new clinic whose therapists the model never saw."""
    rng = np.random.default_rng(seed)
    n_therapists, per = 60, 20
    therapist = np.repeat(np.arange(n_therapists), per)
    risk = rng.normal(-1.2, 0.7, therapist.size)
    effect = rng.normal(0.0, 1.0, n_therapists)[therapist]
    y = (rng.random(therapist.size) < _expit(risk + effect)).astype(np.int8)
    n = therapist.size
    return EvalData(
        y=y,
        p=_expit(risk),
        client=np.array([f"c{i}" for i in range(n)], dtype=object),
        landmark=np.ones(n, dtype=np.int64),
        gender=np.array(["female"] * n, dtype=object),
        age=np.full(n, 40.0),
        therapist_volume=np.full(n, per),
        therapist=np.array([f"t{t}" for t in therapist], dtype=object),
    )


def test_therapist_bootstrap_is_wider_than_client_bootstrap_under_a_therapist_effect() -> None:
    data = _therapist_cohort(seed=14)
    by_therapist = evaluate(data, TH, n_boot=200, seed=1)
    by_client = evaluate(replace(data, therapist=None), TH, n_boot=200, seed=1)
    assert by_therapist.bootstrap.unit == "therapist"
    assert by_therapist.bootstrap.clusters == 60
    assert by_client.bootstrap.unit == "client"
    assert by_client.bootstrap.clusters == 1200
    ratio = _width(by_therapist.overall.calibration_intercept) / _width(
        by_client.overall.calibration_intercept
    )
    # Design effect 1 + (m - 1) ICC with m = 20 and a latent ICC of about 0.2: ~2x the width.
    assert ratio > 1.5
    est = by_therapist.overall.calibration_intercept.estimate
    assert est == by_client.overall.calibration_intercept.estimate


def test_clients_without_a_therapist_are_their_own_cluster() -> None:
    data = _therapist_cohort(seed=15)
    therapist = data.therapist.copy()  # type: ignore[union-attr]
    therapist[:40] = ""  # the first two therapists' clients become unknown: 40 single clusters
    res = evaluate(replace(data, therapist=therapist), TH, n_boot=5, seed=0)
    assert res.bootstrap.clusters == 58 + 40


def test_calibration_slope_and_intercept_per_landmark() -> None:
    """Landmark 1 predictions too extreme (slope 0.5), landmark 2 too timid (slope 2): the pooled
    slope hides both, the per-landmark slopes show them."""
    y, p = _calibrated(40_000, seed=16)
    n = y.size // 2
    extreme = _expit(2.0 * _logit(p[:n]))
    timid = _expit(0.5 * _logit(p[n:]))
    data = EvalData(
        y=y,
        p=np.r_[extreme, timid],
        client=np.array([f"c{i}" for i in range(y.size)], dtype=object),
        landmark=np.r_[np.ones(n), np.full(y.size - n, 2)].astype(np.int64),
        gender=np.array(["female"] * y.size, dtype=object),
        age=np.full(y.size, 40.0),
        therapist_volume=np.zeros(y.size, dtype=np.int64),
    )
    res = evaluate(data, TH, n_boot=0)
    first, second = res.per_landmark
    assert first.calibration_slope.estimate == pytest.approx(0.5, abs=0.05)
    assert second.calibration_slope.estimate == pytest.approx(2.0, abs=0.2)
    slope_1, intercept_1 = calibration_slope_intercept(y[:n], extreme)
    assert first.calibration_slope.estimate == pytest.approx(slope_1)
    assert first.calibration_intercept.estimate == pytest.approx(intercept_1)


def test_instrument_sets_from_missingness_features() -> None:
    x = np.zeros((4, len(FEATURES)))
    col = {name: FEATURES.index(name) for name in FEATURES}
    x[:, col["landmark"]] = 2
    x[:, col["wai_missing"]] = [0, 1, 2, 2]  # WAI at 2, 1, 0, 0 of the 2 sessions
    x[:, col["srs_missing"]] = [2, 2, 0, 2]
    x[:, col["ors_missing"]] = [1, 2, 2, 2]
    # rows 0-3 are built in the order of INSTRUMENT_SETS
    assert INSTRUMENT_SETS == ("WAI-SR and SRS/ORS", "WAI-SR only", "SRS/ORS only", "none")
    assert tuple(instrument_sets(x)) == INSTRUMENT_SETS


def test_performance_per_instrument_set() -> None:
    base = make_data(600, seed=17, rows_per_client=1)
    x = np.zeros((600, len(FEATURES)))
    x[:, FEATURES.index("landmark")] = 1
    x[:300, FEATURES.index("srs_missing")] = 1  # first half: WAI only
    x[:300, FEATURES.index("ors_missing")] = 1
    x[300:, FEATURES.index("wai_missing")] = 1  # second half: SRS/ORS only
    res = evaluate(replace(base, features=x), TH, n_boot=0)
    rows = {r.group: r for r in res.subgroups["instruments"]}
    assert set(rows) == {"WAI-SR only", "SRS/ORS only"}
    assert rows["WAI-SR only"].n_clients == 300
    wai = slice(0, 300)
    assert rows["WAI-SR only"].auc.estimate == pytest.approx(auc(base.y[wai], base.p[wai]))


def test_format_metric() -> None:
    assert format_metric(Estimate(estimate=0.6512, ci95=(0.62, 0.68))) == "0.651 (0.620–0.680)"
    pct = format_metric(Estimate(estimate=0.3, ci95=(0.25, 0.35)), pct=True)
    assert pct == "30.0% (25.0%–35.0%)"
    negative = format_metric(Estimate(estimate=0.05, ci95=(-0.1, 0.2)), digits=2)
    assert negative == "0.05 (-0.10 to 0.20)"
    assert format_metric(Estimate()) == "n/a"
    assert format_metric(None) == "n/a"
    assert format_metric(Estimate(estimate=0.5)) == "0.500"


def test_strict_json_turns_nan_into_null() -> None:
    value = {"a": float("nan"), "b": [np.float64("inf"), 1.5, np.int64(3)], "c": (None, "x")}
    text = dumps(value, indent=None)
    assert json.loads(text) == {"a": None, "b": [None, 1.5, 3], "c": [None, "x"]}
    assert "NaN" not in text
    assert "Infinity" not in text


def test_no_intervals_from_fewer_than_ten_clusters() -> None:
    """Eight held-out clients of two therapists: estimates, but no interval pretending to be one."""
    base = make_data(8, seed=18, rows_per_client=2)
    therapist = np.array(["t1"] * 8 + ["t2"] * 8, dtype=object)
    res = evaluate(replace(base, therapist=therapist), TH, n_boot=50, seed=0)
    assert res.bootstrap.clusters == 2
    assert res.bootstrap.replicates == 0
    assert res.overall.brier == Estimate(estimate=pytest.approx(brier(base.y, base.p)))
    many = evaluate(make_data(10, seed=18, rows_per_client=2), TH, n_boot=50, seed=0)
    assert many.bootstrap.replicates == 50
    assert None not in many.overall.brier.ci95


SHIPPED_METADATA = Path(__file__).parents[2] / "models" / "20261201-d082e2ab" / "metadata.json"


def test_written_figures_keep_the_artifact_layout() -> None:
    """metadata.json is an artifact format: the typed figures are written with the keys
    every model was written with (levels nested overall, flat in the rows), and read back."""
    data = make_data(300, seed=19)
    x = np.zeros((data.y.size, len(FEATURES)))
    x[:, FEATURES.index("landmark")] = data.landmark
    res = evaluate(replace(data, features=x), TH, n_boot=10, seed=0)
    doc = res.to_json()
    assert set(doc["overall"]) == {
        "auc",
        "brier",
        "log_loss",
        "calibration_slope",
        "calibration_intercept",
        "moderate",
        "high",
    }
    assert list(doc["overall"]["high"]) == ["flag_rate", "sensitivity", "ppv"]
    assert list(doc["per_landmark"][0]) == [
        "landmark",
        "n",
        "prevalence",
        "auc",
        "brier",
        "calibration_slope",
        "calibration_intercept",
        "high_flag_rate",
        "high_sensitivity",
    ]
    assert list(doc["subgroups"]) == ["gender", "age_band", "therapist_volume", "instruments"]
    assert list(doc["subgroups"]["gender"][0]) == [
        "group",
        "n",
        "n_clients",
        "prevalence",
        "auc",
        "calibration_intercept",
        "observed_expected",
        "moderate_flag_rate",
        "high_flag_rate",
        "false_negative_rate_moderate",
    ]
    assert list(doc["bootstrap"]) == ["replicates", "seed", "unit", "clusters"]
    row = res.per_landmark[0]
    assert doc["per_landmark"][0]["high_flag_rate"] == {
        "estimate": row.high.flag_rate.estimate,
        "ci95": list(row.high.flag_rate.ci95),
    }
    assert figures_from_json(json.loads(json.dumps(doc))) == res


def test_the_shipped_models_figures_read_typed_and_write_back_unchanged() -> None:
    written = json.loads(SHIPPED_METADATA.read_text())["metrics"]
    figures = figures_from_json(written)
    assert figures.overall.auc.estimate == written["overall"]["auc"]["estimate"]
    assert figures.overall.high.ppv == Estimate(
        estimate=written["overall"]["high"]["ppv"]["estimate"],
        ci95=tuple(written["overall"]["high"]["ppv"]["ci95"]),
    )
    first = written["per_landmark"][0]
    assert figures.per_landmark[0].high.flag_rate.estimate == first["high_flag_rate"]["estimate"]
    assert figures.per_landmark[0].high.ppv is None  # not reported per landmark
    female = written["subgroups"]["gender"][0]
    fnr = figures.subgroups["gender"][0].moderate.false_negative_rate
    assert fnr is not None
    assert fnr.estimate == female["false_negative_rate_moderate"]["estimate"]
    assert json.dumps(figures.to_json()) == json.dumps(written)


def test_figures_of_an_older_layout_still_read() -> None:
    """The first artifacts had no per-landmark calibration slope and no cluster count."""
    written = json.loads(SHIPPED_METADATA.read_text())["metrics"]
    for row in written["per_landmark"]:
        del row["calibration_slope"]
    del written["bootstrap"]["clusters"]
    figures = figures_from_json(written)
    assert figures.per_landmark[0].calibration_slope == Estimate()
    assert figures.bootstrap.clusters is None
    assert format_metric(figures.per_landmark[0].calibration_slope) == "n/a"


def test_figures_that_do_not_fit_are_refused_by_field() -> None:
    written = json.loads(SHIPPED_METADATA.read_text())["metrics"]
    written["overall"]["auc"]["estimate"] = "high"
    del written["per_landmark"][1]["high_flag_rate"]
    with pytest.raises(ValidationError) as caught:
        figures_from_json(written)
    where = {tuple(e["loc"]) for e in caught.value.errors()}
    assert where == {
        ("metrics", "overall", "auc", "estimate"),
        ("metrics", "per_landmark", 1, "high", "flag_rate"),
    }
