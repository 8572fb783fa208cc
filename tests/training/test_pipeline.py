"""train -> promote -> predict end to end, the artifact and registry contract, tampering."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.helpers import train
from training.cli import run
from training.errors import ArtifactError
from training.features import FEATURES
from training.registry import Registry, sha256_of


def _train(cohort: Path, models: Path, *extra: str) -> str:
    assert train(cohort, models, *extra) == 0
    return str(Registry(models).read()["versions"][-1]["version"])


def _predict(cohort: Path, models: Path, out: Path, *extra: str) -> pd.DataFrame:
    status = run(
        [
            "predict",
            "--models-dir",
            str(models),
            "--model",
            "champion",
            "--sessions",
            str(cohort / "sessions.csv"),
            "--out",
            str(out),
            *extra,
        ]
    )
    assert status == 0
    return pd.read_csv(out)


def test_artifact_and_metadata(trained_registry: Path) -> None:
    registry = json.loads((trained_registry / "registry.json").read_text())
    version = registry["champion"]
    folder = trained_registry / version
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json",
        "model.joblib",
        "model_card.md",
        "report.html",
    ]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["version"] == version
    assert meta["sha256"] == sha256_of(folder / "model.joblib")
    assert registry["versions"][0]["sha256"] == meta["sha256"]
    assert meta["sklearn_version"] == "1.9.1"
    assert meta["landmarks"] == [1, 2, 3]
    assert meta["features"] == list(FEATURES)
    assert meta["instruments"] == ["ors", "phq9", "srs", "wai_sr"]
    assert meta["training_data"]["simulated"] is True
    assert meta["training_data"]["n_clients"] == 1500
    assert len(meta["training_data"]["fingerprint"]) == 64
    assert list(meta["feature_range"]) == list(FEATURES)
    assert meta["feature_range"]["landmark"] == [1.0, 3.0]
    assert meta["worlds"] == [
        {"world": None, "params": meta["training_data"]["simulator"]["params"]}
    ]
    assert meta["selection"]["folds_hold_out"] == "clients"
    auc = meta["metrics"]["overall"]["auc"]
    assert 0.55 < auc["estimate"] < 0.8
    assert auc["ci95"][0] < auc["estimate"] < auc["ci95"][1]
    th = meta["thresholds"]
    assert 0 < th["moderate"] < th["high"] < 1
    assert 0.1 < th["validation"]["high"]["flag_rate"] < 0.2
    assert {r["estimator"] for r in meta["selection"]["candidates"]} == {
        "logistic_regression",
        "hist_gradient_boosting",
    }
    assert (folder / "model.joblib").stat().st_size < 5_000_000
    assert "simulated" in (folder / "model_card.md").read_text().lower()


def test_predict_scores_each_client_at_latest_landmark(
    trained_registry: Path, small_cohort: Path, tmp_path: Path
) -> None:
    preds = _predict(small_cohort, trained_registry, tmp_path / "preds.csv")
    sessions = pd.read_csv(small_cohort / "sessions.csv")
    reached = sessions.groupby("client_id")["session_number"].max()
    assert list(preds.columns) == [
        "client_id",
        "landmark_session",
        "probability",
        "risk_level",
        "model_version",
    ]
    assert len(preds) == reached.size
    expected = np.minimum(reached.reindex(preds["client_id"]).to_numpy(), 3)
    np.testing.assert_array_equal(preds["landmark_session"].to_numpy(), expected)
    meta = Registry(trained_registry).load().metadata
    th = meta["thresholds"]
    level = np.where(
        preds["probability"] >= th["high"],
        "high",
        np.where(preds["probability"] >= th["moderate"], "moderate", "low"),
    )
    assert (preds["risk_level"].to_numpy() == level).all()
    assert set(preds["model_version"]) == {meta["version"]}
    assert preds["probability"].between(0, 1).all()


def test_chunked_prediction_equals_whole_file(
    trained_registry: Path, small_cohort: Path, tmp_path: Path
) -> None:
    whole = _predict(
        small_cohort,
        trained_registry,
        tmp_path / "a.csv",
        "--clients",
        str(small_cohort / "clients.csv"),
    )
    chunked = _predict(
        small_cohort,
        trained_registry,
        tmp_path / "b.csv",
        "--chunk-rows",
        "1000",
        "--clients",
        str(small_cohort / "clients.csv"),
    )
    pd.testing.assert_frame_equal(whole, chunked)


def test_split_client_rows_refused_without_output(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = pd.read_csv(small_cohort / "sessions.csv")
    shuffled = pd.concat([sessions.iloc[1:], sessions.iloc[:1]])
    (tmp_path / "in").mkdir()
    shuffled.to_csv(tmp_path / "in" / "sessions.csv", index=False)
    status = run(
        [
            "predict",
            "--models-dir",
            str(trained_registry),
            "--model",
            "champion",
            "--sessions",
            str(tmp_path / "in" / "sessions.csv"),
            "--out",
            str(tmp_path / "p.csv"),
            "--chunk-rows",
            "1000",
        ]
    )
    assert status == 2
    assert "rows of client 'C000001' are not contiguous" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    assert list(tmp_path.glob(".*partial")) == []


def test_promote_and_reproducibility(small_cohort: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = _train(small_cohort, models, "--seed", "3")
    again = _train(small_cohort, tmp_path / "other", "--seed", "3")
    a = _predict(small_cohort, models, tmp_path / "a.csv")
    b = _predict(small_cohort, tmp_path / "other", tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)  # same data and seed, same model and predictions
    assert first == again
    second = _train(small_cohort, models, "--seed", "4", "--thresholds", "0.2,0.3")
    assert Registry(models).read()["champion"] == first  # a new version is not promoted
    promote = ["models", "promote", second, "--models-dir", str(models)]
    assert run(promote) == 2  # no comparison against the champion (training/promotion.py)
    assert Registry(models).read()["champion"] == first
    assert run([*promote, "--force", "--reason", "test: fixed thresholds 0.2,0.3"]) == 0
    assert Registry(models).read()["champion"] == second
    assert Registry(models).load().metadata["thresholds"]["high"] == 0.3
    third = _train(small_cohort, models, "--seed", "5", "--promote")
    assert Registry(models).read()["champion"] == third


def test_tampered_artifact_refused(
    trained_registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(trained_registry, models)
    version = Registry(models).read()["champion"]
    path = models / version / "model.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        Registry(models).load()
    status = run(
        [
            "predict",
            "--models-dir",
            str(models),
            "--model",
            version,
            "--sessions",
            "x.csv",
            "--out",
            str(tmp_path / "p.csv"),
        ]
    )
    assert status == 2
    assert "refusing to load a modified artifact" in capsys.readouterr().err


def test_edited_metadata_and_other_sklearn_refused(trained_registry: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(trained_registry, models)
    version = Registry(models).read()["champion"]
    meta_path = models / version / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["thresholds"]["high"] = 0.99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=r"metadata\.json does not match"):
        Registry(models).load()
    meta["thresholds"]["high"] = json.loads(
        (trained_registry / version / "metadata.json").read_text()
    )["thresholds"]["high"]
    meta["sklearn_version"] = "1.5.0"
    meta_path.write_text(json.dumps(meta))
    registry = json.loads((models / "registry.json").read_text())
    registry["versions"][0]["metadata_sha256"] = sha256_of(meta_path)
    (models / "registry.json").write_text(json.dumps(registry))
    with pytest.raises(ArtifactError, match=r"trained with scikit-learn 1\.5\.0"):
        Registry(models).load()


def test_unknown_version_and_empty_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["models", "promote", "nope", "--models-dir", str(tmp_path)]) == 2
    assert "no champion" not in capsys.readouterr().err
    assert run(["models", "list", "--models-dir", str(tmp_path)]) == 0
    assert "no models registered" in capsys.readouterr().out


def test_evaluate_writes_report(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.html"
    status = run(
        [
            "evaluate",
            "--model",
            "champion",
            "--models-dir",
            str(trained_registry),
            "--sessions",
            str(small_cohort / "sessions.csv"),
            "--clients",
            str(small_cohort / "clients.csv"),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    html = out.read_text()
    assert "<svg" in html
    assert "simulated" in html.lower()
    assert "AUC" in capsys.readouterr().out


def test_train_needs_labels(
    small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clients = pd.read_csv(small_cohort / "clients.csv").drop(columns="dropout")
    clients.to_csv(tmp_path / "clients.csv", index=False)
    status = run(
        [
            "train",
            "--sessions",
            str(small_cohort / "sessions.csv"),
            "--clients",
            str(tmp_path / "clients.csv"),
            "--models-dir",
            str(tmp_path / "m"),
        ]
    )
    assert status == 2
    assert "column 'dropout' is missing" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_site_with_only_srs_and_ors(tmp_path: Path) -> None:
    """A clinic that never collects WAI-SR trains and scores without its columns at all."""
    cohort = tmp_path / "cohort"
    assert (
        run(
            [
                "simulate",
                "--clients",
                "1200",
                "--seed",
                "4",
                "--out",
                str(cohort),
                "--set",
                "site_mix=0,0,1",
            ]
        )
        == 0
    )
    sessions = pd.read_csv(cohort / "sessions.csv")
    sessions.drop(columns=["wai_goal", "wai_task", "wai_bond"]).to_csv(
        cohort / "sessions.csv", index=False
    )
    version = _train(cohort, tmp_path / "models")
    meta = Registry(tmp_path / "models").load(version).metadata
    assert meta["instruments"] == ["ors", "phq9", "srs"]
    preds = _predict(cohort, tmp_path / "models", tmp_path / "p.csv")
    assert len(preds) == 1200
    assert set(preds["risk_level"]) >= {"low", "high"}


def _evaluate(models: Path, cohort: Path, out: Path) -> int:
    sessions, clients = str(cohort / "sessions.csv"), str(cohort / "clients.csv")
    args = ["--models-dir", str(models), "--sessions", sessions, "--clients", clients]
    return run(["evaluate", "--model", "champion", *args, "--out", str(out)])


def test_evaluate_says_when_the_clinic_rule_beats_the_model(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Relabelled so that dropout is exactly "first SRS below 36": the rule is near perfect,
    the model (trained on the real labels) is not, and both the CLI and the report say so."""
    shutil.copy(small_cohort / "sessions.csv", tmp_path / "sessions.csv")
    sessions = pd.read_csv(small_cohort / "sessions.csv")
    first = sessions[sessions["session_number"] == 1].set_index("client_id")["srs_total"]
    clients = pd.read_csv(small_cohort / "clients.csv")
    clients["dropout"] = (clients["client_id"].map(first) < 36).astype(int)
    clients.to_csv(tmp_path / "clients.csv", index=False)
    assert _evaluate(trained_registry, tmp_path, tmp_path / "eval.html") == 0
    err = capsys.readouterr().err
    assert 'warning: The model does not beat the clinic rule "last SRS < 36"' in err
    html = (tmp_path / "eval.html").read_text()
    body = html[html.index("<main>") :]
    assert 'id="verdict"' in body[: body.index("Headline metrics")]


def test_evaluate_on_the_training_cohort_beats_the_rules_and_reports_them(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _evaluate(trained_registry, small_cohort, tmp_path / "eval.html") == 0
    captured = capsys.readouterr()
    assert "does not beat" not in captured.err
    html = (tmp_path / "eval.html").read_text()
    assert "Against the clinic rules" in html
    rules = re.findall(
        r"^rules +vs (.+?) \(([\d,]+) examples\): AUC (\d\.\d{3}) / (\d\.\d{3}); "
        r"moderate \(.+?\) sensitivity .+; high \(.+?\) sensitivity .+$",
        captured.out,
        flags=re.M,
    )
    assert [r[0] for r in rules] == [
        "last SRS < 36",
        "any SRS < 36 so far",
        "logistic on mean WAI-SR",
    ]
    for label, n, model_auc, rule_auc in rules:  # the CLI prints what the report tabulates
        assert float(model_auc) > float(rule_auc)
        cells = f'<td class="num">{n}</td><td class="num">{model_auc} vs {rule_auc}</td>'
        assert cells in html, label
    assert re.search(r"^cal\. k=1 +slope \d", captured.out, flags=re.M)
    assert re.search(r"^cal\. pooled slope .+\(secondary\)$", captured.out, flags=re.M)
    assert "Instrument set" in html
    assert "percentile cluster bootstrap (200 replicates) over therapists" in html


def test_metadata_is_strict_json_with_baselines_and_sample_size(trained_registry: Path) -> None:
    version = Registry(trained_registry).read()["champion"]
    text = (trained_registry / version / "metadata.json").read_text()

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON constant {token}")

    meta = json.loads(text, parse_constant=refuse)
    names = [rule["name"] for rule in meta["metrics"]["baselines"]["rules"]]
    assert names == ["srs_last_below_36", "srs_any_below_36", "wai_mean_logistic"]
    assert meta["metrics"]["bootstrap"]["unit"] == "therapist"
    assert meta["sample_size"]["allow_small"] is True
