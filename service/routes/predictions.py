"""POST /v1/predictions and /v1/predictions/batch.

Routes are async and do their few hundred microseconds of numpy inline: handing such short
work to a thread pool costs more than it saves (engineering.md)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from service.auth import PredictKey
from service.batcher import MicroBatcher
from service.errors import error_details
from service.model_store import ModelStore
from service.observability import PREDICTIONS, Pseudonymizer
from service.schemas import BatchIn, BatchOut, EpisodeIn, ErrorOut, PredictionOut
from service.scoring import NotAtLandmark, score
from training.registry import LoadedModel

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])
log = logging.getLogger("dropout_risk.predictions")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


async def current_model(request: Request) -> LoadedModel:
    """The verified champion (async: a sync dependency would hop to a thread pool)."""
    store: ModelStore = request.app.state.models
    return store.current


Model = Annotated[LoadedModel, Depends(current_model)]


def _record(request: Request, key_id: str, client_id: str, result: dict[str, Any]) -> None:
    PREDICTIONS.labels(result["model"]["version"], result["risk_level"]).inc()
    if log.isEnabledFor(logging.INFO):
        pseudonym: Pseudonymizer = request.app.state.pseudonym
        log.info(
            "prediction",
            extra={
                "event": {
                    "client": pseudonym(client_id),
                    "key": key_id,
                    "model_version": result["model"]["version"],
                    "landmark": result["landmark_session"],
                }
            },
        )


@router.post("", response_model=PredictionOut, responses=ERRORS)
async def predict_one(episode: EpisodeIn, model: Model, key: PredictKey, request: Request) -> Any:
    """Risk of dropout for one episode, with the factors behind it and suggested actions."""
    batcher: MicroBatcher = request.app.state.batcher
    result = await batcher.score(model, episode)
    if isinstance(result, NotAtLandmark):
        raise _not_at_landmark(result)
    _record(request, key.key_id, episode.client_id, result)
    return _json(PredictionOut.model_validate(result))


def _json(body: BaseModel) -> Response:
    """The validated body as JSON bytes. FastAPI would dump a returned model to a dict and
    validate that again; a Response is sent as is (the response_model still documents it)."""
    return Response(body.model_dump_json(), media_type="application/json")


def _not_at_landmark(exc: NotAtLandmark) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", "sessions"), "msg": str(exc), "type": "not_at_landmark"}]
    )


@router.post("/batch", response_model=BatchOut, responses=ERRORS)
async def predict_batch(batch: BatchIn, model: Model, key: PredictKey, request: Request) -> Any:
    """Up to 1,000 episodes, answered in order; a bad episode gets its own errors."""
    results: list[dict[str, Any]] = [
        {"index": i, "prediction": None, "errors": None} for i in range(len(batch.clients))
    ]
    # The body is validated here, item by item, so a bad episode fails alone.
    valid: list[tuple[int, EpisodeIn]] = []
    for i, raw in enumerate(batch.clients):
        try:
            valid.append((i, EpisodeIn.model_validate(raw)))
        except ValidationError as exc:
            results[i]["errors"] = error_details(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            )
    scored = score(model, [e for _, e in valid], request.app.state.settings.max_landmark)
    for (i, episode), result in zip(valid, scored, strict=True):
        if isinstance(result, NotAtLandmark):
            results[i]["errors"] = [
                {"loc": "sessions", "msg": str(result), "type": "not_at_landmark"}
            ]
        else:
            results[i]["prediction"] = result
            _record(request, key.key_id, episode.client_id, result)
    # Built from typed values; re-validating 1,000 results would cost about 90 ms. The
    # declared schema is held by tests (schemathesis checks every response against it).
    return Response(to_json({"results": results}), media_type="application/json")
