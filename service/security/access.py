"""What a key may see inside its clinic: every client, or one therapist's.

A key bound to a therapist (`dropout-risk keys create --therapist`) sees only the clients
stored with that therapist, on every route that reads client records: the JSON API, FHIR
and the clinician view. Another therapist's client is answered exactly like a missing one
(404), as another clinic's is, so a key learns nothing about clients it may not see. The
clinic itself is scoped by the repository (every query takes it); this adds the therapist.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.scoring.records import client_not_found
from service.security.api_keys import ApiKey
from service.storage import repository as repo
from training.errors import DropoutRiskError


class OtherTherapist(DropoutRiskError):
    """A therapist's key named another therapist (a caseload filter, or a client's
    therapist in a write): 403, located at the field that named it."""

    def __init__(self, loc: str, asked: str) -> None:
        super().__init__(
            f"therapist_id: value {asked!r} is not this key's therapist: a key bound to a "
            "therapist sees only that therapist's clients"
        )
        self.loc = loc


def sees(key: ApiKey, client: repo.ClientRecord) -> bool:
    """A clinic-wide key sees every client of its clinic; a therapist's key, theirs only."""
    return key.therapist_id is None or client.therapist_id == key.therapist_id


def client_of(
    s: Session, key: ApiKey, client_id: str, lock: bool = False
) -> repo.ClientRecord | None:
    """The client if the key may see it; None if missing, of another clinic or therapist.
    `lock`: see repo.lock_client (writers that recompute take it before they write)."""
    client = repo.get_client(s, key.tenant, client_id, lock)
    return client if client is not None and sees(key, client) else None


def require_client_of(
    s: Session, key: ApiKey, client_id: str, lock: bool = False
) -> repo.ClientRecord:
    """The client, or the same ClientNotFound (404) whatever the reason it is not seen."""
    client = client_of(s, key, client_id, lock)
    if client is None:
        raise client_not_found(client_id)
    return client


def caseload_therapist(key: ApiKey, asked: str | None) -> str | None:
    """The therapist whose caseload to list. A therapist's key lists its own whether it
    names it or not; naming another therapist is refused (403) rather than answered with
    an empty page, so a mistake is not taken for a therapist without clients."""
    if key.therapist_id is None:
        return asked
    if asked is not None and asked != key.therapist_id:
        raise OtherTherapist("query.therapist_id", asked)
    return key.therapist_id


def require_writable(s: Session, key: ApiKey, client_id: str, therapist_id: str | None) -> None:
    """Before a client is created or changed: a therapist's key may write only its own
    therapist's clients, so it can neither change another therapist's client (404, as a
    read) nor hand a client to someone else (403); a clinic-wide key writes any client."""
    if key.therapist_id is None:
        return
    existing = repo.get_client(s, key.tenant, client_id, lock=True)
    if existing is not None and not sees(key, existing):
        raise client_not_found(client_id)
    if therapist_id != key.therapist_id:
        raise OtherTherapist("body.therapist_id", str(therapist_id))
