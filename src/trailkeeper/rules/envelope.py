"""A CloudTrail record as the default event bus offers it to rules (spec monitoring.md §8).

    event = envelope(record, event_id)          # the EventBridge event rules match
    offered(record, RuleState.ENABLED)          # whether a rule in that state sees it at all

`source` is `aws.` plus the first label of the record's `eventSource` when it is an
`*.amazonaws.com` source (`iam.amazonaws.com` → `aws.iam`, console sign-ins → `aws.signin`,
trailkeeper's own `trailkeeper.amazonaws.com` → `aws.trailkeeper`); a custom source that is not
AWS-shaped (`app.example.com`, recorded through PutEvents or a Lake channel) stays as it is, so a
rule names it as written. `detail-type` follows the record's `eventType`; an event type AWS does
not route through the bus keeps its name (`"<eventType> via CloudTrail"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

AWS_SUFFIX: Final = ".amazonaws.com"
DETAIL_TYPES: Final = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
}
READ_ONLY_PREFIXES: Final = ("Get", "List", "Describe")


class RuleState(StrEnum):
    ENABLED = "ENABLED"
    ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    DISABLED = "DISABLED"


def source_of(event_source: str) -> str:
    if event_source.endswith(AWS_SUFFIX):
        return "aws." + event_source.split(".", 1)[0]
    return event_source


def detail_type_of(event_type: str) -> str:
    return DETAIL_TYPES.get(event_type, f"{event_type} via CloudTrail")


def envelope(record: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    """The bus event for `record`: `event_id` is the bus event's own id (not the record's
    eventID, which stays in `detail`); `time` is the record's eventTime, to the second."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type_of(str(record.get("eventType", "AwsApiCall"))),
        "source": source_of(str(record.get("eventSource", ""))),
        "account": str(record.get("recipientAccountId") or record.get("userIdentity", {}).get("accountId", "")),
        "time": _to_second(str(record.get("eventTime", ""))),
        "region": str(record.get("awsRegion", "")),
        "resources": [],
        "detail": dict(record),
    }


def _to_second(event_time: str) -> str:
    # CloudTrail's eventTime is already YYYY-MM-DDTHH:MM:SSZ; fractions, when a writer sent them,
    # are dropped as EventBridge's `time` has none.
    if "." in event_time and event_time.endswith("Z"):
        return event_time.split(".", 1)[0] + "Z"
    return event_time


def read_only_management(record: Mapping[str, Any]) -> bool:
    """A read-only management event, which rules in state ENABLED do not see (AWS)."""
    if record.get("managementEvent") is False:
        return False
    name = str(record.get("eventName", ""))
    return record.get("readOnly") is True or name.startswith(READ_ONLY_PREFIXES)


def offered(record: Mapping[str, Any], state: RuleState) -> bool:
    """Whether a rule in `state` is offered `record` at all (before its pattern is matched)."""
    if state == RuleState.DISABLED:
        return False
    if state == RuleState.ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS:
        return True
    return not read_only_management(record)
