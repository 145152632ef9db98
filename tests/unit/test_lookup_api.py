"""LookupEvents and ListTrails as the API answers them: the event shape, the inline (event
loop) path with its audit record, and ListTrails paging."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.pipeline import Pipeline, app_event, call_app

from trailkeeper.api import operations
from trailkeeper.api.app import App
from trailkeeper.api.operations import lookup_event_shape, trails_page
from trailkeeper.errors import TrailError
from trailkeeper.history.attributes import lookup_pairs
from trailkeeper.history.base import LookupQuery
from trailkeeper.records import parse_event_time
from trailkeeper.trails import TrailConfig

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."

IAM_RECORD: dict[str, Any] = {
    "eventVersion": "1.11",
    "userIdentity": {"type": "IAMUser", "principalId": "AIDA1", "arn": "arn:aws:iam::123456789012:user/alice",
                     "accountId": "123456789012", "accessKeyId": "AKIAEXAMPLE", "userName": "alice"},
    "eventTime": "2025-03-04T05:06:07Z",
    "eventSource": "app.example.com",
    "eventName": "Login",
    "eventID": "0195f0a0-0000-7000-8000-000000000001",
    "readOnly": True,
    "resources": [{"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::b"}, {"type": "T", "name": "n"}, "junk"],
}


def _shape(record: dict[str, Any]) -> dict[str, Any]:
    body = orjson.dumps(record)
    return lookup_event_shape(record, body, int(parse_event_time(record["eventTime"]).timestamp()))


def test_event_shape_known_answer() -> None:
    body = orjson.dumps(IAM_RECORD)
    shape = lookup_event_shape(IAM_RECORD, body, 1741064767)
    assert shape == {
        "EventId": "0195f0a0-0000-7000-8000-000000000001",
        "EventName": "Login",
        "ReadOnly": "true",
        "AccessKeyId": "AKIAEXAMPLE",
        "EventTime": 1741064767.0,
        "EventSource": "app.example.com",
        "Username": "alice",
        "Resources": [{"ResourceType": "AWS::S3::Bucket", "ResourceName": "arn:aws:s3:::b"},
                      {"ResourceType": "T", "ResourceName": "n"}],
        "CloudTrailEvent": body.decode(),
    }
    assert datetime.fromtimestamp(shape["EventTime"], UTC) == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_event_shape_of_a_service_event_has_no_user_or_key() -> None:
    record = {**IAM_RECORD, "userIdentity": {"type": "AWSService", "invokedBy": "x.amazonaws.com"},
              "readOnly": "yes"}
    del record["resources"]
    shape = _shape(record)
    assert "Username" not in shape and "AccessKeyId" not in shape
    assert shape["ReadOnly"] == "false" and shape["Resources"] == []


identities = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["Root", "IAMUser", "AssumedRole", "FederatedUser", "AWSService", 7]),
        "userName": st.one_of(st.none(), st.text(max_size=4), st.integers(-5, 5)),
        "arn": st.one_of(st.none(), st.sampled_from(["arn:aws:sts::1:assumed-role/r/sess", "arn/", "x"])),
        "accessKeyId": st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=4), st.integers(-5, 5)),
    }),
)


@given(identities)
def test_event_shape_reports_the_user_and_key_the_history_indexes(identity: Any) -> None:
    record = {**IAM_RECORD, "userIdentity": identity}
    indexed: dict[str, str] = {}
    for attribute, value in lookup_pairs(record):
        indexed.setdefault(attribute, value)
    shape = _shape(record)
    assert shape.get("Username") == indexed.get("Username")
    assert shape.get("AccessKeyId") == indexed.get("AccessKeyId")


def test_history_page_carries_decoded_records_and_times(pipeline: Pipeline) -> None:
    pipeline.ingest([app_event(i, pipeline.clock.now(), "Paged") for i in range(3)])
    pipeline.service.pump()
    page = pipeline.service.history.lookup(
        LookupQuery("EventName", "Paged", operations.OPEN_START, operations.OPEN_END, 2))
    assert page.next_token is not None
    assert page.records == [orjson.loads(body) for body in page.events]
    assert page.times == [int(parse_event_time(r["eventTime"]).timestamp()) for r in page.records]


# ---- JSON 1.1 through the App (LookupEvents runs on the event loop) ----
def _call(app: App, region: str, key_id: str, secret: str, operation: str, params: dict[str, Any]) -> tuple[int, Any]:
    return call_app(app, region, key_id, secret, "cloudtrail", "/", orjson.dumps(params),
                    {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + operation})


def _last_record(pipeline: Pipeline) -> dict[str, Any]:
    spool = pipeline.service.spool
    [(_, body)] = spool.read(spool.next_seq() - 1, 1, 1 << 20)
    result: dict[str, Any] = orjson.loads(body)
    return result


def test_lookup_through_json11_is_answered_and_audited(pipeline: Pipeline) -> None:
    pipeline.ingest([app_event(i, pipeline.clock.now(), "Seen") for i in range(3)])
    pipeline.service.pump()
    app, creds = App(pipeline.service), pipeline.creds
    status, answer = _call(app, creds.region, creds.access_key_id, creds.secret_access_key, "LookupEvents",
                           {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "Seen"}]})
    assert status == 200
    assert [e["EventName"] for e in answer["Events"]] == ["Seen"] * 3
    assert all(orjson.loads(e["CloudTrailEvent"])["eventID"] == e["EventId"] for e in answer["Events"])
    # The lookup's own record was durable before the answer came back.
    audit = _last_record(pipeline)
    assert (audit["eventName"], audit["eventSource"], audit["readOnly"]) == ("LookupEvents", "cloudtrail.amazonaws.com", True)
    assert audit["sourceIPAddress"] == "192.0.2.5" and audit["responseElements"] is None


def test_refused_and_invalid_lookups_are_audited(pipeline: Pipeline) -> None:
    svc, creds = pipeline.service, pipeline.creds
    svc.identity.create_user("wendy", "writer")
    key = svc.identity.create_access_key("wendy")
    app = App(svc)
    status, answer = _call(app, creds.region, key.access_key_id, key.secret_access_key, "LookupEvents", {})
    assert (status, answer["__type"]) == (400, "AccessDeniedException")
    refused = _last_record(pipeline)
    assert (refused["eventName"], refused["errorCode"]) == ("LookupEvents", "AccessDenied")
    assert refused["userIdentity"]["userName"] == "wendy"
    status, answer = _call(app, creds.region, creds.access_key_id, creds.secret_access_key, "LookupEvents",
                           {"MaxResults": 51})
    assert (status, answer["__type"]) == (400, "InvalidMaxResultsException")
    assert _last_record(pipeline)["errorCode"] == "InvalidMaxResultsException"


# ---- ListTrails paging ----
NAMES = ["delta", "alpha", "echo", "charlie", "bravo"]


def _all_pages(names: list[str], size: int) -> list[list[str]]:
    pages, token = [], None
    while True:
        page, token = trails_page(names, token, size)
        pages.append(page)
        if token is None:
            return pages


def test_trails_are_paged_in_name_order() -> None:
    assert _all_pages(NAMES, 2) == [["alpha", "bravo"], ["charlie", "delta"], ["echo"]]
    assert _all_pages(NAMES, 5) == [sorted(NAMES)]
    assert _all_pages([], 50) == [[]]


def test_a_token_survives_trails_created_and_deleted_between_pages() -> None:
    first, token = trails_page(NAMES, None, 2)
    later = [n for n in NAMES if n != "charlie"] + ["able", "cobalt"]
    second, _ = trails_page(later, token, 2)
    assert first == ["alpha", "bravo"] and second == ["cobalt", "delta"]


@pytest.mark.parametrize("token", [
    "not base64!",
    "abc",  # impossible base64 length
    base64.urlsafe_b64encode(b"alpha").decode(),  # no version prefix
    base64.urlsafe_b64encode(b"trails-v1:a..b").decode(),  # not a trail name
    base64.urlsafe_b64encode(b"trails-v1:\xff\xfe\xfd").decode(),
    "",
    17,
])
def test_malformed_trails_tokens_are_rejected(token: object) -> None:
    with pytest.raises(TrailError) as bad:
        trails_page(NAMES, token, 2)
    assert bad.value.code == "InvalidNextTokenException"


def test_list_trails_operation_pages(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = pipeline.service
    for name in ("t-one", "t-two", "t-three"):
        svc.create_trail(TrailConfig(name=name, bucket="b-" + name, destination=str(pipeline.data_dir.parent / "dest" / name)))
    monkeypatch.setattr(operations, "LIST_TRAILS_PAGE_SIZE", 2)
    principal = svc.identity.resolve(pipeline.creds.access_key_id)
    assert principal is not None
    first = operations.list_trails(operations.CLOUDTRAIL.context(svc), principal[0], {})
    assert [t["Name"] for t in first["Trails"]] == ["t-one", "t-three"]
    assert first["Trails"][0]["TrailARN"] == svc.trail_arn("t-one")
    second = operations.list_trails(operations.CLOUDTRAIL.context(svc), principal[0], {"NextToken": first["NextToken"]})
    assert [t["Name"] for t in second["Trails"]] == ["t-two"] and "NextToken" not in second
