"""Stored caseloads for EHR systems: clients, their sessions and outcomes, stored risks, the
caseload and flag acknowledgements. Everything is scoped to the caller's clinic: a client
of another clinic is answered exactly like a client that does not exist (404).

Handlers are plain `def`: they wait on the database, so FastAPI runs them in its thread
pool and the event loop keeps serving predictions meanwhile.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from service.api.deps import (
    ERRORS,
    STORED_ERRORS,
    Audit,
    Db,
    MaxLandmark,
    Model,
    Models,
    ReadKey,
    WriteKey,
    actor,
)
from service.core.body import JsonBody, documented
from service.core.schemas import (
    AcknowledgedOut,
    CaseloadOut,
    ClientIn,
    ClientOut,
    Identifier,
    Level,
    OutcomeIn,
    OutcomeOut,
    PageLimitText,
    PageOffsetText,
    RiskHistoryOut,
    SessionNumberText,
    SessionScoresIn,
    SessionStoredOut,
    StoredRiskOut,
)
from service.core.standing import caseload_models
from service.scoring.records import (
    NoRiskYet,
    recompute,
    require_client,
    stored_risk,
)
from service.security import access
from service.storage import repository as repo

router = APIRouter(prefix="/v1", tags=["clients"])
ClientId = Annotated[Identifier, Path()]


@router.put(
    "/clients/{client_id}",
    response_model=ClientOut,
    responses=STORED_ERRORS,
    openapi_extra=documented(ClientIn),
)
def put_client(
    client_id: ClientId,
    key: WriteKey,
    body: Annotated[ClientIn, JsonBody(ClientIn)],
    db: Db,
    audit: Audit,
    model: Model,
    cap: MaxLandmark,
) -> Any:
    """Create or update a client's demographics and therapist; a client with sessions has
    their risk recomputed (age and gender are model inputs)."""
    who = actor(key)
    with db.session() as s:
        access.require_writable(s, key, client_id, body.therapist_id)
        status = repo.upsert_client(
            s, who.clinic, client_id, body.age, body.gender, body.therapist_id
        )
        if status != "unchanged":
            client = require_client(s, who.clinic, client_id, lock=True)
            recompute(s, who.clinic, client, model, cap)
        audit(s, who, f"client.{status}", client_id)
    return {"client_id": client_id, "status": status}


@router.put(
    "/clients/{client_id}/sessions/{number}",
    response_model=SessionStoredOut,
    responses=STORED_ERRORS,
    openapi_extra=documented(SessionScoresIn),
)
def put_session(
    client_id: ClientId,
    number: Annotated[SessionNumberText, Path()],
    key: WriteKey,
    body: Annotated[SessionScoresIn, JsonBody(SessionScoresIn)],
    db: Db,
    audit: Audit,
    model: Model,
    cap: MaxLandmark,
) -> Any:
    """Store one session's scores (idempotent: the same PUT twice stores one row) and
    recompute the client's risk. The client is locked before the write, so concurrent
    PUTs of one client's sessions are applied one after another, each recomputing from
    every session stored before it."""
    who = actor(key)
    payload = body.model_dump(mode="json", exclude_none=True)
    with db.session() as s:
        client = access.require_client_of(s, key, client_id, lock=True)
        status = repo.upsert_session(s, who.clinic, client_id, number, body.date, payload)
        risk = recompute(s, who.clinic, client, model, cap)
        audit(s, who, f"session.{status}", client_id, model.version)
    return {
        "client_id": client_id,
        "number": number,
        "status": status,
        "risk": None if risk is None else risk.body.json_value(),
    }


@router.put(
    "/clients/{client_id}/outcome",
    response_model=OutcomeOut,
    responses=STORED_ERRORS,
    openapi_extra=documented(OutcomeIn),
)
def put_outcome(
    client_id: ClientId,
    key: WriteKey,
    body: Annotated[OutcomeIn, JsonBody(OutcomeIn)],
    db: Db,
    audit: Audit,
) -> Any:
    """How the episode ended (dropout or not, and when): the label for retraining."""
    who = actor(key)
    with db.session() as s:
        access.require_client_of(s, key, client_id)
        status = repo.set_outcome(s, who.clinic, client_id, body.dropout, body.ended_on)
        audit(s, who, f"outcome.{status}", client_id)
    return {"client_id": client_id, "status": status}


@router.get("/clients/{client_id}/risk", response_model=StoredRiskOut, responses=STORED_ERRORS)
def get_risk(client_id: ClientId, key: ReadKey, db: Db, audit: Audit) -> Any:
    """The latest stored risk, with its factors and suggested actions."""
    who = actor(key)
    with db.session() as s:
        access.require_client_of(s, key, client_id)
        record = repo.latest_prediction(s, who.clinic, client_id)
        if record is None:
            raise NoRiskYet(f"client {client_id!r} has no risk yet: no session at a landmark")
        audit(s, who, "risk.read", client_id, record.model_version)
    return stored_risk(record)


@router.get(
    "/clients/{client_id}/risk/history", response_model=RiskHistoryOut, responses=STORED_ERRORS
)
def get_risk_history(
    client_id: ClientId,
    key: ReadKey,
    db: Db,
    audit: Audit,
    limit: Annotated[PageLimitText, Query()] = 100,
) -> Any:
    """Every stored risk of the client, newest first."""
    who = actor(key)
    with db.session() as s:
        access.require_client_of(s, key, client_id)
        records = repo.prediction_history(s, who.clinic, client_id, limit)
        audit(s, who, "risk.history", client_id)
    return {"client_id": client_id, "history": [stored_risk(r) for r in records]}


@router.get("/caseload", response_model=CaseloadOut, responses=ERRORS)
def get_caseload(
    key: ReadKey,
    db: Db,
    audit: Audit,
    models: Models,
    therapist_id: Annotated[Identifier | None, Query()] = None,
    min_level: Level | None = None,
    acknowledged: bool | None = None,
    limit: Annotated[PageLimitText, Query()] = 50,
    offset: Annotated[PageOffsetText, Query()] = 0,
) -> Any:
    """The clinic's clients with a stored risk, highest first, one page at a time; a
    therapist's key lists that therapist's (another `therapist_id` is a 403). `models` says
    which model serves the clinic and, while stored risks are being recomputed after a
    change of model, how many are still from another."""
    who = actor(key)
    therapist = access.caseload_therapist(key, therapist_id)
    with db.session() as s:
        page = repo.caseload(s, who.clinic, therapist, min_level, acknowledged, limit, offset)
        for row in page.rows:  # each client shown is a read of that client's data
            audit(s, who, "caseload.read", row.client_id, row.model_version)
    return {
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "models": caseload_models(page.versions, models.serving_version(who.clinic)),
        "clients": [
            {
                "client_id": r.client_id,
                "therapist_id": r.therapist_id,
                "probability": r.probability,
                "risk_level": r.risk_level,
                "landmark_session": r.landmark,
                "computed_at": r.computed_at.isoformat(),
                "model_version": r.model_version,
                "acknowledged": r.acknowledged,
                "last_session_date": None
                if r.last_session_date is None
                else r.last_session_date.isoformat(),
                "main_factor": r.main_factor_label,
            }
            for r in page.rows
        ],
    }


@router.post(
    "/clients/{client_id}/flag/acknowledge",
    response_model=AcknowledgedOut,
    responses=STORED_ERRORS,
)
def acknowledge(client_id: ClientId, key: ReadKey, db: Db, audit: Audit) -> Any:
    """A clinician has seen the flag: it stays quiet until a new session changes the level."""
    who = actor(key)
    with db.session() as s:
        access.require_client_of(s, key, client_id)
        ack = repo.acknowledge(s, who.clinic, client_id, who.name)
        if ack is None:
            raise NoRiskYet(f"client {client_id!r} has no risk yet to acknowledge")
        audit(s, who, "flag.acknowledge", client_id)
    return {
        "client_id": client_id,
        "risk_level": ack.risk_level,
        "acknowledged_at": ack.acknowledged_at.isoformat(),
    }
