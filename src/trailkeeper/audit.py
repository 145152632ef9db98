"""trailkeeper audits itself: its own API calls and service happenings as CloudTrail records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from trailkeeper.clock import iso_seconds
from trailkeeper.records import MAX_EVENT_BYTES, MAX_FIELD_CHARS, SERVICE_EVENT_SOURCE, new_event_id

EVENT_VERSION = "1.11"
SERVICE_SOURCE = SERVICE_EVENT_SOURCE  # every source here is in records.RESERVED_EVENT_SOURCES
CLOUDTRAIL_SOURCE = "cloudtrail.amazonaws.com"
IAM_SOURCE = "iam.amazonaws.com"
S3_SOURCE = "s3.amazonaws.com"
KMS_SOURCE = "kms.amazonaws.com"
CLOUDTRAIL_DATA_SOURCE = "cloudtrail-data.amazonaws.com"

# Read-only by name, for calls outside the operation registry (refusals of unknown operations,
# the S3 gateway's bucket calls); registered operations carry their own flag.
_READ_PREFIXES = ("Get", "List", "Describe", "Lookup", "Head")
# What an oversized self-audit record gives up first: the bulk, never who, what or the outcome.
_BULKY_FIELDS = ("requestParameters", "responseElements", "serviceEventDetails", "additionalEventData")


def is_read_only(operation: str) -> bool:
    return operation.startswith(_READ_PREFIXES)


@dataclass(frozen=True)
class CallContext:
    account_id: str
    region: str
    source_ip: str
    user_agent: str
    when: datetime
    request_id: str


Emit = Callable[[dict[str, Any]], None]


def api_call_record(
    ctx: CallContext,
    identity: Mapping[str, Any],
    operation: str,
    request_parameters: Mapping[str, Any] | None,
    response_elements: Mapping[str, Any] | None,
    error_code: str | None = None,
    error_message: str | None = None,
    resources: list[dict[str, str]] | None = None,
    event_source: str = CLOUDTRAIL_SOURCE,
    read_only: bool | None = None,
) -> dict[str, Any]:
    """A CloudTrail AwsApiCall record for one call to trailkeeper's own API."""
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": dict(identity),
        "eventTime": iso_seconds(ctx.when),
        "eventSource": event_source,
        "eventName": operation,
        "awsRegion": ctx.region,
        "sourceIPAddress": ctx.source_ip,
        "userAgent": ctx.user_agent,
    }
    if error_code:
        record["errorCode"] = error_code
        record["errorMessage"] = error_message or error_code
    record["requestParameters"] = dict(request_parameters) if request_parameters is not None else None
    record["responseElements"] = dict(response_elements) if response_elements is not None else None
    record.update({
        "requestID": ctx.request_id,
        "eventID": new_event_id(),
        "readOnly": is_read_only(operation) if read_only is None else read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ctx.account_id,
        "eventCategory": "Management",
    })
    if resources:
        record["resources"] = resources
    record["metadata"] = received(ctx.when)
    return record


def received(when: datetime) -> dict[str, str]:
    """`metadata`: when the server received (here: made) the record, as every record carries it."""
    return {"ingestionTime": iso_seconds(when)}


def service_event_record(
    account_id: str,
    region: str,
    when: datetime,
    event_name: str,
    details: Mapping[str, Any],
    event_source: str = SERVICE_SOURCE,
    resources: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """An AwsServiceEvent: something trailkeeper itself did or suffered (start, stop, failure, purge)."""
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": {"type": "AWSService", "invokedBy": SERVICE_SOURCE},
        "eventTime": iso_seconds(when),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": SERVICE_SOURCE,
        "userAgent": SERVICE_SOURCE,
        "requestParameters": None,
        "responseElements": None,
        "eventID": new_event_id(),
        "readOnly": False,
        "eventType": "AwsServiceEvent",
        "managementEvent": True,
        "recipientAccountId": account_id,
        "serviceEventDetails": dict(details),
        "eventCategory": "Management",
    }
    if resources:
        record["resources"] = resources
    record["metadata"] = received(when)
    return record


def encode(record: Mapping[str, Any]) -> bytes:
    """A self-audit record as stored: never over the per-record limit (MAX_EVENT_BYTES). A record
    that would be keeps its who/what/when/outcome and says what was left out, as CloudTrail
    marks an oversized field `omitted`."""
    data = orjson.dumps(record)
    if len(data) <= MAX_EVENT_BYTES:
        return data
    trimmed = dict(record)
    for name in _BULKY_FIELDS:
        if trimmed.get(name) is not None:
            trimmed[name] = {"omitted": True, "originalBytes": len(orjson.dumps(trimmed[name]))}
    for name in ("userAgent", "errorMessage", "eventName"):
        if isinstance(trimmed.get(name), str):
            trimmed[name] = trimmed[name][:MAX_FIELD_CHARS]
    return orjson.dumps(trimmed)


def anonymous_identity(access_key_id: str | None, account_id: str) -> dict[str, Any]:
    """Who a refused request claimed to be: CloudTrail records failed callers this way."""
    identity: dict[str, Any] = {"type": "Unknown", "accountId": account_id}
    if access_key_id:
        identity["accessKeyId"] = access_key_id
    return identity
