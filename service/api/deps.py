"""Every FastAPI dependency of the service's routes, and the error responses they share.

A route names what it needs by type (`key: ReadKey`, `db: Db`, `audit: Audit`,
`model: Model`, `viewer: Viewer`) and reads nothing of `request.app.state` by hand: what
service.app keeps there is read here, in one place. The dependencies are async on purpose:
FastAPI runs a plain `def` dependency in its thread pool, which costs more than the lookup.

The hot prediction routes call `current_model(request)` directly rather than declaring
`Model`: a dependency costs a few microseconds of FastAPI's solver per request.

The clinician view's dependencies (`Viewer`, `FormViewer`) turn the signed session cookie
into the signed-in clinician, or raise `SignIn` (no open session: the page redirects to
sign-in) or `CsrfRefused` (a form without its token: 403); service.ui.routes renders both.

"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from service.core.schemas import ErrorOut
from service.scoring.model_store import ModelStore
from service.scoring.monitoring_window import ReportCache
from service.scoring.records import Actor, Auditor
from service.security.api_keys import ApiKey
from service.security.auth import require
from service.security.key_store import DbKeyStore
from service.security.session_cookies import SESSION_COOKIE, SessionSigner, UiSession
from service.storage.database import Storage
from training.registry import LoadedModel

# --- shared error responses (OpenAPI) -------------------------------------------------------

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    413: {"model": ErrorOut},
    415: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}
STORED_ERRORS: dict[int | str, dict[str, Any]] = {**ERRORS, 404: {"model": ErrorOut}}

# --- API keys and their scopes ----------------------------------------------------------------

PredictKey = Annotated[ApiKey, Depends(require("predict"))]
# model metadata: the keys that are served by the models, and their administrators
ModelsReadKey = Annotated[ApiKey, Depends(require("predict", "models:admin"))]
# promotion: a clinic's models:admin promotes its own clinic's champion, models:network the
# network default served to every clinic without its own
PromoteKey = Annotated[ApiKey, Depends(require("models:admin", "models:network"))]
# monitoring a clinic's window (GET /v1/monitoring, the page /ui/monitoring): its model
# administrators, and the read-only monitoring role of its analysts and clinic leads
MONITORING_SCOPES = ("models:admin", "monitoring:read")
MonitoringKey = Annotated[ApiKey, Depends(require(*MONITORING_SCOPES))]
WriteKey = Annotated[ApiKey, Depends(require("clients:write"))]
ReadKey = Annotated[ApiKey, Depends(require("clients:read"))]


def actor(key: ApiKey) -> Actor:
    """Who an API key's audit rows name."""
    return Actor(clinic=key.tenant, name=f"key:{key.key_id}")


# --- the model, the database, the audit trail ---------------------------------------------------


_NO_KEY: Any = object()


def current_model(request: Request, clinic: str | None = None) -> LoadedModel:
    """The verified champion of the caller's clinic (its own, else the network default),
    read once per request so the whole request uses one model. The clinic is `clinic` when
    given (a CDS caller's issuer tenant), else the API key's tenant, which the key check
    (service.security.auth.require) leaves on the request; no key, no clinic: the network
    default. One dict lookup: the registry is read only when its file changes."""
    store: ModelStore = request.app.state.models
    if clinic is None:
        clinic = getattr(request.state, "clinic", _NO_KEY)
        if clinic is _NO_KEY:  # a route that names its model before its key: a bug, not a 4xx
            raise RuntimeError("the API key must be checked before the model is resolved")
    return store.for_clinic(clinic)


async def _current_model(request: Request) -> LoadedModel:
    """A route declares its key before `model: Model`, so the key's clinic is known here."""
    return current_model(request)  # async: a sync dependency would hop to a thread pool


def _state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that reads what service.app keeps as `app.state.<name>`."""

    async def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    return read


async def _max_landmark(request: Request) -> int | None:
    """The landmark cap of the settings: stored risks are scored as posted episodes are."""
    cap: int | None = request.app.state.settings.max_landmark
    return cap


Model = Annotated[LoadedModel, Depends(_current_model)]
Models = Annotated[ModelStore, Depends(_state("models"))]
Db = Annotated[Storage, Depends(_state("storage"))]
Audit = Annotated[Auditor, Depends(_state("auditor"))]
Keys = Annotated[DbKeyStore, Depends(_state("keys"))]
Reports = Annotated[ReportCache, Depends(_state("reports"))]
MaxLandmark = Annotated[int | None, Depends(_max_landmark)]

# --- the clinician view: the signed-in clinician ------------------------------------------------

UI_SCOPE = "clients:read"
MAX_FORM_BYTES = 8192
_signer_lock = threading.Lock()


class SignIn(Exception):
    """No open session: the page answers with a redirect to sign-in. `ended`: the cookie
    named a session that is over (expired, signed out, its key revoked) and is cleared."""

    def __init__(self, ended: bool) -> None:
        super().__init__("sign in")
        self.ended = ended


class CsrfRefused(Exception):
    """A state-changing form without its session's CSRF token: a 403 page."""


@dataclass(frozen=True)
class Clinician:
    """The signed-in clinician as the pages need them."""

    key: ApiKey
    session: UiSession
    csrf: str

    @property
    def clinic(self) -> str:
        return self.key.tenant

    @property
    def therapist_id(self) -> str | None:
        return self.key.therapist_id

    @property
    def actor(self) -> Actor:
        return Actor(clinic=self.key.tenant, name=f"ui:{self.key.key_id}")

    @property
    def monitors(self) -> bool:
        """Whether the key may read its clinic's monitoring (MONITORING_SCOPES)."""
        return not self.key.scopes.isdisjoint(MONITORING_SCOPES)


def session_signer(request: Request) -> SessionSigner:
    """The app's session signer, made on first use from the settings' secret file."""
    state = request.app.state
    signer: SessionSigner | None = getattr(state, "ui_sessions", None)
    if signer is None:
        with _signer_lock:
            signer = getattr(state, "ui_sessions", None)
            if signer is None:
                path = getattr(state.settings, "ui_secret_file", Path("var/ui-session.key"))
                signer = SessionSigner(Path(path))
                state.ui_sessions = signer
    return signer


def cookie_session(request: Request) -> UiSession | None:
    """The session the cookie names, if its signature holds and it has not expired."""
    return session_signer(request).read(request.cookies.get(SESSION_COOKIE))


async def form_fields(request: Request) -> dict[str, str]:
    """A URL-encoded form's fields (first value of each); empty for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items() if values}


def _active(request: Request, session: UiSession) -> Clinician | None:
    """The clinician if the session is still open (not signed out, not expired) and its key
    still active, of the same clinic, and may read client records; None ends the session.
    Queries the database: call in a thread."""
    keys: DbKeyStore = request.app.state.keys
    key = keys.session_key(session.session_id, session.key_id)
    if key is None or key.tenant != session.clinic or UI_SCOPE not in key.scopes:
        return None
    return Clinician(key, session, session_signer(request).csrf_token(session))


async def _signed_in(request: Request, session: UiSession) -> Clinician:
    """The session's clinician, asked of the database (off the event loop) on every page."""
    clinician = await run_in_threadpool(_active, request, session)
    if clinician is None:
        raise SignIn(ended=True)
    return clinician


async def _viewer(request: Request) -> Clinician:
    session = cookie_session(request)
    if session is None:
        raise SignIn(ended=False)
    return await _signed_in(request, session)


async def _form_viewer(request: Request) -> Clinician:
    """As `_viewer`, for a form that changes something: its CSRF token is checked first,
    before the database is asked."""
    session = cookie_session(request)
    if session is None:
        raise SignIn(ended=False)
    form = await form_fields(request)
    if not session_signer(request).check_csrf(session, form.get("csrf_token")):
        raise CsrfRefused
    return await _signed_in(request, session)


Viewer = Annotated[Clinician, Depends(_viewer)]
FormViewer = Annotated[Clinician, Depends(_form_viewer)]
