"""Every FastAPI dependency of the service's routes, and the error responses they share.

A route names what it needs by type (`key: ReadKey`, `db: Db`, `audit: Audit`,
`model: Model`) and reads nothing of `request.app.state` by hand: what
service.app keeps there is read here, in one place. The dependencies are async on purpose:
FastAPI runs a plain `def` dependency in its thread pool, which costs more than the lookup.

The hot prediction routes call `current_model(request)` directly rather than declaring
`Model`: a dependency costs a few microseconds of FastAPI's solver per request.

"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from service.core.schemas import ErrorOut
from service.scoring.model_store import ModelStore
from service.scoring.records import Actor, Auditor
from service.security.api_keys import ApiKey
from service.security.auth import require
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
# promotion changes the champion of every clinic: a network-level scope, not a clinic's
NetworkKey = Annotated[ApiKey, Depends(require("models:network"))]
WriteKey = Annotated[ApiKey, Depends(require("clients:write"))]
ReadKey = Annotated[ApiKey, Depends(require("clients:read"))]


def actor(key: ApiKey) -> Actor:
    """Who an API key's audit rows name."""
    return Actor(clinic=key.tenant, name=f"key:{key.key_id}")


# --- the model, the database, the audit trail ---------------------------------------------------


def current_model(request: Request) -> LoadedModel:
    """The verified champion, read once per request so the whole request uses one model."""
    store: ModelStore = request.app.state.models
    return store.current


async def _current_model(request: Request) -> LoadedModel:
    return current_model(request)  # async: a sync dependency would hop to a thread pool


async def _models(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.models
    return store


async def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


async def _auditor(request: Request) -> Auditor:
    auditor: Auditor = request.app.state.auditor
    return auditor


async def _max_landmark(request: Request) -> int | None:
    """The landmark cap of the settings: stored risks are scored as posted episodes are."""
    cap: int | None = request.app.state.settings.max_landmark
    return cap


Model = Annotated[LoadedModel, Depends(_current_model)]
Models = Annotated[ModelStore, Depends(_models)]
Db = Annotated[Storage, Depends(_storage)]
Audit = Annotated[Auditor, Depends(_auditor)]
MaxLandmark = Annotated[int | None, Depends(_max_landmark)]
