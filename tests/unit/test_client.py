"""trailkeeper.client against a tiny in-test HTTP server that records what arrives."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from trailkeeper.client import ApiError, Client, EndpointConnectionError
from trailkeeper.errors import ConfigError, TrailkeeperError

KEY_ID = "TKIAEXAMPLEKEY000001"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-3"

_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Answer = tuple[int, object]
Responder = Callable[[Received], Answer]


def default_responder(request: Received) -> Answer:
    if request.path == "/health":
        return 200, {"status": "ok", "region": REGION}
    if request.path == "/v1/events":
        count = len(request.json()["Records"])
        return 200, {"EventIds": [f"id-{i}" for i in range(count)], "Duplicate": False}
    return 200, {"Operation": request.path.rsplit("/", 1)[-1]}


@dataclass
class FakeServer:
    url: str
    requests: list[Received] = field(default_factory=list)
    responder: Responder = default_responder

    def client(self, **kwargs: Any) -> Client:
        return Client(self.url, KEY_ID, SECRET, **kwargs)

    def signed(self) -> list[Received]:
        return [r for r in self.requests if r.path != "/health"]


def _handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Received(
                self.command,
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                self.rfile.read(length),
            )
            server.requests.append(request)
            status, payload = server.responder(request)
            body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


def recompute_signature(request: Received, secret: str) -> str:
    """Botocore's own SigV4 steps over what the server received (only the signed headers)."""
    match = _AUTH_RE.fullmatch(request.headers["authorization"])
    assert match is not None
    names = match["signed"].split(";")
    aws_request = AWSRequest(
        method=request.method,
        url=f"http://{request.headers['host']}{request.path}",
        data=request.body,
        headers={name: request.headers[name] for name in names},
    )
    aws_request.context["timestamp"] = request.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(match["key"], secret), match["service"], match["region"])
    canonical = auth.canonical_request(aws_request)
    return str(auth.signature(auth.string_to_sign(aws_request, canonical), aws_request))


def test_region_is_asked_from_health_once(server: FakeServer) -> None:
    client = server.client()
    assert client.region == REGION
    client.call("ListTrails")
    client.call("ListUsers")
    assert [r.path for r in server.requests].count("/health") == 1
    assert "authorization" not in server.requests[0].headers


def test_explicit_region_skips_health(server: FakeServer) -> None:
    server.client(region="ap-south-1").call("ListTrails")
    assert [r.path for r in server.requests] == ["/v1/ops/ListTrails"]
    assert "/ap-south-1/trailkeeper/aws4_request" in server.requests[0].headers["authorization"]


def test_requests_carry_a_valid_sigv4_signature(server: FakeServer) -> None:
    server.client().put_events([{"eventName": "PutObject"}], idempotency_key="batch-7")
    (request,) = server.signed()
    match = _AUTH_RE.fullmatch(request.headers["authorization"])
    assert match is not None
    assert match["key"] == KEY_ID
    assert (match["region"], match["service"]) == (REGION, "trailkeeper")
    assert match["date"] == request.headers["x-amz-date"][:8]
    signed = match["signed"].split(";")
    assert {"host", "x-amz-date", "content-type", "idempotency-key"} <= set(signed)
    assert signed == sorted(signed)
    assert recompute_signature(request, SECRET) == match["signature"]


def test_signature_check_detects_a_changed_body_or_secret(server: FakeServer) -> None:
    server.client().put_events([{"eventName": "PutObject"}])
    (request,) = server.signed()
    claimed = _AUTH_RE.fullmatch(request.headers["authorization"])
    assert claimed is not None
    assert recompute_signature(request, "another-secret") != claimed["signature"]
    request.body = request.body.replace(b"PutObject", b"GetObject")
    assert recompute_signature(request, SECRET) != claimed["signature"]


def test_put_events_sends_records_and_idempotency_key(server: FakeServer) -> None:
    records: list[dict[str, Any]] = [
        {"eventName": "A", "n": 1},
        {"eventName": "B", "nested": {"k": [1, 2]}},
    ]
    ids = server.client().put_events(records, idempotency_key="key-1")
    assert ids == ["id-0", "id-1"]
    (request,) = server.signed()
    assert (request.method, request.path) == ("POST", "/v1/events")
    assert request.json() == {"Records": records}
    assert request.headers["idempotency-key"] == "key-1"
    assert request.headers["content-type"] == "application/json"


def test_put_events_without_key_sends_no_idempotency_header(server: FakeServer) -> None:
    server.client().put_events([{"eventName": "A"}])
    assert "idempotency-key" not in server.signed()[0].headers


def test_put_events_batched_splits_and_numbers_batches(server: FakeServer) -> None:
    records = [{"n": i} for i in range(250)]
    progress: list[int] = []
    ids = server.client().put_events_batched(records, 100, "upload", on_batch=progress.append)
    batches = server.signed()
    assert [len(r.json()["Records"]) for r in batches] == [100, 100, 50]
    assert [r.headers["idempotency-key"] for r in batches] == ["upload-0", "upload-1", "upload-2"]
    assert [rec["n"] for r in batches for rec in r.json()["Records"]] == list(range(250))
    assert len(ids) == 250
    assert progress == [100, 100, 50]


def test_put_events_batched_with_nothing_sends_nothing(server: FakeServer) -> None:
    assert server.client(region=REGION).put_events_batched([]) == []
    assert server.requests == []


@pytest.mark.parametrize("size", [0, 101])
def test_put_events_batched_rejects_out_of_range_batch_size(server: FakeServer, size: int) -> None:
    with pytest.raises(ConfigError, match="batch size"):
        server.client().put_events_batched([{"n": 1}], batch_size=size)


def test_call_posts_the_operation_and_its_parameters(server: FakeServer) -> None:
    answer = server.client().call("GetTrail", Name="main", Extra={"a": [1]})
    assert answer == {"Operation": "GetTrail"}
    (request,) = server.signed()
    assert request.path == "/v1/ops/GetTrail"
    assert request.json() == {"Name": "main", "Extra": {"a": [1]}}


def test_call_rejects_an_operation_name_that_is_not_one(server: FakeServer) -> None:
    with pytest.raises(ConfigError, match="operation name"):
        server.client().call("../health")


def test_conveniences_send_aws_shapes(server: FakeServer) -> None:
    client = server.client()
    client.create_trail(
        "t", destination="/d", enable_log_file_validation=True, flush_interval_seconds=5
    )
    client.update_trail("t", s3_key_prefix="p", digest_interval_seconds=60)
    client.describe_trails(["t", "u"])
    client.describe_trails()
    client.lookup_events(
        [("Username", "alice")],
        start_time=datetime(2024, 5, 1, tzinfo=UTC),
        end_time=datetime(2024, 5, 1, 0, 0, 1, 500000, tzinfo=UTC),
        max_results=10,
    )
    client.create_access_key()
    client.create_access_key("bob")
    client.update_access_key("AKID", "Inactive", user_name="bob")
    client.put_event_selectors("t", "ReadOnly")
    sent = [(r.path.rsplit("/", 1)[-1], r.json()) for r in server.signed()]
    assert sent == [
        (
            "CreateTrail",
            {
                "Name": "t",
                "Destination": "/d",
                "EnableLogFileValidation": True,
                "FlushIntervalSeconds": 5,
            },
        ),
        ("UpdateTrail", {"Name": "t", "S3KeyPrefix": "p", "DigestIntervalSeconds": 60}),
        ("DescribeTrails", {"trailNameList": ["t", "u"]}),
        ("DescribeTrails", {}),
        (
            "LookupEvents",
            {
                "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}],
                "StartTime": 1714521600,
                "EndTime": 1714521601.5,
                "MaxResults": 10,
            },
        ),
        ("CreateAccessKey", {}),
        ("CreateAccessKey", {"UserName": "bob"}),
        ("UpdateAccessKey", {"UserName": "bob", "AccessKeyId": "AKID", "Status": "Inactive"}),
        (
            "PutEventSelectors",
            {
                "TrailName": "t",
                "EventSelectors": [{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}],
            },
        ),
    ]


def test_conveniences_unwrap_answers(server: FakeServer) -> None:
    answers: dict[str, object] = {
        "ListUsers": {"Users": [{"UserName": "alice"}]},
        "CreateUser": {"User": {"UserName": "bob", "Role": "reader"}},
        "ListAccessKeys": {"AccessKeyMetadata": [{"AccessKeyId": "K"}]},
        "CreateAccessKey": {"AccessKey": {"AccessKeyId": "K", "SecretAccessKey": "S"}},
        "ListPublicKeys": {"PublicKeyList": [{"Fingerprint": "ab"}]},
        "DescribeTrails": {"trailList": [{"Name": "t"}]},
        "ListTrails": {"Trails": [{"Name": "t"}]},
    }

    def respond(request: Received) -> Answer:
        return 200, answers.get(request.path.rsplit("/", 1)[-1], {})

    server.responder = respond
    client = server.client(region=REGION)
    assert client.list_users() == [{"UserName": "alice"}]
    assert client.create_user("bob", "reader") == {"UserName": "bob", "Role": "reader"}
    assert client.list_access_keys() == [{"AccessKeyId": "K"}]
    assert client.create_access_key() == {"AccessKeyId": "K", "SecretAccessKey": "S"}
    assert client.list_public_keys() == [{"Fingerprint": "ab"}]
    assert client.describe_trails() == [{"Name": "t"}]
    assert client.list_trails() == [{"Name": "t"}]
    assert server.signed()[1].json() == {"UserName": "bob", "Role": "reader"}


def test_iter_lookup_events_follows_next_token(server: FakeServer) -> None:
    pages = {None: ([1, 2], "t1"), "t1": ([3], "t2"), "t2": ([4, 5], None)}

    def respond(request: Received) -> Answer:
        events, token = pages[request.json().get("NextToken")]
        answer: dict[str, object] = {"Events": [{"EventId": str(e)} for e in events]}
        if token:
            answer["NextToken"] = token
        return 200, answer

    server.responder = respond
    client = server.client(region=REGION)
    events = list(client.iter_lookup_events([("EventName", "X")], page_size=2))
    assert [e["EventId"] for e in events] == ["1", "2", "3", "4", "5"]
    assert [r.json().get("NextToken") for r in server.requests] == [None, "t1", "t2"]
    assert all(r.json()["MaxResults"] == 2 for r in server.requests)


@pytest.mark.parametrize(
    ("status", "payload", "code", "message", "index", "path", "hint"),
    [
        (400, {"__type": "TrailNotFoundException", "message": "no trail x"}, "TrailNotFoundException", "no trail x", None, None, "trail list"),
        (403, {"__type": "InvalidClientTokenId", "message": "unknown key"}, "InvalidClientTokenId", "unknown key", None, None, "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
        (400, {"__type": "com.amazonaws.cloudtrail#InvalidTrailNameException", "Message": "bad"}, "InvalidTrailNameException", "bad", None, None, ""),
        (400, {"__type": "InvalidRecord", "message": "missing", "index": 3, "path": "eventName"}, "InvalidRecord", "missing", 3, "eventName", ""),
        (409, {"__type": "IdempotencyConflict", "message": "other body"}, "IdempotencyConflict", "other body", None, None, "fresh key"),
        (502, b"<html>bad gateway</html>", "HTTP502", "<html>bad gateway</html>", None, None, "server's log"),
    ],
)  # fmt: skip
def test_error_answers_become_api_errors(
    server: FakeServer,
    status: int,
    payload: object,
    code: str,
    message: str,
    index: int | None,
    path: str | None,
    hint: str,
) -> None:
    server.responder = lambda request: (status, payload)
    with pytest.raises(ApiError) as caught:
        server.client(region=REGION).call("GetTrail", Name="x")
    error = caught.value
    assert (error.code, error.message, error.status) == (code, message, status)
    assert (error.index, error.path) == (index, path)
    assert isinstance(error, TrailkeeperError)
    assert str(error).startswith(f"{code}: {message}")
    assert hint in error.hint
    if index is not None:
        assert f"record {index}, field {path}" in str(error)


def test_record_location_is_not_repeated(server: FakeServer) -> None:
    body = {"__type": "InvalidRecord", "message": "record 2, field x: bad", "index": 2, "path": "x"}
    server.responder = lambda request: (400, body)
    with pytest.raises(ApiError) as caught:
        server.client(region=REGION).put_events([{"a": 1}])
    assert str(caught.value) == "InvalidRecord: record 2, field x: bad [HTTP 400]"


def test_put_events_error_names_the_record(server: FakeServer) -> None:
    body = {"__type": "ValidationException", "message": "not a string", "index": 1, "path": "a.b"}
    server.responder = lambda request: (400, body)
    with pytest.raises(ApiError, match=r"record 1, field a\.b"):
        server.client(region=REGION).put_events([{"a": 1}, {"a": {}}])


def test_unreachable_server_names_the_endpoint_and_how_to_start_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(EndpointConnectionError) as caught:
        Client(endpoint, KEY_ID, SECRET).call("ListTrails")
    error = caught.value
    assert error.status == 0
    assert endpoint in error.hint and "trailkeeper server" in error.hint
    assert "hint:" in error.diagnostics()


def test_health_without_region_asks_for_one(server: FakeServer) -> None:
    server.responder = lambda request: (200, {"status": "ok"})
    with pytest.raises(ConfigError, match="region") as caught:
        server.client().call("ListTrails")
    assert "TRAILKEEPER_REGION" in caught.value.hint


def test_non_json_success_answer_is_an_error(server: FakeServer) -> None:
    server.responder = lambda request: (200, b"hello")
    with pytest.raises(ApiError, match="not JSON") as caught:
        server.client(region=REGION).call("ListTrails")
    assert caught.value.code == "InvalidResponse"


@pytest.mark.parametrize(
    ("endpoint", "key_id", "secret", "match"),
    [
        ("127.0.0.1:8790", KEY_ID, SECRET, "not an http"),
        ("http://127.0.0.1:8790", "", SECRET, "missing credentials"),
        ("http://127.0.0.1:8790", KEY_ID, "", "missing credentials"),
    ],
)
def test_bad_settings_are_config_errors(
    endpoint: str, key_id: str, secret: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        Client(endpoint, key_id, secret)
