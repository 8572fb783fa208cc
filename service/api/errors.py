"""Domain exceptions to HTTP answers: one handler each, one stable error body
({"detail": [{"loc", "msg", "type"}]}), never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.core.body import UnsupportedMediaType
from service.core.error_body import error_body
from service.interop.cds.limits import CdsAuthError
from service.interop.fhir import writing
from service.interop.fhir.codes import FhirInputError
from service.scoring.model_store import ModelUnavailable
from service.scoring.monitoring_window import InvalidWindow
from service.scoring.records import ClientNotFound, NoRiskYet
from service.security.access import OtherTherapist
from service.security.auth import Forbidden, Unauthenticated
from service.storage.engine import StorageUnavailable
from training.errors import ArtifactError, RegistryError, RegistryInvalid
from training.errors import field_path as located_path
from training.promotion import PromotionRefused

log = logging.getLogger("dropout_risk.errors")


def field_path(loc: Sequence[Any]) -> str:
    """('body', 'sessions', 0, 'wai', 'goal') -> 'sessions[0].wai.goal'."""
    return located_path(loc[1:] if loc and loc[0] == "body" else loc, "body")


def error_details(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic errors as field path, message (which states the rule) and type. Values are
    not echoed back: they may be large, and they are health data."""
    return [
        {
            "loc": field_path(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def _body(
    status: int, loc: str, msg: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(loc, msg, kind), status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Framework errors in our error shape; an unparseable body (bad JSON bytes) is a
        422 like any other invalid body."""
        if exc.status_code == 400:
            return _body(422, "body", "the body is not valid JSON", "json_invalid")
        headers = dict(exc.headers) if exc.headers else None
        return _body(exc.status_code, "path", str(exc.detail), "http_error", headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": error_details(exc.errors())}, 422)

    @app.exception_handler(UnsupportedMediaType)
    async def not_json(_: Request, exc: UnsupportedMediaType) -> JSONResponse:
        return _body(415, "header.content-type", str(exc), "unsupported_media_type")

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        return _body(
            401, "header.authorization", str(exc), "unauthenticated", {"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(Forbidden)
    async def forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return _body(403, "header.authorization", str(exc), "forbidden")

    @app.exception_handler(OtherTherapist)
    async def other_therapist(_: Request, exc: OtherTherapist) -> JSONResponse:
        return _body(403, exc.loc, str(exc), "other_therapist")

    @app.exception_handler(RegistryError)
    async def unknown_version(_: Request, exc: RegistryError) -> JSONResponse:
        return _body(404, "path.version", str(exc), "unknown_model_version")

    @app.exception_handler(PromotionRefused)
    async def promotion_refused(_: Request, exc: PromotionRefused) -> JSONResponse:
        return _body(409, "path.version", str(exc), "promotion_refused")

    @app.exception_handler(RegistryInvalid)
    async def registry_invalid(_: Request, exc: RegistryInvalid) -> JSONResponse:
        log.error("model registry refused: %s", exc)
        return _body(503, "registry", str(exc), "registry_invalid", {"Retry-After": "5"})

    @app.exception_handler(ArtifactError)
    async def bad_artifact(_: Request, exc: ArtifactError) -> JSONResponse:
        log.error("refused a model artifact: %s", exc)
        return _body(409, "path.version", str(exc), "artifact_refused")

    @app.exception_handler(FhirInputError)
    async def bad_fhir(_: Request, exc: FhirInputError) -> Response:
        body = json.dumps(writing.operation_outcome(exc.issues))
        return Response(body, 422, media_type="application/fhir+json")

    @app.exception_handler(CdsAuthError)
    async def cds_refused(_: Request, exc: CdsAuthError) -> JSONResponse:
        return _body(
            401, "header.authorization", str(exc), "cds_jwt_refused", {"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(ClientNotFound)
    async def no_client(_: Request, exc: ClientNotFound) -> JSONResponse:
        return _body(404, "path.client_id", str(exc), "client_not_found")

    @app.exception_handler(NoRiskYet)
    async def no_risk(_: Request, exc: NoRiskYet) -> JSONResponse:
        return _body(404, "path.client_id", str(exc), "no_risk_yet")

    @app.exception_handler(InvalidWindow)
    async def bad_window(_: Request, exc: InvalidWindow) -> JSONResponse:
        return _body(422, "query.window", str(exc), "window_invalid")

    @app.exception_handler(StorageUnavailable)
    async def storage_down(_: Request, exc: StorageUnavailable) -> JSONResponse:
        """Every storage error that is not the caller's fault (down, read-only, timed out);
        the message names only the kind of error, never a value (see unavailable())."""
        log.error("storage unavailable: %s", exc)
        return _body(
            503,
            "database",
            "the database cannot be reached or used; retry shortly (stateless predictions "
            "with a recently verified key keep working)",
            "storage_unavailable",
            {"Retry-After": "5"},
        )

    @app.exception_handler(ModelUnavailable)
    async def unavailable(_: Request, exc: ModelUnavailable) -> JSONResponse:
        return _body(503, "model", str(exc), "model_unavailable")
