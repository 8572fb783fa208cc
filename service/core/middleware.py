"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request): a body size
cap, request metrics labelled by route template, so no id ever lands in a label, and the
last resort for an error no handler knows, answered and logged without its data."""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from pathlib import Path
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.error_body import error_body
from service.core.observability import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("dropout_risk.errors")

UNEXPECTED_BODY = json.dumps(
    error_body(
        "server",
        "an unexpected error; it was logged (without the request's data)",
        "internal_error",
    )
).encode()


class Unexpected:
    """The last resort: an exception that no handler of service.api.errors turned into an
    answer (a bug, or a stored record the code can no longer read) gets a 500 with the
    one error body, and is logged as its type, the route template and where it was
    raised (file, line and function of each frame), never its message.

    Why not the server's own logging: Starlette re-raises the exception after answering
    and uvicorn logs its full text, and an exception's text can carry the data it failed
    on (a validation error quotes the value it refused: a stored risk, a score). The
    exception is not raised further."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = [False]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # the last resort: meant to catch all
            route = getattr(scope.get("route"), "path", "unmatched")
            log.error(
                "unexpected %s in %s %s%s",
                type(exc).__name__,
                scope["method"],
                route,
                "".join(_frames(exc)),
            )
            if not started[0]:
                await _answer(send, 500, UNEXPECTED_BODY)


# The project's own packages: their frames say where an error went through our code.
_OWN = tuple(
    str(Path(__file__).resolve().parents[2] / name) + os.sep for name in ("service", "training")
)


def _frames(exc: BaseException) -> list[str]:
    """Where `exc` was raised, innermost last, as file:line in function: the frames of
    the project's own packages, and the innermost whatever it is (no source line, no
    message: either can hold the data at hand)."""
    stack = traceback.extract_tb(exc.__traceback__)
    last = len(stack) - 1
    kept = [
        f
        for i, f in enumerate(stack)
        if i == last or (f.filename.startswith(_OWN) and f.filename != __file__)
    ]
    return [f"\n  at {frame.filename}:{frame.lineno} in {frame.name}" for frame in kept]


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """413 for bodies over `limit` bytes, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._reject(send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counting, send)
        except BodyTooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        msg = f"the body exceeds {self.limit} bytes"
        body = json.dumps(error_body("body", msg, "body_too_large")).encode()
        await _answer(send, 413, body)


CLIENT_LEFT = 499  # nginx's code for a client that closed the connection before the answer


class Metrics:
    """Counts and times requests per method, route template and status.

    A client that disconnects before its answer begins (mid-body, say) is counted as status
    499, not as a server error, and the ClientDisconnect its request raised ends the request
    quietly: there is nobody to answer, and nothing failed on our side."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        answering = [False]
        left = [False]

        async def watching() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not answering[0]:
                left[0] = True
            return message

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                answering[0] = True
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, watching, recording)
        except ClientDisconnect:
            if not left[0]:
                raise
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            code = CLIENT_LEFT if left[0] else status[0]
            REQUESTS.labels(scope["method"], template, str(code)).inc()
            REQUEST_SECONDS.labels(scope["method"], template).observe(time.perf_counter() - started)
