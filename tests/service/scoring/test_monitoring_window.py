"""The monitoring window from stored clients (service.scoring.monitoring_window), on SQLite
and PostgreSQL: the stored payloads go into the same cells as the EpisodeIn a stored risk
is computed from, the window is one query of the clinic's clients with a risk since the
window's start, and the report cache answers until a write, the window's start or its age
says otherwise."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import BigInteger, event, func, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.scoring import monitoring_window as mw
from service.scoring.episodes import grid_from_episodes, grid_from_window
from service.scoring.records import episode, recompute, require_client
from service.storage import repository as repo
from service.storage.engine import session_scope
from service.storage.tables import PredictionRow
from tests.support.helpers import REPO
from training.features import BOND, DAY, GOAL, ORS, PHQ9, ROW_WIDTH, SRS, TASK
from training.monitoring import MonitoringReport
from training.registry import LoadedModel, Registry

CLINIC, OTHER = "clinic-w", "clinic-x"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
EPOCH = date(1970, 1, 1).toordinal()

# WAI-SR answers whose subscale means differ: goal = items 4, 6, 8, 11; task = 1, 2, 10,
# 12; bond = 3, 5, 7, 9 (training.vocabulary.WAI_SR_ITEMS).
ITEMS = [1, 2, 5, 3, 5, 4, 5, 3, 4, 2, 4, 1]  # goal (3+4+3+4)/4, task (1+2+2+1)/4, bond 4.75
SESSIONS: dict[str, list[tuple[int, dict[str, Any]]]] = {
    "a": [
        (
            1,
            {
                "date": "2026-10-01",
                "wai": {"items": ITEMS},
                "srs": {"relationship": 9, "goals": 8.5, "approach": 7, "overall": 6.5},
                "ors": {"total": 22.5},
                "phq9": {"total": 11},
            },
        ),
        (2, {"date": "2026-10-09", "wai": {"goal": 3.25, "bond": 2.5}, "srs": {"total": 31.5}}),
        (4, {"date": "2026-10-30", "ors": {"total": 30.0}}),  # past the last landmark
    ],
    "b": [(1, {"phq9": {"total": 5}}), (3, {"date": "2026-11-20"})],
    "c": [(1, {"srs": {"total": 20.0}})],  # its risk is older than the window
    "aa": [(1, {"srs": {"total": 25.0}}), (2, {"srs": {"total": 26.0}})],  # stored later
}
DEMOGRAPHICS = {"a": (34, "female"), "b": (None, "man"), "c": (51, None), "aa": (40, None)}


@pytest.fixture
def tx(db_factory: sessionmaker[Session]) -> Callable[[], Any]:
    return lambda: session_scope(db_factory)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return Registry(REPO / "models").load()


def _store(s: Session, model: LoadedModel, clinic: str, client_id: str) -> None:
    age, gender = DEMOGRAPHICS[client_id]
    repo.upsert_client(s, clinic, client_id, age, gender, None)
    for number, payload in SESSIONS[client_id]:
        day = date.fromisoformat(payload["date"]) if "date" in payload else None
        repo.upsert_session(s, clinic, client_id, number, day, payload)
    assert recompute(s, clinic, require_client(s, clinic, client_id), model, None) is not None


@pytest.fixture
def stored(tx: Callable[[], Any], model: LoadedModel) -> None:
    """Clients a and b with a risk stored now, c with one stored 40 days ago, a's outcome;
    and the same client a in another clinic."""
    with tx() as s:
        for client_id in ("a", "b", "c"):
            _store(s, model, CLINIC, client_id)
        _store(s, model, OTHER, "a")
        repo.set_outcome(s, CLINIC, "a", True, date(2026, 11, 30))
        old = datetime.now(UTC) - timedelta(days=40)
        mine = (PredictionRow.clinic_id == CLINIC) & (PredictionRow.client_id == "c")
        s.execute(update(PredictionRow).where(mine).values(computed_at=old))


def _since(days: int = 30) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def test_the_window_is_the_clinics_clients_with_a_recent_risk(
    tx: Callable[[], Any], stored: None
) -> None:
    with tx() as s:
        window = repo.window_clients(s, CLINIC, _since())
        latest = s.scalars(
            select(PredictionRow.computed_at).where(
                PredictionRow.clinic_id == CLINIC, PredictionRow.client_id.in_(["a", "b"])
            )
        ).all()
        latest_of = (
            select(PredictionRow.client_id, func.max(PredictionRow.computed_at))
            .where(PredictionRow.clinic_id == CLINIC, PredictionRow.client_id.in_(["a", "b"]))
            .group_by(PredictionRow.client_id)
        )
        last: dict[str, datetime] = dict(s.execute(latest_of).all())
    # as columns, in client id order, each with its latest risk's time to the
    # microsecond: the period of the window it counts in
    clients = window.clients
    assert clients.client_ids == ("a", "b")
    assert clients.age.tolist()[0] == 34.0
    assert np.isnan(clients.age[1])
    assert [clients.gender_words[g] for g in clients.gender] == ["female", "man"]
    assert clients.dropout.tolist()[0] == 1.0
    assert np.isnan(clients.dropout[1])
    assert clients.last_risk.tolist() == [
        repo.epoch_micros(last["a"]),
        repo.epoch_micros(last["b"]),
    ]
    assert clients.last_risk.dtype == np.int64
    table = _in_order(window.sessions)  # stored in no order
    assert table[:, :2].tolist() == [[0, 1], [0, 2], [0, 4], [1, 1], [1, 3]]
    # the cell writer's rows: position, number, the date's day number (NaN: none), then
    # the measures as stored beside the payload, in the order of the features' measures
    day = date(2026, 10, 1).toordinal() - EPOCH
    assert table[0, 2:].tolist() == [day, 3.5, 1.5, 4.75, 31.0, 22.5, 11.0]  # WAI from ITEMS
    assert np.isnan(table[3, 2:8]).all()
    assert table[3, 8] == 5.0
    assert window.earliest == min(latest)
    with tx() as s:  # a window reaching back 60 days holds c as well
        longer = repo.window_clients(s, CLINIC, _since(60)).clients
        empty = repo.window_clients(s, "nobody", _since())
    assert longer.client_ids == ("a", "b", "c")
    assert longer.gender.tolist()[2] == -1  # c has no gender recorded
    assert (len(empty.clients), empty.sessions.shape, empty.earliest) == (0, (0, ROW_WIDTH), None)
    assert (empty.clients.age.shape, empty.clients.last_risk.shape) == ((0,), (0,))


def test_the_windows_two_reads_see_one_snapshot(
    tx: Callable[[], Any], db_factory: sessionmaker[Session], model: LoadedModel, stored: None
) -> None:
    """A client whose first risk in the window is stored just before the sessions' read
    is in neither read: in one snapshot (session_scope(snapshot=True), what the
    monitoring doors use; on PostgreSQL the sessions' connection imports it), the
    sessions still name the clients of the clients' read, so no session is given to
    another client. "aa" sorts between a and b: numbered in the second read, it would
    shift b; keyed, it would have sessions and no place."""
    engine = db_factory.kw["bind"]
    written: list[str] = []

    def store_between(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM sessions" in statement and not written:  # the sessions' query
            written.append("aa")
            with tx() as other:  # another connection, committed before the read goes on
                _store(other, model, CLINIC, "aa")

    event.listen(engine, "before_cursor_execute", store_between)
    try:
        with session_scope(db_factory, snapshot=True) as s:
            window = repo.window_clients(s, CLINIC, _since())
    finally:
        event.remove(engine, "before_cursor_execute", store_between)
    assert written == ["aa"]
    assert window.clients.client_ids == ("a", "b")
    assert _in_order(window.sessions)[:, :2].tolist() == [[0, 1], [0, 2], [0, 4], [1, 1], [1, 3]]
    with session_scope(db_factory, snapshot=True) as s:  # the next window holds it
        again = repo.window_clients(s, CLINIC, _since())
    assert again.clients.client_ids == ("a", "aa", "b")
    assert _in_order(again.sessions)[:, :2].tolist() == [
        [0, 1],
        [0, 2],
        [0, 4],
        [1, 1],
        [1, 2],
        [2, 1],
        [2, 3],
    ]


def _in_order(table: np.ndarray) -> np.ndarray:
    """A window's session rows by client position, then session number."""
    return table[np.lexsort((table[:, 1], table[:, 0]))]


def test_the_sessions_read_as_rows_or_packed_by_the_server_are_the_same_table(
    tx: Callable[[], Any], stored: None
) -> None:
    """On PostgreSQL the window's sessions come keyed and packed into one value by the
    server (service.storage.packed_floats), elsewhere as numbered rows: on the same
    stored sessions the rows' table (training.features.session_table) is the same, NaN
    for NaN."""
    with tx() as s:
        rows = repo._numbered_sessions(s.connection(), CLINIC, _since(60))
        window = repo.window_clients(s, CLINIC, _since(60))
    assert rows.shape == window.sessions.shape == (6, ROW_WIDTH)
    assert np.array_equal(_in_order(rows), _in_order(window.sessions), equal_nan=True)
    # b's second session has a date and nothing else; c's first a SRS total only
    assert _in_order(rows)[4].tolist()[:3] == [1, 3, date(2026, 11, 20).toordinal() - EPOCH]
    assert _in_order(rows)[5].tolist()[:2] == [2, 1]
    assert _in_order(rows)[5, 6] == 20.0


def _window_recorded(
    factory: sessionmaker[Session],
) -> tuple[repo.StoredWindow, list[tuple[int, str]]]:
    """window_clients in a snapshot, and the statements it ran, each with its DBAPI
    connection."""
    engine = factory.kw["bind"]
    statements: list[tuple[int, str]] = []

    def seen(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append((id(conn.connection.dbapi_connection), statement))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with session_scope(factory, snapshot=True) as s:
            return repo.window_clients(s, CLINIC, _since(60)), statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_postgresql_sends_the_sessions_packed_and_sqlite_as_rows(
    db_factory: sessionmaker[Session], stored: None
) -> None:
    """Which path window_clients takes is the dialect's: on PostgreSQL its clients' and
    its sessions' statements are each one aggregate of service.storage.packed_floats (one
    row back), each session keyed by its client's hash, the sessions' run on a second
    connection that imported the first one's snapshot (service.storage.snapshot_reads);
    on SQLite plain selects of rows, the sessions numbered, on the one connection."""
    window, statements = _window_recorded(db_factory)
    postgresql = db_factory.kw["bind"].dialect.name == "postgresql"
    assert window.sessions.shape == (6, ROW_WIDTH)
    ((side, sessions),) = [(c, t) for c, t in statements if "FROM sessions" in t]
    ((caller, clients),) = [(c, t) for c, t in statements if "JOIN outcomes" in t]
    keyed = ("string_agg(" in sessions, "hashtextextended(sessions.client_id" in sessions)
    assert keyed == (postgresql, postgresql)
    assert ("row_number" in sessions) is not postgresql
    assert ("hashtextextended(" in clients) is postgresql
    assert ("string_agg(" in clients) is postgresql  # the clients packed, in one row
    assert (side != caller) is postgresql
    imported = [t for c, t in statements if c == side and "SET TRANSACTION SNAPSHOT" in t]
    assert len(imported) == postgresql


def test_clients_that_share_a_key_get_their_sessions_numbered_instead(
    db_factory: sessionmaker[Session], stored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two of the window's clients with one key (a 64-bit hash: about 1 in 10^10 for
    50,000 clients; here every client's key is made 7): the sessions are read again,
    numbered, and the window is the same as with distinct keys."""
    with session_scope(db_factory, snapshot=True) as s:
        distinct = repo.window_clients(s, CLINIC, _since(60))
    monkeypatch.setattr(repo, "client_key", lambda _id: literal(7, BigInteger))
    shared, statements = _window_recorded(db_factory)
    assert shared.clients.client_ids == distinct.clients.client_ids == ("a", "b", "c")
    assert np.array_equal(shared.clients.last_risk, distinct.clients.last_risk)
    assert np.array_equal(_in_order(shared.sessions), _in_order(distinct.sessions), equal_nan=True)
    numbered = [t for _, t in statements if "FROM sessions" in t and "row_number" in t]
    assert len(numbered) == 1


# Free-text genders (vocabulary.TEXT_RULE: printable, up to 64) a text array must quote
GENDERS = ['Frau, "divers"', "NULL", "{x}", "back\\slash", " ", "weiblich ü", None]


def test_the_clients_read_as_rows_or_packed_by_the_server_are_the_same_columns(
    tx: Callable[[], Any], model: LoadedModel
) -> None:
    """On PostgreSQL the window's clients come packed in one row (their gender words as a
    text array, their ids joined), elsewhere as rows: on the same stored clients both
    give the same columns, whatever the gender words hold."""
    clinic = "clinic-genders"
    with tx() as s:
        for i, gender in enumerate(GENDERS):
            client_id = f"g{i}"
            repo.upsert_client(s, clinic, client_id, 20 + i, gender, None)
            repo.upsert_session(s, clinic, client_id, 1, None, {"srs": {"total": 30.0 + i}})
            assert recompute(s, clinic, require_client(s, clinic, client_id), model, None)
        repo.set_outcome(s, clinic, "g1", False, date(2026, 11, 30))
    with tx() as s:
        conn = s.connection()
        rows = repo.WindowClients.of_rows(
            conn.execute(repo._window_of_clients(clinic, _since())).all()
        )
        window = repo.window_clients(s, clinic, _since())
    for clients in (rows, window.clients):
        assert clients.client_ids == tuple(f"g{i}" for i in range(len(GENDERS)))
        words = [None if g < 0 else clients.gender_words[g] for g in clients.gender]
        assert words == GENDERS
        assert clients.age.tolist() == [20.0 + i for i in range(len(GENDERS))]
        assert np.array_equal(clients.dropout, [np.nan, 0.0, *[np.nan] * 5], equal_nan=True)
    assert np.array_equal(rows.last_risk, window.clients.last_risk)
    assert sorted(rows.gender_words) == sorted(window.clients.gender_words)


def test_keyed_sessions_are_placed_at_their_clients_positions() -> None:
    """repo._placed: each session's key becomes the position of the client holding it in
    the clients' order; a shared key gives None (number them instead); a key of no
    client is an error, never a guess."""
    client_keys = np.array([90, -5, 12], dtype=np.int64)  # positions 0, 1, 2
    values = np.arange(3 * (ROW_WIDTH - 1), dtype=np.float64).reshape(3, ROW_WIDTH - 1)
    table = repo._placed(client_keys, np.array([12, 90, 12], dtype=np.int64), values)
    assert table is not None
    assert table[:, 0].tolist() == [2, 0, 2]
    assert np.array_equal(table[:, 1:], values)
    assert repo._placed(np.array([4, 9, 4], dtype=np.int64), client_keys[:1], values[:1]) is None
    with pytest.raises(ValueError, match="names none of the window's clients"):
        repo._placed(client_keys, np.array([13], dtype=np.int64), values[:1])
    with pytest.raises(ValueError, match="names none of the window's clients"):
        repo._placed(np.zeros(0, dtype=np.int64), np.array([13], dtype=np.int64), values[:1])
    empty = repo._placed(client_keys, np.zeros(0, dtype=np.int64), values[:0])
    assert empty is not None
    assert empty.shape == (0, ROW_WIDTH)


def test_stored_payloads_and_rebuilt_episodes_give_identical_grids(
    tx: Callable[[], Any], stored: None
) -> None:
    """grid_from_window (payloads straight into the cells) and grid_from_episodes (the
    EpisodeIn records.episode rebuilds for a stored risk) on the same clients."""
    with tx() as s:
        window = repo.window_clients(s, CLINIC, _since(60))
        episodes = [
            episode(require_client(s, CLINIC, client_id), repo.get_sessions(s, CLINIC, client_id))
            for client_id in window.clients.client_ids
        ]
    direct, rebuilt = grid_from_window(window, 3), grid_from_episodes(episodes, 3)
    assert np.array_equal(direct.values, rebuilt.values, equal_nan=True)
    assert np.array_equal(direct.age, rebuilt.age, equal_nan=True)
    assert direct.gender.tolist() == rebuilt.gender.tolist()
    assert direct.reached.tolist() == rebuilt.reached.tolist() == [4, 3, 1]
    # and the cells hold each field's own value (a, b, c are columns 0, 1, 2)
    a1, a2 = direct.values[:, 0, 0], direct.values[:, 1, 0]
    assert a1.tolist() == [3.5, 1.5, 4.75, 31.0, 22.5, 11.0, date(2026, 10, 1).toordinal() - EPOCH]
    assert a2[[GOAL, BOND, SRS]].tolist() == [3.25, 2.5, 31.5]
    assert np.isnan(a2[[TASK, ORS, PHQ9]]).all()
    assert direct.values[PHQ9, 0, 1] == 5.0
    assert direct.values[DAY, 2, 1] == date(2026, 11, 20).toordinal() - EPOCH
    assert np.isnan(direct.values[:, 1, 1]).all()  # b has no session 2
    assert direct.values[SRS, 0, 2] == 20.0
    assert direct.age[0] == 34.0
    assert np.isnan(direct.age[1])
    assert direct.gender[0] != direct.gender[1]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = repo.window_clients

    def counted(s: Session, clinic: str, since: datetime) -> repo.StoredWindow:
        calls.append(1)
        return real(s, clinic, since)

    monkeypatch.setattr(repo, "window_clients", counted)
    return calls


def test_a_cached_report_answers_until_the_clinic_writes(
    tx: Callable[[], Any], stored: None, model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = mw.ReportCache()
    calls = _counting(monkeypatch)
    with tx() as s:
        first = mw.clinic_report(s, CLINIC, model, 30, cache=cache)
        again = mw.clinic_report(s, CLINIC, model, 30, cache=cache)
        uncached = mw.clinic_report(s, CLINIC, model, 30)
    assert again is first
    assert len(calls) == 2  # the first and the uncached one
    assert first.clients == uncached.clients == 2
    assert first.labelled == uncached.labelled == 1
    assert [f.name for f in first.figures] == [f.name for f in uncached.figures]
    with tx() as s:  # another clinic's write changes nothing here
        repo.set_outcome(s, OTHER, "a", False, date(2026, 11, 30))
        assert mw.clinic_report(s, CLINIC, model, 30, cache=cache) is first
        other = mw.clinic_report(s, OTHER, model, 30, cache=cache)
    assert other.clients == 1
    assert len(calls) == 3
    with tx() as s:  # an outcome recorded: recomputed
        repo.set_outcome(s, CLINIC, "b", False, date(2026, 11, 30))
    with tx() as s:
        labelled = mw.clinic_report(s, CLINIC, model, 30, cache=cache)
    assert (labelled.clients, labelled.labelled, len(calls)) == (2, 2, 4)
    with tx() as s:  # a session of c stored: a new risk brings c into the window
        repo.upsert_session(s, CLINIC, "c", 2, None, {"srs": {"total": 25.0}})
        recompute(s, CLINIC, require_client(s, CLINIC, "c", lock=True), model, None)
    with tx() as s:
        grown = mw.clinic_report(s, CLINIC, model, 30, cache=cache)
        assert mw.clinic_report(s, CLINIC, model, 30, cache=cache) is grown
    assert (grown.clients, len(calls)) == (3, 5)


def test_a_cached_report_expires_with_its_window_and_its_age(
    tx: Callable[[], Any], stored: None, model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(monkeypatch)
    now = datetime.now(UTC)
    cache = mw.ReportCache(max_age=timedelta(days=30))
    with tx() as s:
        wide = mw.clinic_report(s, CLINIC, model, 60, now, cache)  # a, b and c
        assert mw.clinic_report(s, CLINIC, model, 60, now + timedelta(days=1), cache) is wide
        # 21 days on, c's risk (40 days old) has left the 60-day window: recomputed
        later = mw.clinic_report(s, CLINIC, model, 60, now + timedelta(days=21), cache)
        assert (wide.clients, later.clients, len(calls)) == (3, 2, 2)
        # a 30-day window is its own entry
        month = mw.clinic_report(s, CLINIC, model, 30, now, cache)
        assert mw.clinic_report(s, CLINIC, model, 30, now + timedelta(days=1), cache) is month
    assert len(calls) == 3
    cache = mw.ReportCache(max_age=timedelta(minutes=5))
    with tx() as s:  # and no report outlives max_age
        month = mw.clinic_report(s, CLINIC, model, 30, now, cache)
        assert mw.clinic_report(s, CLINIC, model, 30, now + timedelta(minutes=4), cache) is month
        aged = mw.clinic_report(s, CLINIC, model, 30, now + timedelta(minutes=6), cache)
    assert aged is not month
    assert aged.clients == month.clients == 2
    assert len(calls) == 5


def test_the_cache_is_bounded_least_recently_used_out_first(model: LoadedModel) -> None:
    def report(clinic: str) -> MonitoringReport:
        return MonitoringReport(clinic, model.version, 0, 0, 0, 0, {}, None, ())

    cache = mw.ReportCache(size=2)
    reports = {c: report(c) for c in "xyz"}
    since = NOW - timedelta(days=30)
    cache.put(("x",), reports["x"], None, NOW)
    cache.put(("y",), reports["y"], None, NOW)
    assert cache.get(("x",), since, NOW) is reports["x"]  # x used last: y goes first
    cache.put(("z",), reports["z"], None, NOW)
    assert len(cache) == 2
    assert cache.get(("y",), since, NOW) is None
    assert cache.get(("x",), since, NOW) is reports["x"]
    assert cache.get(("z",), since, NOW) is reports["z"]
    with pytest.raises(ValueError, match="size: value 0 must be at least 1"):
        mw.ReportCache(size=0)


def test_the_periods_are_consecutive_and_hold_each_client_once(
    tx: Callable[[], Any], stored: None, model: LoadedModel
) -> None:
    """Weeks counted back from now, the oldest cut at the window's start; a and b (risks
    stored now) in the last week, c (40 days ago) in the week holding day 40."""
    assert mw.period_days(30) == mw.period_days(91) == 7
    assert mw.period_days(365) == 29  # ceil(365 / 13)
    bounds = mw.period_bounds(30, NOW)
    assert [(end - start).days for start, end in bounds] == [2, 7, 7, 7, 7]
    assert bounds[0][0] == NOW - timedelta(days=30)
    assert bounds[-1][1] == NOW
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert len(mw.period_bounds(730, NOW)) == 13
    now = datetime.now(UTC)
    with tx() as s:
        report = mw.clinic_report(s, CLINIC, model, 60, now=now)
    assert [p.start for p in report.periods] == [b[0] for b in mw.period_bounds(60, now)]
    counts = [p.clients for p in report.periods]
    week_of_c = len(counts) - 1 - 40 // 7
    assert counts[-1] == 2
    assert counts[week_of_c] == 1
    assert sum(counts) == report.clients == 3
    assert [p.labelled for p in report.periods][-1] == 1  # a's outcome
    # three clients: every figure over time is "too few", none has a number
    assert all(f.value is None for p in report.periods for f in p.figures)


def test_a_labelled_window_scores_the_latest_landmark_as_an_unlabelled_one(
    tx: Callable[[], Any], stored: None, model: LoadedModel
) -> None:
    """With outcomes, the window's rows are each client's latest of its scored landmark
    rows; without, its latest landmark is built alone: the same rows and probabilities."""
    with tx() as s:
        labelled = repo.window_clients(s, CLINIC, _since(60))
    no_outcomes = np.full(len(labelled.clients), np.nan)
    unlabelled = replace(labelled, clients=replace(labelled.clients, dropout=no_outcomes))
    assert np.array_equal(labelled.clients.dropout, [1.0, np.nan, np.nan], equal_nan=True)
    got, rows_of, owner = mw._window_parts(labelled, model)
    alone, rows_alone, no_owner = mw._window_parts(unlabelled, model)
    assert alone.outcomes is None
    assert no_owner.tolist() == []
    assert rows_of.tolist() == rows_alone.tolist() == [0, 1, 2]
    assert got.landmark.tolist() == alone.landmark.tolist() == [3, 3, 1]
    assert np.array_equal(got.X, alone.X, equal_nan=True)
    assert np.allclose(got.p, alone.p, rtol=0, atol=1e-12)
    assert np.allclose(alone.p, model.probability(alone.X), rtol=0, atol=1e-12)
    assert got.outcomes is not None  # a, at each landmark it reached (1, 2 and 3)
    assert owner.tolist() == [0, 0, 0]
    assert got.outcomes.landmark.tolist() == [1, 2, 3]
    assert got.outcomes.y.tolist() == [1.0, 1.0, 1.0]
    assert got.outcomes.p[-1] == got.p[0]  # a's latest landmark row is its window row
