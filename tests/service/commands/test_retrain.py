"""`dropout-risk retrain --clinic C`, the whole loop on a clinic of another world: the
service stores its sessions and outcomes, retrain makes a challenger that compare finds
better calibrated, the clinic's admin promotes it, and the service serves it to that
clinic only."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update as sql_update

from service.app import create_app
from service.commands.demo import contract_episodes, store_episodes
from service.core.examples import EXAMPLE_EPISODE
from service.core.settings import Settings
from service.storage.tables import PredictionRow
from tests.support.helpers import CLINIC, CLINIC_WORLD, REPO, create_key, db_session
from training.cli import run
from training.registry import LoadedModel, Registry
from training.simulate import simulate

OTHER = "clinic-b"


def _store_clinic(url: str, cohort: Path, model: LoadedModel) -> int:
    """The labelled clients of `cohort` (CLINIC_WORLD) stored for CLINIC with their
    outcomes and their risk by `model`, 20 more without an outcome (retrain must leave them
    out), and five clients of another clinic; returns the labelled count."""
    clients = pd.read_csv(cohort / "clients.csv")
    episodes = contract_episodes(clients, pd.read_csv(cohort / "sessions.csv"))
    extra_clients, extra_sessions = simulate(25, 5, CLINIC_WORLD)
    unlabelled = contract_episodes(extra_clients.drop(columns="dropout"), extra_sessions)
    for e in unlabelled:
        e["client_id"] = f"U-{e['client_id']}"
    with db_session(url) as s:
        store_episodes(s, CLINIC, episodes + unlabelled[:20], model)
        store_episodes(s, OTHER, unlabelled[20:], model)
    return len(episodes)


def test_the_loop_from_stored_outcomes_to_a_local_champion(
    database_url: str, clinic_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    default = Registry(models).champion_of(None)
    admin = create_key(database_url, CLINIC, ["predict", "models:admin", "clients:read"])
    other = create_key(database_url, OTHER, ["predict", "clients:read"])
    labelled = _store_clinic(database_url, clinic_cohort, Registry(models).load())
    args = ["--clinic", CLINIC, "--database-url", database_url, "--models-dir", str(models)]
    # the drift alert that starts the loop: the network default watched at this clinic
    assert run(["monitor", *args]) == 1
    before = _alerts(capsys.readouterr().out)
    assert set(before) >= DRIFT, sorted(before)
    assert before["instrument.wai_sr.all"].endswith("dropout-risk retrain --clinic site-a")
    out = tmp_path / "retrain"
    assert run(["retrain", *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    challenger = printed[-1]
    assert printed[0].startswith(f"exported    {labelled:,} clients with an outcome")
    assert f"to promote  dropout-risk models promote {challenger} --clinic {CLINIC}" in printed
    assert (out / "compare.html").is_file()
    assert (out / "clients.csv").read_text().count("\n") == labelled + 1  # and the header

    registry = Registry(models)
    entry = registry.entry(challenger)
    assert (entry.parent, registry.champion_of(CLINIC)) == (default, default)  # not promoted
    (record,) = [c for c in registry.index().comparisons if c.challenger == challenger]
    assert (record.champion, record.clinic, record.n_clients) == (default, CLINIC, labelled)
    assert record.calibration.verdict == "better"

    settings = Settings(
        models_dir=models,
        database_url=database_url,
        pseudonym_key_file=tmp_path / "pseudonym.key",
        reload_seconds=0.0,
        rescore_idle_seconds=0.1,
    )
    with TestClient(create_app(settings)) as client:
        mine, theirs = ({"Authorization": f"Bearer {k}"} for k in (admin, other))
        promoted = client.post(f"/v1/models/{challenger}/promote", headers=mine)
        assert promoted.status_code == 200, promoted.text
        ours = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=mine).json()
        other_answer = client.post("/v1/predictions", json=EXAMPLE_EPISODE, headers=theirs).json()
        caseload = _recomputed(client, mine)  # the stored risks follow, in the background
        other_caseload = client.get("/v1/caseload", headers=theirs).json()
        # the next window: three months on, new clients of the same clinic answered by it
        _next_window(database_url, client.app.state.models.for_clinic(CLINIC))  # type: ignore[attr-defined]
        after = client.get("/v1/monitoring?window=90d", headers=mine).json()
    assert (ours["model"]["version"], ours["calibration"]) == (challenger, "local")
    assert (other_answer["model"]["version"], other_answer["calibration"]) == (
        default,
        "network-default",
    )
    assert caseload["models"] == {
        "serving": challenger,
        "versions": {challenger: labelled + 20},
        "recomputing": False,
    }
    assert other_caseload["models"]["versions"] == {default: 5}
    assert Registry(models).champion_of(OTHER) == default
    assert (after["model_version"], after["clients"]) == (challenger, NEXT)
    assert not DRIFT & set(after["alerts"]), after["alerts"]  # the alert cleared


# What the SRS-only site raises against the network default: WAI-SR never collected.
DRIFT = {"instrument.wai_sr.all", "psi.wai_missing.all"}
NEXT = 300


def _alerts(table: str) -> dict[str, str]:
    """The alerting figures of `dropout-risk monitor`'s table, with their next step."""
    rows = [line.split("\t") for line in table.splitlines() if line.count("\t") == 4]
    return {name: step for name, _, _, status, step in rows if status == "alert"}


def _next_window(url: str, model: LoadedModel) -> None:
    """Every stored risk moved three months back, then NEXT new clients of CLINIC_WORLD
    (sessions 1-3, no outcome yet) stored and answered by `model`, as the EHR's writes
    would be."""
    clients, sessions = simulate(NEXT, 23, CLINIC_WORLD)
    episodes = contract_episodes(
        clients.drop(columns="dropout"), sessions[sessions["session_number"] <= 3]
    )
    for e in episodes:
        e["client_id"] = f"N-{e['client_id']}"
    with db_session(url) as s:
        s.execute(
            sql_update(PredictionRow).values(computed_at=datetime.now(UTC) - timedelta(days=100))
        )
        store_episodes(s, CLINIC, episodes, model)


def _recomputed(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    """The caseload once the rescorer has brought every stored risk over (at most 300 s);
    meanwhile it says it is mixed."""
    deadline = time.monotonic() + 300
    while True:
        caseload: dict[str, Any] = client.get("/v1/caseload", headers=auth).json()
        models = caseload["models"]
        assert models["recomputing"] == any(v != models["serving"] for v in models["versions"])
        if not models["recomputing"] or time.monotonic() > deadline:
            return caseload
        time.sleep(0.2)


def test_a_clinic_without_outcomes_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    args = ["retrain", "--clinic", "nobody", "--database-url", url, "--models-dir", str(models)]
    assert run([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --clinic: clinic 'nobody' has no stored episode with an outcome")
    assert not (tmp_path / "out").exists()  # nothing written
    assert [v.version for v in Registry(models).index().versions] == [
        Registry(models).champion_of(None)
    ]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--clinic", "a b"], "--clinic: value 'a b'"),
        (["--clinic", "c", "--models-dir", "/nonexistent/models"], "no champion model"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    assert run(["retrain", *args, "--database-url", url]) == 2
    assert fragment in capsys.readouterr().err
