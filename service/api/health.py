"""Liveness, readiness and metrics: open endpoints, no client data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.api.deps import Models
from service.core.error_body import error_body
from service.core.observability import METRICS_CONTENT_TYPE, metrics_text
from service.core.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> Any:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"description": "not ready"}})
async def readyz(store: Models) -> Any:
    """A verified model is loaded."""
    store.refresh()
    if not store.ready:
        msg = store.last_error or "no model loaded"
        return JSONResponse(error_body("model", msg, "model_unavailable"), 503)
    return {"status": "ready", "model_version": store.current.version}


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus exposition."""
    return Response(metrics_text(), media_type=METRICS_CONTENT_TYPE)
