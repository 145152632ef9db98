"""uvicorn's HTTP protocol, with the deadline it lacks: a request's headers must arrive in time.

uvicorn closes a keep-alive connection that stays idle after a response, but waits for ever
on a connection that never sends a request, or sends its headers a byte at a time (a
slowloris). Here each request's headers, from the connection's start or the request's first
byte, must be complete within `header_timeout`; otherwise the connection is closed. (The
body has its own deadline in the app, which reads it.) Pipelined requests are not parsed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def guarded_protocol(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`), with this header deadline."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"header_timeout_s": header_timeout_s})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0
    _header_deadline: asyncio.TimerHandle | None = None
    _pipelined = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A request sent before the previous one was answered (HTTP pipelining). No AWS SDK
            # or CLI pipelines; a flood does, and each queued request would be parsed into a
            # request object on the event loop. It is not: the connection closes after the
            # answer in flight, and the client may send the rest again on a new one.
            self._pipelined = True
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        super().on_message_begin()
        self._arm()

    def on_url(self, url: bytes) -> None:
        if not self._pipelined:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._pipelined:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._pipelined:
            return
        self._disarm()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._pipelined:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._pipelined:
            super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
