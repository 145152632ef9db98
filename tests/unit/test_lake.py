"""CloudTrail Lake channels and PutAuditEvents against a real foreground Service."""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.parsers
import botocore.session
import orjson
import pytest
from tests.pipeline import Pipeline, open_pipeline

from trailkeeper import lake
from trailkeeper._internal.sqlite import Database
from trailkeeper.api.operations import OPEN_END, OPEN_START
from trailkeeper.errors import TrailError
from trailkeeper.history.base import LookupQuery
from trailkeeper.state.channels import SqliteChannelRepository
from trailkeeper.trails import TrailConfig

DESTS = [{"Type": "EVENT_DATA_STORE", "Location": "arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/x"}]


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[Pipeline]:
    with open_pipeline(tmp_path) as p:
        yield p


@pytest.fixture
def arn(pipe: Pipeline) -> str:
    made = lake.create_channel(pipe.service, None, {"Name": "app-channel", "Source": "Custom",
                                                    "Destinations": DESTS})
    return str(made["ChannelArn"])


def event_data(pipe: Pipeline, name: str = "CreateWidget", **extra: Any) -> dict[str, Any]:
    return {"version": "1.0", "userIdentity": {"type": "AppUser", "principalId": "alice", "details": {"team": 7}},
            "eventSource": "app.example.com", "eventName": name,
            "eventTime": pipe.clock.now().strftime("%Y-%m-%dT%H:%M:%S.123Z"), "UID": "src-1",
            "requestParameters": {"widget": "w1"}, **extra}


def put(pipe: Pipeline, arn: str, events: list[dict[str, Any]], channel: str | None = None) -> dict[str, Any]:
    body = orjson.dumps({"auditEvents": events})
    status, response = lake.put_audit_events(pipe.service, pipe.caller(), arn if channel is None else channel,
                                             None, body, "203.0.113.9", "pytest")
    assert status == 200
    return response


def entry(event_id: str, data: dict[str, Any] | str, checksum: bool = False) -> dict[str, Any]:
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    out: dict[str, Any] = {"id": event_id, "eventData": text}
    if checksum:
        out["eventDataChecksum"] = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return out


def lookup(pipe: Pipeline, name: str) -> list[dict[str, Any]]:
    pipe.service.pump()
    page = pipe.service.history.lookup(LookupQuery("EventName", name, OPEN_START, OPEN_END))
    return [orjson.loads(body) for body in page.events]


def code_of(call: Any) -> str:
    with pytest.raises(TrailError) as info:
        call()
    assert info.value.status == 400
    return info.value.code


# ---- channels ----

def test_channel_life_cycle(pipe: Pipeline, arn: str) -> None:
    svc = pipe.service
    assert arn.startswith(f"arn:aws:cloudtrail:{svc.account.region}:{svc.account.account_id}:channel/")
    got = lake.get_channel(svc, None, {"Channel": arn})
    assert (got["Name"], got["Source"], got["Destinations"]) == ("app-channel", "Custom", DESTS)
    assert lake.get_channel(svc, None, {"Channel": arn.rsplit("/", 1)[1]})["ChannelArn"] == arn
    assert lake.list_channels(svc, None, {}) == {"Channels": [{"ChannelArn": arn, "Name": "app-channel"}]}
    assert lake.delete_channel(svc, None, {"Channel": arn}) == {}
    assert lake.list_channels(svc, None, {}) == {"Channels": []}
    assert code_of(lambda: lake.get_channel(svc, None, {"Channel": arn})) == "ChannelNotFoundException"
    assert code_of(lambda: lake.delete_channel(svc, None, {"Channel": arn})) == "ChannelNotFoundException"


def test_channel_errors(pipe: Pipeline, arn: str) -> None:
    svc = pipe.service

    def create(**params: Any) -> Any:
        return lambda: lake.create_channel(svc, None, {"Name": "other", "Destinations": DESTS, **params})

    assert code_of(create(Name="app-channel")) == "ChannelAlreadyExistsException"
    assert code_of(create(Name="ab")) == "InvalidParameterException"
    assert code_of(create(Name="bad name")) == "InvalidParameterException"
    assert code_of(create(Source="no spaces")) == "InvalidSourceException"
    assert code_of(create(Destinations=[])) == "InvalidParameterException"
    assert code_of(create(Destinations=[{"Type": "S3", "Location": "abc"}])) == "InvalidParameterException"
    assert code_of(create(Tags=[{"Value": "v"}])) == "InvalidTagParameterException"
    assert code_of(lambda: lake.get_channel(svc, None, {"Channel": "not-an-arn"})) == "ChannelARNInvalidException"
    assert code_of(lambda: lake.get_channel(svc, None, {})) == "ChannelARNInvalidException"


def test_list_channels_pages(pipe: Pipeline) -> None:
    for i in range(3):
        lake.create_channel(pipe.service, None, {"Name": f"chan-{i}", "Destinations": DESTS})
    first = lake.list_channels(pipe.service, None, {"MaxResults": 2})
    rest = lake.list_channels(pipe.service, None, {"MaxResults": 2, "NextToken": first["NextToken"]})
    assert len(first["Channels"]) == 2 and len(rest["Channels"]) == 1 and "NextToken" not in rest
    assert {c["Name"] for c in first["Channels"] + rest["Channels"]} == {"chan-0", "chan-1", "chan-2"}


def test_channels_survive_a_restart(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as p:
        arn = lake.create_channel(p.service, None, {"Name": "kept", "Destinations": DESTS})["ChannelArn"]
    db = Database(p.service.config.state_db)
    reopened = lake.ChannelStore(SqliteChannelRepository(db))
    try:
        assert reopened.get(arn).name == "kept"
    finally:
        db.close()


# ---- PutAuditEvents ----

def test_good_events_become_cloudtrail_records(pipe: Pipeline, arn: str) -> None:
    data = event_data(pipe, responseElements={"ok": True}, additionalEventData={"k": 1})
    result = put(pipe, arn, [entry("e1", data, checksum=True), entry("e2", event_data(pipe, "GetWidget"))])
    assert result["failed"] == []
    assert [s["id"] for s in result["successful"]] == ["e1", "e2"]
    [record] = lookup(pipe, "CreateWidget")
    assert record["eventID"] == result["successful"][0]["eventID"]
    assert record["userIdentity"] == data["userIdentity"]
    assert record["eventTime"] == pipe.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (record["eventCategory"], record["eventType"], record["eventVersion"]) == ("ActivityAuditLog",
                                                                                      "ActivityLog", "1.0")
    assert (record["sourceIPAddress"], record["userAgent"], record["UID"]) == ("203.0.113.9", "pytest", "src-1")
    assert record["recipientAccountId"] == pipe.service.account.account_id
    assert record["readOnly"] is False and record["managementEvent"] is False
    assert record["responseElements"] == {"ok": True} and record["additionalEventData"] == {"k": 1}
    assert record["metadata"]["channelARN"] == arn
    assert lookup(pipe, "GetWidget")[0]["readOnly"] is True


def test_bad_events_fail_one_by_one(pipe: Pipeline, arn: str) -> None:
    good = event_data(pipe)
    missing = {k: v for k, v in event_data(pipe, "X").items() if k != "UID"}
    no_principal = event_data(pipe, "Y", userIdentity={"type": "AppUser"})
    bad_sum = entry("c", good) | {"eventDataChecksum": "AAAA"}
    cases = [
        (bad_sum, "InvalidChecksum"),
        (entry("m", missing), "FieldNotFound"),
        (entry("p", no_principal), "FieldNotFound"),
        (entry("j", "{not json"), "InvalidData"),
        (entry("a", "[1, 2]"), "InvalidData"),
        (entry("u", event_data(pipe, "Z", eventID="mine")), "InvalidData"),
        (entry("s", event_data(pipe, "Z", eventSource="nodots")), "InvalidEventSource"),
        (entry("r", event_data(pipe, "Z", recipientAccountId="000000000000")), "InvalidRecipient"),
        (entry("t", event_data(pipe, "Z", eventTime="yesterday")), "InvalidData"),
        (entry("n", event_data(pipe, "N" * 1025)), "FieldTooLong"),
        (entry("b", event_data(pipe, "Z", requestParameters={"x": "y" * 262_144})), "FieldTooLong"),
    ]
    result = put(pipe, arn, [entry("ok", good)] + [c[0] for c in cases])
    assert [s["id"] for s in result["successful"]] == ["ok"]
    assert [(f["id"], f["errorCode"]) for f in result["failed"]] == [(c[0]["id"], c[1]) for c in cases]
    assert all(1 <= len(f["errorMessage"]) <= 1024 for f in result["failed"])
    assert len(lookup(pipe, "CreateWidget")) == 1
    assert lookup(pipe, "Z") == []


def test_request_errors(pipe: Pipeline, arn: str) -> None:
    one = entry("e1", event_data(pipe))

    def call(body: bytes, channel: str = arn, external: str | None = None) -> Any:
        return lambda: lake.put_audit_events(pipe.service, pipe.caller(), channel, external, body, "1.2.3.4", "t")

    good = orjson.dumps({"auditEvents": [one]})
    assert code_of(call(orjson.dumps({"auditEvents": []}))) == "ValidationException"
    assert code_of(call(orjson.dumps({"auditEvents": [entry(f"e{i}", event_data(pipe)) for i in range(101)]}))) \
        == "ValidationException"
    assert code_of(call(b"{" + b" " * lake.MAX_REQUEST_BYTES + b"}")) == "ValidationException"
    assert code_of(call(b"not json")) == "ValidationException"
    assert code_of(call(orjson.dumps({"auditEvents": [{"id": "x y", "eventData": "{}"}]}))) == "ValidationException"
    assert code_of(call(orjson.dumps({"auditEvents": [one, one]}))) == "DuplicatedAuditEventId"
    assert code_of(call(good, external="!")) == "ValidationException"
    assert code_of(call(good, channel="arn:aws:cloudtrail:us-east-1:123456789012:channel/"
                                      "00000000-0000-4000-8000-000000000000")) == "ChannelNotFound"
    assert code_of(call(good, channel="arn:nope")) == "InvalidChannelARN"
    assert code_of(call(good, channel="")) == "InvalidChannelARN"
    assert pipe.service.history.lookup(LookupQuery("EventName", "CreateWidget", OPEN_START, OPEN_END)).events == []


def test_retry_is_recognised_and_changed_data_is_refused(pipe: Pipeline, arn: str) -> None:
    data = event_data(pipe)
    first = put(pipe, arn, [entry("e1", data)])
    before = pipe.service.spool.next_seq()
    again = put(pipe, arn, [entry("e1", data)])
    assert again == first
    assert pipe.service.spool.next_seq() == before
    changed = put(pipe, arn, [entry("e1", data | {"UID": "src-2"}), entry("e2", data)])
    assert [(f["id"], f["errorCode"]) for f in changed["failed"]] == [("e1", "DuplicatedAuditEventId")]
    assert [s["id"] for s in changed["successful"]] == ["e2"]
    assert {r["UID"] for r in lookup(pipe, "CreateWidget")} == {"src-1"}
    assert len(lookup(pipe, "CreateWidget")) == 2


def test_same_id_on_another_channel_is_a_new_event(pipe: Pipeline, arn: str) -> None:
    other = lake.create_channel(pipe.service, None, {"Name": "second", "Destinations": DESTS})["ChannelArn"]
    data = entry("e1", event_data(pipe))
    assert put(pipe, arn, [data])["successful"][0]["eventID"] != put(pipe, other, [data])["successful"][0]["eventID"]


def test_responses_parse_with_the_botocore_models(pipe: Pipeline, arn: str) -> None:
    session = botocore.session.get_session()
    data_model = session.get_service_model("cloudtrail-data").operation_model("PutAuditEvents")
    response = put(pipe, arn, [entry("e1", event_data(pipe)), entry("bad", "{")])
    parsed = botocore.parsers.create_parser("rest-json").parse(
        {"status_code": 200, "headers": {}, "body": orjson.dumps(response)}, data_model.output_shape)
    assert parsed["successful"] == response["successful"] and parsed["failed"] == response["failed"]
    control = session.get_service_model("cloudtrail")
    json_parser = botocore.parsers.create_parser("json")
    for op, result in (("GetChannel", lake.get_channel(pipe.service, None, {"Channel": arn})),
                       ("ListChannels", lake.list_channels(pipe.service, None, {}))):
        shape = control.operation_model(op).output_shape
        parsed = json_parser.parse({"status_code": 200, "headers": {}, "body": orjson.dumps(result)}, shape)
        assert parsed.get("ChannelArn", parsed.get("Channels", [{}])[0].get("ChannelArn")) == arn


def test_checksum_known_answer() -> None:
    assert lake.event_checksum("{}") == "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="


def test_lake_records_are_delivered_to_a_trail(pipe: Pipeline, arn: str, tmp_path: Path) -> None:
    config = TrailConfig(name="main", bucket="audit-bucket", destination=str(tmp_path / "dest"), validation=True,
                         flush_interval_s=1, digest_interval_s=60)
    pipe.service.create_trail(config)
    pipe.service.start_logging("main")
    event_id = put(pipe, arn, [entry("e1", event_data(pipe))])["successful"][0]["eventID"]
    pipe.advance(2)
    pipe.advance(61)
    delivered = [r for path in (tmp_path / "dest").rglob("*.json.gz") if "Digest" not in str(path)
                 for r in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]]
    assert [r["UID"] for r in delivered if r["eventID"] == event_id] == ["src-1"]
