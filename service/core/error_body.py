"""The one error body of every answer that is not a success: {"detail": [{"loc", "msg",
"type"}]}, the shape of FastAPI's own 422s, so a client parses one shape whatever refused
it (a handler of service.api.errors, the middleware's 413 and last-resort 500, /readyz)."""

from __future__ import annotations

ErrorBody = dict[str, list[dict[str, str]]]


def error_body(loc: str, msg: str, kind: str) -> ErrorBody:
    """One error: where (`loc`: a field path or a part of the service), what rule or
    failure (`msg`, never the refused value) and its stable machine name (`kind`)."""
    return {"detail": [{"loc": loc, "msg": msg, "type": kind}]}
