"""The transports (notify/transports.py) against a real local HTTP receiver, the redaction of
endpoints in audit events, and the [smtp] settings: each inconsistency refused at start."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from trailkeeper.config import load_config
from trailkeeper.errors import ConfigError
from trailkeeper.notify.settings import SmtpSettings
from trailkeeper.notify.topics import Outgoing
from trailkeeper.notify.transports import (
    AppriseTransport,
    DeliveryError,
    HttpTransport,
    redacted_endpoint,
)


class _Receiver:
    def __init__(self, status: int) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        got, answer = self.got, status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[_Receiver]:
    r = _Receiver(getattr(request, "param", 200))
    yield r
    r.server.shutdown()
    r.server.server_close()


def _outgoing(endpoint: str, kind: str = "Notification") -> Outgoing:
    return Outgoing("http", endpoint, "arn:aws:sns:us-east-1:1:t:s", "arn:aws:sns:us-east-1:1:t", "m-1", kind,
                    {"Type": kind, "MessageId": "m-1", "Message": "hi"}, "Subject", "text body")


def test_http_posts_the_document_with_snss_headers(receiver: _Receiver) -> None:
    HttpTransport().send(_outgoing(f"http://127.0.0.1:{receiver.port}/hook"))
    [(path, headers, body)] = receiver.got
    assert path == "/hook" and json.loads(body) == {"Type": "Notification", "MessageId": "m-1", "Message": "hi"}
    assert headers["x-amz-sns-message-type"] == "Notification" and headers["x-amz-sns-message-id"] == "m-1"
    assert headers["x-amz-sns-topic-arn"] == "arn:aws:sns:us-east-1:1:t"
    assert headers["x-amz-sns-subscription-arn"] == "arn:aws:sns:us-east-1:1:t:s"
    assert headers["content-type"] == "text/plain; charset=UTF-8"


@pytest.mark.parametrize("receiver", [500], indirect=True)
def test_http_a_non_2xx_answer_is_a_failure(receiver: _Receiver) -> None:
    with pytest.raises(DeliveryError, match="HTTP 500"):
        HttpTransport().send(_outgoing(f"http://127.0.0.1:{receiver.port}/hook"))


def test_http_a_refused_connection_is_a_failure() -> None:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    with pytest.raises(DeliveryError, match="ConnectError"):
        HttpTransport().send(_outgoing(f"http://127.0.0.1:{port}/hook"))


def test_apprise_delivers_through_its_json_plugin(receiver: _Receiver) -> None:
    AppriseTransport().send(_outgoing(f"json://127.0.0.1:{receiver.port}/alerts"))
    [(path, _, body)] = receiver.got
    sent = json.loads(body)
    assert path == "/alerts" and (sent["title"], sent["message"]) == ("Subject", "text body")


@pytest.mark.parametrize(("protocol", "endpoint", "shown"), [
    ("apprise", "slack://TokenA/TokenB/TokenC/#alerts", "slack://…"),
    ("https", "https://user:pw@hooks.example:8443/sns?key=secret", "https://hooks.example:8443/sns"),
    ("http", "http://hooks.example", "http://hooks.example"),
    ("email", "oncall@example.com", "oncall@example.com"),
], ids=["apprise token", "url credentials and query", "plain url", "email"])
def test_endpoints_in_audit_events_carry_no_credentials(protocol: str, endpoint: str, shown: str) -> None:
    assert redacted_endpoint(protocol, endpoint) == shown


SMTP_PROBLEMS = [
    ({"host": "", "sender": "a@b.example"}, "smtp.host is empty"),
    ({"host": "mail", "sender": "nobody"}, "not an email address"),
    ({"host": "mail", "sender": "a@b.example", "username": "u"}, "go together"),
    ({"host": "mail", "sender": "a@b.example", "username": "u", "password": "p", "security": "none"},
     "password in clear"),
    ({"host": "mail", "sender": "a@b.example", "security": "ssl3"}, "not one of"),
    ({"host": "mail", "sender": "a@b.example", "port": 0}, "not in 1..65535"),
    ({"host": "mail", "sender": "a@b.example", "ca_file": "/nonexistent/ca.pem"}, "not a readable file"),
]


@pytest.mark.parametrize(("section", "problem"), SMTP_PROBLEMS,
                         ids=["no host", "bad sender", "user without password", "auth in clear",
                              "unknown security", "bad port", "missing ca file"])
def test_inconsistent_smtp_settings_are_refused_at_start(tmp_path: Path, section: dict[str, Any],
                                                         problem: str) -> None:
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in section.items())
    (tmp_path / "trailkeeper.toml").write_text(f"[smtp]\n{lines}\n")
    with pytest.raises(ConfigError, match=problem):
        load_config(tmp_path)


def test_smtp_settings_are_read_from_the_config_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    (tmp_path / "trailkeeper.toml").write_text(
        f'public_url = "https://audit.example/"\n[smtp]\nhost = "mail.example"\nport = 465\nsecurity = "tls"\n'
        f'sender = "alerts@example.com"\nusername = "u"\npassword = "p"\nca_file = "{ca}"\ntimeout = 5\n')
    config = load_config(tmp_path)
    assert config.smtp == SmtpSettings(host="mail.example", sender="alerts@example.com", port=465, security="tls",
                                       username="u", password="p", ca_file=ca, timeout_s=5.0)
    assert config.notification_base_url == "https://audit.example"
    (tmp_path / "trailkeeper.toml").write_text('[smtp]\nhost = "m"\nsender = "a@b.c"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="unknown settings colour"):
        load_config(tmp_path)
