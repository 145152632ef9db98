"""An in-process pipeline (real components, frozen clock, no threads)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from trailkeeper.api.app import caller_of
from trailkeeper.bootstrap import init_with_config
from trailkeeper.clock import FrozenClock
from trailkeeper.config import load_config
from trailkeeper.identity import RootCredentials
from trailkeeper.service import Service
from trailkeeper.storage.base import ObjectStore

SHARED = Path(__file__).resolve().parents[2] / "shared"


@dataclass
class Pipeline:
    service: Service
    clock: FrozenClock
    creds: RootCredentials
    data_dir: Path

    def caller(self) -> Any:
        resolved = self.service.identity.resolve(self.creds.access_key_id)
        assert resolved is not None
        return caller_of(resolved[0])

    def ingest(self, records: list[dict[str, Any]]) -> list[str]:
        return self.service.record(records, self.caller(), source_ip="203.0.113.9", user_agent="pytest")

    def advance(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        self.service.pump()


def app_event(i: int, when: datetime, name: str = "Login") -> dict[str, Any]:
    return {
        "eventName": name,
        "eventSource": "app.example.com",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sourceIPAddress": "198.51.100.7",
        "requestParameters": {"attempt": i},
    }


@contextmanager
def open_pipeline(tmp_path: Path, start: datetime | None = None,
                  wrap_store: Callable[[ObjectStore], ObjectStore] | None = None, **overrides: Any) -> Iterator[Pipeline]:
    """A foreground service on a fresh data directory. By default its frozen clock starts just
    after now; `start` puts the whole history elsewhere (init and keys included)."""
    data_dir = tmp_path / "data"
    config = load_config(data_dir, default_bucket_root=tmp_path / "buckets", **overrides)
    begin = start or datetime.now(UTC).replace(second=30, microsecond=0) + timedelta(minutes=1)
    clock = FrozenClock(begin - timedelta(seconds=5) if start else datetime.now(UTC))
    creds = init_with_config(config, clock)
    clock.set(begin)
    service = Service(config, clock=clock, background=False, wrap_store=wrap_store)
    service.start()
    try:
        yield Pipeline(service, clock, creds, data_dir)
    finally:
        service.close(flush_timeout=1)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    with open_pipeline(tmp_path) as p:
        yield p


def call_app(app: Any, region: str, key_id: str, secret: str, service: str, path: str, body: bytes,
             headers: dict[str, str]) -> tuple[int, Any]:
    """One SigV4-signed POST (signed by botocore) straight into the ASGI app, no socket:
    (HTTP status, decoded JSON body)."""
    import asyncio

    import orjson
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest("POST", f"http://127.0.0.1:9{path}", data=body, headers=headers)
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    raw = [(k.lower().encode(), v.encode()) for k, v in request.headers.items()] + [(b"host", b"127.0.0.1:9")]
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": raw, "client": ("192.0.2.5", 5000)}
    sent: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.update(message)

    asyncio.run(app(scope, receive, send))
    return int(sent["status"]), orjson.loads(sent["body"])


class _Body:
    """A response body botocore can stream."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def through_app(app: Any) -> Callable[..., Any]:
    """A botocore before-send hook: the signed request goes into the ASGI app, no socket."""
    import asyncio
    from collections.abc import MutableMapping
    from urllib.parse import urlsplit

    from botocore.awsrequest import AWSResponse

    def before_send(request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        headers = [(k.lower().encode(), (v if isinstance(v, bytes) else v.encode())) for k, v in request.headers.items()]
        scope = {"type": "http", "method": request.method, "path": url.path or "/", "raw_path": (url.path or "/").encode(),
                 "query_string": url.query.encode(), "headers": [*headers, (b"host", url.netloc.encode())],
                 "client": ("192.0.2.5", 5000)}
        sent: dict[str, Any] = {}

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.setdefault("status", message.get("status"))
            sent.setdefault("headers", message.get("headers"))
            if "body" in message:
                sent["body"] = message["body"]

        asyncio.run(app(scope, receive, send))
        answer_headers = {k.decode(): v.decode() for k, v in sent["headers"]}
        return AWSResponse(request.url, sent["status"], answer_headers, _Body(sent["body"]))
    return before_send


def botocore_client(pipeline: Pipeline, app: Any, service: str, key_id: str | None = None,
                    secret: str | None = None) -> Any:
    """botocore's own client of `service`, its requests answered by `app` in process."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        service, region_name=pipeline.creds.region, endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=key_id or pipeline.creds.access_key_id,
        aws_secret_access_key=secret or pipeline.creds.secret_access_key)
    client.meta.events.register(f"before-send.{service}", through_app(app))
    return client
