"""The storage layer on SQLite and PostgreSQL: repository, migrations, keys, concurrency."""

from __future__ import annotations

import importlib.util
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic_core import to_json
from sqlalchemy import event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.core.prediction import ModelIdentity, Prediction
from service.core.settings import Settings
from service.security.api_keys import KeyStoreError
from service.security.key_store import DbKeyStore
from service.storage import repository as repo
from service.storage.database import Storage
from service.storage.engine import (
    StorageUnavailable,
    alembic_config,
    make_engine,
    normalise_url,
    session_scope,
    upgrade,
)
from service.storage.tables import Base, Client, Clinic, FlagAck, Outcome, PredictionRow, SessionRow
from tests.support.helpers import REPO
from training.explanation.actions import ACTIONS
from training.explanation.groups import Factor
from training.vocabulary import Thresholds

A, B = "clinic-a", "clinic-b"
Factory = sessionmaker[Session]
UNREACHABLE = "postgresql+psycopg://postgres:secret-pw@127.0.0.1:1/x"


@pytest.fixture
def tx(db_factory: Factory) -> Callable[[], Any]:
    """`with tx() as s:` is one committed transaction, as the service runs them."""
    return lambda: session_scope(db_factory)


def client(s: Session, clinic: str, client_id: str, therapist: str | None = "t1") -> None:
    assert repo.upsert_client(s, clinic, client_id, 30, "female", therapist) == "created"


def scores(day: str | None = "2024-03-01", srs: float = 30.0) -> dict[str, Any]:
    payload: dict[str, Any] = {"srs": {"total": srs}, "ors": {"total": 20.0}}
    if day is not None:
        payload["date"] = day
    return payload


def risk(
    s: Session,
    clinic: str,
    client_id: str,
    level: str,
    probability: float = 0.5,
    inputs: str = "a",
    version: str = "v1",
    factor: str | None = "low alliance",
) -> repo.PredictionRecord:
    factors = () if factor is None else (Factor("alliance_low", factor, "raises", 0.05),)
    body = Prediction(  # unchecked, as scoring builds one: add_prediction checks the level
        client_id=client_id,
        probability=probability,
        risk_level=level,
        landmark_session=3,
        model=ModelIdentity(version, "ab" * 32),
        thresholds=Thresholds(0.2, 0.3),
        disclaimer="Decision support, not a diagnosis.",
        factors=factors,
        suggested_actions=(),
    )
    sha = inputs * 64 if len(inputs) == 1 else inputs
    return repo.add_prediction(s, clinic, client_id, version, sha, probability, level, 3, body)


def utc(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


# --- engine ---------------------------------------------------------------------------------


def test_normalise_url() -> None:
    assert normalise_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("postgres://u@h:5/d") == "postgresql+psycopg://u@h:5/d"
    assert normalise_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_url("sqlite:///var/x.db") == "sqlite:///var/x.db"


def test_sqlite_engine_creates_folder_and_sets_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'folder' / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()
    assert (tmp_path / "new" / "folder" / "x.db").exists()


def test_unreachable_database_is_storage_unavailable_without_secrets() -> None:
    engine = make_engine(UNREACHABLE)
    try:
        with pytest.raises(StorageUnavailable) as caught, session_scope(sessionmaker(engine)):
            pytest.fail("the block must not run without a connection")
    finally:
        engine.dispose()
    assert str(caught.value) == "the database cannot be reached or used (OperationalError)"
    assert "secret-pw" not in str(caught.value)


def test_session_scope_commits_rolls_back_and_hides_integrity_errors(
    tx: Callable[[], Any],
) -> None:
    """A statement the database refuses is StorageUnavailable (503, not the caller's fault)
    naming the kind of error only: PostgreSQL's own message quotes the key's values."""
    with tx() as s:
        repo.ensure_clinic(s, A)

    def fail_half_way() -> None:
        with tx() as s:
            repo.ensure_clinic(s, B)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_half_way()
    with pytest.raises(StorageUnavailable) as caught, tx() as s:
        s.add(Clinic(id=A, created_at=datetime.now(UTC)))
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert str(caught.value).startswith("the database cannot be reached or used (")
    kinds = ("(UniqueViolation 23505)", "(IntegrityError SQLITE_CONSTRAINT_PRIMARYKEY)")
    assert str(caught.value).endswith(kinds)
    assert A not in str(caught.value)
    with tx() as s:
        assert list(s.scalars(select(Clinic.id))) == [A]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_connection_lost_mid_transaction_is_storage_unavailable(db_factory: Factory) -> None:
    """PostgreSQL only: a SQLite file cannot go away under an open connection."""

    def query_after_termination() -> None:
        with session_scope(db_factory) as s:
            pid = s.scalar(text("SELECT pg_backend_pid()"))
            with db_factory() as other:  # an administrator (or a restart) ends the connection
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            s.execute(text("SELECT 1"))

    with pytest.raises(StorageUnavailable):
        query_after_termination()
    with session_scope(db_factory) as s:  # the pool replaces the dead connection
        assert s.scalar(text("SELECT 1")) == 1


HEAD = "0005"  # the last migration


# --- migrations -----------------------------------------------------------------------------


def test_migrations_create_exactly_the_models(db_factory: Factory) -> None:
    with db_factory() as s:
        context = MigrationContext.configure(s.connection())
        assert context.get_current_revision() == HEAD
        assert compare_metadata(context, Base.metadata) == []


def _assert_at_head(url: str) -> None:
    """The database is at the last migration, and its schema is exactly the models'."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert context.get_current_revision() == HEAD
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def _indexes(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {str(ix["name"]) for ix in inspect(conn).get_indexes(table)}
    finally:
        engine.dispose()


def test_migration_0003_adds_the_window_index_and_takes_it_back(database_url: str) -> None:
    name = "ix_predictions_clinic_computed_at"
    assert name in _indexes(database_url, "predictions")
    command.downgrade(alembic_config(database_url), "0002")
    assert name not in _indexes(database_url, "predictions")
    assert "ix_predictions_clinic_client_id" in _indexes(database_url, "predictions")
    upgrade(database_url)
    assert name in _indexes(database_url, "predictions")
    _assert_at_head(database_url)


def test_migration_0004_marks_existing_risks_as_answers_and_takes_it_back(
    database_url: str, tx: Callable[[], Any]
) -> None:
    command.downgrade(alembic_config(database_url), "0003")
    with tx() as s:  # a risk stored before the column existed
        client(s, A, "c1")
        s.execute(
            text(
                "INSERT INTO predictions (clinic_id, client_id, computed_at, model_version, "
                "inputs_sha256, probability, risk_level, landmark, body, level_changed) "
                "VALUES (:a, 'c1', :at, 'v1', :sha, 0.5, 'moderate', 1, '{}', true)"
            ),
            {"a": A, "at": datetime(2026, 1, 1, tzinfo=UTC), "sha": "a" * 64},
        )
    upgrade(database_url)
    _assert_at_head(database_url)
    with tx() as s:
        assert s.scalars(select(PredictionRow.rescored)).all() == [False]
    command.downgrade(alembic_config(database_url), "0003")
    assert "rescored" not in {c["name"] for c in _columns(database_url, "predictions")}
    upgrade(database_url)


def test_migration_0005_reads_the_measures_of_stored_sessions_and_takes_them_back(
    database_url: str, tx: Callable[[], Any]
) -> None:
    """Sessions stored before the measure columns get them from their payloads, by the one
    reader a write uses; the payloads are unchanged."""
    command.downgrade(alembic_config(database_url), "0004")
    items = [1, 2, 5, 3, 5, 4, 5, 3, 4, 2, 4, 1]  # goal 3.5, task 1.5, bond 4.75
    payloads = {
        1: {
            "wai": {"items": items},
            "srs": {"relationship": 9, "goals": 8.5, "approach": 7, "overall": 6.5},
            "phq9": {"total": 11},
        },
        2: {"wai": {"goal": 3.25, "bond": 2.5}, "ors": {"total": 22.5}},
        3: {"date": "2026-10-01"},
    }
    with tx() as s:
        client(s, A, "c1")
        for number, payload in payloads.items():
            s.execute(
                text(
                    "INSERT INTO sessions (clinic_id, client_id, number, payload, updated_at) "
                    "VALUES (:a, 'c1', :n, :p, :at)"
                ),
                {"a": A, "n": number, "p": json.dumps(payload), "at": datetime(2026, 1, 1)},
            )
    upgrade(database_url)
    _assert_at_head(database_url)
    with tx() as s:
        rows = s.execute(
            select(
                SessionRow.number,
                SessionRow.payload,
                *(getattr(SessionRow, c) for c in repo.MEASURE_COLUMNS),
            ).order_by(SessionRow.number)
        ).all()
    assert [tuple(r[2:]) for r in rows] == [
        (3.5, 1.5, 4.75, 31.0, None, 11.0),
        (3.25, None, 2.5, None, 22.5, None),
        (None, None, None, None, None, None),
    ]
    assert [r[1] for r in rows] == list(payloads.values())
    command.downgrade(alembic_config(database_url), "0004")
    names = {c["name"] for c in _columns(database_url, "sessions")}
    assert names.isdisjoint(repo.MEASURE_COLUMNS)
    upgrade(database_url)


def test_migration_0005_fills_every_session_across_its_pages(
    database_url: str, tx: Callable[[], Any]
) -> None:
    """The sessions are read in pages of BATCH rows in key order: with a page boundary
    falling inside a client's sessions (three each) and a last, shorter page, every
    session is filled once, each from its own payload."""
    batch = _migration_0005().BATCH
    clients = batch // 3 + 2  # pages end mid-client; the last page holds a few rows
    command.downgrade(alembic_config(database_url), "0004")
    at = datetime(2026, 1, 1)
    with tx() as s:
        repo.ensure_clinic(s, A)
        s.execute(
            text(
                "INSERT INTO clients (clinic_id, client_id, created_at, updated_at) "
                "VALUES (:a, :c, :at, :at)"
            ),
            [{"a": A, "c": f"c{i:05d}", "at": at} for i in range(clients)],
        )
        s.execute(
            text(
                "INSERT INTO sessions (clinic_id, client_id, number, payload, updated_at) "
                "VALUES (:a, :c, :n, :p, :at)"
            ),
            [
                {
                    "a": A,
                    "c": f"c{i:05d}",
                    "n": n,
                    "p": json.dumps({"srs": {"total": i + n}}),
                    "at": at,
                }
                for i in range(clients)
                for n in (1, 2, 3)
            ],
        )
    upgrade(database_url)
    with tx() as s:
        rows = s.execute(
            select(SessionRow.client_id, SessionRow.number, SessionRow.srs_total)
        ).all()
    assert len(rows) == 3 * clients > batch
    assert sorted(rows) == [
        (f"c{i:05d}", n, float(i + n)) for i in range(clients) for n in (1, 2, 3)
    ]


def _migration_0005() -> Any:
    """The migration's module, as Alembic loads it (its file, not a package)."""
    path = REPO / "service/storage/migrations/versions/0005_session_measures.py"
    spec = importlib.util.spec_from_file_location("migration_0005", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _columns(url: str, table: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(inspect(conn).get_columns(table))
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(database_url: str, tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
    upgrade(database_url)
    with tx() as s:
        assert s.scalar(text("SELECT count(*) FROM alembic_version")) == 1
        assert repo.client_exists(s, A, "c1")


def test_concurrent_upgrades_of_an_empty_database(empty_database_url: str) -> None:
    url = empty_database_url
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: upgrade(url), range(4)))
    _assert_at_head(url)


# --- clients, sessions, outcomes ------------------------------------------------------------


def test_upsert_client_reports_each_change(tx: Callable[[], Any]) -> None:
    with tx() as s:
        assert repo.upsert_client(s, A, "c1", 30, "female", "t1") == "created"
    with tx() as s:
        assert repo.upsert_client(s, A, "c1", 30, "female", "t1") == "unchanged"
        first = repo.get_client(s, A, "c1")
    with tx() as s:
        assert repo.upsert_client(s, A, "c1", 31, None, "t2") == "updated"
        second = repo.get_client(s, A, "c1")
    assert first is not None
    assert second is not None
    assert (first.client_id, first.age, first.gender, first.therapist_id) == (
        "c1",
        30,
        "female",
        "t1",
    )
    assert (second.age, second.gender, second.therapist_id) == (31, None, "t2")
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    assert first.created_at.tzinfo is UTC


def test_clients_are_scoped_by_clinic(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        repo.upsert_session(s, A, "c1", 1, date(2024, 3, 1), scores())
        risk(s, A, "c1", "high")
        repo.add_audit(s, A, "key:a", "risk.read", "p1", "v1")
    with tx() as s:
        assert repo.client_exists(s, A, "c1")
        assert not repo.client_exists(s, B, "c1")
        assert repo.get_client(s, B, "c1") is None
        assert repo.get_sessions(s, B, "c1") == []
        assert repo.latest_prediction(s, B, "c1") is None
        assert repo.prediction_history(s, B, "c1") == []
        assert repo.acknowledge(s, B, "c1", "key:b") is None
        assert repo.caseload(s, B, None, None, None, 50, 0) == repo.CaseloadPage([], 0, {})
        assert repo.list_audit(s, B, utc("2000-01-01")) == []
        assert repo.export_tables(s, B) == ([], [])
        with pytest.raises(KeyError):
            repo.upsert_session(s, B, "c1", 1, None, scores())
        with pytest.raises(KeyError):
            repo.set_outcome(s, B, "c1", True, date(2024, 5, 1))
        with pytest.raises(KeyError):
            risk(s, B, "c1", "low")
        # the same client id in another clinic is another client
        client(s, B, "c1", therapist="t9")
        assert repo.get_sessions(s, B, "c1") == []
        assert [r.client_id for r in repo.caseload(s, A, None, None, None, 50, 0).rows] == ["c1"]


def test_upsert_session_is_idempotent(tx: Callable[[], Any], db_factory: Factory) -> None:
    with tx() as s:
        client(s, A, "c1")
        assert repo.upsert_session(s, A, "c1", 2, date(2024, 3, 8), scores("2024-03-08")) == (
            "created"
        )
        assert repo.upsert_session(s, A, "c1", 1, date(2024, 3, 1), scores()) == "created"
    with tx() as s:
        before = repo.get_sessions(s, A, "c1")
    with tx() as s:
        assert repo.upsert_session(s, A, "c1", 1, date(2024, 3, 1), scores()) == "unchanged"
        assert repo.get_sessions(s, A, "c1") == before  # not even updated_at moved
        assert s.scalar(select(func.count()).select_from(SessionRow)) == 2
    assert [r.number for r in before] == [1, 2]
    assert before[0].payload == scores()
    assert before[0].session_date == date(2024, 3, 1)


def test_upsert_session_updates_a_changed_payload_or_date(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        repo.upsert_session(s, A, "c1", 1, date(2024, 3, 1), scores())
    with tx() as s:
        assert repo.upsert_session(s, A, "c1", 1, date(2024, 3, 1), scores(srs=12)) == "updated"
    with tx() as s:
        assert repo.upsert_session(s, A, "c1", 1, date(2024, 3, 2), scores(srs=12)) == "updated"
        assert repo.upsert_session(s, A, "c1", 1, date(2024, 3, 2), scores(srs=12)) == ("unchanged")
        [stored] = repo.get_sessions(s, A, "c1")
    assert stored.payload["srs"] == {"total": 12}
    assert stored.session_date == date(2024, 3, 2)


def age(s: Session, client_id: str) -> int | None:
    found = repo.get_client(s, A, client_id)
    assert found is not None
    return found.age


def test_reads_after_writes_in_one_transaction_see_the_writes(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        repo.upsert_session(s, A, "c1", 1, None, scores())
        repo.set_outcome(s, A, "c1", False, date(2024, 5, 1))
        assert age(s, "c1") == 30
        assert repo.get_sessions(s, A, "c1")[0].payload == scores()
        # ORM objects that other code holds stay in the session's identity map
        held = [
            s.get(Client, (A, "c1")),
            *s.scalars(select(SessionRow)),
            *s.scalars(select(Outcome)),
        ]
        repo.upsert_client(s, A, "c1", 31, "female", "t1")
        repo.upsert_session(s, A, "c1", 1, None, scores(srs=5))
        repo.set_outcome(s, A, "c1", True, date(2024, 5, 1))
        assert age(s, "c1") == 31
        assert repo.get_sessions(s, A, "c1")[0].payload == scores(srs=5)
        sessions, clients = repo.export_tables(s, A)
    assert sessions[0]["srs_total"] == 5
    assert (clients[0]["age"], clients[0]["dropout"]) == (31, True)
    assert len(held) == 3


def test_set_outcome(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        assert repo.set_outcome(s, A, "c1", True, date(2024, 5, 1)) == "created"
        assert repo.set_outcome(s, A, "c1", True, date(2024, 5, 1)) == "unchanged"
        assert repo.set_outcome(s, A, "c1", False, date(2024, 5, 1)) == "updated"
        _, clients = repo.export_tables(s, A)
    assert clients[0]["dropout"] is False
    assert clients[0]["ended_on"] == "2024-05-01"


# --- risks and flags ------------------------------------------------------------------------


def level_changed(s: Session, prediction_id: int) -> bool | None:
    return s.scalar(select(PredictionRow.level_changed).where(PredictionRow.id == prediction_id))


def test_identical_prediction_is_not_stored_twice(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        first = risk(s, A, "c1", "high", 0.7)
        again = risk(s, A, "c1", "high", 0.7)
        other_model = risk(s, A, "c1", "high", 0.7, version="v2")
        history = repo.prediction_history(s, A, "c1")
    assert again == first
    assert other_model.id != first.id
    assert [r.id for r in history] == [other_model.id, first.id]


ANSWER = Prediction(
    client_id="c1",
    probability=0.4172,
    risk_level="high",
    landmark_session=2,
    model=ModelIdentity("v9", "cd" * 32),
    thresholds=Thresholds(0.18, 0.35),
    disclaimer="Decision support, not a diagnosis.",
    calibration="local",
    locally_updated_on="2026-11-30",
    factors=(
        Factor("alliance_decline", "Alliance fell (WAI-SR 3.5 → 3)", "raises", 0.081),
        Factor("age", "Older client (age 52)", "lowers", -0.012),
    ),
    suggested_actions=(ACTIONS["rupture_repair"],),
)


def test_a_stored_body_reads_back_as_the_prediction_that_was_stored(
    tx: Callable[[], Any],
) -> None:
    """The body is stored as the answer's JSON and read back typed: the same Prediction,
    and the stored JSON is the answer's to the byte (PostgreSQL's JSON keeps it as sent)."""
    with tx() as s:
        client(s, A, "c1")
        stored = repo.add_prediction(s, A, "c1", "v9", "e" * 64, 0.4172, "high", 2, ANSWER)
    with tx() as s:
        latest = repo.latest_prediction(s, A, "c1")
        value = s.scalar(select(PredictionRow.body).where(PredictionRow.id == stored.id))
    assert latest is not None
    assert latest.body == ANSWER
    assert latest.body.factors[1].direction == "lowers"
    assert to_json(value) == ANSWER.to_json()  # the stored JSON, keys in the answer's order
    assert latest.body.to_json() == ANSWER.to_json()


def test_a_body_stored_before_answers_carried_a_standing_still_reads(
    tx: Callable[[], Any],
) -> None:
    """Rows written before the standing existed have no calibration fields: they read as a
    network default's, every other field as stored."""
    standing = ("calibration", "locally_updated_on")
    old = {k: v for k, v in ANSWER.json_value().items() if k not in standing}
    assert len(old) == 9
    now = datetime.now(UTC)
    with tx() as s:
        client(s, A, "c1")
        s.execute(
            insert(PredictionRow),
            [
                {"clinic_id": A, "client_id": "c1", "computed_at": now, "model_version": "v9"}
                | {"inputs_sha256": "f" * 64, "probability": 0.4172, "risk_level": "high"}
                | {"landmark": 2, "level_changed": True, "body": old}
            ],
        )
    with tx() as s:
        latest = repo.latest_prediction(s, A, "c1")
    assert latest is not None
    assert latest.body == replace(ANSWER, calibration="network-default", locally_updated_on=None)
    keys = list(old)
    assert list(latest.body.json_value()) == [*keys[:7], *standing, *keys[7:]]


def test_prediction_records(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        assert repo.latest_prediction(s, A, "c1") is None
        first = risk(s, A, "c1", "low", 0.1, inputs="a")
        second = risk(s, A, "c1", "moderate", 0.3, inputs="b")
        third = risk(s, A, "c1", "moderate", 0.35, inputs="c")
        assert [level_changed(s, p.id) for p in (first, second, third)] == [True, True, False]
    with tx() as s:
        latest = repo.latest_prediction(s, A, "c1")
        history = repo.prediction_history(s, A, "c1")
        assert [r.id for r in repo.prediction_history(s, A, "c1", limit=2)] == [
            third.id,
            second.id,
        ]
    assert latest == third
    assert [r.id for r in history] == [third.id, second.id, first.id]
    assert (latest.client_id, latest.model_version, latest.landmark) == ("c1", "v1", 3)
    assert (latest.probability, latest.risk_level, latest.inputs_sha256) == (
        0.35,
        "moderate",
        "c" * 64,
    )
    assert latest.body.factors[0].label == "low alliance"
    assert latest.body.probability == 0.35
    assert latest.computed_at.tzinfo is UTC
    assert not latest.acknowledged


def test_unknown_level_is_refused(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        with pytest.raises(ValueError, match="risk_level"):
            risk(s, A, "c1", "severe")


def test_acknowledgement_lasts_until_the_level_changes(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")
        assert repo.acknowledge(s, A, "c1", "key:x") is None  # no risk yet
        flagged = risk(s, A, "c1", "high", 0.8, inputs="a")
        ack = repo.acknowledge(s, A, "c1", "key:abc")
    assert ack is not None
    assert (ack.client_id, ack.prediction_id, ack.risk_level) == ("c1", flagged.id, "high")
    assert (ack.actor, ack.active, ack.acknowledged_at.tzinfo) == ("key:abc", True, UTC)
    with tx() as s:
        latest = repo.latest_prediction(s, A, "c1")
        assert latest is not None
        assert latest.acknowledged
        same_level = risk(s, A, "c1", "high", 0.9, inputs="b")
        history = repo.prediction_history(s, A, "c1")
    assert same_level.acknowledged
    assert [r.acknowledged for r in history] == [True, False]
    with tx() as s:
        lower = risk(s, A, "c1", "moderate", 0.4, inputs="c")
        assert not lower.acknowledged
        assert s.scalar(select(FlagAck.active).where(FlagAck.id == ack.id)) is False
        back_up = risk(s, A, "c1", "high", 0.8, inputs="d")
    assert not back_up.acknowledged  # a new high flag, not the one acknowledged before


# --- caseload -------------------------------------------------------------------------------


@pytest.fixture
def caseload_data(tx: Callable[[], Any]) -> None:
    """c1 high .9 (t1, acked) | c2 high .8 (t2) | c3 mod .4 (t1) | c4 low .1 (t2) |
    c5 high .8 (t1, no factors) | c6: no risk | clinic B: b1 high .99."""
    with tx() as s:
        for cid, therapist in [("c1", "t1"), ("c2", "t2"), ("c3", "t1"), ("c4", "t2")]:
            client(s, A, cid, therapist)
        client(s, A, "c5", "t1")
        client(s, A, "c6", "t1")
        client(s, B, "b1", "t1")
        repo.upsert_session(s, A, "c1", 1, date(2024, 3, 1), scores())
        repo.upsert_session(s, A, "c1", 2, date(2024, 3, 8), scores("2024-03-08"))
        repo.upsert_session(s, A, "c2", 1, None, scores(None))
        risk(s, A, "c1", "moderate", 0.5, inputs="a", factor="old factor")
        risk(s, A, "c1", "high", 0.9, inputs="b", factor="low bond")
        risk(s, A, "c2", "high", 0.8, factor="falling srs")
        risk(s, A, "c3", "moderate", 0.4)
        risk(s, A, "c4", "low", 0.1)
        risk(s, A, "c5", "high", 0.8, factor=None)
        risk(s, B, "b1", "high", 0.99)
        repo.acknowledge(s, A, "c1", "key:abc")


def ids(rows: list[repo.CaseloadRow]) -> list[str]:
    return [r.client_id for r in rows]


@pytest.mark.usefixtures("caseload_data")
def test_caseload_rows_and_order(tx: Callable[[], Any]) -> None:
    with tx() as s:
        page = repo.caseload(s, A, None, None, None, 50, 0)
        rows, total = page.rows, page.total
    assert total == 5
    assert ids(rows) == ["c1", "c2", "c5", "c3", "c4"]  # ties by client id
    c1, c2, c5 = rows[0], rows[1], rows[2]
    assert (c1.therapist_id, c1.probability, c1.risk_level, c1.landmark) == ("t1", 0.9, "high", 3)
    assert (c1.model_version, c1.acknowledged, c1.main_factor_label) == ("v1", True, "low bond")
    assert c1.last_session_date == date(2024, 3, 8)
    assert c1.computed_at.tzinfo is UTC
    assert (c2.acknowledged, c2.last_session_date, c2.main_factor_label) == (
        False,
        None,
        "falling srs",
    )
    assert c5.main_factor_label is None


@pytest.mark.usefixtures("caseload_data")
def test_caseload_counts_the_model_versions_of_every_matching_client(
    tx: Callable[[], Any],
) -> None:
    with tx() as s:
        risk(s, A, "c4", "low", 0.1, inputs="c", version="v2")  # c4 recomputed by v2
        page = repo.caseload(s, A, None, None, None, 2, 0)
        high = repo.caseload(s, A, None, "high", None, 50, 0)
    assert (len(page.rows), page.total, page.versions) == (2, 5, {"v1": 4, "v2": 1})
    assert (high.total, high.versions) == (3, {"v1": 3})


@pytest.mark.usefixtures("caseload_data")
def test_stale_clients_are_those_whose_latest_risk_is_another_models(
    tx: Callable[[], Any],
) -> None:
    with tx() as s:
        risk(s, A, "c4", "low", 0.1, inputs="c", version="v2")
        assert repo.stale_clients(s, A, "v2", "", 10) == ["c1", "c2", "c3", "c5"]
        assert repo.stale_clients(s, A, "v2", "c2", 10) == ["c3", "c5"]  # resumes after c2
        assert repo.stale_clients(s, A, "v2", "", 1) == ["c1"]
        assert repo.stale_clients(s, A, "v1", "", 10) == ["c4"]  # the latest risk counts
        assert repo.stale_clients(s, B, "v2", "", 10) == ["b1"]
        assert repo.clinic_ids(s) == sorted([A, B])


@pytest.mark.usefixtures("caseload_data")
def test_caseload_filters_and_pages(tx: Callable[[], Any]) -> None:
    with tx() as s:

        def page(**kw: Any) -> tuple[list[str], int]:
            args = {"therapist_id": None, "min_level": None, "acknowledged": None}
            args |= {"limit": 50, "offset": 0} | kw
            page = repo.caseload(s, A, **args)
            rows, total = page.rows, page.total
            return ids(rows), total

        assert page(therapist_id="t1") == (["c1", "c5", "c3"], 3)
        assert page(therapist_id="nobody") == ([], 0)
        assert page(min_level="high") == (["c1", "c2", "c5"], 3)
        assert page(min_level="moderate") == (["c1", "c2", "c5", "c3"], 4)
        assert page(min_level="low") == (["c1", "c2", "c5", "c3", "c4"], 5)
        assert page(acknowledged=True) == (["c1"], 1)
        assert page(acknowledged=False) == (["c2", "c5", "c3", "c4"], 4)
        assert page(therapist_id="t1", min_level="high", acknowledged=False) == (["c5"], 1)
        assert page(limit=2) == (["c1", "c2"], 5)
        assert page(limit=2, offset=2) == (["c5", "c3"], 5)
        assert page(limit=2, offset=4) == (["c4"], 5)
        assert page(limit=2, offset=10) == ([], 5)
        with pytest.raises(ValueError, match="min_level"):
            page(min_level="severe")


def test_caseload_of_500_clients_takes_two_queries(tx: Callable[[], Any]) -> None:
    now = datetime.now(UTC)
    levels = ("low", "moderate", "high")
    ids_ = [f"c{i:03d}" for i in range(500)]
    with tx() as s:  # bulk rows: what is timed is the caseload, not 1,500 repository calls
        repo.ensure_clinic(s, A)
        s.execute(
            insert(Client),
            [
                {"clinic_id": A, "client_id": c, "therapist_id": f"t{i % 7}"}
                | {"created_at": now, "updated_at": now}
                for i, c in enumerate(ids_)
            ],
        )
        s.execute(
            insert(SessionRow),
            [
                {"clinic_id": A, "client_id": c, "number": 1, "session_date": date(2024, 3, 1)}
                | {"payload": scores(), "updated_at": now}
                for c in ids_
            ],
        )
        predictions = [
            {"clinic_id": A, "client_id": c, "computed_at": now, "model_version": "v1"}
            | {"inputs_sha256": sha * 64, "probability": (i % modulo) / 100}
            | {"risk_level": levels[i % 3], "landmark": 3, "level_changed": True}
            | {"body": {"factors": [{"label": f"factor {i}"}]}}
            for sha, modulo in (("a", 97), ("b", 89))
            for i, c in enumerate(ids_)
        ]
        s.execute(insert(PredictionRow), predictions)
    statements: list[str] = []
    with tx() as s:
        engine = s.get_bind()

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            started = time.perf_counter()
            page = repo.caseload(s, A, None, None, None, 500, 0)
            elapsed = time.perf_counter() - started
        finally:
            event.remove(engine, "before_cursor_execute", count)
    rows, total = page.rows, page.total
    assert (len(rows), total) == (500, 500)
    assert len(statements) == 2
    assert elapsed < 2.0
    probabilities = [r.probability for r in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert rows[0].probability == 0.88  # the latest risk, not the higher earlier one
    assert (rows[0].client_id, rows[0].main_factor_label) == ("c088", "factor 88")


# --- audit and JWT ids ----------------------------------------------------------------------


def test_audit_since_and_order(tx: Callable[[], Any]) -> None:
    with tx() as s:
        repo.add_audit(s, A, "key:a", "risk.read", "p1", "v1", at=utc("2024-03-02T10:00:00"))
        repo.add_audit(s, A, "key:a", "session.created", "p2", None, at=utc("2024-03-01"))
        repo.add_audit(s, A, "key:b", "caseload.read", None, None, at=utc("2024-02-28"))
        repo.add_audit(s, B, "key:c", "risk.read", "p9", "v1", at=utc("2024-03-02"))
        repo.add_audit(s, A, "key:a", "flag.acknowledge", "p1", None)  # now
    with tx() as s:
        rows = repo.list_audit(s, A, utc("2024-03-01"))
        every = repo.list_audit(s, A, utc("2000-01-01"))
    assert [r.action for r in rows] == ["session.created", "risk.read", "flag.acknowledge"]
    assert len(every) == 4
    first = rows[0]
    assert (first.clinic_id, first.actor, first.client_pseudonym, first.model_version) == (
        A,
        "key:a",
        "p2",
        None,
    )
    assert first.at == utc("2024-03-01")
    assert rows[1].model_version == "v1"


def test_remember_jti_refuses_replays_until_expiry(tx: Callable[[], Any]) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with tx() as s:
        assert repo.remember_jti(s, "https://ehr", "j1", later)
    with tx() as s:
        assert not repo.remember_jti(s, "https://ehr", "j1", later)
        assert repo.remember_jti(s, "https://other-ehr", "j1", later)
        assert repo.remember_jti(s, "https://ehr", "old", past)
    with tx() as s:  # an expired id is forgotten (its JWT is refused for expiry anyway)
        assert repo.remember_jti(s, "https://ehr", "old", later)
        assert not repo.remember_jti(s, "https://ehr", "old", later)


# --- export ---------------------------------------------------------------------------------


def test_export_tables(tx: Callable[[], Any]) -> None:
    # 1-based items: task 1,2,10,12 -> 1,1,4,4; bond 3,5,7,9 -> 5,5,5,5; goal 4,6,8,11 -> 2,3,2,3
    items = [1, 1, 5, 2, 5, 3, 5, 2, 5, 4, 3, 4]
    with tx() as s:
        client(s, A, "c2", therapist=None)
        repo.upsert_client(s, A, "c1", 45, "male", "t3")
        repo.upsert_session(
            s,
            A,
            "c1",
            1,
            date(2024, 3, 1),
            {
                "date": "2024-03-01",
                "wai": {"items": items},
                "srs": {"relationship": 8, "goals": 7, "approach": 9, "overall": 6.5},
                "phq9": {"total": 12},
            },
        )
        wai_means = {"goal": 3.5, "task": 2.25, "bond": 4.0}
        repo.upsert_session(s, A, "c1", 2, None, {"wai": wai_means, "ors": {"total": 21.5}})
        repo.upsert_session(s, A, "c2", 1, None, {"wai": {"goal": 4.0}})
        repo.set_outcome(s, A, "c1", True, date(2024, 6, 1))
        client(s, B, "b1")
        sessions, clients = repo.export_tables(s, A)
    assert sessions == [
        {
            "client_id": "c1",
            "session_number": 1,
            "session_date": "2024-03-01",
            "wai_goal": 2.5,
            "wai_task": 2.5,
            "wai_bond": 5.0,
            "srs_total": 30.5,
            "ors_total": None,
            "phq9_total": 12,
        },
        {
            "client_id": "c1",
            "session_number": 2,
            "session_date": None,
            "wai_goal": 3.5,
            "wai_task": 2.25,
            "wai_bond": 4.0,
            "srs_total": None,
            "ors_total": 21.5,
            "phq9_total": None,
        },
        {
            "client_id": "c2",
            "session_number": 1,
            "session_date": None,
            "wai_goal": 4.0,
            "wai_task": None,
            "wai_bond": None,
            "srs_total": None,
            "ors_total": None,
            "phq9_total": None,
        },
    ]
    assert clients == [
        {
            "client_id": "c1",
            "age": 45,
            "gender": "male",
            "therapist_id": "t3",
            "dropout": True,
            "ended_on": "2024-06-01",
        },
        {
            "client_id": "c2",
            "age": 30,
            "gender": "female",
            "therapist_id": None,
            "dropout": None,
            "ended_on": None,
        },
    ]


# --- concurrency ----------------------------------------------------------------------------


def run_threads(count: int, work: Callable[[int], list[str]]) -> list[str]:
    """Start `count` threads at once and gather what they return; any exception fails."""
    barrier = threading.Barrier(count)

    def start(i: int) -> list[str]:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return [status for result in pool.map(start, range(count)) for status in result]


def _lock_then_fail(tx: Callable[[], Any]) -> None:
    with tx() as s:
        assert repo.lock_client(s, A, "c1")
        raise RuntimeError("rolled back")


def test_a_client_is_locked_once_per_transaction(
    tx: Callable[[], Any], db_factory: Factory
) -> None:
    """lock_client is held until the transaction ends, so a write that asks for it again
    (a stored session's PUT: the client read, the session's upsert, the recompute and
    the stored risk) sends one statement on the clients for all of them; a client that
    does not exist is asked about each time; the next transaction, after a commit or a
    rollback, locks anew."""
    with tx() as s:
        client(s, A, "c1")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM clients" in statement or "UPDATE clients" in statement:
            statements.append(statement)

    engine = db_factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with tx() as s:
            assert repo.get_client(s, A, "c1", lock=True) is not None
            assert repo.lock_client(s, A, "c1")
            assert repo.upsert_session(s, A, "c1", 1, None, scores()) == "created"
            assert risk(s, A, "c1", "high").landmark == 3
            assert len(statements) == 2  # the lock, then get_client's read of the record
            assert not repo.lock_client(s, A, "nobody")
            assert not repo.lock_client(s, A, "nobody")
            assert len(statements) == 4
            with pytest.raises(KeyError):
                repo.upsert_session(s, B, "c1", 1, None, scores())  # locked in A, not B
        with tx() as s:
            assert repo.lock_client(s, A, "c1")
        assert len(statements) == 6
        with pytest.raises(RuntimeError, match="rolled back"):
            _lock_then_fail(tx)
        with tx() as s:
            assert repo.lock_client(s, A, "c1")
        assert len(statements) == 8
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with tx() as s:
        assert [r.number for r in repo.get_sessions(s, A, "c1")] == [1]


def test_concurrent_writers_of_the_same_sessions(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")

    def write_all(seed: int) -> list[str]:
        numbers = list(range(1, 201))
        random.Random(seed).shuffle(numbers)
        statuses = []
        for n in numbers:
            with tx() as s:
                statuses.append(repo.upsert_session(s, A, "c1", n, None, scores(None, n % 40)))
        return statuses

    statuses = run_threads(16, write_all)
    with tx() as s:
        stored = repo.get_sessions(s, A, "c1")
    assert [r.number for r in stored] == list(range(1, 201))
    assert statuses.count("created") == 200
    assert statuses.count("unchanged") == 15 * 200


def test_32_writers_of_one_session(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")

    def write_one(_: int) -> list[str]:
        with tx() as s:
            return [repo.upsert_session(s, A, "c1", 1, date(2024, 3, 1), scores())]

    statuses = run_threads(32, write_one)
    assert sorted(statuses) == ["created"] + ["unchanged"] * 31
    with tx() as s:
        assert len(repo.get_sessions(s, A, "c1")) == 1


def test_concurrent_identical_predictions_store_one(tx: Callable[[], Any]) -> None:
    with tx() as s:
        client(s, A, "c1")

    def predict(_: int) -> list[str]:
        with tx() as s:
            return [str(risk(s, A, "c1", "high", 0.8).id)]

    assert len(set(run_threads(8, predict))) == 1
    with tx() as s:
        assert len(repo.prediction_history(s, A, "c1")) == 1


def test_concurrent_new_clinics_and_clients(tx: Callable[[], Any]) -> None:
    def create(_: int) -> list[str]:
        with tx() as s:
            return [repo.upsert_client(s, "new-clinic", "c1", 40, None, None)]

    assert sorted(run_threads(16, create)) == ["created"] + ["unchanged"] * 15


# --- keys -----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(db_factory: Factory, clock: Clock) -> DbKeyStore:
    return DbKeyStore(db_factory, cache_seconds=5.0, clock=clock)


def test_keys_create_verify_list_revoke(keys: DbKeyStore, db_factory: Factory) -> None:
    key, token = keys.create("ehr", A, ["predict", "clients:write"], therapist_id="t1")
    other, other_token = keys.create("dashboard", B, ["clients:read"])
    assert token.startswith(f"drk_{key.key_id}_")
    assert (key.name, key.tenant, key.scopes) == ("ehr", A, {"predict", "clients:write"})
    assert key.created_at.endswith("Z")
    assert keys.verify(token) == key
    assert keys.verify(other_token) == other
    assert keys.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert keys.verify("drk_000000000000_" + "x" * 43) is None
    assert keys.verify("not a token") is None
    assert keys.list() == [key, other]
    assert keys.list(A) == [key]
    keys.revoke(key.key_id)
    assert keys.verify(token) is None  # this process forgets its own revoked key at once
    assert keys.list() == [other]
    with pytest.raises(KeyStoreError, match="already revoked"):
        keys.revoke(key.key_id)
    with pytest.raises(KeyStoreError, match="must be the id of a key"):
        keys.revoke("000000000000")
    with session_scope(db_factory) as s:
        assert set(s.scalars(select(Clinic.id))) == {A, B}


@pytest.mark.parametrize(
    ("name", "tenant", "scopes", "therapist", "field"),
    [
        ("", A, ["predict"], None, "name"),
        ("ok", "bad tenant", ["predict"], None, "tenant"),
        ("ok", A, ["nope"], None, "scopes"),
        ("ok", A, "predict", None, "scopes"),
        ("ok", A, ["predict"], "bad therapist", "therapist_id"),
    ],
)
def test_keys_refuse_bad_input(
    keys: DbKeyStore, name: str, tenant: str, scopes: Any, therapist: str | None, field: str
) -> None:
    with pytest.raises(KeyStoreError, match=field):
        keys.create(name, tenant, scopes, therapist)
    assert keys.list() == []


def test_key_cache_delays_a_revocation_by_at_most_cache_seconds(
    keys: DbKeyStore, db_factory: Factory, clock: Clock
) -> None:
    key, token = keys.create("ehr", A, ["predict"])
    assert keys.verify(token) == key
    DbKeyStore(db_factory).revoke(key.key_id)  # another worker revokes it
    clock.now += 4.9
    assert keys.verify(token) == key  # from memory: no database round trip
    clock.now += 0.2
    assert keys.verify(token) is None


def test_key_cache_answers_from_memory(keys: DbKeyStore, db_factory: Factory, clock: Clock) -> None:
    _, token = keys.create("ehr", A, ["predict"])
    keys.verify(token)
    statements: list[str] = []
    engine = db_factory.kw["bind"]

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(10):
            assert keys.verify(token) is not None
        assert statements == []
        clock.now += 5
        keys.verify(token)
        assert statements != []
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture
def unreachable() -> Iterator[Factory]:
    engine = make_engine(UNREACHABLE)
    yield sessionmaker(engine)
    engine.dispose()


def test_keys_stale_if_error(keys: DbKeyStore, clock: Clock, unreachable: Factory) -> None:
    key, token = keys.create("ehr", A, ["predict"])
    _, never_checked = keys.create("other", A, ["predict"])
    bad = f"drk_{key.key_id}_" + "x" * 43
    assert keys.verify(token) == key
    assert keys.verify(bad) is None
    keys.factory = unreachable  # the database goes away
    clock.now += 3600
    assert keys.verify(token) == key
    assert keys.verify(bad) is None
    with pytest.raises(StorageUnavailable):
        keys.verify(never_checked)
    with pytest.raises(StorageUnavailable):
        keys.list()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_statements_are_bounded_by_the_settings(database_url: str) -> None:
    """The query timeout of the settings is the server's statement_timeout and the kernel's
    tcp_user_timeout; a statement that outlasts it is StorageUnavailable (503), not a hang.
    Migrations stay unbounded (a slow one must not be cut)."""
    settings = Settings(database_query_timeout_seconds=1.5)
    storage = Storage(database_url, settings=settings)
    try:
        with storage.session() as s:
            assert s.scalar(text("SHOW statement_timeout")) == "1500ms"
            # times are answered in UTC, with the driver's one UTC tzinfo (UtcDateTime
            # then passes them on unconverted)
            assert s.scalar(text("SHOW TimeZone")) == "UTC"
            assert s.scalar(text("SELECT now()")).tzinfo is UTC
            dbapi = s.connection().connection.dbapi_connection
            assert dbapi is not None
            params = dbapi.info.get_parameters()  # type: ignore[attr-defined]
            assert (params["tcp_user_timeout"], params["keepalives"]) == ("1500", "1")
        with pytest.raises(StorageUnavailable) as caught, storage.session() as s:
            s.execute(text("SELECT pg_sleep(5)"))
        assert str(caught.value).endswith("(QueryCanceled 57014)")
    finally:
        storage.close()
    migrations = make_engine(database_url)
    try:
        with migrations.connect() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "0"
            assert conn.scalar(text("SHOW TimeZone")) == "UTC"
    finally:
        migrations.dispose()
