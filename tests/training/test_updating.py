"""Local updating (training/updating.py, training/update.py, `dropout-risk update`): the
closed test picks the least extensive update the data ask for and keeps its type I error;
the updated model is an sklearn estimator that scores exactly alike through predict_proba
and the compiled predictor the service uses; bad input exits 2 and writes nothing."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator

from tests.support.helpers import CLINIC, CLINIC_WORLD, REPO, cohort_args, updated_version
from training.cli import run
from training.contract import Cohort, load_cohort
from training.model import CalibratedModel, predictor
from training.monitoring import MonitoredModel, Status, monitor, window_from_tables
from training.registry import LoadedModel, Registry, sha256_of
from training.simulate import simulate, write_cohort, write_tables
from training.train import _fingerprint, labelled_examples
from training.update import Plan, _rows, plan_update
from training.updating import (
    INTERCEPT,
    KEEP,
    RECALIBRATE,
    REVISE,
    UpdatedModel,
    _Local,
    _NestedFits,
    chain_of,
    landmark_groups,
)
from training.worlds import draw_world, world_prefix, world_seed

LANDMARKS = (1, 2, 3)


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return Registry(REPO / "models").load()


def _mixture(folder: Path, per_world: int, seed: int, shift: float = 0.0) -> Cohort:
    """The shipped model's own world, a mixture of worlds 0-23 (make shipped-model), with
    every world's dropout rate raised by `shift` and nothing else changed."""
    clients, sessions = [], []
    for k in range(24):
        params = draw_world(k)
        params = dataclasses.replace(params, dropout_rate=min(0.9, params.dropout_rate + shift))
        c, s = simulate(per_world, world_seed(seed, k), params)
        prefix = world_prefix(k)
        c = c.assign(
            client_id=prefix + c["client_id"].astype(str),
            therapist_id=prefix + c["therapist_id"].astype("string"),
        )
        clients.append(c)
        sessions.append(s.assign(client_id=prefix + s["client_id"].astype(str)))
    write_tables(
        folder, pd.concat(clients, ignore_index=True), pd.concat(sessions, ignore_index=True), {}
    )
    return load_cohort(folder / "sessions.csv", folder / "clients.csv", True, [])


def _plan(shipped: LoadedModel, cohort: Cohort, method: str = "auto") -> Plan:
    rows = _rows(labelled_examples(cohort, LANDMARKS), shipped.model)
    return plan_update(rows, LANDMARKS, method)


def test_the_closed_test_keeps_the_model_on_data_from_its_training_world(
    shipped: LoadedModel, tmp_path: Path
) -> None:
    plan = _plan(shipped, _mixture(tmp_path, 20, 1000))
    assert plan.method == KEEP
    (test,) = plan.test.tests  # keep was not rejected: nothing else needed testing
    assert test.hypothesis == "keep"
    assert not test.rejected
    assert test.p_value > 0.05
    # against recalibration with an intercept and a slope per landmark group
    assert test.against.startswith(RECALIBRATE)
    assert test.df == len(plan.intercept_groups) + len(plan.slope_groups)


def test_the_type_one_error_is_kept(shipped: LoadedModel, tmp_path: Path) -> None:
    """24 draws of 480 clients from the model's own world: "keep" wins in at least 90%
    (a nominal 5% error would lose about one draw; the plain likelihood-ratio test, which
    counts a client's three landmark rows as three clients, lost a third of them)."""
    chosen = [
        _plan(shipped, _mixture(tmp_path / str(seed), 20, 2000 + seed)).method for seed in range(24)
    ]
    assert chosen.count(KEEP) / len(chosen) >= 0.9, chosen


@pytest.mark.parametrize("seed", [0, 1])
def test_intercept_or_recalibration_when_only_the_dropout_rate_differs(
    shipped: LoadedModel, tmp_path: Path, seed: int
) -> None:
    plan = _plan(shipped, _mixture(tmp_path, 40, seed, shift=0.15))
    assert plan.method in (INTERCEPT, RECALIBRATE)
    assert plan.test.tests[0].hypothesis == "keep"
    assert plan.test.tests[0].rejected
    assert plan.test.tests[0].p_value < 0.001
    assert not plan.test.tests[-1].rejected


def test_revision_when_the_effects_differ_and_the_sample_is_large(
    shipped: LoadedModel, tmp_path: Path
) -> None:
    """The literature-centred world keeps a strong spacing effect the shipped model
    leaves out (docs/transport.md): its effects differ."""
    write_cohort(tmp_path, 3000, seed=50)
    cohort = load_cohort(tmp_path / "sessions.csv", tmp_path / "clients.csv", True, [])
    plan = _plan(shipped, cohort)
    assert plan.method == REVISE
    assert all(t.rejected and t.against == REVISE for t in plan.test.tests)
    assert len(plan.test.tests) == 5  # keep, two intercepts, two recalibrations
    assert {a.method: a.allowed for a in plan.allowances}["refit"] is False  # < Riley minimum


def test_the_rao_scott_correction_counts_a_client_once() -> None:
    """Three identical rows of one client carry one client's evidence: the statistic
    triples, the design effect triples, the p-value does not move."""
    rng = np.random.default_rng(3)
    n = 3000
    logit = rng.normal(-1.0, 0.8, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + logit)))).astype(np.float64)
    landmark = np.ones(n, dtype=np.int64)
    chain = chain_of(((1,),), ((1,),), RECALIBRATE)
    assert [c.label for c in chain] == [
        "keep",
        "intercept: pooled intercept",
        "recalibrate: pooled intercept, pooled slope",
    ]
    one = _NestedFits(_Local(logit, landmark, y, np.arange(n)), None, chain[-1]).test(chain[0])
    tripled = _NestedFits(
        _Local(
            np.repeat(logit, 3), np.repeat(landmark, 3), np.repeat(y, 3), np.repeat(np.arange(n), 3)
        ),
        None,
        chain[-1],
    ).test(chain[0])
    assert tripled.statistic == pytest.approx(3 * one.statistic, rel=1e-8)
    assert tripled.design_effect == pytest.approx(3 * one.design_effect, rel=1e-8)
    assert tripled.p_value == pytest.approx(one.p_value, rel=1e-8)
    assert one.df == 2
    assert one.rejected


def test_landmarks_share_parameters_until_they_have_support() -> None:
    """50 clients of each outcome for an intercept of one's own: landmark 3 has 30
    dropouts, so it joins landmark 2; with 100 required, everything is pooled."""
    per = {1: (60, 200), 2: (55, 180), 3: (30, 150)}
    landmark, y, client = [], [], []
    for k, (dropouts, completers) in per.items():
        for i in range(dropouts + completers):
            landmark.append(k)
            y.append(1.0 if i < dropouts else 0.0)
            client.append(k * 1000 + i)
    args = (np.array(landmark), np.array(y), np.array(client), LANDMARKS)
    assert landmark_groups(*args, 50) == ((1,), (2, 3))
    assert landmark_groups(*args, 100) == ((1, 2, 3),)
    assert landmark_groups(*args, 30) == ((1,), (2,), (3,))


def test_a_grouping_of_one_group_adds_no_step_to_the_chain() -> None:
    labels = [c.label for c in chain_of(((1, 2, 3),), ((1, 2, 3),), REVISE)]
    assert labels == [
        "keep",
        "intercept: pooled intercept",
        "recalibrate: pooled intercept, pooled slope",
        "revise",
    ]
    assert len(chain_of(((1,), (2,), (3,)), ((1,), (2, 3)), REVISE)) == 6
    assert [c.method for c in chain_of(((1,), (2,)), ((1, 2),), INTERCEPT)] == [
        KEEP,
        INTERCEPT,
        INTERCEPT,
    ]


def _clinic_rows(clinic_cohort: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cohort = load_cohort(clinic_cohort / "sessions.csv", clinic_cohort / "clients.csv", True, [])
    data = labelled_examples(cohort, LANDMARKS)
    return data.examples.X, data.y.astype(np.float64), data.examples.row_client


@pytest.mark.parametrize("method", [KEEP, INTERCEPT, RECALIBRATE, REVISE])
def test_the_compiled_predictor_equals_predict_proba(
    shipped: LoadedModel, clinic_cohort: Path, method: str
) -> None:
    """What the service scores (training.model.predictor) is what predict_proba gives,
    to 1e-9, for the shipped model updated on a simulated clinic; with NaN landmarks and
    landmarks outside the fitted ones too."""
    X, y, client = _clinic_rows(clinic_cohort)
    model = UpdatedModel(FrozenEstimator(shipped.model), method).fit(X, y, client)
    odd = X[:50].copy()
    odd[:10, 0] = np.nan
    odd[10:20, 0] = 7.0
    for rows in (X, odd, np.asfortranarray(X[:300])):
        fast = predictor(model)(rows)
        np.testing.assert_allclose(fast, model.predict_proba(rows)[:, 1], rtol=0, atol=1e-9)
    p = model.predict_proba(X)[:, 1]
    if method == KEEP:
        np.testing.assert_allclose(p, shipped.model.predict_proba(X)[:, 1], atol=1e-12)
    else:  # the update moves the mean risk to the clinic's 35% (the parent says less)
        parent = shipped.model.predict_proba(X)[:, 1]
        assert abs(p.mean() - y.mean()) < 0.01 < abs(parent.mean() - y.mean())
    if method == REVISE:
        assert model.shrinkage_ is not None
        assert 0 < model.shrinkage_ < 1


def test_the_updated_model_keeps_scikit_learns_rules(
    shipped: LoadedModel, clinic_cohort: Path
) -> None:
    X, y, client = _clinic_rows(clinic_cohort)
    template = UpdatedModel(FrozenEstimator(shipped.model), RECALIBRATE)
    with pytest.raises(NotFittedError):
        template.predict_proba(X)
    fitted = clone(template).fit(X, y, client)
    again = clone(fitted)  # parameters only: the frozen parent stays fitted
    with pytest.raises(NotFittedError):
        again.predict(X)
    again.fit(X, y, client)
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    labels = fitted.predict(X)
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (fitted.predict_proba(X)[:, 1] >= 0.5).astype(int))
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    assert fitted.intercept_groups_ == ((1,), (2,), (3,))
    assert fitted.slope_groups_ == ((1,), (2,), (3,))


def test_update_registers_a_new_version_with_its_lineage_never_promoted(
    updated_registry: Path, clinic_cohort: Path
) -> None:
    registry = Registry(updated_registry)
    index = registry.index()
    version = updated_version(updated_registry)
    shipped = Registry(REPO / "models").index()
    assert index.champion == shipped.champion
    assert index.clinic_champions == {}
    entry = registry.entry(version)
    assert entry.parent == shipped.champion
    # the shipped model under-predicts this clinic and is too timid at its SRS-only site
    assert entry.method == RECALIBRATE
    loaded = registry.load(version)
    lineage = loaded.metadata["lineage"]
    files = [clinic_cohort / "sessions.csv", clinic_cohort / "clients.csv"]
    assert lineage == {
        "parent": shipped.champion,
        "parent_sha256": shipped.versions[0].sha256,
        "method": RECALIBRATE,
        "clinic": CLINIC,
        "fingerprint": _fingerprint(files),
    }
    update = loaded.metadata["update"]
    tests = update["closed_test"]["tests"]
    assert tests[0]["hypothesis"] == "keep"
    assert tests[0]["rejected"]
    assert all({"statistic", "df", "p_value", "design_effect"} <= t.keys() for t in tests)
    assert update["sample"]["clients"] == 800
    assert [r["landmark"] for r in update["sample"]["per_landmark"]] == [1, 2, 3]
    assert "out of fold" in update["evaluation"]
    assert update["why"].startswith("closed test")
    allowed = {a["method"]: a["allowed"] for a in update["allowed"]}
    assert allowed == {
        "keep": True,
        "intercept": True,
        "recalibrate": True,
        "revise": False,
        "refit": False,
    }
    # the out-of-fold figures: the parent under-predicts a 35% clinic, the update does not
    before = update["parent_on_local_data"]["per_landmark"]
    after = loaded.metadata["metrics"]["per_landmark"]
    assert all(b["calibration_intercept"] > 0.2 for b in before)
    assert all(abs(a["calibration_intercept"]["estimate"]) < 0.15 for a in after)
    card = (updated_registry / version / "model_card.md").read_text()
    assert f"A local update of model {shipped.champion} for clinic {CLINIC}" in card
    assert "## Local update" in card
    assert "Closed test (Vergouwe et al. 2017)" in card
    assert "out of fold" in (updated_registry / version / "report.html").read_text()
    # servable exactly like a trained model: the loader's predictor is the model's own
    X, _, _ = _clinic_rows(clinic_cohort)
    assert isinstance(loaded.model, UpdatedModel)
    np.testing.assert_allclose(
        loaded.probability(X), loaded.model.predict_proba(X)[:, 1], rtol=0, atol=1e-9
    )


def _no_labels(clinic_cohort: Path, folder: Path) -> list[str]:
    folder.mkdir()
    clients = pd.read_csv(clinic_cohort / "clients.csv").drop(columns="dropout")
    clients.to_csv(folder / "clients.csv", index=False)
    return [
        "--sessions",
        str(clinic_cohort / "sessions.csv"),
        "--clients",
        str(folder / "clients.csv"),
    ]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown version", "model version 'nope' is not registered"),
        ("no labels", "clients.csv: column 'dropout' is missing"),
        ("unknown method", "--method: value 'all' is not one of: auto, keep, intercept"),
        ("revise too small", "--method revise: the local sample is too small for it: 10 clients"),
        (
            "refit too small",
            "--method refit: the local sample is too small for it: the sample-size",
        ),
        ("bad clinic", "--clinic: value 'a b' is not a clinic id (1-64 characters"),
        ("too few to update", "update: too few labelled clients to update anything"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    case: str,
    expected: str,
    clinic_cohort: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    before = sha256_of(models / "registry.json")
    data = cohort_args(clinic_cohort)
    args = {
        "unknown version": ["--model", "nope", *data],
        "no labels": ["--model", "champion", *_no_labels(clinic_cohort, tmp_path / "nolabels")],
        "unknown method": ["--model", "champion", *data, "--method", "all"],
        "revise too small": ["--model", "champion", *data, "--method", "revise"],
        "refit too small": ["--model", "champion", *data, "--method", "refit"],
        "bad clinic": ["--model", "champion", *data, "--clinic", "a b"],
    }.get(case)
    if args is None:  # 60 clients: fewer than 50 of each outcome
        write_cohort(tmp_path / "tiny", 60, seed=2)
        args = ["--model", "champion", *cohort_args(tmp_path / "tiny")]
    assert run(["update", *args, "--models-dir", str(models)]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err
    assert "\nerror: " in f"\n{captured.err}"  # one error, after the spinner's lines
    assert "Traceback" not in captured.err
    assert sha256_of(models / "registry.json") == before
    assert sorted(p.name for p in models.iterdir()) == sorted(
        p.name for p in (REPO / "models").iterdir()
    )


def test_update_prints_the_tests_and_the_version_last(
    updated_registry: Path, clinic_cohort: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(updated_registry, models)
    args = ["update", "--model", "champion", *cohort_args(clinic_cohort), "--method", "keep"]
    assert run([*args, "--clinic", CLINIC, "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    version = out[-1]
    meta = json.loads((models / version / "metadata.json").read_text())
    assert meta["lineage"]["method"] == KEEP
    assert meta["update"]["why"].startswith(
        "keep asked for (the closed test would choose recalibrate"
    )
    assert any(
        line.startswith("test        keep vs recalibrate") and "-> rejected" in line for line in out
    )
    assert any(line.startswith("sample      landmark 1: 800 clients") for line in out)
    assert Registry(models).index().champion == Registry(REPO / "models").index().champion


def test_compare_on_the_update_s_own_files_sees_what_update_reported(
    updated_registry: Path, clinic_cohort: Path
) -> None:
    """Out of fold is reproducible: compare scores the update on its own clients exactly
    as update did (the same folds), never on its own fit."""
    from training.compare import compare

    version = updated_version(updated_registry)
    cohort = load_cohort(clinic_cohort / "sessions.csv", clinic_cohort / "clients.csv", True, [])
    files = (clinic_cohort / "sessions.csv", clinic_cohort / "clients.csv")
    result = compare(
        Registry(updated_registry), "champion", version, cohort, files, CLINIC, lambda _: None
    )
    assert result.challenger.out_of_fold
    assert not result.champion.out_of_fold
    reported = Registry(updated_registry).load(version).metadata["metrics"]
    for key in ("auc", "brier", "log_loss"):
        figure = getattr(result.challenger.results.overall, key)
        assert figure.estimate == reported["overall"][key]["estimate"]
        assert list(figure.ci95) == reported["overall"][key]["ci95"]


@pytest.mark.slow
def test_refit_when_the_sample_meets_the_sample_size_minimum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """4,000 clients at a 35% clinic meet the minimum train uses (about 3,850 here), so
    refit is allowed: the full training pipeline on the local data, out-of-fold figures."""
    write_cohort(tmp_path / "big", 4000, seed=31, params=CLINIC_WORLD)
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    args = ["update", "--model", "champion", *cohort_args(tmp_path / "big"), "--method", "refit"]
    assert run([*args, "--models-dir", str(models)]) == 0
    version = capsys.readouterr().out.strip().splitlines()[-1]
    loaded = Registry(models).load(version)
    assert isinstance(loaded.model, CalibratedModel)
    assert loaded.metadata["lineage"]["method"] == "refit"
    assert loaded.metadata["sample_size"]["met"] is True
    assert {a["method"]: a["allowed"] for a in loaded.metadata["update"]["allowed"]}["refit"]
    assert loaded.metadata["selection"]["cv"].endswith("lowest Brier wins")
    assert "on all local clients" in loaded.metadata["selection"]["cv"]
    card = (models / version / "model_card.md").read_text()
    assert "Update method:** refit" in card
    assert loaded.metadata["thresholds"]["rule"].startswith("kept from the parent")


def test_an_updated_model_carries_the_profile_of_the_clinic_it_was_updated_on(
    updated_registry: Path, clinic_cohort: Path
) -> None:
    """Monitoring at the clinic then compares the clinic with itself at the time of the
    update: the SRS-only site the update corrected for is no longer a drift."""
    version = updated_version(updated_registry)
    updated = Registry(updated_registry).load(version)
    parent = Registry(updated_registry).load(updated.meta.lineage.parent)  # type: ignore[union-attr]
    profile = updated.meta.reference_profile
    assert profile is not None
    sessions = pd.read_csv(clinic_cohort / "sessions.csv")
    clients = pd.read_csv(clinic_cohort / "clients.csv")
    assert profile.clients == sessions["client_id"].nunique()
    assert profile.instruments["wai_sr"] == 0.0  # an SRS-only site
    assert parent.meta.reference_profile is not None
    assert parent.meta.reference_profile.instruments["wai_sr"] > 0.5
    landmarks = tuple(updated.meta.landmarks)
    window = window_from_tables(sessions, clients, updated.probability, landmarks)
    for model, alerted in ((updated, False), (parent, True)):
        report = monitor(MonitoredModel.from_metadata(model.meta), window, CLINIC)
        assert (report.figure("instrument.wai_sr.all").status is Status.ALERT) is alerted
