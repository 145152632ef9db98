"""Known-answer tests for ingest validation (trailkeeper.records)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from trailkeeper.clock import iso_seconds
from trailkeeper.errors import RecordError
from trailkeeper.history.attributes import lookup_values
from trailkeeper.records import (
    EVENT_VERSION,
    MAX_BATCH_RECORDS,
    MAX_EVENT_BYTES,
    MAX_REQUEST_BYTES,
    RESERVED_EVENT_SOURCES,
    SERVER_ASSIGNED,
    Caller,
    IngestContext,
    caller_identity,
    normalize_batch,
    parse_batch,
    reserved_sources_named,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "cloudtrail-samples" / "stratus-red-team"
RECEIVED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

WRITER = Caller(
    account_id="111122223333",
    identity_type="IAMUser",
    user_name="alice",
    principal_id="AIDAEXAMPLEALICE0001",
    arn="arn:aws:iam::111122223333:user/alice",
    access_key_id="AKIAEXAMPLEALICE0001",
    role="writer",
)
FORWARDER = Caller(
    account_id="111122223333",
    identity_type="IAMUser",
    user_name="fwd",
    principal_id="AIDAEXAMPLEFWD000001",
    arn="arn:aws:iam::111122223333:user/fwd",
    access_key_id="AKIAEXAMPLEFWD000001",
    role="forwarder",
)
ROOT = Caller(
    account_id="111122223333",
    identity_type="Root",
    user_name="",
    principal_id="111122223333",
    arn="arn:aws:iam::111122223333:root",
    access_key_id="AKIAEXAMPLEROOT00001",
    role="administrator",
)


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


def context(caller: Caller = WRITER, received: datetime = RECEIVED) -> IngestContext:
    return IngestContext(
        caller=caller,
        region="eu-west-1",
        source_ip="192.0.2.10",
        user_agent="test-agent/1.0",
        received=received,
        new_event_id=ids(),
    )


def minimal(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventName": "CreateWidget",
        "eventSource": "widgets.example.com",
        "eventTime": "2025-01-02T03:00:00Z",
        "requestParameters": {"widgetName": "w1"},
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()


def normalized(records: list[object], ctx: IngestContext | None = None) -> list[dict[str, Any]]:
    return [orjson.loads(b) for b in normalize_batch(records, ctx or context())]


def refused(records: list[object], ctx: IngestContext | None = None) -> RecordError:
    with pytest.raises(RecordError) as info:
        normalize_batch(records, ctx or context())
    return info.value


def sample_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("*.json")):
        records.extend(orjson.loads(path.read_bytes()))
    # A loop over no samples asserts nothing: the 310 stratus-red-team records must be there.
    assert len(records) >= 300, f"{len(records)} sample records under {SAMPLES}: the shared samples are missing"
    return records


# ---- known answers -------------------------------------------------------------------------


def test_writer_record_gets_every_server_field() -> None:
    [out] = normalized([minimal()])
    assert out == {
        "eventVersion": EVENT_VERSION,
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEALICE0001",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLEALICE0001",
            "userName": "alice",
        },
        "eventTime": "2025-01-02T03:00:00Z",
        "eventSource": "widgets.example.com",
        "eventName": "CreateWidget",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "192.0.2.10",
        "userAgent": "test-agent/1.0",
        "requestParameters": {"widgetName": "w1"},
        "eventID": "00000000-0000-4000-8000-000000000001",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management",
        "metadata": {"ingestionTime": "2025-01-02T03:04:05Z"},
    }


def test_output_is_compact_json_in_cloudtrail_field_order() -> None:
    [data] = normalize_batch([minimal(zzExtra=1)], context())
    assert data.startswith(b'{"eventVersion":"1.11","userIdentity":{"type":"IAMUser"')
    assert b" " not in data.replace(b"test-agent/1.0", b"")
    assert data.endswith(b'"eventCategory":"Management","metadata":{"ingestionTime":"2025-01-02T03:04:05Z"},'
                         b'"zzExtra":1}')


def test_root_identity() -> None:
    assert caller_identity(ROOT) == {
        "type": "Root",
        "principalId": "111122223333",
        "arn": "arn:aws:iam::111122223333:root",
        "accountId": "111122223333",
        "accessKeyId": "AKIAEXAMPLEROOT00001",
    }


def test_client_values_win_over_defaults() -> None:
    [out] = normalized(
        [
            minimal(
                sourceIPAddress="ec2.amazonaws.com",
                userAgent="aws-cli/2.15",
                readOnly=True,
                eventType="AwsServiceEvent",
                eventCategory="Data",
                requestID="r-1",
            )
        ]
    )
    assert out["sourceIPAddress"] == "ec2.amazonaws.com"
    assert out["userAgent"] == "aws-cli/2.15"
    assert out["readOnly"] is True
    assert out["eventType"] == "AwsServiceEvent"
    assert out["eventCategory"] == "Data"
    assert out["managementEvent"] is False
    assert out["requestID"] == "r-1"


@pytest.mark.parametrize(
    ("name", "read_only"),
    [
        ("GetObject", True),
        ("ListBuckets", True),
        ("DescribeTrails", True),
        ("LookupEvents", True),
        ("HeadObject", True),
        ("PutObject", False),
        ("Getaway", True),
        ("StopLogging", False),
    ],
)
def test_read_only_derived_from_event_name(name: str, read_only: bool) -> None:
    [out] = normalized([minimal(eventName=name)])
    assert out["readOnly"] is read_only


def test_each_record_gets_its_own_event_id() -> None:
    out = normalized([minimal(), minimal(), minimal()])
    assert [r["eventID"][-3:] for r in out] == ["001", "002", "003"]


def test_unknown_fields_are_kept() -> None:
    [out] = normalized([minimal(futureField={"a": [1, 2]}, anotherOne=None)])
    assert out["futureField"] == {"a": [1, 2]}
    assert out["anotherOne"] is None


def test_long_user_agent_from_connection_is_truncated() -> None:
    ctx = IngestContext(WRITER, "eu-west-1", "192.0.2.10", "x" * 5000, RECEIVED, ids())
    [out] = normalized([minimal()], ctx)
    assert out["userAgent"] == "x" * 1024


# ---- real CloudTrail records through a forwarder -------------------------------------------


SAMPLES_RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)  # after every sample's eventTime


def _relayed_unchanged(original: dict[str, Any], out: dict[str, Any], received: datetime = RECEIVED) -> None:
    """A forwarded AWS record: every field as AWS wrote it, except what the server always assigns
    (eventID, with AWS's kept as metadata.originalEventID; metadata) and the forwardedBy mark."""
    assert out["eventID"] != original["eventID"]
    assert out["metadata"] == {"ingestionTime": iso_seconds(received), "originalEventID": original["eventID"]}
    if "userIdentity" in original:
        assert out["additionalEventData"]["forwardedBy"] == caller_identity(FORWARDER)
    else:  # a record that names no one is recorded as the forwarder's own
        assert out["userIdentity"] == caller_identity(FORWARDER)
    extra = {k: v for k, v in (out.get("additionalEventData") or {}).items() if k != "forwardedBy"}
    assert extra == (original.get("additionalEventData") or {})
    kept = set(original) - {"eventID", "additionalEventData"}
    assert {k: out[k] for k in kept} == {k: original[k] for k in kept}


def _traildiscover_records() -> list[dict[str, Any]]:
    # TrailDiscover examples (CC-BY-4.0, adanalvarez/TrailDiscover): mostly failed calls.
    found: list[dict[str, Any]] = []
    for path in sorted((SAMPLES.parent / "traildiscover" / "logExamples").glob("*.cloudtrail")):
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue  # the two files that are not JSON: bad input, not records
        found.extend(doc if isinstance(doc, list) else doc.get("Records", [doc]))
    return found


@pytest.mark.parametrize("source", ["stratus-red-team", "traildiscover"])
def test_real_samples_pass_through_a_forwarder_unchanged(source: str) -> None:
    """Every record of the public samples, sent exactly as AWS wrote it (no field stripped)."""
    originals = sample_records() if source == "stratus-red-team" else _traildiscover_records()
    assert len(originals) == (310 if source == "stratus-red-team" else 563)
    ctx = context(FORWARDER, received=SAMPLES_RECEIVED)
    for start in range(0, len(originals), MAX_BATCH_RECORDS):
        chunk = originals[start : start + MAX_BATCH_RECORDS]
        for original, out in zip(chunk, normalized(list(chunk), ctx), strict=True):
            _relayed_unchanged(original, out, SAMPLES_RECEIVED)


def test_failed_console_sign_in_as_aws_writes_it() -> None:
    """errorMessage without errorCode: how AWS records a failed console sign-in, and what the
    CIS pattern `$.errorMessage = "Failed authentication"` expects."""
    original = {
        "eventVersion": "1.08", "eventTime": "2024-05-01T10:00:00Z", "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.1",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAX", "accountId": "999988887777",
                         "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"},
        "userAgent": "Mozilla/5.0", "errorMessage": "Failed authentication", "requestParameters": None,
        "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/", "MobileVersion": "No",
                                "MFAUsed": "No"},
        "eventID": "0b2f3a4c-1111-2222-3333-444455556666", "readOnly": False, "eventType": "AwsConsoleSignIn",
        "managementEvent": True, "recipientAccountId": "999988887777", "eventCategory": "Management",
    }
    [out] = normalized([original], context(FORWARDER))
    _relayed_unchanged(original, out)
    assert "errorCode" not in out
    mine = {k: v for k, v in original.items() if k not in ("userIdentity", *SERVER_ASSIGNED)}
    assert refused([mine | {"eventSource": "app.example.com", "eventTime": "2025-01-02T03:00:00Z"}]).path == "errorMessage"


# ---- provenance: what only trailkeeper writes ------------------------------------------------


@pytest.mark.parametrize("source", [*sorted(RESERVED_EVENT_SOURCES), "CloudTrail.amazonaws.com", "iam.amazonaws.com."])
@pytest.mark.parametrize("caller", [WRITER, ROOT], ids=["writer", "administrator"])
def test_reserved_event_sources_are_refused_from_anyone_but_a_forwarder(source: str, caller: Caller) -> None:
    error = refused([minimal(eventSource=source, eventName="StopLogging")], context(caller))
    assert error.path == "eventSource" and "written by trailkeeper itself" in str(error)
    assert reserved_sources_named([minimal(eventSource=source)], caller.role) == [(0, source, "CreateWidget")]


@pytest.mark.parametrize("identity", [None, {"type": "IAMUser", "principalId": "AIDAX", "userName": "ops"}])
def test_a_forwarder_relays_reserved_sources_and_its_records_are_marked(identity: dict[str, str] | None) -> None:
    record = minimal(eventSource="cloudtrail.amazonaws.com", eventName="StopLogging")
    if identity is not None:
        record["userIdentity"] = identity
    [out] = normalized([record], context(FORWARDER))
    assert out["eventSource"] == "cloudtrail.amazonaws.com"
    assert out["additionalEventData"]["forwardedBy"] == caller_identity(FORWARDER)
    assert reserved_sources_named([record], "forwarder") == []


def test_every_record_carries_its_receipt_time_and_metadata_is_the_servers() -> None:
    [out] = normalized([minimal()])
    assert out["metadata"] == {"ingestionTime": "2025-01-02T03:04:05Z"}
    for caller in (WRITER, FORWARDER):
        assert refused([minimal(metadata={"ingestionTime": "2020-01-01T00:00:00Z"})], context(caller)).path == "metadata"


def test_a_forwarder_keeps_the_source_accounts_region_recipient_and_version() -> None:
    record = minimal(awsRegion="ap-southeast-2", recipientAccountId="999988887777", eventVersion="1.08",
                     eventID="e-1", userIdentity={"type": "Root", "principalId": "999988887777"})
    [out] = normalized([record], context(FORWARDER))
    assert (out["awsRegion"], out["recipientAccountId"], out["eventVersion"]) == ("ap-southeast-2", "999988887777",
                                                                                  "1.08")
    assert out["eventID"] == "00000000-0000-4000-8000-000000000001" and out["metadata"]["originalEventID"] == "e-1"
    for name, bad in (("awsRegion", "Not A Region"), ("recipientAccountId", "12"), ("eventVersion", "one")):
        assert refused([record | {name: bad}], context(FORWARDER)).path == name
        assert refused([minimal(**{name: "1.08"})]).path == name  # a writer may not set them at all


# ---- eventTime bounds ------------------------------------------------------------------------


def test_a_writers_event_time_may_lie_at_most_max_event_age_before_receipt() -> None:
    eight_days = iso_seconds(RECEIVED - timedelta(days=8))
    six_days = iso_seconds(RECEIVED - timedelta(days=6))
    assert refused([minimal(eventTime=eight_days)]).path == "eventTime"
    assert normalized([minimal(eventTime=six_days)])[0]["eventTime"] == six_days
    assert normalized([minimal(eventTime=eight_days)], context(FORWARDER))[0]["eventTime"] == eight_days
    strict = IngestContext(WRITER, "eu-west-1", "192.0.2.10", "ua", RECEIVED, ids(), timedelta(days=1))
    assert refused([minimal(eventTime=iso_seconds(RECEIVED - timedelta(days=2)))], strict).path == "eventTime"


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "0500-06-15T12:00:00.250Z", "0999-12-31T23:59:59Z",
                                  "1000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
@pytest.mark.parametrize("caller", [WRITER, FORWARDER], ids=["writer", "forwarder"])
def test_event_times_before_1970_are_refused_naming_event_time(when: str, caller: Caller) -> None:
    error = refused([minimal(eventTime=when)], context(caller))
    assert error.path == "eventTime"


def test_1970_itself_is_accepted_from_a_forwarder_in_canonical_form() -> None:
    [out] = normalized([minimal(eventTime="1970-01-01T00:00:00.5Z")], context(FORWARDER))
    assert out["eventTime"] == "1970-01-01T00:00:00Z"


def test_forwarder_keeps_existing_additional_event_data() -> None:
    record = minimal(userIdentity={"type": "AssumedRole", "principalId": "AROA:x"})
    record["additionalEventData"] = {"MFAUsed": "No"}
    [out] = normalized([record], context(FORWARDER))
    assert out["additionalEventData"] == {
        "MFAUsed": "No",
        "forwardedBy": caller_identity(FORWARDER),
    }


def test_forwarder_without_identity_is_recorded_as_itself() -> None:
    [out] = normalized([minimal()], context(FORWARDER))
    assert out["userIdentity"] == caller_identity(FORWARDER)
    assert "additionalEventData" not in out


# ---- every rule has a failing case naming index and path -----------------------------------

BAD_CASES: list[tuple[str, dict[str, Any], Caller, str]] = [
    ("eventName missing", minimal(eventName=DROP), WRITER, "eventName"),
    ("eventName not a string", minimal(eventName=7), WRITER, "eventName"),
    ("eventName empty", minimal(eventName=""), WRITER, "eventName"),
    ("eventName too long", minimal(eventName="A" * 1025), WRITER, "eventName"),
    ("eventSource missing", minimal(eventSource=DROP), WRITER, "eventSource"),
    ("eventSource not a DNS name", minimal(eventSource="widgets"), WRITER, "eventSource"),
    ("eventSource with space", minimal(eventSource="a b.example.com"), WRITER, "eventSource"),
    ("eventTime missing", minimal(eventTime=DROP), WRITER, "eventTime"),
    ("eventTime number", minimal(eventTime=1735787045), WRITER, "eventTime"),
    ("eventTime offset", minimal(eventTime="2025-01-02T04:00:00+01:00"), WRITER, "eventTime"),
    ("eventTime no zone", minimal(eventTime="2025-01-02T03:00:00"), WRITER, "eventTime"),
    ("eventTime -00:00", minimal(eventTime="2025-01-02T03:00:00-00:00"), WRITER, "eventTime"),
    ("eventTime date only", minimal(eventTime="2025-01-02"), WRITER, "eventTime"),
    ("eventTime Feb 30", minimal(eventTime="2025-02-30T00:00:00Z"), WRITER, "eventTime"),
    ("eventTime future", minimal(eventTime="2025-01-02T03:09:06Z"), WRITER, "eventTime"),
    ("errorCode empty", minimal(errorCode=""), WRITER, "errorCode"),
    ("errorCode number", minimal(errorCode=403), WRITER, "errorCode"),
    ("errorCode too long", minimal(errorCode="E" * 1025), WRITER, "errorCode"),
    ("errorMessage alone", minimal(errorMessage="denied"), WRITER, "errorMessage"),
    (
        "errorMessage too long",
        minimal(errorCode="E", errorMessage="m" * 2049),
        WRITER,
        "errorMessage",
    ),
    ("sourceIPAddress bad", minimal(sourceIPAddress="not an ip!"), WRITER, "sourceIPAddress"),
    ("sourceIPAddress number", minimal(sourceIPAddress=10), WRITER, "sourceIPAddress"),
    ("no affected resource", minimal(requestParameters=DROP), WRITER, "resources"),
    ("empty resources only", minimal(requestParameters=DROP, resources=[]), WRITER, "resources"),
    ("resources not a list", minimal(resources={"ARN": "x"}), WRITER, "resources"),
    ("resource not an object", minimal(resources=["arn:aws:s3:::b"]), WRITER, "resources[0]"),
    ("resource unnamed", minimal(resources=[{"accountId": "1"}]), WRITER, "resources[0]"),
    ("resource type number", minimal(resources=[{"type": 5}]), WRITER, "resources[0].type"),
    ("requestParameters list", minimal(requestParameters=[1]), WRITER, "requestParameters"),
    ("responseElements string", minimal(responseElements="ok"), WRITER, "responseElements"),
    ("additionalEventData list", minimal(additionalEventData=[]), WRITER, "additionalEventData"),
    ("tlsDetails string", minimal(tlsDetails="TLSv1.3"), WRITER, "tlsDetails"),
    ("readOnly string", minimal(readOnly="true"), WRITER, "readOnly"),
    ("managementEvent number", minimal(managementEvent=1), WRITER, "managementEvent"),
    ("userAgent number", minimal(userAgent=1), WRITER, "userAgent"),
    ("userAgent too long", minimal(userAgent="u" * 1025), WRITER, "userAgent"),
    ("requestID null", minimal(requestID=None), WRITER, "requestID"),
    ("eventType object", minimal(eventType={}), WRITER, "eventType"),
    ("eventCategory list", minimal(eventCategory=[]), WRITER, "eventCategory"),
    (
        "session flag boolean",
        minimal(sessionCredentialFromConsole=True),
        WRITER,
        "sessionCredentialFromConsole",
    ),
    ("eventID supplied", minimal(eventID="abc"), WRITER, "eventID"),
    ("eventVersion supplied", minimal(eventVersion="1.08"), WRITER, "eventVersion"),
    (
        "recipientAccountId supplied",
        minimal(recipientAccountId="111122223333"),
        WRITER,
        "recipientAccountId",
    ),
    ("awsRegion supplied", minimal(awsRegion="eu-west-1"), WRITER, "awsRegion"),
    (
        "forwardedBy supplied",
        minimal(additionalEventData={"forwardedBy": {}}),
        FORWARDER,
        "additionalEventData.forwardedBy",
    ),
    (
        "writer sets identity",
        minimal(userIdentity={"type": "Root", "principalId": "1"}),
        WRITER,
        "userIdentity",
    ),
    (
        "admin sets identity",
        minimal(userIdentity={"type": "Root", "principalId": "1"}),
        ROOT,
        "userIdentity",
    ),
    ("identity not an object", minimal(userIdentity="root"), FORWARDER, "userIdentity"),
    (
        "identity without type",
        minimal(userIdentity={"principalId": "1"}),
        FORWARDER,
        "userIdentity.type",
    ),
    (
        "identity type number",
        minimal(userIdentity={"type": 1, "arn": "a"}),
        FORWARDER,
        "userIdentity.type",
    ),
    ("identity anonymous", minimal(userIdentity={"type": "IAMUser"}), FORWARDER, "userIdentity"),
    (
        "identity userName number",
        minimal(userIdentity={"type": "IAMUser", "userName": 3}),
        FORWARDER,
        "userIdentity.userName",
    ),
]


@pytest.mark.parametrize(
    ("record", "caller", "path"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_rule_violation_names_index_and_path(
    record: dict[str, Any], caller: Caller, path: str
) -> None:
    error = refused([minimal(), minimal(), record, minimal()], context(caller))
    assert (error.index, error.path) == (2, path)
    assert str(error).startswith(f"record 2, field {path}: ")


@pytest.mark.parametrize("value", [None, 1, "x", [], True])
def test_record_that_is_not_an_object(value: object) -> None:
    error = refused([minimal(), value])
    assert (error.index, error.path) == (1, "")
    assert "must be a JSON object" in str(error)


def test_all_problems_are_listed_and_first_is_located() -> None:
    error = refused([minimal(), minimal(eventName=DROP, readOnly="no"), minimal(eventTime="x")])
    assert (error.index, error.path) == (1, "eventName")
    text = str(error)
    assert "record 1, field readOnly" in text
    assert "record 2, field eventTime" in text
    assert "nothing in the batch was accepted" in text


def test_too_many_problems_are_summarised() -> None:
    error = refused([minimal(eventName=DROP) for _ in range(30)])
    assert "and 10 more" in str(error)


def test_boundary_time_five_minutes_ahead_is_accepted() -> None:
    [out] = normalized([minimal(eventTime="2025-01-02T03:09:05Z")])
    assert out["eventTime"] == "2025-01-02T03:09:05Z"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2025-01-02T03:00:00Z", "2025-01-02T03:00:00Z"),
        ("2025-01-02T03:00:00+00:00", "2025-01-02T03:00:00Z"),
        ("2025-01-02T03:00:00.999Z", "2025-01-02T03:00:00Z"),
        ("2025-01-02T03:00:00.123456789+00:00", "2025-01-02T03:00:00Z"),
        ("2024-12-31T23:59:59Z", "2024-12-31T23:59:59Z"),
    ],
)
def test_time_forms_are_normalised(given: str, stored: str) -> None:
    [out] = normalized([minimal(eventTime=given)])
    assert out["eventTime"] == stored


@pytest.mark.parametrize(
    "origin",
    ["198.51.100.7", "2001:db8::1", "cloudtrail.amazonaws.com", "AWS Internal", "251.234.045.249"],
)
def test_origins_accepted(origin: str) -> None:
    [out] = normalized([minimal(sourceIPAddress=origin)])
    assert out["sourceIPAddress"] == origin


def test_affected_resource_alternatives() -> None:
    out = normalized(
        [
            minimal(requestParameters=None),
            minimal(requestParameters=DROP, resources=[{"ARN": "arn:aws:s3:::b"}]),
            minimal(requestParameters=DROP, serviceEventDetails={"x": 1}),
        ]
    )
    assert out[0]["requestParameters"] is None
    assert out[1]["resources"] == [{"ARN": "arn:aws:s3:::b"}]


def test_failure_outcome_is_kept() -> None:
    [out] = normalized([minimal(errorCode="AccessDenied", errorMessage="")])
    assert (out["errorCode"], out["errorMessage"]) == ("AccessDenied", "")


# ---- sizes and batch limits ----------------------------------------------------------------


def test_event_over_256_kib_is_refused() -> None:
    big = minimal(requestParameters={"blob": "x" * MAX_EVENT_BYTES})
    error = refused([minimal(), big])
    assert (error.index, error.path) == (1, "(record)")
    assert f"limit {MAX_EVENT_BYTES}" in str(error)


def test_event_just_under_the_limit_is_accepted() -> None:
    [probe] = normalize_batch([minimal(requestParameters={"blob": ""})], context())
    fill = MAX_EVENT_BYTES - len(probe)
    [data] = normalize_batch([minimal(requestParameters={"blob": "x" * fill})], context())
    assert len(data) == MAX_EVENT_BYTES


def test_normalize_refuses_empty_and_oversized_batches() -> None:
    assert refused([]).path == "Records"
    error = refused([minimal()] * (MAX_BATCH_RECORDS + 1))
    assert error.index is None and error.path == "Records"


def body_of(records: list[object]) -> bytes:
    return orjson.dumps({"Records": records})


def test_parse_batch_accepts_both_shapes() -> None:
    assert parse_batch(body_of([minimal()])) == [minimal()]
    assert parse_batch(orjson.dumps([minimal(), minimal()])) == [minimal(), minimal()]


def test_parse_batch_limits_record_count() -> None:
    assert len(parse_batch(body_of([{}] * MAX_BATCH_RECORDS))) == MAX_BATCH_RECORDS
    with pytest.raises(RecordError, match="1 to 100 records, got 101"):
        parse_batch(body_of([{}] * (MAX_BATCH_RECORDS + 1)))
    with pytest.raises(RecordError, match="got 0"):
        parse_batch(b"[]")


def test_parse_batch_limits_request_size() -> None:
    exact = body_of([minimal()])
    exact += b" " * (MAX_REQUEST_BYTES - len(exact))
    assert len(parse_batch(exact)) == 1
    with pytest.raises(RecordError, match=f"{MAX_REQUEST_BYTES + 1} bytes"):
        parse_batch(exact + b" ")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{", "not valid UTF-8 JSON"),
        (b"\xff", "not valid UTF-8 JSON"),
        (b'"x"', "got a string"),
        (b'{"Records": {}}', "Records must be a JSON array"),
        (b'{"records": []}', "only Records is allowed"),
        (b"[1]", "record 0: a record must be a JSON object, got a number"),
        (b"[" * 2000 + b"]" * 2000, "not valid UTF-8 JSON"),
    ],
)
def test_parse_batch_refuses_malformed_bodies(body: bytes, needle: str) -> None:
    with pytest.raises(RecordError, match=needle):
        parse_batch(body)


# ---- lookup attributes ---------------------------------------------------------------------


def test_lookup_values_of_a_writer_record() -> None:
    record = normalized(
        [
            minimal(
                resources=[
                    {"ARN": "arn:w:1", "type": "W::Widget"},
                    {"ARN": "arn:w:2", "type": "W::Widget"},
                ]
            )
        ]
    )[0]
    assert lookup_values(record) == {
        "EventId": ["00000000-0000-4000-8000-000000000001"],
        "EventName": ["CreateWidget"],
        "ReadOnly": ["false"],
        "Username": ["alice"],
        "ResourceType": ["W::Widget"],
        "ResourceName": ["arn:w:1", "arn:w:2"],
        "EventSource": ["widgets.example.com"],
        "AccessKeyId": ["AKIAEXAMPLEALICE0001"],
    }


def test_lookup_username_by_identity_type() -> None:
    def name(identity: dict[str, Any]) -> list[str] | None:
        return lookup_values({"userIdentity": identity, "eventName": "X"}).get("Username")

    assert name(caller_identity(ROOT)) == ["root"]
    assert name({"type": "Root", "userName": "my-alias"}) == ["my-alias"]
    assert name({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/admin/session-9"}) == [
        "session-9"
    ]
    assert name({"type": "FederatedUser", "arn": "arn:aws:sts::1:federated-user/bob"}) == ["bob"]
    assert name({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}) is None


def test_lookup_values_of_real_samples_have_core_attributes() -> None:
    for record in sample_records():
        values = lookup_values(record)
        assert values["EventId"] == [record["eventID"]]
        assert values["ReadOnly"] == ["true" if record["readOnly"] else "false"]
        assert "Username" in values
