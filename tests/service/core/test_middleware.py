"""The last-resort middleware (service.core.middleware.Unexpected) at the ASGI level: an
exception before the answer has started is a 500 with the one error body; after it has
started, nothing more is sent (a second start would break the protocol), and either way
the log names the exception's type and route, never its message."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from service.core.middleware import UNEXPECTED_BODY, Unexpected

SECRET = "client c-1093 scored 17"  # what an exception's text may carry: never logged


class _Route:
    path = "/v1/clients/{client_id}/risk"


def _run(app: Any) -> list[Message]:
    """The messages Unexpected(app) sends for one GET."""
    sent: list[Message] = []
    scope: Scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "route": _Route()}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(Unexpected(app)(scope, receive, send))
    return sent


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "dropout_risk.errors")


def test_an_exception_before_the_answer_is_a_500_logged_without_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise ValueError(SECRET)

    with caplog.at_level(logging.ERROR, "dropout_risk.errors"):
        sent = _run(failing)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 500
    assert sent[1]["body"] == UNEXPECTED_BODY
    assert json.loads(UNEXPECTED_BODY)["detail"][0]["type"] == "internal_error"
    logged = _logged(caplog)
    assert logged.startswith("unexpected ValueError in GET /v1/clients/{client_id}/risk")
    assert "in failing" in logged  # where it was raised
    assert SECRET not in logged


def test_an_exception_after_the_answer_has_started_sends_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A streamed answer whose second part fails: the start and first part already went
    out, so no 500 can follow; the response stays unfinished (the server closes the
    connection) and the log says what happened."""

    async def streaming(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[", "more_body": True})
        raise KeyError(SECRET)

    with caplog.at_level(logging.ERROR, "dropout_risk.errors"):
        sent = _run(streaming)
    assert [(m["type"], m.get("status")) for m in sent] == [
        ("http.response.start", 200),
        ("http.response.body", None),
    ]
    assert sent[1]["more_body"] is True
    logged = _logged(caplog)
    assert logged.startswith("unexpected KeyError in GET /v1/clients/{client_id}/risk")
    assert SECRET not in logged


def test_an_answer_without_an_exception_passes_through_untouched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fine(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with caplog.at_level(logging.ERROR, "dropout_risk.errors"):
        sent = _run(fine)
    assert [(m["type"], m.get("status")) for m in sent] == [
        ("http.response.start", 204),
        ("http.response.body", None),
    ]
    assert _logged(caplog) == ""
