"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request): a body size
cap and request metrics labelled by route template, so no id ever lands in a label."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.observability import REQUEST_SECONDS, REQUESTS


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
        body = json.dumps(
            {
                "detail": [
                    {
                        "loc": "body",
                        "type": "body_too_large",
                        "msg": f"the body exceeds {self.limit} bytes",
                    }
                ]
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


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
