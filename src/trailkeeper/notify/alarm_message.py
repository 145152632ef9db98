"""The CloudWatch alarm notification an SNS topic carries (spec monitoring.md §4).

Receivers parse these messages field by field (chat bridges, paging integrations, Lambda
functions written for AWS), so the key order, the formats and the spellings follow what AWS
sends: `Region` is the region's display name, `StateChangeTime` is
`2022-08-28T15:39:16.518+0000`, the trigger's `Statistic` is upper case and its dimensions
use lower-case `name`/`value` keys, and `TreatMissingData` is the padded
`- TreatMissingData:                    missing` line AWS writes. trailkeeper adds `EventIds`, the IDs of the events behind
the transition (receivers ignore keys they do not know).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from trailkeeper.monitoring.alarms import AlarmConfig, AlarmState, cloudwatch_time

# The display names CloudWatch writes into alarm notifications (its older "EU (...)" style).
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)", "sa-east-1": "South America (Sao Paulo)",
    "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)", "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)", "eu-central-2": "EU (Zurich)", "eu-north-1": "EU (Stockholm)",
    "eu-south-1": "EU (Milan)", "eu-south-2": "EU (Spain)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-east-1": "Asia Pacific (Hong Kong)", "me-south-1": "Middle East (Bahrain)",
    "af-south-1": "Africa (Cape Town)",
}
# At most this many event IDs ride in one notification (the SNS message limit is 256 KB).
MAX_EVENT_IDS = 100


def region_display_name(region: str) -> str:
    """AWS's display name of a region; a region AWS does not have keeps its code."""
    return REGION_NAMES.get(region, region)


@dataclass(frozen=True)
class AlarmChange:
    """One state transition of one alarm, as the notification reports it."""

    config: AlarmConfig
    account_id: str
    region: str
    old_state: AlarmState
    new_state: AlarmState
    reason: str
    changed_at: datetime
    configuration_updated_at: datetime
    event_ids: Sequence[str] = ()

    @property
    def alarm_arn(self) -> str:
        return f"arn:aws:cloudwatch:{self.region}:{self.account_id}:alarm:{self.config.name}"


def subject(change: AlarmChange) -> str:
    """`ALARM: "name" in US East (N. Virginia)` (SNS caps a subject at 100 characters)."""
    text = f'{change.new_state.value}: "{change.config.name}" in {region_display_name(change.region)}'
    return text if len(text) <= 100 else text[:97] + "..."


def message(change: AlarmChange) -> str:
    """The notification's `Message`: a JSON string, keys in AWS's order."""
    config = change.config
    body: dict[str, Any] = {
        "AlarmName": config.name,
        "AlarmDescription": config.description,
        "AWSAccountId": change.account_id,
        "AlarmConfigurationUpdatedTimestamp": cloudwatch_time(change.configuration_updated_at),
        "NewStateValue": change.new_state.value,
        "NewStateReason": change.reason,
        "StateChangeTime": cloudwatch_time(change.changed_at),
        "Region": region_display_name(change.region),
        "AlarmArn": change.alarm_arn,
        "OldStateValue": change.old_state.value,
        "OKActions": list(config.ok_actions),
        "AlarmActions": list(config.alarm_actions),
        "InsufficientDataActions": list(config.insufficient_data_actions),
        "Trigger": _trigger(config),
        "EventIds": list(change.event_ids[:MAX_EVENT_IDS]),
    }
    return orjson.dumps(body).decode("utf-8")


def _trigger(config: AlarmConfig) -> dict[str, Any]:
    return {
        "MetricName": config.metric.name,
        "Namespace": config.metric.namespace,
        "StatisticType": "Statistic",
        "Statistic": config.statistic.upper(),
        "Unit": None,
        "Dimensions": [{"value": value, "name": name} for name, value in config.metric.dimensions],
        "Period": config.period,
        "EvaluationPeriods": config.evaluation_periods,
        "DatapointsToAlarm": config.required_breaches,
        "ComparisonOperator": config.comparison_operator,
        "Threshold": float(config.threshold),
        # Verbatim AWS: the setting behind a label padded to a fixed column.
        "TreatMissingData": f"- TreatMissingData:{' ' * 20}{config.treat_missing_data}",
        "EvaluateLowSampleCountPercentile": "",
    }
