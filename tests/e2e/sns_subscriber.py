"""An SNS HTTP(S) subscriber for end-to-end tests: a threading http.server on 127.0.0.1 that
records what it receives and can be taken down and brought back on its port."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.e2e.harness import free_port, wait_until


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, str]
    at: float  # time.time() on arrival


class Subscriber:
    """An SNS HTTP endpoint on 127.0.0.1 that can be taken down and brought back on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sns"

    def up(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(Received({k.lower(): v for k, v in self.headers.items()}, json.loads(body),
                                         time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.body.get("Type") == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 15) -> list[Received]:
        assert wait_until(lambda: len(self.of_type(kind)) >= count, timeout, 0.02), \
            f"{kind}: got {[r.body.get('Type') for r in self.received]}"
        return self.of_type(kind)

    def confirm(self, timeout: float = 15) -> None:
        """Confirm the subscription as a receiver does: GET the SubscribeURL it was sent."""
        import httpx

        [confirmation] = self.wait_for("SubscriptionConfirmation", timeout=timeout)[-1:]
        answer = httpx.get(confirmation.body["SubscribeURL"], timeout=10)
        assert answer.status_code == 200, answer.text

    def alarms(self, state: str = "ALARM") -> dict[str, list[dict[str, Any]]]:
        """The alarm notifications received, by alarm name: their parsed Message documents."""
        found: dict[str, list[dict[str, Any]]] = {}
        for item in self.of_type("Notification"):
            message = json.loads(item.body["Message"])
            if isinstance(message, dict) and message.get("NewStateValue") == state:
                found.setdefault(message["AlarmName"], []).append(message)
        return found

    def signed_alarm(self, alarm: str, state: str = "ALARM") -> Received:
        """The first notification of `alarm` entering `state`, as received (to check its signature)."""
        for item in self.of_type("Notification"):
            message = json.loads(item.body["Message"])
            if isinstance(message, dict) and (message.get("AlarmName"), message.get("NewStateValue")) == (alarm, state):
                return item
        raise AssertionError(f"no {state} notification of {alarm}")
