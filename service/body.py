"""Request bodies validated straight from their JSON bytes, for the hot prediction routes.

Why not a plain FastAPI body parameter: FastAPI decodes the JSON with the standard library,
then validates the Python objects through its dependency solver; pydantic-core parsing and
validating the bytes in one pass costs a third as much, and on a one-client prediction the
difference is a fifth of the whole request (bench/api.py). The error body stays the one
every other route gives (service.errors), and the OpenAPI document still describes the
body: `documented` puts the model's schema where FastAPI would have.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

T = TypeVar("T", bound=BaseModel)
_REF = "#/components/schemas/{model}"
_DOCUMENTED: dict[str, type[BaseModel]] = {}  # filled as routes are declared


class UnsupportedMediaType(Exception):
    """A body sent as something other than JSON: 415."""


def located(errors: list[Any], *prefix: str | int) -> list[Any]:
    """Pydantic errors with their location under `prefix` (e.g. "body")."""
    return [{**e, "loc": (*prefix, *e["loc"])} for e in errors]


async def raw_json(request: Request) -> bytes:
    """The body's bytes, if it was sent as JSON (no content type is taken as JSON)."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json, not {kind!r}")
    return await request.body()


def parse(model: type[T], raw: bytes) -> T:
    """JSON bytes as `model`; invalid JSON or an invalid body is a 422 naming the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(located(exc.errors(), "body")) from None


async def json_body(request: Request, model: type[T]) -> T:
    """The body as `model` (415 if not JSON, 422 if invalid)."""
    return parse(model, await raw_json(request))


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route reading `model` with json_body."""
    _DOCUMENTED[model.__name__] = model
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install_openapi(app: FastAPI) -> None:
    """Add the schemas of `documented` bodies to the app's OpenAPI components."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        spec = base()  # FastAPI's own document, built once and cached on the app
        _, defs = models_json_schema(
            [(m, "validation") for m in _DOCUMENTED.values()], ref_template=_REF
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in defs.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
