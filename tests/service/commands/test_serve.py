"""How the server is started: the settings that reach uvicorn's config, the cap on a
request head (in-process, on the protocol itself), and the metrics of a client that
leaves before its answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send
from uvicorn.server import ServerState

from service.commands.serve import uvicorn_options
from service.core.http_protocol import HeadLimitedHttpToolsProtocol
from service.core.middleware import Metrics
from service.core.observability import REQUESTS
from service.core.settings import Settings


def test_the_worker_health_check_timeout_reaches_uvicorns_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().worker_healthcheck_seconds == 60  # uvicorn's own default is 5 s
    monkeypatch.setenv("DROPOUT_RISK_WORKER_HEALTHCHECK_SECONDS", "45")
    options = uvicorn_options("127.0.0.1", 8000, 2, Settings())
    config = uvicorn.Config("service.app:app", **options)
    assert config.timeout_worker_healthcheck == 45
    assert config.workers == 2
    assert config.http is HeadLimitedHttpToolsProtocol


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def protocol() -> Iterator[tuple[HeadLimitedHttpToolsProtocol, _Transport]]:
    loop = asyncio.new_event_loop()
    config = uvicorn.Config(_app, http=HeadLimitedHttpToolsProtocol, lifespan="off")
    proto = HeadLimitedHttpToolsProtocol(config, ServerState(), {}, _loop=loop)
    HeadLimitedHttpToolsProtocol.head_limit = 1000
    transport = _Transport()
    proto.connection_made(transport)
    yield proto, transport
    HeadLimitedHttpToolsProtocol.head_limit = 0
    loop.close()


def _head(size: int, body: int = 0) -> bytes:
    start = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nX-Fill: " % body
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def test_a_head_over_the_limit_is_answered_431_and_closed(
    protocol: tuple[HeadLimitedHttpToolsProtocol, _Transport],
) -> None:
    proto, transport = protocol
    proto.data_received(_head(1001)[:600])
    assert not transport.closed
    proto.data_received(_head(1001)[600:])
    assert proto.cycle is None  # never parsed to its end, never handed to the app
    assert transport.written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert transport.closed


def test_a_head_at_the_limit_passes_even_with_its_body_in_the_same_read(
    protocol: tuple[HeadLimitedHttpToolsProtocol, _Transport],
) -> None:
    proto, transport = protocol
    data = _head(1000, body=5000) + b"b" * 5000
    proto.data_received(data[:998])  # the blank line that ends the head straddles two reads
    proto.data_received(data[998:])
    proto.loop.run_until_complete(asyncio.sleep(0))  # the app answers the request
    assert transport.written.startswith(b"HTTP/1.1 204 No Content\r\n")


async def _leaves(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    raise ClientDisconnect  # what Request.body() raises when the client has gone


def test_a_client_leaving_before_the_answer_is_counted_499_not_500() -> None:
    route = "/left-test"

    class Route:
        path = route

    def count(status: str) -> float:
        return REQUESTS.labels("POST", route, status)._value.get()  # type: ignore[attr-defined,no-any-return]

    before = count("499"), count("500")
    messages: list[Message] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent to a client that left")

    scope: Scope = {"type": "http", "method": "POST", "route": Route(), "headers": []}
    asyncio.run(Metrics(_leaves)(scope, receive, send))  # no exception escapes
    assert (count("499"), count("500")) == (before[0] + 1, before[1])
