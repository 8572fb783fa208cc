"""`GET /v1/monitoring` and `dropout-risk monitor` on a stored simulated clinic (issue 15).

The clinic is 400 simulated clients stored through the repository as the EHR API stores
them (sessions, the recomputed risk, the outcome), scored by the model of the session's
`trained_registry` (trained on the 1,500 clients of simulate(1500, 7), with a reference
profile). The undrifted clinic is 400 of those same clients: a new simulation would bring
new sites, and with them a legitimately different instrument mix (tests/training/
test_monitoring.py). The drifted one is the same clients simulated again with SRS-only
collection (one parameter moved, same seed). The endpoint's figures are compared with
training.monitoring.monitor on the same clients built directly from the simulator's
tables (window_from_tables: the training side's own path from the contract's tables to a
window).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.app import create_app
from service.core.settings import Settings
from service.scoring.monitoring_window import InvalidWindow, parse_window
from service.storage import repository as repo
from service.storage.tables import PredictionRow
from tests.support.helpers import CLINIC, REPO, create_key, db_session, updated_version
from tests.support.monitoring import CLIENTS, clinic_tables, store_clinic
from training.cli import run
from training.monitoring import MonitoredModel, Status, monitor, window_from_tables
from training.registry import LoadedModel, Registry, sha256_of
from training.simulate import SimulationParams, simulate

CALM, DRIFTED = "calm", "drifted"


@pytest.fixture
def served(database_url: str, trained_registry: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    model = Registry(trained_registry).load()
    settings = Settings(
        models_dir=trained_registry,
        database_url=database_url,
        pseudonym_key_file=tmp_path / "p.key",
    )
    tokens = {
        CALM: create_key(database_url, CALM, ["models:admin"]),
        DRIFTED: create_key(database_url, DRIFTED, ["models:admin"]),
        "reader": create_key(database_url, CALM, ["clients:read", "predict"]),
    }
    with TestClient(create_app(settings)) as http:
        yield {"http": http, "model": model, "tokens": tokens, "url": database_url}


def _get(served: dict[str, Any], token: str, window: str = "90d") -> Any:
    http: TestClient = served["http"]
    return http.get(
        f"/v1/monitoring?window={window}",
        headers={"Authorization": f"Bearer {served['tokens'][token]}"},
    )


def _cli(served: dict[str, Any], clinic: str, *extra: str) -> int:
    models = served["http"].app.state.settings.models_dir  # type: ignore[attr-defined]
    args = ["monitor", "--clinic", clinic, "--database-url", served["url"]]
    return run([*args, "--models-dir", str(models), *extra])


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_an_undrifted_clinic_matches_monitor_computed_directly_and_does_not_alert(
    served: dict[str, Any],
) -> None:
    model: LoadedModel = served["model"]
    clients, sessions = clinic_tables(None)
    stored = store_clinic(served["url"], model, CALM, clients, sessions)
    answer = _get(served, CALM)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    direct_window = window_from_tables(stored, clients, model.probability, (1, 2, 3))
    direct = monitor(MonitoredModel.from_metadata(model.meta), direct_window, CALM)
    assert body["clients"] == direct.clients > 300
    assert body["labelled"] == direct.labelled
    assert body["model_version"] == model.version
    assert [f["name"] for f in body["figures"]] == [f.name for f in direct.figures]
    for got, want in zip(body["figures"], direct.figures, strict=True):
        assert got["status"] == str(want.status), got["name"]
        assert _close(got["value"], want.value), (got["name"], got["value"], want.value)
        assert _close(got["n"], want.n), got["name"]
    assert body["alerts"] == [], body["alerts"]
    assert body["status"] != "alert"
    assert _cli(served, CALM) == 0
    assert _cli(served, CALM, "--window", "1d") == 0  # every risk was stored just now


def test_a_drifted_clinic_alerts_and_the_cli_exits_1(served: dict[str, Any]) -> None:
    srs_only = dataclasses.replace(SimulationParams(), site_mix=(0.0, 0.0, 1.0))
    clients, sessions = clinic_tables(srs_only)
    store_clinic(served["url"], served["model"], DRIFTED, clients, sessions)
    body = _get(served, DRIFTED).json()
    reports = served["http"].app.state.reports  # type: ignore[attr-defined]
    assert len(reports) == 1  # the route keeps the report it computed
    assert _get(served, DRIFTED).json() == body  # and answers the same from it
    assert body["status"] == "alert"
    assert "instrument.wai_sr.all" in body["alerts"]
    figure = next(f for f in body["figures"] if f["name"] == "instrument.wai_sr.all")
    assert "dropout-risk retrain --clinic drifted" in figure["next_step"]
    assert _cli(served, DRIFTED) == 1
    # the gauges: clinic, model version and figure as the only labels
    metrics = served["http"].get("/metrics").text
    series = (
        'dropout_risk_monitoring_figure_status{clinic="drifted",'
        f'figure="instrument.wai_sr.all",model_version="{served["model"].version}"}} 3.0'
    )
    assert series in metrics
    lines = [line for line in metrics.splitlines() if line.startswith("dropout_risk_monitoring")]
    labels = {tuple(re.findall(r'([a-z_]+)="', line.split("}")[0])) for line in lines}
    assert labels == {("clinic", "figure", "model_version")}
    # the other clinic's key sees its own (empty) clinic: too few, no alert
    calm = _get(served, CALM).json()
    assert len(reports) == 2
    assert calm["clients"] == 0
    assert calm["alerts"] == []


@pytest.mark.parametrize("window", ["abc", "0d", "731d", "90", "-1d", "1.5d", "90D"])
def test_a_bad_window_is_a_422_naming_window_and_exit_2(
    served: dict[str, Any], window: str, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = _get(served, CALM, window)
    assert answer.status_code == 422
    detail = answer.json()["detail"][0]
    assert detail["loc"] == "query.window"
    assert repr(window) in detail["msg"]
    assert "1 to 730" in detail["msg"]
    assert _cli(served, CALM, "--window", window) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: --window: value"), err


def test_a_key_without_models_admin_gets_403(served: dict[str, Any]) -> None:
    answer = _get(served, "reader")
    assert answer.status_code == 403
    assert "models:admin" in answer.json()["detail"][0]["msg"]


def _registry_without_profile(root: Path) -> Path:
    """A copy of the shipped registry whose champion's metadata has no reference profile,
    as an artifact written before profiles existed (hashes in registry.json updated)."""
    models = root / "models"
    shutil.copytree(REPO / "models", models)
    version = Registry(models).read()["champion"]
    meta_path = models / version / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["reference_profile"]
    meta_path.write_text(json.dumps(meta, indent=2))
    index = json.loads((models / "registry.json").read_text())
    for entry in index["versions"]:
        if entry["version"] == version:
            entry["metadata_sha256"] = sha256_of(meta_path)
    (models / "registry.json").write_text(json.dumps(index, indent=2))
    return models


def test_a_model_without_a_profile_answers_no_reference_profile(
    database_url: str, tmp_path: Path
) -> None:
    models = _registry_without_profile(tmp_path)
    settings = Settings(
        models_dir=models, database_url=database_url, pseudonym_key_file=tmp_path / "k"
    )
    token = create_key(database_url, CALM, ["models:admin"])
    model = Registry(models).load()
    assert model.meta.reference_profile is None
    clients, sessions = simulate(150, 3)
    store_clinic(database_url, model, CALM, clients, sessions)
    with TestClient(create_app(settings)) as http:
        answer = http.get("/v1/monitoring", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["messages"]
    assert "no reference profile" in body["messages"][0]
    expected = [f for f in body["figures"] if f["kind"].startswith("expected")]
    assert expected
    assert {f["status"] for f in expected} == {str(Status.NO_REFERENCE)}


def test_parse_window() -> None:
    assert parse_window("1d") == 1
    assert parse_window("730d") == 730
    with pytest.raises(InvalidWindow, match="window: value 'x'"):
        parse_window("x")


def test_monitor_watches_the_model_serving_the_clinic(
    updated_registry: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dropout-risk monitor --clinic C` watches C's own champion when it has one, as
    GET /v1/monitoring does (the network default otherwise)."""
    models = tmp_path / "models"
    shutil.copytree(updated_registry, models)
    registry = Registry(models)
    default, local = registry.champion_of(None), updated_version(models)
    registry.promote(local, clinic=CLINIC)
    url = f"sqlite:///{tmp_path / 'service.db'}"
    for clinic, version in ((CLINIC, local), ("clinic-b", default)):
        args = ["monitor", "--clinic", clinic, "--database-url", url, "--models-dir", str(models)]
        assert run(args) == 0
        assert capsys.readouterr().out.startswith(f"clinic {clinic}, model {version}, ")


def test_the_next_step_counts_every_labelled_episode_of_the_clinic(
    served: dict[str, Any],
) -> None:
    """A retrain learns from every stored outcome of the clinic, not only the window's:
    `labelled_episodes` counts them all, `labelled` the window's."""
    clients, sessions = clinic_tables(None)
    store_clinic(served["url"], served["model"], CALM, clients, sessions)
    early = sorted(clients["client_id"])[:150]
    with db_session(served["url"]) as s:  # their risks were answered four months ago
        s.execute(
            update(PredictionRow)
            .where(PredictionRow.client_id.in_(early))
            .values(computed_at=datetime.now(UTC) - timedelta(days=120))
        )
        dropouts, completers = repo.outcome_counts(s, CALM)
    body = _get(served, CALM).json()
    assert dropouts + completers == int(clients["dropout"].notna().sum()) > 300
    assert body["labelled_episodes"] == dropouts + completers
    assert body["labelled"] < body["labelled_episodes"]
    assert body["clients"] < CLIENTS - 100
