"""Stored client records: an episode rebuilt from what the EHR pushed, its risk recomputed
and stored, and the audit trail of every read and write.

The risk of a stored client is computed by the same code as a stateless prediction: the
stored sessions are turned back into an EpisodeIn (the request schema) and scored by
service.scoring.score, so a stored risk and a posted episode with the same sessions agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.core.observability import Pseudonymizer
from service.core.prediction import NotAtLandmark
from service.core.schemas import EpisodeIn
from service.scoring.score import score
from service.storage import repository as repo
from training.errors import DropoutRiskError
from training.registry import LoadedModel


class ClientNotFound(DropoutRiskError):
    """No such client in the caller's clinic (another clinic's client looks the same: 404)."""


class NoRiskYet(DropoutRiskError):
    """The client exists but has no stored risk (no session at a landmark yet)."""


@dataclass(frozen=True)
class Actor:
    """Who reads or writes, for the audit trail: `key:<id>` or `cds:<issuer>|<subject>`."""

    clinic: str
    name: str


def episode(client: repo.ClientRecord, sessions: list[repo.SessionRecord]) -> EpisodeIn:
    """The stored client as the prediction API's request body."""
    return EpisodeIn.model_validate(
        {
            "client_id": client.client_id,
            "age": client.age,
            "gender": client.gender,
            "therapist_id": client.therapist_id,
            "sessions": [{**s.payload, "number": s.number} for s in sessions],
        }
    )


def fingerprint(body: EpisodeIn) -> str:
    """SHA-256 of the episode's canonical JSON: which inputs a stored risk was computed on."""
    data = body.model_dump(mode="json", exclude_none=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def client_not_found(client_id: str) -> ClientNotFound:
    """The one answer for a client the caller cannot see, whatever the reason."""
    return ClientNotFound(
        f"client_id: value {client_id!r} is not a client of this clinic "
        f"(create it with PUT /v1/clients/{client_id})"
    )


def require_client(
    s: Session, clinic: str, client_id: str, lock: bool = False
) -> repo.ClientRecord:
    """The client, or ClientNotFound; `lock`: see repo.lock_client (writers that recompute
    take it before they write)."""
    client = repo.get_client(s, clinic, client_id, lock)
    if client is None:
        raise client_not_found(client_id)
    return client


def recompute(
    s: Session, clinic: str, client: repo.ClientRecord, model: LoadedModel, cap: int | None
) -> repo.PredictionRecord | None:
    """Score the stored episode and store the risk; None before the first landmark.

    The sessions are read under the client's lock (repo.lock_client; the caller should
    already hold it from before its write), never before it: a risk computed from sessions
    read earlier could be stored after a concurrent writer's newer one (issue 11).
    """
    if not repo.lock_client(s, clinic, client.client_id):
        return None  # not reached: the caller has just read the client in this transaction
    sessions = repo.get_sessions(s, clinic, client.client_id)
    if not sessions:
        return None
    return _store(s, clinic, [episode(client, sessions)], model, cap, rescored=False)[0]


def rescore(
    s: Session, clinic: str, client_ids: list[str], model: LoadedModel, cap: int | None
) -> list[repo.PredictionRecord]:
    """Recompute the stored risks of these clients with `model` (one scoring call for all),
    as `recompute` would one by one; a client whose latest risk is already this model's,
    or that went away, is left alone. Each client is locked before its sessions are read,
    in id order (so two rescorers never wait on each other in a cycle)."""
    bodies = []
    for client_id in sorted(client_ids):
        client = repo.get_client(s, clinic, client_id, lock=True)
        latest = None if client is None else repo.latest_prediction(s, clinic, client_id)
        if client is None or latest is None or latest.model_version == model.version:
            continue
        bodies.append(episode(client, repo.get_sessions(s, clinic, client_id)))
    return [r for r in _store(s, clinic, bodies, model, cap, rescored=True) if r is not None]


def _store(
    s: Session,
    clinic: str,
    bodies: list[EpisodeIn],
    model: LoadedModel,
    cap: int | None,
    rescored: bool,
) -> list[repo.PredictionRecord | None]:
    """Score the episodes and store each risk (None: not at a landmark); `rescored`: by
    the background rescorer (repository.add_prediction)."""
    out: list[repo.PredictionRecord | None] = []
    if not bodies:
        return out
    for body, result in zip(bodies, score(model, bodies, cap, clinic), strict=True):
        if isinstance(result, NotAtLandmark):
            out.append(None)
            continue
        record = repo.add_prediction(
            s,
            clinic,
            body.client_id,
            model.version,
            fingerprint(body),
            result.probability,
            result.risk_level,
            result.landmark_session,
            result,
            rescored,
        )
        out.append(record)
    return out


def stored_risk(record: repo.PredictionRecord) -> dict[str, Any]:
    """A stored prediction as the API answers it."""
    return {
        "computed_at": record.computed_at.isoformat(),
        "inputs_sha256": record.inputs_sha256,
        "acknowledged": record.acknowledged,
        "prediction": record.body.json_value(),
    }


class Auditor:
    """Adds audit rows in the caller's transaction: the row exists exactly when the read or
    write it records happened. Clients appear only as keyed pseudonyms."""

    def __init__(self, pseudonym: Pseudonymizer) -> None:
        self.pseudonym = pseudonym

    def __call__(
        self,
        s: Session,
        actor: Actor,
        action: str,
        client_id: str | None = None,
        model_version: str | None = None,
    ) -> None:
        pseudonym = None if client_id is None else self.pseudonym(client_id)
        repo.add_audit(s, actor.clinic, actor.name, action, pseudonym, model_version)
