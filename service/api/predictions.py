"""POST /v1/predictions and /v1/predictions/batch.

Routes are async and do their few hundred microseconds of numpy inline: handing such short
work to a thread pool costs more than it saves (docs/performance.md)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.background import BackgroundTask

from service.api.deps import ERRORS, PredictKey, current_model
from service.api.errors import error_details
from service.core.body import documented, json_body, located, parse, raw_json
from service.core.observability import Pseudonymizer, predictions_counter
from service.core.prediction import NotAtLandmark, Prediction
from service.core.schemas import BatchIn, BatchItemsIn, BatchOut, EpisodeIn, PredictionOut
from service.scoring.batcher import MicroBatcher
from service.scoring.score import score

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])
log = logging.getLogger("dropout_risk.predictions")
# Counting and logging run as the response's background task: after the answer is sent, so
# the client does not wait for them (async, so Starlette runs them on the loop, not in a
# thread). The per-prediction line is DEBUG: like every other route, a prediction leaves no
# line per request at the default level (data minimisation; Prometheus counts them), and
# when asked for, the client appears only as its keyed pseudonym.


async def _record(request: Request, key_id: str, client_id: str, result: Prediction) -> None:
    """Count one prediction and log it, the client by its keyed pseudonym only."""
    version = result.model.version
    predictions_counter(version, result.risk_level).inc()
    if log.isEnabledFor(logging.DEBUG):
        pseudonym: Pseudonymizer = request.app.state.pseudonym
        event = {
            "client": pseudonym(client_id),
            "key": key_id,
            "model_version": version,
            "landmark": result.landmark_session,
        }
        log.debug("prediction", extra={"event": event})


async def _record_batch(
    request: Request, key_id: str, scored: list[tuple[str, Prediction]]
) -> None:
    """Count a batch's predictions and log them as one line (1,000 lines would take about
    half as long again as scoring the batch), clients by their keyed pseudonyms only."""
    levels = Counter((r.model.version, r.risk_level) for _, r in scored)
    for (version, level), count in levels.items():
        predictions_counter(version, level).inc(count)
    if scored and log.isEnabledFor(logging.DEBUG):
        pseudonym: Pseudonymizer = request.app.state.pseudonym
        event = {
            "clients": [pseudonym(client_id) for client_id, _ in scored],
            "key": key_id,
            "model_version": scored[0][1].model.version,  # one model per request
            "landmarks": [r.landmark_session for _, r in scored],
        }
        log.debug("predictions", extra={"event": event})


@dataclass(frozen=True, slots=True)
class _BatchItem:
    """One episode's answer in a batch (BatchItemOut's fields, in its order)."""

    index: int
    prediction: Prediction | None = None
    errors: list[dict[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class _Batch:
    results: list[_BatchItem]


# The batch answer's serializer, built from its types: the Predictions in it are written by
# their own schema (as Prediction.to_json writes one), not inferred object by object.
_BATCH: TypeAdapter[_Batch] = TypeAdapter(_Batch)


def _batch_json(results: list[_BatchItem]) -> bytes:
    return _BATCH.dump_json(_Batch(results))


def _json(body: bytes, then: BackgroundTask) -> Response:
    """Bodies serialised from typed values as they are: validating them again would cost
    more than scoring a client. Their declared schema is held by the tests (schemathesis
    checks every response against it). `then` runs once it is sent."""
    return Response(body, media_type="application/json", background=then)


@router.post(
    "", response_model=PredictionOut, responses=ERRORS, openapi_extra=documented(EpisodeIn)
)
async def predict_one(request: Request, key: PredictKey) -> Response:
    """Risk of dropout for one episode, with the factors behind it and suggested actions."""
    episode = await json_body(request, EpisodeIn)
    batcher: MicroBatcher = request.app.state.batcher
    result = await batcher.score(current_model(request), episode, key.tenant)
    if isinstance(result, NotAtLandmark):
        raise _not_at_landmark(result)
    then = BackgroundTask(_record, request, key.key_id, episode.client_id, result)
    return _json(result.to_json(), then)


def _not_at_landmark(result: NotAtLandmark) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", "sessions"), "msg": result.reason, "type": "not_at_landmark"}]
    )


def _episodes(raw: bytes) -> list[EpisodeIn | list[dict[str, str]]]:
    """Each episode of a batch, or its errors. One pass when all are valid (the usual
    case); otherwise item by item, so one bad episode fails alone."""
    try:
        return list(BatchIn.model_validate_json(raw).clients)
    except ValidationError:
        pass
    out: list[EpisodeIn | list[dict[str, str]]] = []
    for item in parse(BatchItemsIn, raw).clients:  # 422 if the batch itself is malformed
        try:
            out.append(EpisodeIn.model_validate(item))
        except ValidationError as exc:
            out.append(error_details(located(exc.errors(), "body")))
    return out


@router.post("/batch", response_model=BatchOut, responses=ERRORS, openapi_extra=documented(BatchIn))
async def predict_batch(request: Request, key: PredictKey) -> Response:
    """Up to 1,000 episodes, answered in order; a bad episode gets its own errors."""
    items = _episodes(await raw_json(request))
    valid = [e for e in items if isinstance(e, EpisodeIn)]
    model = current_model(request)
    scored = iter(score(model, valid, request.app.state.settings.max_landmark, key.tenant))
    results: list[_BatchItem] = []
    answered: list[tuple[str, Prediction]] = []
    for i, item in enumerate(items):
        if not isinstance(item, EpisodeIn):
            results.append(_BatchItem(i, errors=item))
            continue
        result = next(scored)  # one per valid episode, in order
        if isinstance(result, NotAtLandmark):
            failed = {"loc": "sessions", "msg": result.reason, "type": "not_at_landmark"}
            results.append(_BatchItem(i, errors=[failed]))
        else:
            results.append(_BatchItem(i, prediction=result))
            answered.append((item.client_id, result))
    then = BackgroundTask(_record_batch, request, key.key_id, answered)
    return _json(_batch_json(results), then)
