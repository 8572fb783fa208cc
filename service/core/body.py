"""Request bodies validated straight from their JSON bytes, for the hot prediction routes.

Why not a plain FastAPI body parameter: FastAPI decodes the JSON with the standard library,
then validates the Python objects through its dependency solver; pydantic-core parsing and
validating the bytes in one pass costs a third as much, and on a one-client prediction the
difference is a fifth of the whole request (bench/api.py). The error body stays the one
every other route gives (service.api.errors), and the OpenAPI document still describes the
body: `documented` puts the model's schema where FastAPI would have.

Every JSON body of the service comes in here (`json_body`, `raw_json`, `JsonBody`; FHIR reads
its Bundle with `unique_keys` too), so its rules hold in every door: the media type is JSON
(compared case-insensitively, parameters allowed), and no object names a key twice.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import jiter
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

T = TypeVar("T", bound=BaseModel)
_REF = "#/components/schemas/{model}"
_DOCUMENTED: dict[str, type[BaseModel]] = {}  # filled as routes are declared


class UnsupportedMediaType(Exception):
    """A body sent as something other than JSON: 415."""


class DuplicateKey(ValueError):
    """A JSON object naming a key twice. Parsers disagree on which value counts (most keep
    the last, some the first), and clinical data must not depend on that: refused."""


_DUPLICATE = re.compile(r'Detected duplicate key "(.*)" at (line \d+ column \d+)', re.S)
_SHOWN_KEY = 64  # a key is named in the error, cut to this many characters


def unique_keys(raw: bytes) -> None:
    """Raise DuplicateKey if an object of the JSON text `raw` names a key twice (after
    unescaping: "a" and "\\u0061" are one key). Invalid JSON is left to the parser that
    reads the body, which names the problem in its own words.

    jiter checks in Rust: about 4 us on a one-client body, a third of what validating it
    costs (a json.loads object_pairs_hook costs as much as the validation), and about 5 ms
    on a batch of 1,000 (validating it: 20 ms)."""
    try:
        jiter.from_json(raw, catch_duplicate_keys=True)  # its string cache: faster on batches
    except ValueError as exc:
        found = _DUPLICATE.match(str(exc))
        if found is not None:
            key, where = found.group(1), found.group(2)
            shown = key if len(key) <= _SHOWN_KEY else key[:_SHOWN_KEY] + "..."
            raise DuplicateKey(
                f"the key {shown!r} appears twice in one object ({where}); give each key once"
            ) from None


def located(errors: list[Any], *prefix: str | int) -> list[Any]:
    """Pydantic errors with their location under `prefix` (e.g. "body")."""
    return [{**e, "loc": (*prefix, *e["loc"])} for e in errors]


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header names JSON: application/json or application/*+json,
    in any case (media types are case-insensitive, RFC 9110 8.3.1), with any parameters."""
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


async def json_bytes(request: Request) -> bytes:
    """The body's bytes, if it was sent as JSON (no content type is taken as JSON)."""
    kind = request.headers.get("content-type", "application/json")
    if not is_json(kind):
        shown = kind.split(";")[0].strip()
        raise UnsupportedMediaType(f"send the body as application/json, not {shown!r}")
    return await request.body()


async def raw_json(request: Request) -> bytes:
    """The body's bytes, if it was sent as JSON and names no key twice (422 if it does)."""
    raw = await json_bytes(request)
    try:
        unique_keys(raw)
    except DuplicateKey as exc:
        error = {"loc": ("body",), "msg": str(exc), "type": "json_duplicate_key"}
        raise RequestValidationError([error]) from None
    return raw


def parse(model: type[T], raw: bytes) -> T:
    """JSON bytes as `model`; invalid JSON or an invalid body is a 422 naming the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(located(exc.errors(), "body")) from None


async def json_body(request: Request, model: type[T]) -> T:
    """The body as `model` (415 if not JSON, 422 if invalid)."""
    return parse(model, await raw_json(request))


def JsonBody(model: type[T]) -> Any:  # noqa: N802 - used like FastAPI's Body()
    """A dependency giving the body as `model`, read by json_body: for routes whose other
    parameters FastAPI solves (`body: Annotated[ClientIn, JsonBody(ClientIn)]`); declare
    `openapi_extra=documented(model)` on the route too."""

    async def read(request: Request) -> T:
        return await json_body(request, model)

    return Depends(read)


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
