"""The bus envelope of CloudTrail records and the rule states' read-only rule (spec §8), with
known answers and the public samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from trailkeeper.rules.envelope import RuleState, detail_type_of, envelope, offered, source_of

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "cloudtrail-samples" / "stratus-red-team"


@pytest.mark.parametrize(("event_source", "source"), [
    pytest.param("iam.amazonaws.com", "aws.iam", id="iam"),
    pytest.param("signin.amazonaws.com", "aws.signin", id="console-sign-in"),
    pytest.param("cloudtrail-data.amazonaws.com", "aws.cloudtrail-data", id="hyphenated"),
    pytest.param("trailkeeper.amazonaws.com", "aws.trailkeeper", id="trailkeeper-itself"),
    pytest.param("app.example.com", "app.example.com", id="custom-source-kept"),
])
def test_source(event_source: str, source: str) -> None:
    assert source_of(event_source) == source


@pytest.mark.parametrize(("event_type", "detail_type"), [
    pytest.param("AwsApiCall", "AWS API Call via CloudTrail", id="api-call"),
    pytest.param("AwsConsoleSignIn", "AWS Console Sign In via CloudTrail", id="console-sign-in"),
    pytest.param("AwsServiceEvent", "AWS Service Event via CloudTrail", id="service-event"),
    pytest.param("AwsCloudTrailInsight", "AwsCloudTrailInsight via CloudTrail", id="not-routed-by-aws"),
])
def test_detail_type(event_type: str, detail_type: str) -> None:
    assert detail_type_of(event_type) == detail_type


def test_a_stop_logging_record_in_its_envelope() -> None:
    record = {"eventVersion": "1.08", "eventTime": "2026-12-06T04:00:01Z", "eventSource": "cloudtrail.amazonaws.com",
              "eventName": "StopLogging", "awsRegion": "eu-west-1", "eventType": "AwsApiCall", "readOnly": False,
              "recipientAccountId": "123456789012", "eventID": "e-1", "managementEvent": True}
    event = envelope(record, "bus-1")
    assert event == {"version": "0", "id": "bus-1", "detail-type": "AWS API Call via CloudTrail",
                     "source": "aws.cloudtrail", "account": "123456789012", "time": "2026-12-06T04:00:01Z",
                     "region": "eu-west-1", "resources": [], "detail": record}
    assert envelope({**record, "eventTime": "2026-12-06T04:00:01.123Z"}, "x")["time"] == "2026-12-06T04:00:01Z"


@pytest.mark.parametrize(("record", "enabled", "all_management"), [
    pytest.param({"eventName": "StopLogging", "readOnly": False}, True, True, id="write"),
    pytest.param({"eventName": "DescribeTrails", "readOnly": True}, False, True, id="read-only"),
    pytest.param({"eventName": "GetObject", "readOnly": True, "managementEvent": False}, True, True,
                 id="read-only-data-event"),
    pytest.param({"eventName": "ListUsers"}, False, True, id="read-name-without-flag"),
    pytest.param({"eventName": "ConsoleLogin", "readOnly": False}, True, True, id="console-login"),
])
def test_rule_states(record: dict[str, Any], enabled: bool, all_management: bool) -> None:
    assert offered(record, RuleState.ENABLED) is enabled
    assert offered(record, RuleState.ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS) is all_management
    assert offered(record, RuleState.DISABLED) is False


def test_every_public_sample_gets_an_aws_source_and_a_known_detail_type() -> None:
    records: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("*.json")):
        data = orjson.loads(path.read_bytes())
        records.extend(data if isinstance(data, list) else [data])
    assert len(records) == 310
    events = [envelope(r, str(i)) for i, r in enumerate(records)]
    assert all(e["source"].startswith("aws.") for e in events)
    assert {e["detail-type"] for e in events} == {"AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail"}
    assert [e["source"] for e in events if e["detail-type"].startswith("AWS Console")] == ["aws.signin"] * sum(
        1 for r in records if r.get("eventType") == "AwsConsoleSignIn")


def test_the_envelope_is_what_event_patterns_match() -> None:
    from trailkeeper.rules.eventpattern import parse

    pattern = parse('{"source": ["aws.cloudtrail"], "detail-type": ["AWS API Call via CloudTrail"], '
                    '"detail": {"eventName": ["StopLogging", "DeleteTrail"], "readOnly": [false]}}')
    record = {"eventTime": "2026-12-06T04:00:01Z", "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
              "eventType": "AwsApiCall", "readOnly": False, "recipientAccountId": "123456789012"}
    assert pattern.matches(envelope(record, "1"))
    assert not pattern.matches(envelope({**record, "eventName": "StartLogging"}, "2"))
    assert not pattern.matches(envelope({**record, "eventSource": "iam.amazonaws.com"}, "3"))
