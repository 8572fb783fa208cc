"""Monitoring (training/monitoring.py): false alarms measured, drift caught, realised
performance equal to training.evaluation's, CBPE checked where its assumption holds.

The world: one simulated cohort of the default world (18,000 clients, about 57 sites).
A model is trained on 3,000 of its clients (the development part) and its reference
profile computed from them by the function `train` uses; every window is 300 other
clients of the same cohort, so without drift window and reference come from one
population (new simulations would bring new sites, and with them a legitimately different
instrument mix). Drift: the same cohort simulated again with one parameter changed
(`dataclasses.replace` on SimulationParams, same seed: same therapists, sites and clients,
one thing moved), scored by the same model, the same client indices as windows.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from tests.support.helpers import REPO
from training.contract import load_cohort
from training.evaluation import (
    EvalData,
    auc,
    calibration_slope_intercept,
    evaluate,
)
from training.features import (
    FEATURES,
    Examples,
    grid_from_tables,
    landmark_examples,
    latest_landmark_features,
)
from training.model import CalibratedModel, candidates, feature_clip
from training.monitoring import (
    MIN_LABELLED,
    MIN_WINDOW,
    NO_PROFILE,
    PERIOD_REALISED,
    RULES,
    MonitoredModel,
    MonitoringReport,
    Outcomes,
    PeriodSplit,
    Status,
    Window,
    labels_required,
    monitor,
    window_from_tables,
)
from training.monitoring_profile import (
    bin_shares,
    build_reference_profile,
    expected_reference,
    flagged,
    landmark_weights,
)
from training.monitoring_stats import (
    ks_from_bins,
    pair_auc,
    psi,
    psi_null_quantile,
    psi_p_value,
)
from training.registry import LoadedModel, Registry
from training.simulate import SimulationParams, simulate
from training.strict_json import dumps
from training.train import (
    Fitted,
    Selection,
    TrainConfig,
    _split_clients,
    choose_thresholds,
    development_profile,
    labelled_examples,
)
from training.transport import ece
from training.vocabulary import Thresholds

FloatArray = npt.NDArray[np.float64]
COHORT, DEVELOPMENT, WINDOW, RUNS = 18_000, 3_000, 300, 50
SEED = 11
LANDMARKS = (1, 2, 3)


@dataclass(frozen=True)
class Population:
    """A simulated cohort scored by a model: latest rows (drift) and every landmark row
    (outcomes), with each client's outcome."""

    X: FloatArray
    landmark: npt.NDArray[np.int64]
    p: FloatArray
    examples: Examples
    p_examples: FloatArray
    y: FloatArray

    def window(self, clients: npt.NDArray[np.int64], labelled: bool = True) -> Window:
        outcomes = None
        if labelled:
            rows = np.isin(self.examples.row_client, clients)
            outcomes = Outcomes(
                episode=self.examples.row_client[rows],
                landmark=self.examples.landmark[rows],
                p=self.p_examples[rows],
                y=self.y[self.examples.row_client[rows]],
            )
        return Window(self.X[clients], self.landmark[clients], self.p[clients], outcomes)


def _population(model: CalibratedModel, params: SimulationParams | None = None) -> Population:
    clients, sessions = simulate(COHORT, SEED, params)
    ids, grid = grid_from_tables(sessions, clients, max(LANDMARKS))
    y = clients.set_index("client_id")["dropout"].reindex(ids).to_numpy(dtype=np.float64)
    X, landmark = latest_landmark_features(grid, LANDMARKS)
    examples = landmark_examples(grid, LANDMARKS)
    return Population(
        X,
        landmark,
        model.predict_proba(X)[:, 1],
        examples,
        model.predict_proba(examples.X)[:, 1],
        y,
    )


@dataclass(frozen=True)
class World:
    model: CalibratedModel
    monitored: MonitoredModel
    base: Population
    development: npt.NDArray[np.int64]
    windows: list[npt.NDArray[np.int64]]  # RUNS disjoint windows of WINDOW other clients


@pytest.fixture(scope="module")
def world() -> World:
    clients, sessions = simulate(COHORT, SEED)
    ids, grid = grid_from_tables(sessions, clients, max(LANDMARKS))
    y = clients.set_index("client_id")["dropout"].reindex(ids).to_numpy(dtype=np.float64)
    order = np.random.default_rng(5).permutation(COHORT)
    development, rest = order[:DEVELOPMENT], order[DEVELOPMENT:]
    examples = landmark_examples(grid, LANDMARKS)
    dev_rows = np.isin(examples.row_client, development)
    X_dev, y_dev = examples.X[dev_rows], y[examples.row_client[dev_rows]].astype(np.int8)
    model = CalibratedModel(candidates(0)["logistic_regression"], "sigmoid")
    model.fit(X_dev, y_dev, examples.row_client[dev_rows])
    th = choose_thresholds(model.predict_proba(X_dev)[:, 1], y_dev, TrainConfig())
    thresholds = Thresholds(th["moderate"], th["high"])
    base = _population(model)
    low, high = feature_clip(model, len(FEATURES))
    profile = build_reference_profile(
        base.X[development],
        base.landmark[development],
        base.p[development],
        thresholds,
        low,
        high,
        parameters=40,
    )
    monitored = MonitoredModel("test", thresholds, low, high, profile, profile.parameters)
    windows = [rest[i * WINDOW : (i + 1) * WINDOW] for i in range(RUNS)]
    return World(model, monitored, base, development, windows)


def _statuses(reports: list[MonitoringReport]) -> dict[str, list[Status]]:
    out: dict[str, list[Status]] = {}
    for report in reports:
        for figure in report.figures:
            out.setdefault(figure.name, []).append(figure.status)
    return out


# --- no drift: the false-alarm rate, measured ----------------------------------------------


PERIODS = 3  # each no-drift window split into three periods of 100 clients
FALSE_ALARMS = REPO / "test-output" / "monitoring" / "false-alarms.txt"


def _thirds(world: World, window: Window, clients: npt.NDArray[np.int64]) -> PeriodSplit:
    """The window's clients in PERIODS consecutive periods of equal size, in window order
    (each outcome row in its client's period)."""
    rows = np.arange(clients.size) * PERIODS // clients.size
    period_of_client = np.full(COHORT, -1)
    period_of_client[clients] = rows
    got = window.outcomes
    assert got is not None
    start = datetime(2026, 9, 1, tzinfo=UTC)
    bounds = tuple(
        (start + timedelta(weeks=k), start + timedelta(weeks=k + 1)) for k in range(PERIODS)
    )
    return PeriodSplit(bounds, rows, period_of_client[got.episode])


def _rate_table(statuses: dict[str, list[Status]], runs: int) -> str:
    """The measured rates per kind of figure, as a Markdown table: how many figures of the
    kind, how many of their ratings were numbers (not "too few"), the alerts and watches
    among them, and the highest alert rate of any one figure of the kind (per `runs`)."""
    kinds: dict[str, list[str]] = {}
    for name in statuses:
        kind = name.split(".")[0]
        kinds.setdefault(kind, []).append(name)
    lines = [
        "| figure kind | figures | rated | alerts | watches | highest alert rate of one figure |",
        "|---|---|---|---|---|---|",
    ]
    for kind, names in kinds.items():
        all_ = [s for n in names for s in statuses[n]]
        rated = sum(s in (Status.OK, Status.WATCH, Status.ALERT) for s in all_)
        worst = max(statuses[n].count(Status.ALERT) for n in names) / runs
        lines.append(
            f"| `{kind}` | {len(names)} | {rated} of {len(all_)} | "
            f"{all_.count(Status.ALERT)} | {all_.count(Status.WATCH)} | {worst:.0%} |"
        )
    return "\n".join(lines) + "\n"


def test_without_drift_no_figure_alerts_in_more_than_5_percent_of_windows(world: World) -> None:
    """50 windows of 300 clients from the development population, outcomes known, each
    split into three periods of 100 (the figures over time): every figure's alert rate is
    measured, the window's and each period figure's, and none exceeds 5%. Every kind of
    figure that has a status (training.monitoring.RULES) is among them and rated. The
    measured rates are written to test-output/monitoring/false-alarms.txt (the table in
    docs/monitoring.md)."""
    reports = []
    for w in world.windows:
        window = world.base.window(w)
        reports.append(
            monitor(world.monitored, window, "clinic-a", periods=_thirds(world, window, w))
        )
    statuses = _statuses(reports)
    assert len(statuses) > 100  # every kind of figure is there
    assert {len(s) for s in statuses.values()} == {RUNS}  # the same figures in every run
    # the figures over time, a period figure's rate over RUNS x PERIODS periods of 100
    over_time: dict[str, list[Status]] = {}
    for report in reports:
        assert [p.clients for p in report.periods] == [WINDOW // PERIODS] * PERIODS
        for period in report.periods:
            for f in period.figures:
                over_time.setdefault(f"period {f.name}", []).append(f.status)
    assert {len(s) for s in over_time.values()} == {RUNS * PERIODS}
    kinds = {name.split(".")[0] for name in statuses}
    assert kinds == set(RULES)  # every kind of figure that has a status is measured
    assert {name.split(".")[0] for name in over_time} == {
        f"period {kind}" for kind in ("flag_rate", "expected_auc", *PERIOD_REALISED)
    }
    for name, s in {**statuses, **over_time}.items():
        runs = len(s)
        assert s.count(Status.ALERT) <= 0.05 * runs, (name, s.count(Status.ALERT), runs)
    pooled = [status for s in statuses.values() for status in s]
    assert pooled.count(Status.ALERT) / len(pooled) <= 0.005
    assert pooled.count(Status.WATCH) / len(pooled) <= 0.02
    # the figures are rated, not waved through as too few: only the thin early landmarks
    too_few = {name for name, s in statuses.items() if Status.TOO_FEW in s}
    assert too_few <= {
        f"{kind}.landmark_{k}"
        for k in (1, 2)
        for kind in ("flag_rate.moderate", "flag_rate.high", "expected_auc")
    }
    for kind in ("psi.age", "ks.score", "missing.wai_mean", "instrument.wai_sr"):
        assert statuses[f"{kind}.all"].count(Status.OK) >= 0.9 * RUNS
    assert statuses["realised_auc.landmark_3"].count(Status.OK) >= 0.9 * RUNS
    # a period of 100 is at the minimum size, and its figures are mostly rated all the same
    for name, s in over_time.items():
        assert s.count(Status.TOO_FEW) <= 0.5 * RUNS * PERIODS, name
    FALSE_ALARMS.parent.mkdir(parents=True, exist_ok=True)
    FALSE_ALARMS.write_text(
        f"No drift: {RUNS} windows of {WINDOW} clients with outcomes "
        f"({len(statuses)} figures a window), each in {PERIODS} periods of "
        f"{WINDOW // PERIODS} ({len(over_time)} figures a period).\n\n"
        + _rate_table(statuses, RUNS)
        + "\nOver time (rates per period):\n\n"
        + _rate_table(over_time, RUNS * PERIODS)
    )


def test_conventional_psi_false_alarms_on_small_windows_and_the_sized_threshold_does_not(
    world: World,
) -> None:
    """The lifecycle reference's warning: 100 current against 500 reference clients, no
    drift, and PSI >= 0.1 fires about half the time. The n-aware rule holds its rate."""
    rest = np.concatenate(world.windows)
    rest = rest[~np.isnan(world.base.X[rest, FEATURES.index("age")])]  # 100 ages a window
    reference = rest[:500]
    m = world.monitored
    profile = build_reference_profile(
        world.base.X[reference],
        world.base.landmark[reference],
        world.base.p[reference],
        m.thresholds,
        m.low,
        m.high,
        parameters=40,
    )
    small = dataclasses.replace(m, profile=profile)
    reports = [
        monitor(small, world.base.window(rest[500 + 100 * i : 600 + 100 * i], False), "c")
        for i in range(RUNS)
    ]
    # deciles of a continuous quantity: 10 bins, where PSI's null mean is 9 (1/100 + 1/500)
    for name in ("psi.age.all", "psi.score.all"):
        figures = [r.figure(name) for r in reports]
        values = np.array([f.value for f in figures if f.value is not None])
        assert values.size >= 0.9 * RUNS  # a few windows of 100 lack a landmark: too few
        assert np.mean(values >= 0.1) >= 0.3  # the fixed cut-off false-alarms
        assert [f.status for f in figures].count(Status.ALERT) == 0
        assert [f.status for f in figures].count(Status.WATCH) <= 1
    # and no figure of the report alerts in more than 5% of these small windows
    alerts = _statuses(reports)
    assert max(s.count(Status.ALERT) for s in alerts.values()) <= 0.05 * RUNS


def test_psi_null_follows_the_chi_square_approximation() -> None:
    """Multinomial windows of 300 against a reference of 3,000 over 10 bins, no drift: the
    approximation's 99% quantile is exceeded about 1% of the time, not 5% or 0%."""
    rng = np.random.default_rng(3)
    truth = np.full(10, 0.1)
    q99 = psi_null_quantile(0.99, 10, 300, 3000)
    exceed = []
    for _ in range(4000):
        window = rng.multinomial(300, truth) / 300
        reference = rng.multinomial(3000, truth) / 3000
        value = psi(window, reference, 300, 3000)
        exceed.append(value > q99)
        assert abs(psi_p_value(value, 10, 300, 3000) - float(value > q99)) <= 1.0
    assert 0.004 <= np.mean(exceed) <= 0.02
    assert q99 == pytest.approx(21.666 * (1 / 300 + 1 / 3000), rel=1e-3)  # chi2(9) at 99%


def test_ks_from_bins_is_the_distance_at_the_edges_and_conservative() -> None:
    window = np.array([0.2, 0.3, 0.5])
    reference = np.array([0.3, 0.3, 0.4])
    distance, p_value = ks_from_bins(window, reference, 300, 3000)
    assert distance == pytest.approx(0.1)  # cumulative 0.2 vs 0.3, then 0.5 vs 0.6
    assert 0.0 < p_value < 1.0
    same = ks_from_bins(reference, reference, 300, 3000)
    assert same == (0.0, 1.0)


# --- drift: the right alerts in a window of 300 --------------------------------------------

SCENARIOS = {
    "younger clients": ({"age_mean": 25.0}, {"psi.age.all", "ks.age.all"}),
    "SRS-only collection": (
        {"site_mix": (0.0, 0.0, 1.0)},
        {"instrument.wai_sr.all", "missing.wai_mean.all", "missing.wai_last.all"},
    ),
    "longer gaps": (
        {"session_gap_days": 14.0},
        {"psi.gap_mean_days.all", "ks.gap_mean_days.all", "outside_range.all"},
    ),
    "a higher dropout rate": (
        {"dropout_rate": 0.40},
        {f"calibration_intercept.landmark_{k}" for k in LANDMARKS},
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_drift_raises_the_right_alerts(world: World, scenario: str) -> None:
    change, expected = SCENARIOS[scenario]
    moved = _population(world.model, dataclasses.replace(SimulationParams(), **change))
    for clients in world.windows[:3]:
        report = monitor(world.monitored, moved.window(clients), "clinic-b")
        alerts = {f.name for f in report.alerts()}
        assert expected <= alerts, (scenario, sorted(alerts))
        for figure in report.alerts():
            assert "dropout-risk retrain --clinic clinic-b" in figure.next_step
        assert report.status is Status.ALERT
        # the same clients without drift raise none of these
        calm = monitor(world.monitored, world.base.window(clients), "clinic-b")
        assert not expected & {f.name for f in calm.alerts()}


def test_a_higher_dropout_rate_is_invisible_without_outcomes(world: World) -> None:
    """The features do not move, only the outcomes: no drift figure can see it, the realised
    calibration does once outcomes are stored, and CBPE is then marked as not valid."""
    moved = _population(world.model, dataclasses.replace(SimulationParams(), dropout_rate=0.40))
    clients = world.windows[0]
    blind = monitor(world.monitored, moved.window(clients, labelled=False), "c")
    assert [f.name for f in blind.alerts()] == []
    assert blind.cbpe_valid is None
    seen = monitor(world.monitored, moved.window(clients), "c")
    intercept = seen.figure("calibration_intercept.landmark_1")
    assert intercept.status is Status.ALERT
    assert intercept.value is not None
    assert intercept.value > 0.4  # more dropouts than the model expects
    assert seen.cbpe_valid is False
    assert "not valid here" in seen.figure("expected_auc.all").note


# --- realised performance and CBPE -----------------------------------------------------------


def test_realised_performance_matches_training_evaluation(world: World) -> None:
    """Each landmark's realised figures are training.evaluation's and transport's on the
    same rows; the DeLong interval is as wide as evaluate()'s client bootstrap."""
    clients = np.concatenate(world.windows[:4])
    window = world.base.window(clients)
    report = monitor(world.monitored, window, "c")
    outcomes = window.outcomes
    assert outcomes is not None
    assert report.labelled == clients.size
    for k in LANDMARKS:
        at = outcomes.landmark == k
        y, p = outcomes.y[at], outcomes.p[at]
        slope, intercept = calibration_slope_intercept(y, p)
        realised = report.figure(f"realised_auc.landmark_{k}")
        assert realised.value == pytest.approx(auc(y, p), abs=1e-12)
        assert realised.n == at.sum()
        assert report.figure(f"calibration_slope.landmark_{k}").value == pytest.approx(slope)
        assert report.figure(f"calibration_intercept.landmark_{k}").value == pytest.approx(
            intercept
        )
        assert report.figure(f"ece.landmark_{k}").value == pytest.approx(ece(y, p))
        expected = pair_auc(p, p, 1 - p).value
        assert realised.reference == pytest.approx(expected)
        boot = evaluate(_eval_data(y, p, k), Thresholds(0.5, 0.6), n_boot=200, seed=1)
        lo, hi = boot.per_landmark[0].auc.ci95
        assert lo is not None
        assert hi is not None
        assert realised.interval is not None
        width = realised.interval[1] - realised.interval[0]
        assert width == pytest.approx(hi - lo, rel=0.25)
        assert boot.per_landmark[0].auc.estimate == pytest.approx(realised.value)


def _eval_data(y: FloatArray, p: FloatArray, landmark: int) -> EvalData:
    n = y.size
    return EvalData(
        y=y.astype(np.int8),
        p=p,
        client=np.array([f"c{i}" for i in range(n)], dtype=object),
        landmark=np.full(n, landmark),
        gender=np.full(n, "unknown", dtype=object),
        age=np.full(n, np.nan),
        therapist_volume=np.zeros(n, dtype=np.int64),
    )


def test_cbpe_matches_the_realised_auc_where_the_model_is_calibrated(world: World) -> None:
    """Outcomes drawn from the model's own probabilities make a world where it is calibrated
    by construction: there the realised AUC falls within CBPE's 95% range (the realised
    figure's p-value >= 0.05) in about 95% of panels (two draws of outcomes per window:
    100 panels per landmark), and the gaps average out to zero."""
    rng = np.random.default_rng(17)
    inside: dict[int, list[bool]] = {k: [] for k in LANDMARKS}
    gaps: dict[int, list[float]] = {k: [] for k in LANDMARKS}
    for clients in world.windows:
        got = world.base.window(clients)
        assert got.outcomes is not None
        for _ in range(2):
            drawn = (rng.random(got.outcomes.p.size) < got.outcomes.p).astype(np.float64)
            outcomes = dataclasses.replace(got.outcomes, y=drawn)
            report = monitor(world.monitored, dataclasses.replace(got, outcomes=outcomes), "c")
            for k in LANDMARKS:
                figure = report.figure(f"realised_auc.landmark_{k}")
                assert figure.value is not None
                assert figure.reference is not None
                assert figure.p_value is not None
                inside[k].append(figure.p_value >= 0.05)
                gaps[k].append(figure.value - figure.reference)
            assert report.cbpe_valid is True
    assert np.mean([hit for k in LANDMARKS for hit in inside[k]]) >= 0.9
    for k in LANDMARKS:
        assert np.mean(inside[k]) >= 0.85, (k, np.mean(inside[k]))
        assert abs(np.mean(gaps[k])) < 0.01


def test_expected_auc_is_the_pair_formula_and_its_errors_match_simulation() -> None:
    """CBPE's expected AUC is exactly the probability-weighted sum over pairs; its label
    error is the spread of realised AUCs when outcomes follow the probabilities, and the
    realised AUC's DeLong error its spread over samples."""
    rng = np.random.default_rng(2)
    p = np.round(rng.uniform(0.05, 0.6, 9), 2)  # rounded: ties count 1/2
    pairs = [(i, j) for i in range(9) for j in range(9) if i != j]
    num = sum(p[i] * (1 - p[j]) * ((p[i] > p[j]) + 0.5 * (p[i] == p[j])) for i, j in pairs)
    den = sum(p[i] * (1 - p[j]) for i, j in pairs)
    assert pair_auc(p, p, 1 - p).value == pytest.approx(num / den, abs=1e-12)
    p = 1 / (1 + np.exp(-rng.normal(-1.2, 0.6, 300)))
    expected = pair_auc(p, p, 1 - p)
    realised = []
    spread = []
    for _ in range(1500):
        y = (rng.random(p.size) < p).astype(np.float64)
        realised.append(auc(y, p))
        delong = pair_auc(p, y, 1 - y)
        assert delong.value == pytest.approx(realised[-1], abs=1e-12)
        spread.append(delong.se)
    assert np.mean(realised) == pytest.approx(expected.value, abs=0.004)
    assert np.std(realised) == pytest.approx(expected.se_labels, rel=0.1)
    assert np.mean(spread) == pytest.approx(np.std(realised), rel=0.15)


# --- too few, next steps, labels ----------------------------------------------------------------


def test_a_small_window_is_too_few_and_says_how_many_more(world: World) -> None:
    pool = np.concatenate(world.windows[:2])
    at = world.base.landmark[pool]
    clients = np.concatenate([pool[at == 1][:5], pool[at == 2][:5], pool[at == 3][:40]])
    report = monitor(world.monitored, world.base.window(clients), "c")
    for kind in ("psi.score.all", "ks.score.all", "missing.age.all", "instrument.srs.all"):
        figure = report.figure(kind)
        assert figure.status is Status.TOO_FEW
        assert figure.value is None
        assert figure.note.endswith(f"{MIN_WINDOW - 50} more needed (minimum {MIN_WINDOW})")
    ages = int((~np.isnan(world.base.X[clients, FEATURES.index("age")])).sum())
    assert report.figure("psi.age.all").note == (
        f"{ages} clients with a value, {MIN_WINDOW - ages} more needed (minimum {MIN_WINDOW})"
    )
    realised = report.figure("realised_auc.landmark_3")
    assert realised.status is Status.TOO_FEW
    assert f"need {MIN_LABELLED} or more" in realised.note
    assert report.alerts() == []
    assert all(f.status is Status.TOO_FEW for f in report.figures if f.landmark is None)
    # just above the minimum the same figures are rated
    enough = monitor(world.monitored, world.base.window(world.windows[0][:120]), "c")
    assert enough.figure("psi.age.all").status is Status.OK


def test_a_window_without_an_early_landmark_cannot_be_reweighted(world: World) -> None:
    clients = world.windows[0]
    window = world.base.window(clients, labelled=False)
    keep = window.landmark == 3
    only_three = Window(window.X[keep], window.landmark[keep], window.p[keep])
    report = monitor(world.monitored, only_three, "c")
    psi_age = report.figure("psi.age.all")
    assert psi_age.status is Status.TOO_FEW
    assert "no client at landmark 1, 2" in psi_age.note
    # a landmark's own figures need no weights
    assert report.figure("flag_rate.high.landmark_3").status is Status.OK


def test_the_next_step_is_the_retrain_once_enough_labels_exist(world: World) -> None:
    """Enough is what the retrain needs for its least update, an intercept: 50 labelled
    episodes of each outcome (training/updating.py); a refit's minimum is reported apart."""
    moved = _population(world.model, dataclasses.replace(SimulationParams(), age_mean=25.0))
    window = moved.window(world.windows[0])
    assert window.outcomes is not None
    first = window.outcomes.landmark == 1
    observed = float(window.outcomes.y[first].mean())
    dropouts = int(window.outcomes.y[first].sum())
    ready = monitor(world.monitored, window, "clinic-c")
    assert dropouts >= 50
    assert WINDOW - dropouts >= 50
    assert ready.figure("psi.age.all").next_step == (
        "this clinic's clients differ on age: dropout-risk retrain --clinic clinic-c"
    )
    assert ready.figure("psi.age.all").status is Status.ALERT
    assert ready.labelled_episodes == WINDOW
    assert ready.labels_required == labels_required(40, observed) > WINDOW
    short = monitor(world.monitored, window, "clinic-c", labelled_outcomes=(12, 30))
    assert short.figure("psi.age.all").next_step == (
        "this clinic's clients differ on age: 38 more labelled episodes that ended in dropout "
        "and 20 more labelled episodes that ended in completion needed before `dropout-risk "
        "retrain --clinic clinic-c` (have 12 dropouts and 30 completers; the least local "
        "update needs 50 of each: docs/updating.md)"
    )
    assert short.labelled_episodes == 42
    one = monitor(world.monitored, window, "clinic-c", labelled_outcomes=(49, 251))
    assert one.figure("psi.age.all").next_step.startswith(
        "this clinic's clients differ on age: 1 more labelled episode that ended in dropout "
        "needed before `dropout-risk retrain --clinic clinic-c` (have 49 dropouts"
    )
    with pytest.raises(ValueError, match="clinic must be an id"):
        monitor(world.monitored, window, "clinic c; rm -rf /")


def test_figure_names_are_bounded_and_carry_no_client_data(world: World) -> None:
    report = monitor(world.monitored, world.base.window(world.windows[1]), "clinic-a")
    names = [f.name for f in report.figures]
    assert len(names) == len(set(names))
    allowed = "|".join(re.escape(n) for n in (*FEATURES, "score", "moderate", "high", ""))
    pattern = re.compile(rf"^[a-z_]+(\.({allowed}|wai_sr|srs|ors|phq9))?\.(all|landmark_[123])$")
    assert all(pattern.match(name) for name in names), [n for n in names if not pattern.match(n)]


# --- the profile in the artifact ---------------------------------------------------------------


def test_train_stores_the_profile_of_its_development_clients(trained_registry: Path) -> None:
    """The trained artifact's profile is the profile of the development clients recomputed
    from the cohort with train's own split, model and thresholds: strict JSON, small."""
    loaded = Registry(trained_registry).load()
    profile = loaded.meta.reference_profile
    assert profile is not None
    folder = trained_registry / loaded.version
    text = (folder / "metadata.json").read_text()
    assert "NaN" not in text
    assert "Infinity" not in text
    assert len(dumps(loaded.metadata["reference_profile"])) < 16_000
    meta = loaded.metadata
    assert profile.clients == meta["training_data"]["development_clients"]
    assert sum(ref.clients for ref in profile.landmarks) == profile.clients
    assert profile.parameters == meta["sample_size"]["parameters"]
    for feature in profile.features.values():
        assert len(feature.shares) in (0, len(feature.edges) + 1)
        if feature.shares:
            assert sum(feature.shares) == pytest.approx(1.0, abs=1e-3)


def test_the_stored_profile_is_what_train_computes(
    small_cohort: Path, trained_registry: Path
) -> None:
    loaded = Registry(trained_registry).load()
    cohort = load_cohort(small_cohort / "sessions.csv", small_cohort / "clients.csv", True, [])
    config = TrainConfig(seed=3)
    data = labelled_examples(cohort, config.landmarks)
    clients = cohort.clients.set_index("client_id").reindex(data.client_ids)
    test_client = _split_clients(
        clients["dropout"].to_numpy(dtype=np.float64), config.test_fraction, config.seed
    )
    fitted = Fitted(loaded.model, Selection(), loaded.metadata["thresholds"], (), "clients")
    parameters = loaded.metadata["sample_size"]["parameters"]
    again = development_profile(data, ~test_client, fitted, config, parameters)
    assert again.model_dump(mode="json") == loaded.metadata["reference_profile"]


def test_an_artifact_without_a_profile_loads_and_monitoring_says_so() -> None:
    """An artifact written before profiles (the shipped model's metadata without its
    profile) loads, monitoring reports "no reference profile" instead of failing, and the
    realised figures still come; a profile computed for it from a simulated development
    cohort makes the drift figures appear."""
    shipped = Registry(REPO / "models").load()
    assert shipped.meta.reference_profile is not None  # the shipped model carries one
    older = {k: v for k, v in shipped.metadata.items() if k != "reference_profile"}
    loaded = LoadedModel(shipped.model, older, shipped.probability)
    assert loaded.meta.reference_profile is None
    plain = MonitoredModel.from_metadata(loaded.meta)
    assert plain.profile is None
    assert plain.parameters == loaded.metadata["sample_size"]["parameters"]
    clients, sessions = simulate(3_600, 21)
    development = clients["client_id"].iloc[:3_000]
    dev_s = sessions[sessions["client_id"].isin(development)]
    win_s = sessions[~sessions["client_id"].isin(development)]
    window = window_from_tables(win_s, clients, loaded.probability, tuple(loaded.meta.landmarks))
    assert window.clients == 600
    assert window.labelled == 600
    report = monitor(plain, window, "demo")
    assert report.messages == (NO_PROFILE,)
    assert not [f for f in report.figures if f.kind in ("psi", "ks", "missing", "flag_rate")]
    expected = report.figure("expected_auc.all")
    assert expected.status is Status.NO_REFERENCE
    assert expected.value is not None
    assert report.figure("realised_auc.landmark_1").status in (Status.OK, Status.WATCH)

    ids, grid = grid_from_tables(dev_s, clients, 3)
    X, landmark = latest_landmark_features(grid, (1, 2, 3))
    low, high = feature_clip(loaded.model, len(FEATURES))
    thresholds = loaded.meta.thresholds.cutoffs
    profile = build_reference_profile(
        X, landmark, loaded.probability(X), thresholds, low, high, plain.parameters
    )
    assert np.array_equal(low, plain.low)
    assert np.array_equal(high, plain.high)
    assert ids.size == profile.clients == 3_000
    profiled = monitor(dataclasses.replace(plain, profile=profile), window, "demo")
    assert profiled.messages == ()
    assert profiled.figure("psi.age.all").status is Status.OK
    # the same population: no drift; but the shipped model was trained on worlds that drop
    # out more often (31%) than this one (20%): it over-predicts, and the realised
    # calibration says so at the landmark every client reached
    alerts = {f.name for f in profiled.alerts()}
    assert "calibration_intercept.landmark_1" in alerts
    assert all(name.startswith(("calibration_", "ece.")) for name in alerts), alerts
    assert profiled.figure("calibration_intercept.landmark_1").value < -0.3  # type: ignore[operator]
    assert profiled.cbpe_valid is False


def test_window_from_tables_uses_the_feature_builder_and_every_landmark_for_outcomes() -> None:
    clients, sessions = simulate(400, 4)
    clients.loc[clients.index[:100], "dropout"] = np.nan  # outcome not known yet
    window = window_from_tables(
        sessions, clients, lambda X: np.clip(np.nan_to_num(X[:, 1]) / 10, 0, 1), LANDMARKS
    )
    ids, grid = grid_from_tables(sessions, clients, 3)
    X, landmark = latest_landmark_features(grid, LANDMARKS)
    np.testing.assert_array_equal(window.X, X)
    np.testing.assert_array_equal(window.landmark, landmark)
    assert window.outcomes is not None
    assert window.labelled == 300
    examples = landmark_examples(grid, LANDMARKS)
    labelled = pd.Index(ids).isin(clients["client_id"].iloc[100:])
    assert window.outcomes.y.size == int(labelled[examples.row_client].sum())
    assert set(np.unique(window.outcomes.landmark)) == {1, 2, 3}


def test_score_shares_are_the_shares_the_score_psi_compares(world: World) -> None:
    """MonitoringReport.score_shares (what the monitoring page plots): the window's scores
    in the reference's bins, reweighted to its landmark mix; their PSI is the figure's.
    None where the score's PSI is not computed."""
    profile = world.monitored.profile
    assert profile is not None
    report = monitor(world.monitored, world.base.window(world.windows[0]), "c")
    assert report.score_shares is not None
    shares = np.array(report.score_shares)
    assert shares.size == len(profile.score.shares)
    assert shares.sum() == pytest.approx(1.0)
    figure = report.figure("psi.score.all")
    assert figure.value is not None
    again = psi(shares, np.array(profile.score.shares), figure.n, float(profile.clients))
    assert again == pytest.approx(figure.value, rel=1e-12)
    # unweighted shares differ: the window's landmark mix is not the reference's
    window = world.base.window(world.windows[0])
    plain = bin_shares(window.p, np.asarray(profile.score.edges))
    assert not np.allclose(plain, shares)
    small = monitor(world.monitored, world.base.window(world.windows[0][: MIN_WINDOW - 1]), "c")
    assert small.figure("psi.score.all").status is Status.TOO_FEW
    assert small.score_shares is None


# --- over time ------------------------------------------------------------------------------


def test_each_period_s_figures_are_the_report_s_on_its_clients(world: World) -> None:
    """Three periods of known make-up: 600 clients as they are, 500 whose latest
    probabilities are all set above the high threshold (flag rates 100%; their outcome
    rows keep the model's), 60 (below the minimum sizes). Each
    period's figures match a direct computation on its own clients, and are the figures of
    those names that `monitor` gives for a window of them alone."""
    clients = np.concatenate(world.windows[:6])[:1160]
    window = world.base.window(clients)
    sizes = (600, 500, 60)
    rows = np.repeat(np.arange(3), sizes)
    p = window.p.copy()
    p[rows == 1] = 0.999  # above the high threshold
    window = dataclasses.replace(window, p=p)
    got = window.outcomes
    assert got is not None
    period_of_client = np.full(COHORT, -1)
    period_of_client[clients] = rows
    start = datetime(2026, 9, 1, tzinfo=UTC)
    bounds = tuple((start + timedelta(weeks=k), start + timedelta(weeks=k + 1)) for k in range(3))
    split = PeriodSplit(bounds, rows, period_of_client[got.episode])
    report = monitor(world.monitored, window, "c", periods=split)
    profile = world.monitored.profile
    assert profile is not None
    assert [(q.start, q.end) for q in report.periods] == list(bounds)
    assert [q.clients for q in report.periods] == list(sizes)
    assert sum(q.labelled for q in report.periods) == report.labelled
    thresholds = world.monitored.thresholds
    for k, period in enumerate(report.periods):
        mine = rows == k
        w = landmark_weights(window.landmark[mine], profile.landmarks)
        got_k = period_of_client[got.episode] == k
        alone = monitor(
            world.monitored,
            Window(
                window.X[mine],
                window.landmark[mine],
                window.p[mine],
                Outcomes(got.episode[got_k], got.landmark[got_k], got.p[got_k], got.y[got_k]),
            ),
            "c",
        )
        for f in period.figures:
            same = alone.figure(f.name)
            if f.kind == "expected_auc" and f.value is not None:
                # CBPE's validity is the window's (checked on all its labelled episodes)
                assert f.note == report.figure("expected_auc.all").note
                same = dataclasses.replace(same, note=f.note)
            # the next step is the window's figures' to say, not a period's
            assert f == dataclasses.replace(same, next_step=""), f.name
        if k == 2:  # 60 clients: every figure "too few", saying why
            assert all(f.status is Status.TOO_FEW and f.value is None for f in period.figures)
            assert all(f.note for f in period.figures)  # each says why
            continue
        assert w is not None
        moderate, high = flagged(window.p[mine], thresholds)
        for level, hit in (("moderate", moderate), ("high", high)):
            figure = period.figure(f"flag_rate.{level}.all")
            assert figure is not None
            assert figure.value == pytest.approx(float(np.sum(w * hit) / np.sum(w)), abs=1e-12)
            pooled = sum(getattr(r, level) * r.clients for r in profile.landmarks)
            assert figure.reference == pytest.approx(pooled / profile.clients)
        expected = period.figure("expected_auc.all")
        assert expected is not None
        assert expected.value == pytest.approx(
            expected_reference(window.p[mine], thresholds, w).auc.value, abs=1e-12
        )
        for landmark in LANDMARKS:
            at = got_k & (got.landmark == landmark)
            y, q = got.y[at], got.p[at]
            realised = period.figure(f"realised_auc.landmark_{landmark}")
            slope = period.figure(f"calibration_slope.landmark_{landmark}")
            intercept = period.figure(f"calibration_intercept.landmark_{landmark}")
            assert realised is not None
            assert slope is not None
            assert intercept is not None
            assert realised.n == slope.n == intercept.n == at.sum() >= MIN_LABELLED
            assert realised.value == pytest.approx(auc(y, q), abs=1e-12)
            direct_slope, direct_intercept = calibration_slope_intercept(y, q)
            assert slope.value == pytest.approx(direct_slope)
            assert intercept.value == pytest.approx(direct_intercept)
    # the second period: everyone flagged, far above the design rates: alerts
    flags = report.periods[1].figure("flag_rate.high.all")
    assert flags is not None
    assert flags.value == pytest.approx(1.0)
    assert flags.status is Status.ALERT
    assert report.periods[0].figure("flag_rate.high.all").status is not Status.ALERT  # type: ignore[union-attr]
