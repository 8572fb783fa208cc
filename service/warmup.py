"""Warming a model before it serves: the first prediction of a fresh worker compiles (or
loads from numba's cache) the scoring kernels and builds the model's serving data, which
took 4-5 s with an empty cache and 137-236 ms with a warm one. Scoring the documentation's
example episode through the very code a request runs (body validation, `score`, the
answer's serialisation) pays that before the worker is counted ready.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic_core import to_json
from starlette.types import Message

from service.core.examples import EXAMPLE_EPISODE
from service.core.prediction import Prediction
from service.core.schemas import EpisodeIn
from service.scoring.score import score
from training.errors import ArtifactError, DropoutRiskError
from training.registry import LoadedModel, Registry

log = logging.getLogger("dropout_risk.warmup")
WEEK = datetime.timedelta(days=7)
# Well-formed but never issued (key ids are random): the key check asks the database, 401.
UNISSUED_TOKEN = "drk_" + "0" * 12 + "_" + "0" * 43


class WarmUpFailed(ArtifactError):
    """The reference episode could not be scored: the model would fail real requests, so
    it is refused like a broken artifact."""


def reference_body(sessions: int) -> bytes:
    """The example episode as a request body, its last session repeated weekly until it has
    `sessions` sessions (so that it reaches any model's landmarks)."""
    body: dict[str, Any] = {**EXAMPLE_EPISODE, "sessions": list(EXAMPLE_EPISODE["sessions"])}
    while len(body["sessions"]) < sessions:
        last = body["sessions"][-1]
        day = datetime.date.fromisoformat(last["date"]) + WEEK
        body["sessions"].append({**last, "number": last["number"] + 1, "date": day.isoformat()})
    return to_json(body)


def warm_up(model: LoadedModel, max_landmark: int | None = None) -> None:
    """Score the reference episode alone and as a batch of two (the micro-batcher's and
    the batch route's shape), and serialise the answers."""
    episode = EpisodeIn.model_validate_json(reference_body(max(model.meta.landmarks)))
    for episodes in ([episode], [episode, episode]):
        results = score(model, episodes, max_landmark)
        for result in results:
            if not isinstance(result, Prediction):
                raise WarmUpFailed(
                    f"model {model.version}: the reference episode does not reach a landmark"
                )
            result.to_json()


async def warm_routes(app: FastAPI) -> None:
    """A prediction request through the app's router, which a worker's first request would
    otherwise pay for (some 200 ms with a warm kernel cache): the route match, the
    dependency machinery, the key check's thread pool and its database query. Sent below
    the middleware, so it is not counted in the metrics; its key is refused (401), and a
    database that is away (503) is no reason not to start."""
    body = reference_body(len(EXAMPLE_EPISODE["sessions"]))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/predictions",
        "raw_path": b"/v1/predictions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {UNISSUED_TOKEN}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "app": app,
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        return None

    # FastAPI's AsyncExitStackMiddleware would provide the exit stack its routes expect (a
    # private detail: should a FastAPI release change it, the warm-up is skipped with a
    # warning, never the start; tests/service/test_warm_routes.py fails on it). The key is
    # refused (or the database is away): the path is warm either way.
    try:
        with contextlib.suppress(DropoutRiskError):
            async with contextlib.AsyncExitStack() as stack:
                scope["fastapi_middleware_astack"] = stack
                await app.router(scope, receive, send)
    except Exception as exc:  # it only saves the first request's time: never a reason to stop
        log.warning("route warm-up skipped: %s (the first request pays for it)", type(exc).__name__)


def main() -> None:
    """`python -m service.warmup MODELS_DIR`: warm the champion once, which writes the
    compiled kernels to numba's cache (NUMBA_CACHE_DIR); the Dockerfile bakes it so."""
    warm_up(Registry(Path(sys.argv[1])).load())


if __name__ == "__main__":
    main()
