"""Stored risks are recomputed in the background when a clinic's model changes: in bounded
steps, resumed from the stored rows after a restart, the same risk a write would store,
audited, and only for the clinic whose model changed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select, update

from service.commands.demo import contract_episodes, store_episodes
from service.core.observability import Pseudonymizer
from service.core.prediction import Prediction
from service.core.standing import caseload_models, recomputing_note
from service.scoring.model_store import ModelStore
from service.scoring.records import Auditor, episode
from service.scoring.rescoring import ACTOR, RescoreLimits, Rescorer
from service.scoring.score import score
from service.storage import repository as repo
from service.storage.database import Storage
from service.storage.tables import AuditEntry, PredictionRow
from tests.support.helpers import CLINIC, updated_version
from training.registry import Registry

OTHER = "clinic-b"


def _early(cohort: Path, n: int, skip: int = 0) -> list[dict[str, object]]:
    """n clients of the cohort with their first three sessions, without outcomes."""
    clients = pd.read_csv(cohort / "clients.csv").drop(columns="dropout").iloc[skip : skip + n]
    sessions = pd.read_csv(cohort / "sessions.csv")
    return contract_episodes(clients, sessions[sessions["session_number"] <= 3])


def _versions(storage: Storage, clinic: str) -> dict[str, int]:
    with storage.session() as s:
        return repo.caseload(s, clinic, None, None, None, 1, 0).versions


def test_a_change_of_champion_rescores_that_clinics_stored_risks(
    database_url: str, updated_registry: Path, clinic_cohort: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(updated_registry, models)
    registry = Registry(models)
    default, local = registry.champion_of(None), updated_version(models)
    assert default is not None
    store = ModelStore(registry, reload_seconds=0)
    storage = Storage(database_url)
    auditor = Auditor(Pseudonymizer(tmp_path / "pseudonym.key"))
    with storage.session() as s:
        store_episodes(s, CLINIC, _early(clinic_cohort, 120), store.for_clinic(CLINIC))
        store_episodes(s, OTHER, _early(clinic_cohort, 10, skip=200), store.for_clinic(OTHER))
    assert _versions(storage, CLINIC) == {default: 120}

    registry.promote(local, clinic=CLINIC)
    limits = RescoreLimits(batch=50)
    first = Rescorer(storage, store, auditor, None, limits)
    assert first.step() == 50  # one bounded step
    assert _versions(storage, CLINIC) == {default: 70, local: 50}
    assert caseload_models(_versions(storage, CLINIC), local)["recomputing"] is True
    assert recomputing_note(_versions(storage, CLINIC), local) == (
        f"70 of 120 risks listed were computed by an earlier model and are being "
        f"recomputed with {local}; until then each row names its own model."
    )

    restarted = Rescorer(storage, store, auditor, None, limits)  # a new process: no memory
    assert restarted.run_until_done() == 70
    assert _versions(storage, CLINIC) == {local: 120}
    assert _versions(storage, OTHER) == {default: 10}  # another clinic's model did not change
    assert recomputing_note({local: 120}, local) is None
    assert restarted.run_until_done() == 0

    with storage.session() as s:
        client = repo.get_client(s, CLINIC, "C000007")
        assert client is not None
        stored = repo.latest_prediction(s, CLINIC, "C000007")
        expected = score(
            store.for_clinic(CLINIC), [episode(client, repo.get_sessions(s, CLINIC, "C000007"))]
        )
        rows = s.scalar(select(func.count()).select_from(PredictionRow))
        rescored = s.scalars(select(AuditEntry).where(AuditEntry.action == "risk.rescore")).all()
    assert stored is not None
    assert isinstance(expected[0], Prediction)
    assert stored.body.probability == expected[0].probability
    assert stored.body.calibration == "local"
    assert rows == 120 + 10 + 120  # each client's old risk kept, one new one each
    assert len(rescored) == 120
    assert {(r.clinic_id, r.actor, r.model_version) for r in rescored} == {(CLINIC, ACTOR, local)}
    assert all(r.client_pseudonym and "C0" not in r.client_pseudonym for r in rescored)

    # A rescored risk answered no one: the monitoring window, the clients the service
    # answered for in its days, leaves it out.
    now = datetime.now(UTC)
    with storage.session() as s:
        s.execute(
            update(PredictionRow)
            .where(PredictionRow.rescored.is_(False))
            .values(computed_at=now - timedelta(days=100))
        )
        assert s.scalar(select(func.count()).where(PredictionRow.rescored)) == 120
        recent = repo.window_clients(s, CLINIC, now - timedelta(days=90))
        longer = repo.window_clients(s, CLINIC, now - timedelta(days=200))
    assert (len(recent.clients), len(longer.clients)) == (0, 120)
    storage.close()
