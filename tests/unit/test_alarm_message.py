"""The CloudWatch alarm notification: subject, the Message keys in AWS's order and formats, the
trigger, and the event IDs trailkeeper adds."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from trailkeeper.monitoring.alarms import AlarmConfig, AlarmState
from trailkeeper.monitoring.metrics import MetricKey
from trailkeeper.notify.alarm_message import (
    MAX_EVENT_IDS,
    AlarmChange,
    message,
    region_display_name,
    subject,
)

CONFIG = AlarmConfig(
    name="cis-4.3-root-usage", metric=MetricKey.of("CISBenchmark", "RootUsage", {"Trail": "main"}), period=300,
    evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold", statistic="Sum",
    treat_missing_data="notBreaching", alarm_actions=("arn:aws:sns:eu-west-1:123456789012:cis",))
CHANGE = AlarmChange(
    config=CONFIG, account_id="123456789012", region="eu-west-1", old_state=AlarmState.OK,
    new_state=AlarmState.ALARM,
    reason="Threshold Crossed: 1 out of the last 1 datapoints [1.0 (06/12/26 01:00:00)] was greater than or "
           "equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition).",
    changed_at=datetime(2026, 12, 6, 1, 0, 7, 518000, tzinfo=UTC),
    configuration_updated_at=datetime(2026, 12, 5, 23, 1, 2, 3000, tzinfo=UTC),
    event_ids=("9d3c8c2e-1111-4a3c-9b0c-8d5f0f6c0001",))


@pytest.mark.parametrize("region, name", [("us-east-1", "US East (N. Virginia)"), ("eu-west-1", "EU (Ireland)"),
                                          ("ap-southeast-2", "Asia Pacific (Sydney)"), ("xx-lab-1", "xx-lab-1")])
def test_region_display_names(region: str, name: str) -> None:
    assert region_display_name(region) == name


def test_the_subject_names_state_alarm_and_region() -> None:
    assert subject(CHANGE) == 'ALARM: "cis-4.3-root-usage" in EU (Ireland)'
    long = AlarmChange(**{**CHANGE.__dict__, "config": AlarmConfig(**{**CONFIG.__dict__, "name": "n" * 200})})
    assert len(subject(long)) == 100 and subject(long).endswith("...")


def test_the_message_has_aws_keys_in_aws_order_and_formats() -> None:
    body = orjson.loads(message(CHANGE))
    assert list(body) == ["AlarmName", "AlarmDescription", "AWSAccountId", "AlarmConfigurationUpdatedTimestamp",
                          "NewStateValue", "NewStateReason", "StateChangeTime", "Region", "AlarmArn",
                          "OldStateValue", "OKActions", "AlarmActions", "InsufficientDataActions", "Trigger",
                          "EventIds"]
    assert body["AlarmDescription"] is None
    assert body["StateChangeTime"] == "2026-12-06T01:00:07.518+0000"
    assert body["AlarmConfigurationUpdatedTimestamp"] == "2026-12-05T23:01:02.003+0000"
    assert (body["Region"], body["NewStateValue"], body["OldStateValue"]) == ("EU (Ireland)", "ALARM", "OK")
    assert body["AlarmArn"] == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:cis-4.3-root-usage"
    assert body["AlarmActions"] == ["arn:aws:sns:eu-west-1:123456789012:cis"] and body["OKActions"] == []
    assert body["EventIds"] == ["9d3c8c2e-1111-4a3c-9b0c-8d5f0f6c0001"]


def test_the_trigger_as_aws_writes_it() -> None:
    trigger = orjson.loads(message(CHANGE))["Trigger"]
    assert trigger == {
        "MetricName": "RootUsage", "Namespace": "CISBenchmark", "StatisticType": "Statistic", "Statistic": "SUM",
        "Unit": None, "Dimensions": [{"value": "main", "name": "Trail"}], "Period": 300, "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1.0,
        "TreatMissingData": "- TreatMissingData:                    notBreaching",
        "EvaluateLowSampleCountPercentile": ""}
    assert '"Threshold":1.0' in message(CHANGE)  # a float, as AWS sends it


def test_event_ids_are_bounded() -> None:
    many = AlarmChange(**{**CHANGE.__dict__, "event_ids": tuple(f"id-{i}" for i in range(MAX_EVENT_IDS + 5))})
    assert len(orjson.loads(message(many))["EventIds"]) == MAX_EVENT_IDS
