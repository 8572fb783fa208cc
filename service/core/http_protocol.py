"""uvicorn's httptools protocol with a cap on the size of a request's head.

uvicorn bounds headers only for its h11 parser (`h11_max_incomplete_event_size`); with
httptools, the faster parser it picks by default, a request head is accumulated without
limit: a single 160 MiB header was parsed for 28 s and grew the worker by 190 MB. Here the
bytes a connection sends before its head is complete are counted as they arrive, and once
they pass `max_header_bytes` without the blank line that ends the head, the request is
answered 431 and the connection closed, before the parser sees more. A request within the
limit costs one addition and one comparison per read.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.core.settings import get_settings

HEAD_END = b"\r\n\r\n"
REFUSED = b"the request line and headers are too long"
REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n"
    b"\r\n%s" % (len(REFUSED), REFUSED)
)


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol refusing a request head over `max_header_bytes` (431)."""

    head_limit = 0  # read from the settings by the first connection of a worker

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not HeadLimitedHttpToolsProtocol.head_limit:
            HeadLimitedHttpToolsProtocol.head_limit = get_settings().max_header_bytes
        self.head_seen = 0  # bytes received of the current head
        self.in_body = False  # between a head's end and its message's end
        self.tail = b""  # the last bytes of the head so far (its end may straddle reads)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head_seen += len(data)
            if self.head_seen > self.head_limit and not self._head_ends_in_time(data):
                self.transport.write(REFUSAL)
                self.transport.close()
                return
            self.tail = data[-3:]
        super().data_received(data)

    def _head_ends_in_time(self, data: bytes) -> bool:
        """Whether the head ends within the limit in this read (what follows is body)."""
        before = self.head_seen - len(data) - len(self.tail)
        end = (self.tail + data).find(HEAD_END)
        return end >= 0 and before + end + len(HEAD_END) <= self.head_limit

    def on_headers_complete(self) -> None:
        self.in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_body, self.head_seen, self.tail = False, 0, b""
        super().on_message_complete()
