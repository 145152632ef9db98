"""uvicorn's HTTP protocol, with the deadline it lacks: a request's headers must arrive in time.

uvicorn closes a keep-alive connection that stays idle after a response, but waits for ever
on a connection that never sends a request, or sends its headers a byte at a time (a
slowloris). Here each request's headers, from the connection's start or the request's first
byte, must be complete within `header_timeout`; otherwise the connection is closed. (The
body has its own deadline in the app, which reads it.) Pipelined requests are not parsed, and
after a canned answer to a flood the rest of the data received is not parsed either.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from trailkeeper.api.refusals import RefusalLimiter

# The one path the app answers without a signature (clients ask it for the region): never a
# refusal, whatever the source's budget.
HEALTH_PATH = "/health"
# The answer to an unsigned request from a source that has used up its refusal budget.
_UNSIGNED_MESSAGE = b'{"__type":"MissingAuthenticationToken","message":"Request is missing Authentication Token"}'
UNSIGNED_REFUSAL = (b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: " + str(len(_UNSIGNED_MESSAGE)).encode() + b"\r\n\r\n" + _UNSIGNED_MESSAGE)


def guarded_protocol(header_timeout_s: float, refusals: RefusalLimiter | None = None) -> type[HttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`), with this header deadline, and the app's
    refusal limiter (an unsigned request of a source over its budget is answered right here)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout_s": header_timeout_s, "refusals": refusals})


class _StopParsing(Exception):
    """Raised from a parser callback: what is left of the data received is not parsed."""


class _StoppableParser(httptools.HttpRequestParser):
    """httptools' parser, whose feed_data a callback can end early by raising _StopParsing
    (httptools then raises HttpParserCallbackError with it as the context)."""

    def feed_data(self, data: bytes) -> None:  # type: ignore[override]
        try:
            super().feed_data(data)
        except httptools.HttpParserCallbackError as e:
            if not isinstance(e.__context__, _StopParsing):
                raise


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0
    refusals: RefusalLimiter | None = None
    _header_deadline: asyncio.TimerHandle | None = None
    _pipelined = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parser = _StoppableParser(self)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._pipelined:  # after a pipelined request or a canned answer, nothing more is read
            super().data_received(data)

    def on_message_begin(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A request sent before the previous one was answered (HTTP pipelining). No AWS SDK
            # or CLI pipelines; a flood does, and each queued request would be parsed into a
            # request object on the event loop. It is not: the connection closes after the
            # answer in flight, and the client may send the rest again on a new one.
            self._pipelined = True
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            raise _StopParsing
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
        if self._flooding():
            raise _StopParsing
        super().on_headers_complete()

    def _flooding(self) -> bool:
        """An unsigned request from a source that has used up its refusal budget costs no more
        than a canned answer and a closed connection: no request object, no app task. (The app
        records unsigned requests while the budget lasts; these are counted for its summary.)"""
        source = self.client[0] if self.client else None
        if self.refusals is None or source is None or not self.refusals.exhausted(source):
            return False
        if any(name == b"authorization" for name, _ in self.headers) or b"X-Amz-Credential" in self.url:
            return False  # signed: the app verifies it as any other
        if self.url.partition(b"?")[0] == HEALTH_PATH.encode() and self.parser.get_method() == b"GET":
            return False  # public: answered, not refused
        self.refusals.drop(source, "MissingAuthenticationToken")
        self._pipelined = True  # ignore whatever follows on this connection
        self.transport.write(UNSIGNED_REFUSAL)
        self.transport.close()
        return True

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
