"""The scripted CLI forms of issue #2 against a real server, and what they leave in the audit trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.harness import (
    Server,
    delivered_records,
    run_cli,
    running_server,
    signed_post,
    wait_until,
)

from trailkeeper.client import ApiError


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("acceptance") / "data")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(name: str = "Login", **extra: Any) -> dict[str, Any]:
    return {"eventName": name, "eventSource": "app.example.com", "eventTime": _now(),
            "sourceIPAddress": "198.51.100.4", "requestParameters": {"x": 1}, **extra}


def _lookup(server: Server, attribute: str) -> list[dict[str, Any]]:
    return list(server.cli_json("lookup", "--attribute", attribute)["Events"])


def test_init_json_shape(server: Server) -> None:
    assert set(server.creds) >= {"accountId", "region", "rootAccessKeyId", "rootSecretAccessKey"}
    assert len(server.creds["accountId"]) == 12 and server.creds["accountId"].isdigit()
    assert server.creds["rootAccessKeyId"].startswith("AKIA")


def test_users_keys_trail_record_lookup_validate(server: Server, tmp_path: Path) -> None:
    user = server.cli_json("user", "create", "alice", "--role", "writer")
    assert user["UserName"] == "alice"
    key = server.cli_json("key", "create", "alice")
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    dest = tmp_path / "dest"
    trail = server.cli_json("trail", "create", "acc", "--destination", str(dest), "--validation",
                            "--flush-interval", "1s", "--digest-interval", "1m")
    assert trail["TrailARN"].endswith(":trail/acc") and trail["LogFileValidationEnabled"] is True
    server.cli("trail", "start", "acc")
    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(json.dumps(_event(f"Op{i}")) for i in range(5)))
    alice = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    server.cli("record", "--file", str(events), env=alice)
    found = _lookup(server, "Username=alice")
    assert {e["EventName"] for e in found} >= {f"Op{i}" for i in range(5)}
    record = json.loads(found[0]["CloudTrailEvent"])
    assert record["userIdentity"]["type"] == "IAMUser" and record["userIdentity"]["userName"] == "alice"
    assert record["eventVersion"] == "1.11" and record["recipientAccountId"] == server.creds["accountId"]
    assert wait_until(lambda: len([r for r in delivered_records(dest) if r["eventName"].startswith("Op")]) == 5, 10)
    status = server.cli_json("trail", "status", "acc")
    assert status["IsLogging"] is True and status["LatestDeliveryTime"] > 0
    server.cli("trail", "stop", "acc")
    assert wait_until(lambda: "LatestDigestDeliveryTime" in server.cli_json("trail", "status", "acc")
                      and not server.cli_json("trail", "status", "acc")["IsLogging"], 15)
    start = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = run_cli("validate", "--data-dir", str(server.data_dir), "--trail", "acc", "--start-time", start, "--json",
                 check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True


def test_self_audit_uses_aws_sources_and_names(server: Server, tmp_path: Path) -> None:
    server.cli("trail", "create", "selfaudit", "--destination", str(tmp_path / "d2"), "--json")
    server.cli("trail", "start", "selfaudit")
    server.cli("trail", "stop", "selfaudit")
    server.cli_json("user", "create", "bob", "--role", "auditor")
    server.cli_json("key", "create", "bob")
    server.cli_json("lookup", "--attribute", "EventName=Nothing")
    expected = {"CreateTrail": "cloudtrail.amazonaws.com", "StartLogging": "cloudtrail.amazonaws.com",
                "StopLogging": "cloudtrail.amazonaws.com", "CreateUser": "iam.amazonaws.com",
                "CreateAccessKey": "iam.amazonaws.com", "LookupEvents": "cloudtrail.amazonaws.com"}
    for name, source in expected.items():
        events = _lookup(server, f"EventName={name}")
        assert events, f"no {name} event recorded"
        assert {e["EventSource"] for e in events} == {source}
    key_event = json.loads(_lookup(server, "EventName=CreateAccessKey")[0]["CloudTrailEvent"])
    assert "SecretAccessKey" not in json.dumps(key_event), "a secret leaked into the audit trail"
    root_event = json.loads(_lookup(server, "EventName=CreateUser")[0]["CloudTrailEvent"])
    assert root_event["userIdentity"]["type"] == "Root"


def _botocore_signed(server: Server, secret: str, key_id: str | None = None, region: str | None = None,
                     when: datetime | None = None) -> httpx.Response:
    body = json.dumps({"Records": [_event()]}).encode()
    return signed_post(server, "/v1/events", body, secret=secret, key_id=key_id, region=region, when=when)


@pytest.mark.parametrize("case, code", [
    ("wrong-secret", "SignatureDoesNotMatch"),
    ("unknown-key", "InvalidClientTokenId"),
    ("wrong-region", "SignatureDoesNotMatch"),
    ("expired", "SignatureDoesNotMatch"),
    ("unsigned", "MissingAuthenticationToken"),
])
def test_refused_requests_are_recorded_with_error_code(server: Server, case: str, code: str) -> None:
    secret = server.creds["rootSecretAccessKey"]
    if case == "wrong-secret":
        response = _botocore_signed(server, "x" * 40)
    elif case == "unknown-key":
        response = _botocore_signed(server, secret, key_id="AKIAUNKNOWNUNKNOWN00")
    elif case == "wrong-region":
        response = _botocore_signed(server, secret, region="eu-west-9")
    elif case == "expired":
        response = _botocore_signed(server, secret, when=datetime.now(UTC) - timedelta(minutes=6))
    else:
        response = httpx.post(f"{server.endpoint}/v1/events", content=b"{}")
    assert response.status_code in (400, 403)
    assert response.json()["__type"] == code
    recorded = [json.loads(e["CloudTrailEvent"]) for e in _lookup(server, "EventName=PutEvents")]
    assert any(r.get("errorCode") == code for r in recorded), f"refusal {code} not recorded"


def test_roles_are_enforced_and_denials_recorded(server: Server) -> None:
    server.cli_json("user", "create", "carol", "--role", "auditor")
    key = server.cli_json("key", "create", "carol")
    carol = server.client(key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(ApiError) as denied:
        carol.call("CreateTrail", Name="nope", Destination="/tmp/nope")
    assert denied.value.code == "AccessDeniedException"
    with pytest.raises(ApiError):
        carol.put_events([_event()])
    assert carol.call("LookupEvents", MaxResults=1)["Events"]
    denials = [json.loads(e["CloudTrailEvent"]) for e in _lookup(server, "Username=carol")]
    assert any(d.get("errorCode") == "AccessDenied" and d["eventName"] == "CreateTrail" for d in denials)


def test_inactive_key_is_refused(server: Server) -> None:
    server.cli_json("user", "create", "dave", "--role", "writer")
    key = server.cli_json("key", "create", "dave")
    server.cli("key", "deactivate", key["AccessKeyId"], "--user", "dave")
    with pytest.raises(ApiError) as refused:
        server.client(key["AccessKeyId"], key["SecretAccessKey"]).put_events([_event()])
    assert refused.value.code == "InvalidClientTokenId"


def test_only_forwarder_sets_user_identity(server: Server) -> None:
    server.cli_json("user", "create", "gateway", "--role", "forwarder")
    fwd_key = server.cli_json("key", "create", "gateway")
    forwarder = server.client(fwd_key["AccessKeyId"], fwd_key["SecretAccessKey"])
    someone = {"type": "IAMUser", "principalId": "EXT-42", "userName": "erin"}
    [event_id] = forwarder.put_events([_event("Forwarded", userIdentity=someone)])
    [found] = _lookup(server, f"EventId={event_id}")
    record = json.loads(found["CloudTrailEvent"])
    assert record["userIdentity"]["userName"] == "erin"
    assert "gateway" in json.dumps(record), "the forwarder's identity is not recorded with the event"
    with pytest.raises(ApiError) as refused:
        server.client().put_events([_event(userIdentity=someone)])  # root is not a forwarder
    assert refused.value.status == 400 and refused.value.path and "userIdentity" in refused.value.path


def test_bad_batch_is_refused_whole_naming_index_and_field(server: Server) -> None:
    client = server.client()
    good = _event("KeepOut")
    bad = _event("KeepOut")
    bad["eventTime"] = "yesterday"
    with pytest.raises(ApiError) as refused:
        client.put_events([good, good, bad])
    assert refused.value.status == 400
    assert refused.value.index == 2 and refused.value.path is not None and "eventTime" in refused.value.path
    assert not _lookup(server, "EventName=KeepOut"), "part of a refused batch was stored"


def test_idempotent_retry_stores_once(server: Server) -> None:
    client = server.client()
    batch = [_event("Idem")]
    first = client.put_events(batch, idempotency_key="retry-1")
    again = client.put_events(batch, idempotency_key="retry-1")
    assert first == again
    assert len(_lookup(server, "EventName=Idem")) == 1
    with pytest.raises(ApiError) as conflict:
        client.put_events([_event("Idem2")], idempotency_key="retry-1")
    assert conflict.value.status == 409


def test_limits(server: Server) -> None:
    client = server.client()
    with pytest.raises(ApiError) as too_many:
        client.put_events([_event()] * 101)
    assert too_many.value.status == 400
    huge = _event(requestParameters={"blob": "x" * 270_000})
    with pytest.raises(ApiError) as too_big:
        client.put_events([huge])
    assert too_big.value.status in (400, 413)
