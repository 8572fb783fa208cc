"""Every read and write the service makes, as plain functions of a Session and a clinic.

Each function takes the clinic explicitly and filters on it, so one clinic's data can never
leak into another's answer. Results are frozen dataclasses, never ORM objects, so nothing
outside this module can lazy-load or accidentally write through them. Upserts are Core
statements that bypass the ORM's identity map, so ORM reads here use populate_existing:
a read after a write in the same transaction sees the write.

Writes are safe under concurrency (several workers, EHRs retrying): inserts use the
dialect's INSERT ... ON CONFLICT, so two writers of the same row never produce a duplicate
or an IntegrityError, and a PUT that changes nothing writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeAlias, cast

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ColumnExpressionArgument,
    Connection,
    CursorResult,
    Date,
    Executable,
    Integer,
    Row,
    Select,
    Subquery,
    and_,
    delete,
    exists,
    extract,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.core.prediction import Prediction
from service.storage.packed_floats import packed_rows, unpack_rows
from service.storage.snapshot_reads import alongside
from service.storage.tables import (
    AuditEntry,
    Base,
    CdsJti,
    Client,
    Clinic,
    FlagAck,
    Outcome,
    PredictionRow,
    SessionRow,
)
from training import features
from training.features import ROW_WIDTH, FloatArray, IntArray, SessionMeasures, session_table
from training.vocabulary import (
    DAY_ZERO,
    RISK_LEVELS,
    SRS_ITEMS,
    srs_items_total,
    wai_subscale_means,
)

Change = Literal["created", "updated", "unchanged"]
LEVELS: tuple[str, ...] = RISK_LEVELS
_Str: TypeAlias = str | ColumnExpressionArgument[str]  # a value, or a column to join on


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    age: int | None
    gender: str | None
    therapist_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class SessionRecord:
    number: int
    session_date: date | None
    payload: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True)
class PredictionRecord:
    """A stored risk; acknowledged is true only for the latest one, while its ack is active."""

    id: int
    client_id: str
    computed_at: datetime
    model_version: str
    inputs_sha256: str
    probability: float
    risk_level: str
    landmark: int
    body: Prediction  # the answer as it was given, read back typed
    acknowledged: bool


@dataclass(frozen=True)
class CaseloadRow:
    client_id: str
    therapist_id: str | None
    probability: float
    risk_level: str
    landmark: int
    computed_at: datetime
    model_version: str
    acknowledged: bool
    last_session_date: date | None
    main_factor_label: str | None


@dataclass(frozen=True)
class CaseloadPage:
    """One page of a caseload, the number of clients matching, and that number by the
    model version of their stored risk."""

    rows: list[CaseloadRow]
    total: int
    versions: dict[str, int]


@dataclass(frozen=True)
class AckRecord:
    id: int
    client_id: str
    prediction_id: int
    risk_level: str
    acknowledged_at: datetime
    actor: str
    active: bool


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    clinic_id: str
    actor: str
    action: str
    client_pseudonym: str | None
    model_version: str | None


# --- helpers --------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _dialect(s: Session) -> str:
    return s.get_bind().dialect.name


def _insert(s: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT support: both backends have it, spelled by their dialects."""
    name = _dialect(s)
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"database {name!r} is not supported (SQLite or PostgreSQL)")


def _rowcount(s: Session, statement: Executable) -> int:
    """Rows the statement wrote; preserve_rowcount because SQLAlchemy otherwise keeps the
    count of UPDATE and DELETE only, and an INSERT ... ON CONFLICT DO NOTHING needs it."""
    options = {"preserve_rowcount": True}
    return cast(CursorResult[Any], s.execute(statement, execution_options=options)).rowcount


def _is_client(model: Any, clinic_id: _Str, client_id: _Str) -> ColumnElement[bool]:
    return and_(model.clinic_id == clinic_id, model.client_id == client_id)


def _stored(
    s: Session, model: type[Base], key: dict[str, Any], columns: list[str], lock: bool
) -> dict[str, Any] | None:
    """The given columns of one row by primary key; `lock` keeps it until commit (on SQLite
    the caller already holds the database's write lock)."""
    query = select(*(getattr(model, c) for c in columns))
    query = query.where(*(getattr(model, k) == v for k, v in key.items()))
    if lock:
        query = query.with_for_update(key_share=True)
    row = s.execute(query).first()
    return None if row is None else dict(row._mapping)


def _upsert(
    s: Session,
    model: type[Base],
    key: dict[str, Any],
    values: dict[str, Any],
    on_insert: dict[str, Any],
    on_change: dict[str, Any],
) -> Change:
    """Create the row, or update it if `values` differ, or do nothing if they are equal.

    A retried PUT (the common case) costs one read and no write. Otherwise the insert
    either wins (created) or finds the row another writer just made; that row is then
    locked and compared again, so under any interleaving exactly one writer reports
    "created" and equal values are never rewritten. `on_insert` and `on_change` are the
    timestamps written with a new row and with a changed one.
    """
    columns = list(values)
    if _stored(s, model, key, columns, lock=False) == values:
        return "unchanged"
    new = _insert(s, model).values({**key, **values, **on_insert})
    if _rowcount(s, new.on_conflict_do_nothing()) == 1:
        return "created"
    if _stored(s, model, key, columns, lock=True) == values:
        return "unchanged"
    s.execute(new.on_conflict_do_update(index_elements=list(key), set_={**values, **on_change}))
    return "updated"


def _require_client(s: Session, clinic_id: str, client_id: str) -> None:
    """KeyError unless the clinic has the client (one this transaction has locked does:
    clients are never deleted)."""
    if (clinic_id, client_id) in _held_locks(s):
        return
    if not client_exists(s, clinic_id, client_id):
        raise KeyError("no such client in this clinic")  # no id: exceptions end up in logs


def lock_client(s: Session, clinic_id: str, client_id: str) -> bool:
    """Order the writers of one client until commit; False: no such client.

    Every write that recomputes a risk takes this lock before it writes and before it
    reads the client's sessions, so the risk it stores is computed from every session
    committed before it, and the last writer's risk is the one of all stored sessions.
    PostgreSQL locks the client row (FOR NO KEY UPDATE: the foreign-key checks of session
    inserts still pass); at READ COMMITTED each later statement takes a fresh snapshot, so
    a read after the lock sees what the previous holder committed. SQLite has no row
    locks: a no-op UPDATE takes the database's write lock, after which every read in this
    transaction is current. Either is held until the transaction ends, so taking it again
    in the same transaction sends nothing (_held_locks): a stored session's PUT asked for
    it four times, a round trip each.
    """
    if (clinic_id, client_id) in _held_locks(s):
        return True
    match = _is_client(Client, clinic_id, client_id)
    if _dialect(s) == "sqlite":
        touch = update(Client).where(match).values(updated_at=Client.updated_at)
        locked = _rowcount(s, touch.execution_options(synchronize_session=False)) == 1
    else:
        query = select(Client.client_id).where(match).with_for_update(key_share=True)
        locked = s.scalar(query) is not None
    if locked:
        _held_locks(s).add((clinic_id, client_id))
    return locked


_HELD_LOCKS = "dropout_risk.held_client_locks"


def _held_locks(s: Session) -> set[tuple[str, str]]:
    """The (clinic, client) pairs lock_client has locked in the Session's current
    transaction; empty when none has begun. Kept in `s.info` beside the transaction they
    belong to (held there, so no later transaction can be mistaken for it): a commit or a
    rollback ends the locks, and the next transaction starts with none. The service takes
    no savepoints, whose rollback would release a lock taken inside one."""
    transaction = s.get_transaction()
    held: tuple[object, set[tuple[str, str]]] | None = s.info.get(_HELD_LOCKS)
    if transaction is None:
        return set()
    if held is None or held[0] is not transaction:
        held = (transaction, set())
        s.info[_HELD_LOCKS] = held
    return held[1]


# --- clinics and clients --------------------------------------------------------------------


def ensure_clinic(s: Session, clinic_id: str) -> None:
    """Create the clinic row if it is missing (a read first: it nearly always exists)."""
    if s.scalar(select(Clinic.id).where(Clinic.id == clinic_id)) is None:
        row = {"id": clinic_id, "created_at": _now()}
        s.execute(_insert(s, Clinic).values(row).on_conflict_do_nothing())


def upsert_client(
    s: Session,
    clinic_id: str,
    client_id: str,
    age: int | None,
    gender: str | None,
    therapist_id: str | None,
) -> Change:
    """Create or update a client's demographics and therapist (and the clinic if new)."""
    ensure_clinic(s, clinic_id)
    now = _now()
    key = {"clinic_id": clinic_id, "client_id": client_id}
    values = {"age": age, "gender": gender, "therapist_id": therapist_id}
    stamps = {"created_at": now, "updated_at": now}
    return _upsert(s, Client, key, values, stamps, {"updated_at": now})


def client_exists(s: Session, clinic_id: str, client_id: str) -> bool:
    query = select(Client.client_id).where(_is_client(Client, clinic_id, client_id))
    return s.scalar(query) is not None


def get_client(
    s: Session, clinic_id: str, client_id: str, lock: bool = False
) -> ClientRecord | None:
    """The client's record; `lock` takes lock_client first (for writers that recompute)."""
    if lock and not lock_client(s, clinic_id, client_id):
        return None
    query = select(Client).where(_is_client(Client, clinic_id, client_id))
    row = s.scalars(query.execution_options(populate_existing=True)).first()
    if row is None:
        return None
    return ClientRecord(
        row.client_id, row.age, row.gender, row.therapist_id, row.created_at, row.updated_at
    )


# --- sessions and outcomes ------------------------------------------------------------------


def upsert_session(
    s: Session,
    clinic_id: str,
    client_id: str,
    number: int,
    session_date: date | None,
    payload: dict[str, Any],
) -> Change:
    """Store one session as received; the same PUT twice stores one row and writes once.

    Raises:
        KeyError: the clinic has no such client.
    """
    _require_client(s, clinic_id, client_id)
    key = {"clinic_id": clinic_id, "client_id": client_id, "number": number}
    values = {"session_date": session_date, "payload": payload, **measure_columns(payload)}
    stamp = {"updated_at": _now()}
    return _upsert(s, SessionRow, key, values, stamp, stamp)


def get_sessions(s: Session, clinic_id: str, client_id: str) -> list[SessionRecord]:
    query = select(SessionRow).where(_is_client(SessionRow, clinic_id, client_id))
    rows = s.scalars(query.order_by(SessionRow.number).execution_options(populate_existing=True))
    return [SessionRecord(r.number, r.session_date, r.payload, r.updated_at) for r in rows]


def set_outcome(
    s: Session, clinic_id: str, client_id: str, dropout: bool, ended_on: date
) -> Change:
    """Record how the episode ended: the label analysts retrain on.

    Raises:
        KeyError: the clinic has no such client.
    """
    _require_client(s, clinic_id, client_id)
    key = {"clinic_id": clinic_id, "client_id": client_id}
    values = {"dropout": dropout, "ended_on": ended_on}
    stamp = {"recorded_at": _now()}
    return _upsert(s, Outcome, key, values, stamp, stamp)


# --- risks and flags ------------------------------------------------------------------------


def _latest(s: Session, clinic_id: str, client_id: str) -> PredictionRow | None:
    query = select(PredictionRow).where(_is_client(PredictionRow, clinic_id, client_id))
    return s.scalars(query.order_by(PredictionRow.id.desc()).limit(1)).first()


def _acked(s: Session, clinic_id: str, client_id: str) -> bool:
    query = select(FlagAck.id).where(_is_client(FlagAck, clinic_id, client_id), FlagAck.active)
    return s.scalar(query.limit(1)) is not None


def _prediction(row: PredictionRow, acknowledged: bool) -> PredictionRecord:
    return PredictionRecord(
        id=row.id,
        client_id=row.client_id,
        computed_at=row.computed_at,
        model_version=row.model_version,
        inputs_sha256=row.inputs_sha256,
        probability=row.probability,
        risk_level=row.risk_level,
        landmark=row.landmark,
        body=Prediction.from_json(row.body),
        acknowledged=acknowledged,
    )


def add_prediction(
    s: Session,
    clinic_id: str,
    client_id: str,
    model_version: str,
    inputs_sha256: str,
    probability: float,
    risk_level: str,
    landmark: int,
    body: Prediction,
    rescored: bool = False,
) -> PredictionRecord:
    """Store a risk, unless the latest one was computed on the same inputs by the same model
    (then that one is returned). A change of level re-opens the client's acknowledged flag:
    an acknowledgement only silences the level it was made at. `rescored`: written by the
    background rescorer after a change of model, not in answer to a write.

    Raises:
        KeyError: the clinic has no such client.
        ValueError: risk_level is not low, moderate or high.
    """
    if risk_level not in LEVELS:
        raise ValueError(f"risk_level: value {risk_level!r} is not one of {', '.join(LEVELS)}")
    if not lock_client(s, clinic_id, client_id):
        raise KeyError("no such client in this clinic")
    latest = _latest(s, clinic_id, client_id)
    same = latest is not None and latest.inputs_sha256 == inputs_sha256
    if latest is not None and same and latest.model_version == model_version:
        return _prediction(latest, _acked(s, clinic_id, client_id))
    changed = latest is None or latest.risk_level != risk_level
    row = PredictionRow(
        clinic_id=clinic_id,
        client_id=client_id,
        computed_at=_now(),
        model_version=model_version,
        inputs_sha256=inputs_sha256,
        probability=probability,
        risk_level=risk_level,
        landmark=landmark,
        body=body.json_value(),
        level_changed=changed,
        rescored=rescored,
    )
    s.add(row)
    s.flush()
    if changed and latest is not None:  # an acknowledgement is of a stored risk
        active = and_(_is_client(FlagAck, clinic_id, client_id), FlagAck.active)
        s.execute(update(FlagAck).where(active).values(active=False))
    return _prediction(row, not changed and _acked(s, clinic_id, client_id))


def latest_prediction(s: Session, clinic_id: str, client_id: str) -> PredictionRecord | None:
    row = _latest(s, clinic_id, client_id)
    return None if row is None else _prediction(row, _acked(s, clinic_id, client_id))


def prediction_history(
    s: Session, clinic_id: str, client_id: str, limit: int = 100
) -> list[PredictionRecord]:
    """The client's stored risks, newest first."""
    query = select(PredictionRow).where(_is_client(PredictionRow, clinic_id, client_id))
    rows = list(s.scalars(query.order_by(PredictionRow.id.desc()).limit(limit)))
    acked = bool(rows) and _acked(s, clinic_id, client_id)
    return [_prediction(row, acked and i == 0) for i, row in enumerate(rows)]


def acknowledge(s: Session, clinic_id: str, client_id: str, actor: str) -> AckRecord | None:
    """Silence the client's flag at its current level; None if there is no risk yet."""
    if not lock_client(s, clinic_id, client_id):
        return None
    latest = _latest(s, clinic_id, client_id)
    if latest is None:
        return None
    row = FlagAck(
        clinic_id=clinic_id,
        client_id=client_id,
        prediction_id=latest.id,
        risk_level=latest.risk_level,
        acknowledged_at=_now(),
        actor=actor,
        active=True,
    )
    s.add(row)
    s.flush()
    return AckRecord(
        row.id, client_id, row.prediction_id, row.risk_level, row.acknowledged_at, actor, True
    )


# --- caseload -------------------------------------------------------------------------------


def caseload(
    s: Session,
    clinic_id: str,
    therapist_id: str | None,
    min_level: str | None,
    acknowledged: bool | None,
    limit: int,
    offset: int,
) -> CaseloadPage:
    """One page of the clinic's clients with a risk, highest first, how many match, and
    how many of those by each model version (a caseload recomputed after a change of
    model is mixed until it is done: service.scoring.rescoring).

    Two queries whatever the page size: the page and the counts. Each client's latest risk
    is found by the (clinic_id, client_id, id) index, not one query per client.

    Raises:
        ValueError: min_level is not low, moderate or high.
    """
    query = _caseload_query(s, clinic_id, therapist_id, min_level, acknowledged)
    matching = query.subquery()
    counts = s.execute(
        select(matching.c.model_version, func.count()).group_by(matching.c.model_version)
    )
    versions = {version: int(n) for version, n in counts}
    page = query.order_by(PredictionRow.probability.desc(), PredictionRow.client_id)
    rows = s.execute(page.limit(limit).offset(offset))
    return CaseloadPage([_caseload_row(*row) for row in rows], sum(versions.values()), versions)


def _caseload_row(
    client_id: str,
    therapist_id: str | None,
    probability: float,
    risk_level: str,
    landmark: int,
    computed_at: datetime,
    model_version: str,
    acknowledged: Any,
    last_session_date: date | None,
    main_factor_label: str | None,
) -> CaseloadRow:
    return CaseloadRow(
        client_id,
        therapist_id,
        float(probability),
        risk_level,
        landmark,
        computed_at,
        model_version,
        bool(acknowledged),  # SQLite answers EXISTS with 0/1
        last_session_date,
        main_factor_label,
    )


def _caseload_query(
    s: Session,
    clinic_id: str,
    therapist_id: str | None,
    min_level: str | None,
    acknowledged: bool | None,
) -> Any:
    latest = (
        select(PredictionRow.client_id, func.max(PredictionRow.id).label("id"))
        .where(PredictionRow.clinic_id == clinic_id)
        .group_by(PredictionRow.client_id)
        .subquery()
    )
    last_day = (
        select(SessionRow.client_id, func.max(SessionRow.session_date).label("day"))
        .where(SessionRow.clinic_id == clinic_id)
        .group_by(SessionRow.client_id)
        .subquery()
    )
    acked = exists().where(_is_client(FlagAck, clinic_id, PredictionRow.client_id), FlagAck.active)
    factor = PredictionRow.__table__.c.body[("factors", 0, "label")].as_string()
    query = (
        select(
            PredictionRow.client_id,
            Client.therapist_id,
            PredictionRow.probability,
            PredictionRow.risk_level,
            PredictionRow.landmark,
            PredictionRow.computed_at,
            PredictionRow.model_version,
            acked,
            last_day.c.day,
            factor,
        )
        .select_from(latest)
        .join(PredictionRow, PredictionRow.id == latest.c.id)
        .join(Client, _is_client(Client, clinic_id, PredictionRow.client_id))
        .outerjoin(last_day, last_day.c.client_id == PredictionRow.client_id)
    )
    return query.where(*_caseload_filters(therapist_id, min_level, acknowledged, acked))


def _caseload_filters(
    therapist_id: str | None,
    min_level: str | None,
    acknowledged: bool | None,
    acked: ColumnElement[bool],
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if therapist_id is not None:
        filters.append(Client.therapist_id == therapist_id)
    if min_level is not None:
        if min_level not in LEVELS:
            raise ValueError(f"min_level: value {min_level!r} is not one of {', '.join(LEVELS)}")
        filters.append(PredictionRow.risk_level.in_(LEVELS[LEVELS.index(min_level) :]))
    if acknowledged is not None:
        filters.append(acked if acknowledged else ~acked)
    return filters


# --- recomputing after a change of model -----------------------------------------------------


def clinic_ids(s: Session) -> list[str]:
    """Every clinic with stored data, in order."""
    return list(s.scalars(select(Clinic.id).order_by(Clinic.id)))


def stale_clients(
    s: Session, clinic_id: str, model_version: str, after: str, limit: int
) -> list[str]:
    """Up to `limit` clients of the clinic, in id order after `after`, whose latest stored
    risk was computed by another model than `model_version`: the work left after a change
    of model, read again from the rows themselves, so it resumes after a restart."""
    latest = (
        select(func.max(PredictionRow.id).label("id"))
        .where(PredictionRow.clinic_id == clinic_id, PredictionRow.client_id > after)
        .group_by(PredictionRow.client_id)
        .subquery()
    )
    query = (
        select(PredictionRow.client_id)
        .join(latest, PredictionRow.id == latest.c.id)
        .where(PredictionRow.model_version != model_version)
        .order_by(PredictionRow.client_id)
        .limit(limit)
    )
    return list(s.scalars(query))


# --- audit ----------------------------------------------------------------------------------


def add_audit(
    s: Session,
    clinic_id: str,
    actor: str,
    action: str,
    client_pseudonym: str | None,
    model_version: str | None,
    at: datetime | None = None,
) -> None:
    """One audit row, in the caller's transaction: it exists exactly when the action did.

    Not flushed here: a page of 500 caseload reads becomes one multi-row INSERT at commit."""
    s.add(
        AuditEntry(
            at=at or _now(),
            clinic_id=clinic_id,
            actor=actor,
            action=action,
            client_pseudonym=client_pseudonym,
            model_version=model_version,
        )
    )


def list_audit(s: Session, clinic_id: str, since: datetime) -> list[AuditRecord]:
    """The clinic's audit rows at or after `since` (timezone-aware), oldest first."""
    query = select(AuditEntry).where(AuditEntry.clinic_id == clinic_id, AuditEntry.at >= since)
    rows = s.scalars(query.order_by(AuditEntry.at, AuditEntry.id))
    return [
        AuditRecord(r.id, r.at, r.clinic_id, r.actor, r.action, r.client_pseudonym, r.model_version)
        for r in rows
    ]


# --- CDS Hooks replay protection ------------------------------------------------------------


def remember_jti(s: Session, iss: str, jti: str, expires_at: datetime) -> bool:
    """True the first time a JWT id is seen; False for a replay before it expires.

    Shared by every worker through the database; the insert either wins or finds the row,
    so two workers receiving the same JWT at once cannot both accept it.
    """
    s.execute(delete(CdsJti).where(CdsJti.expires_at <= _now()))
    row = {"iss": iss, "jti": jti, "expires_at": expires_at}
    return _rowcount(s, _insert(s, CdsJti).values(row).on_conflict_do_nothing()) == 1


# --- export to the cohort contract ----------------------------------------------------------


def export_tables(
    s: Session, clinic_id: str, labelled_only: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sessions, clients) rows in the cohort contract's columns (training.contract), so
    analysts can validate and retrain on what the service collected. Missing values are
    None; dates are YYYY-MM-DD; dropout is a bool, or None when no outcome is recorded.
    `labelled_only`: only the clients with a stored outcome, and their sessions (what
    `retrain` learns from)."""
    sessions = (
        select(SessionRow)
        .where(SessionRow.clinic_id == clinic_id)
        .order_by(SessionRow.client_id, SessionRow.number)
        .execution_options(populate_existing=True)
    )
    clients = (
        select(Client, Outcome)
        .join(
            Outcome,
            _is_client(Outcome, Client.clinic_id, Client.client_id),
            isouter=not labelled_only,
        )
        .where(Client.clinic_id == clinic_id)
        .order_by(Client.client_id)
        .execution_options(populate_existing=True)
    )
    if labelled_only:
        sessions = sessions.where(
            exists().where(_is_client(Outcome, SessionRow.clinic_id, SessionRow.client_id))
        )
    session_rows = [_session_export(r) for r in s.scalars(sessions)]
    return session_rows, [_client_export(c, o) for c, o in s.execute(clients)]


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _session_export(row: SessionRow) -> dict[str, Any]:
    return {
        "client_id": row.client_id,
        "session_number": row.number,
        "session_date": _iso(row.session_date),
        # read from the payload, not the columns: a whole-number score stays whole
        **measure_columns(row.payload),
    }


# --- the measures of a stored payload ---------------------------------------------------------

# SessionRow's measure columns, in the order of training.features.SessionMeasures, named as
# the contract's session columns (which the export writes them to).
MEASURE_COLUMNS = tuple(features.MEASURE_COLUMNS.values())


def session_measures(payload: dict[str, Any]) -> SessionMeasures:
    """The one reader of a session payload's measures (SessionMeasures): WAI-SR subscale
    means and the SRS total given or rolled up from their items by training.vocabulary, as
    service.scoring.episodes does for a request; ORS and PHQ-9 totals. Applied when a
    session is written (and by migration 0005 to the rows stored before it)."""
    goal, task, bond = _wai(payload.get("wai"))
    srs = _srs(payload.get("srs"))
    return goal, task, bond, srs, _total(payload.get("ors")), _total(payload.get("phq9"))


def measure_columns(payload: dict[str, Any]) -> dict[str, float | None]:
    """session_measures as SessionRow's column values."""
    return dict(zip(MEASURE_COLUMNS, session_measures(payload), strict=True))


def _wai(wai: dict[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    """(goal, task, bond) item means, given or rolled up from the 12 items by
    training.vocabulary (as service.scoring.episodes does for a request)."""
    if not wai:
        return None, None, None
    items: list[int] | None = wai.get("items")
    if items is None:
        return wai.get("goal"), wai.get("task"), wai.get("bond")
    return wai_subscale_means(items)


def _srs(srs: dict[str, Any] | None) -> float | None:
    """The SRS total, given or summed from its four items (as
    service.scoring.episodes.srs_total)."""
    if not srs:
        return None
    if srs.get("total") is not None:
        return float(srs["total"])
    return srs_items_total([srs.get(name) for name in SRS_ITEMS])


def _total(measure: dict[str, Any] | None) -> float | None:
    return None if not measure else measure.get("total")  # as sent: a PHQ-9 total is whole


def _client_export(client: Client, outcome: Outcome | None) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "age": client.age,
        "gender": client.gender,
        "therapist_id": client.therapist_id,
        "dropout": None if outcome is None else outcome.dropout,
        "ended_on": None if outcome is None else _iso(outcome.ended_on),
    }


# --- monitoring: the clients of a window ------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# A window client's packed columns (_packed_clients), after its key.
_CLIENT_WIDTH = 4  # age, gender's position in the window's words, dropout, last risk


def epoch_micros(moment: datetime) -> int:
    """An aware datetime as whole microseconds since the Unix epoch: how a window's risk
    times are compared (exact, where a float of seconds rounds)."""
    return (moment - _EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class WindowClients:
    """The clients of a monitoring window as columns, one entry per client in client id
    order (its position, by which its sessions name it). Columns, not an object per
    client: a large clinic's window has tens of thousands, and building them was most of
    the window's read (bench/monitoring_service.py).

    `gender` is each client's index in `gender_words` (the window's distinct genders as
    recorded, in no particular order), -1 when none is recorded; `dropout` its stored
    outcome (1.0 dropped out, 0.0 did not, NaN none recorded); `last_risk` when the
    latest of its window's stored risks was computed (epoch_micros: which period of the
    window it counts in, the report's periods)."""

    client_ids: tuple[str, ...]
    age: FloatArray  # NaN: not recorded
    gender: IntArray
    gender_words: tuple[str, ...]
    dropout: FloatArray
    last_risk: IntArray

    def __len__(self) -> int:
        return len(self.client_ids)

    @classmethod
    def of_rows(cls, records: Sequence[Row[Any]]) -> WindowClients:
        """From rows of (client id, age, gender, dropout, last risk), in client id order."""
        ids, ages, genders, dropouts, lasts = list(zip(*records, strict=True)) or [()] * 5
        words = tuple(sorted({g for g in genders if g is not None}))
        index = {word: i for i, word in enumerate(words)}
        return cls(
            client_ids=tuple(ids),
            age=np.array([np.nan if a is None else a for a in ages], dtype=np.float64),
            gender=np.array([index.get(g, -1) for g in genders], dtype=np.int64),
            gender_words=words,
            dropout=np.array([np.nan if d is None else d for d in dropouts], dtype=np.float64),
            last_risk=np.array([epoch_micros(t) for t in lasts], dtype=np.int64),
        )


@dataclass(frozen=True)
class StoredWindow:
    """The clinic's clients with a risk stored at or after `since` (WindowClients; one
    without sessions reaches no landmark: it has no row in the window), and all their
    sessions, in no particular order, as the one cell writer takes them
    (training.features.grid_from_rows: ROW_WIDTH float columns, the first the client's
    position in `clients`).
    `earliest`: the oldest of the window's stored risks (None: none), after which the
    window can lose a client without any write."""

    clients: WindowClients
    sessions: FloatArray
    earliest: datetime | None


def window_clients(s: Session, clinic_id: str, since: datetime) -> StoredWindow:
    """The clinic's window (StoredWindow) in two queries of the columns it needs, whatever
    the number of clients: the window's clients (_window_of_clients: age, gender and
    latest risk in the window, with their outcome) in client id order, then their
    sessions, unsorted (sorting them spilled to disk); and one indexed look-up of the
    window's oldest risk. The sessions' measures are their stored columns
    (session_measures, applied when they were written): parsing 140,000 JSON payloads was
    most of this query's time on PostgreSQL.

    On PostgreSQL both answers are packed by the server into single values
    (service.storage.packed_floats; the clients' ids joined into one text), and each
    session comes with its client's key (client_key, a 64-bit hash of the id), which the
    clients' answer gives too: the sessions are read on a second connection beside the
    clients (service.storage.snapshot_reads: the window then costs about the longer of
    the two reads, not their sum), and numbering the clients in the sessions' query
    instead (grouping the window's risks, joining the clients, sorting them) was a third
    of its server time (bench/monitoring_service.py). Should two of the window's clients
    share a key, the sessions are read numbered instead (_numbered_sessions), as they
    always are elsewhere (SQLite, whose clients come as rows).

    The two queries must read one snapshot (`s` from Storage.snapshot; the second
    connection imports it): a client whose first risk in the window is stored between
    them would have sessions but no place in the clients' answer, or shift the sessions
    of every later client onto the wrong one."""
    conn = s.connection()  # Core rows: the ORM's per-row work is not needed here
    if conn.dialect.name != "postgresql":
        clients = WindowClients.of_rows(conn.execute(_window_of_clients(clinic_id, since)).all())
        sessions = _numbered_sessions(conn, clinic_id, since)
        return StoredWindow(clients, sessions, _earliest(conn, clinic_id, since))
    with alongside(conn, partial(_keyed_sessions, clinic_id=clinic_id, since=since)) as keyed:
        clients, keys = _packed_clients(conn, clinic_id, since)
        earliest = _earliest(conn, clinic_id, since)
        table = _placed(keys, *keyed())
    if table is None:  # two clients share a key: number them instead
        table = _numbered_sessions(conn, clinic_id, since)
    return StoredWindow(clients, table, earliest)


def _window_of_clients(clinic_id: str, since: datetime) -> Select[Any]:
    """The window's clients as rows of (client id, age, gender, dropout, last risk), in
    client id order."""
    latest = _latest_risks(clinic_id, since)
    return (
        select(Client.client_id, Client.age, Client.gender, Outcome.dropout, latest.c.last_risk)
        .join(latest, latest.c.client_id == Client.client_id)
        .outerjoin(Outcome, _is_client(Outcome, clinic_id, Client.client_id))
        .where(Client.clinic_id == clinic_id)
        .order_by(Client.client_id)
    )


def _packed_clients(
    conn: Connection, clinic_id: str, since: datetime
) -> tuple[WindowClients, IntArray]:
    """The window's clients (WindowClients) and their keys (client_key), in one row: the
    window's distinct genders, its client ids joined by a space (which no id holds:
    vocabulary.ID_RULE), and each client's key and columns packed (packed_rows), both in
    client id order; the last risk as whole microseconds since the epoch (a float8 holds
    them exactly until the year 2255)."""
    window = _window_of_clients(clinic_id, since).order_by(None).cte("window_clients")
    # a CTE of its own: named twice below, it is computed once (a subquery named twice
    # was two plans, each a sort of the window's genders)
    distinct = func.array_agg(window.c.gender.distinct()).filter(window.c.gender.is_not(None))
    words = select(select(distinct.label("words")).cte("window_words").c.words).scalar_subquery()
    columns = [
        window.c.age,
        func.array_position(words, window.c.gender),
        window.c.dropout.cast(Integer),
        extract("epoch", window.c.last_risk) * 1_000_000,
    ]
    in_order = window.c.client_id
    ids = func.string_agg(window.c.client_id, postgresql.aggregate_order_by(literal(" "), in_order))
    packed = packed_rows(client_key(window.c.client_id), columns, order_by=in_order)
    gender_words, joined, data = conn.execute(select(words, ids, packed)).one()
    keys, values = unpack_rows(data, _CLIENT_WIDTH)
    position = values[:, 1]
    clients = WindowClients(
        client_ids=tuple(joined.split(" ")) if joined else (),
        age=values[:, 0].copy(),
        gender=np.where(np.isnan(position), 0, position).astype(np.int64) - 1,
        gender_words=tuple(gender_words or ()),
        dropout=values[:, 2].copy(),
        last_risk=values[:, 3].astype(np.int64),
    )
    return clients, keys


def _earliest(conn: Connection, clinic_id: str, since: datetime) -> datetime | None:
    """The oldest of the window's stored risks (an indexed look-up)."""
    return conn.scalar(
        select(func.min(PredictionRow.computed_at)).where(_in_window(clinic_id, since))
    )


def client_key(client_id: ColumnElement[str]) -> ColumnElement[int]:
    """A client's key in the packed sessions: PostgreSQL's 64-bit hash of its id (two of
    50,000 clients share one with a probability of about 1 in 10^10; window_clients then
    numbers them instead)."""
    return func.hashtextextended(client_id, 0, type_=BigInteger)


def _keyed_sessions(
    conn: Connection, clinic_id: str, since: datetime
) -> tuple[IntArray, FloatArray]:
    """The sessions of the clients with a risk in the window, each as its client's key
    and its SessionValues without the position, packed by the server into one value
    (service.storage.packed_floats; the date as its day number since vocabulary.DAY_ZERO,
    a date minus a date being days there)."""
    in_window = select(PredictionRow.client_id).where(_in_window(clinic_id, since))
    values = [
        SessionRow.number,
        SessionRow.session_date - literal(DAY_ZERO, Date),
        *(getattr(SessionRow, column) for column in MEASURE_COLUMNS),
    ]
    packed = select(packed_rows(client_key(SessionRow.__table__.c.client_id), values)).where(
        SessionRow.clinic_id == clinic_id, SessionRow.client_id.in_(in_window)
    )
    return unpack_rows(conn.scalar(packed), ROW_WIDTH - 1)


def _placed(client_keys: IntArray, keys: IntArray, values: FloatArray) -> FloatArray | None:
    """The cell writer's table of keyed sessions: each session's client key replaced by
    that client's position in `client_keys` (the clients' order); None when two clients
    share a key. A session whose key names none of them (impossible in one snapshot) is
    an error, not a guess."""
    order = np.argsort(client_keys, kind="stable")
    ranked = client_keys[order]
    if ranked.size > 1 and not (ranked[1:] != ranked[:-1]).all():
        return None
    at = np.searchsorted(ranked, keys).clip(0, max(ranked.size - 1, 0))
    if keys.size and (not ranked.size or (ranked[at] != keys).any()):
        raise ValueError("a window session's key names none of the window's clients")
    table = np.empty((keys.size, ROW_WIDTH))
    table[:, 0] = order[at] if keys.size else 0.0
    table[:, 1:] = values
    return table


def _in_window(clinic_id: str, since: datetime) -> ColumnElement[bool]:
    return and_(
        PredictionRow.clinic_id == clinic_id,
        PredictionRow.computed_at >= since,
        PredictionRow.rescored.is_(False),  # a rescored risk answered no one (migration 0004)
    )


def _latest_risks(clinic_id: str, since: datetime) -> Subquery:
    """The clients with a risk stored since `since`, each with the latest of those risks
    (client_id, last_risk): uncorrelated and grouped, index ix_predictions_clinic_computed_at."""
    return (
        select(
            PredictionRow.client_id.label("client_id"),
            func.max(PredictionRow.computed_at).label("last_risk"),
        )
        .where(_in_window(clinic_id, since))
        .group_by(PredictionRow.client_id)
        .subquery()
    )


def _numbered(clinic_id: str, since: datetime) -> Subquery:
    """The window's clients (those of window_clients' first query) as (client_id,
    position): their number 0..n-1 in client id order, their index in that query's
    answer, by which their sessions name them."""
    latest = _latest_risks(clinic_id, since)
    position = func.row_number().over(order_by=Client.client_id) - 1
    return (
        select(Client.client_id, position.label("position"))
        .join(latest, latest.c.client_id == Client.client_id)
        .where(Client.clinic_id == clinic_id)
        .subquery()
    )


def _numbered_sessions(conn: Connection, clinic_id: str, since: datetime) -> FloatArray:
    """The sessions of the numbered clients as rows (SessionValues) through
    training.features.session_table: the cell writer's table (a test compares it with
    the keyed one on PostgreSQL)."""
    return session_table(
        conn.execute(_window_session_query(_numbered(clinic_id, since), clinic_id))
    )


def _window_session_query(numbered: Subquery, clinic_id: str) -> Select[Any]:
    """SessionValues of the numbered clients' sessions."""
    return (
        select(
            numbered.c.position,
            SessionRow.number,
            SessionRow.session_date,
            *(getattr(SessionRow, column) for column in MEASURE_COLUMNS),
        )
        .join(numbered, numbered.c.client_id == SessionRow.client_id)
        .where(SessionRow.clinic_id == clinic_id)
    )


def outcome_counts(s: Session, clinic_id: str) -> tuple[int, int]:
    """(dropouts, completers) among the clinic's stored outcomes: the labelled episodes a
    retrain of the clinic would learn from (export_tables(labelled_only=True))."""
    rows = s.execute(
        select(Outcome.dropout, func.count())
        .where(Outcome.clinic_id == clinic_id)
        .group_by(Outcome.dropout)
    )
    counts = {bool(dropout): int(n) for dropout, n in rows}
    return counts.get(True, 0), counts.get(False, 0)


@dataclass(frozen=True)
class ClinicWrites:
    """What a monitoring report of the clinic depends on, besides the model and the window:
    every write that can change one adds a stored risk (a client's or a session's change
    is recomputed and stored when its inputs change) or records an outcome. Counts as well
    as the latest: a risk inserted by a transaction that committed after a later one's
    changes the count, not the largest id."""

    predictions: int
    last_prediction: int | None
    outcomes: int
    last_outcome: datetime | None


def clinic_writes(s: Session, clinic_id: str) -> ClinicWrites:
    """The clinic's ClinicWrites: two aggregates, each over the clinic's rows of one index."""
    risks = select(func.count(), func.max(PredictionRow.id)).where(
        PredictionRow.clinic_id == clinic_id
    )
    ends = select(func.count(), func.max(Outcome.recorded_at)).where(Outcome.clinic_id == clinic_id)
    n_risks, last_risk = s.execute(risks).one()
    n_ends, last_end = s.execute(ends).one()
    return ClinicWrites(n_risks, last_risk, n_ends, last_end)
