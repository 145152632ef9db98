"""CloudWatch Logs over JSON 1.1 (`X-Amz-Target: Logs_20140328.<Op>`) onto `monitoring.loggroups`.

Handlers read and answer the member names of botocore's `logs` model; times are epoch
milliseconds as on the wire. Reads of events (GetLogEvents, FilterLogEvents) are read-only
calls: audited like every call, with no responseElements (the events stay out of the trail).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trailkeeper.api.params import Reader, ReadingHandler, reading
from trailkeeper.api.registry import OperationSpec, ServiceSpec
from trailkeeper.identity import Principal
from trailkeeper.monitoring.loggroups import (
    DEFAULT_EVENTS_PAGE,
    DEFAULT_PAGE,
    LogGroups,
    Transformation,
    invalid,
)
from trailkeeper.monitoring.loggroups_store import NewEvent, StoredEvent

if TYPE_CHECKING:

    from trailkeeper.service import Service

LOGS_TARGET_PREFIX = "Logs_20140328"
LOGS_SOURCE = "logs.amazonaws.com"


# ---- request parameters ---------------------------------------------------------------------
def _events(read: Reader) -> list[NewEvent]:
    value = read.params.get("logEvents")
    if not isinstance(value, list):
        raise invalid("logEvents is required and must be a list of {timestamp, message}.")
    events = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("message"), str) \
                or isinstance(item.get("timestamp"), bool) or not isinstance(item.get("timestamp"), int):
            raise invalid(f"logEvents[{i}] must have an integer timestamp and a string message.")
        events.append(NewEvent(item["timestamp"], item["message"]))
    return events


def _transformations(read: Reader) -> list[Transformation]:
    value = read.params.get("metricTransformations")
    if not isinstance(value, list):
        raise invalid("metricTransformations is required and must be a list.")
    out = []
    for raw in value:
        if not isinstance(raw, dict):
            raise invalid("each metricTransformation must be an object.")
        item = Reader(raw, invalid)
        default = raw.get("defaultValue")
        if default is not None and (isinstance(default, bool) or not isinstance(default, int | float)):
            raise invalid("defaultValue must be a number.")
        out.append(Transformation(item.string("metricName"), item.string("metricNamespace"), item.string("metricValue"),
                                  None if default is None else float(default), item.str_map("dimensions"),
                                  item.opt_string("unit")))
    return out


def _page(name: str, items: list[dict[str, Any]], token: str | None) -> dict[str, Any]:
    return {name: items} if token is None else {name: items, "nextToken": token}


# ---- handlers ---------------------------------------------------------------------------------
def _create_log_group(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.create_group(read.string("logGroupName"), read.str_map("tags"), read.opt_string("kmsKeyId"))
    return {}


def _kms_target(logs: LogGroups, read: Reader) -> str:
    """The log group named by logGroupName or by resourceIdentifier (its ARN), not both."""
    name, resource = read.opt_string("logGroupName"), read.opt_string("resourceIdentifier")
    if (name is None) == (resource is None):
        raise invalid("Specify either logGroupName or resourceIdentifier, not both.")
    if resource is not None:
        if ":query-result:" in resource:
            raise invalid("Query results are not kept by trailkeeper (no Logs Insights): resourceIdentifier "
                          "must be the ARN of a log group.")
        return logs.group_of_arn(resource)
    assert name is not None
    return name


def _associate_kms_key(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.associate_kms_key(_kms_target(logs, read), read.string("kmsKeyId"))
    return {}


def _disassociate_kms_key(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.disassociate_kms_key(_kms_target(logs, read))
    return {}


def _delete_log_group(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.delete_group(read.string("logGroupName"))
    return {}


def _describe_log_groups(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    groups, token = logs.describe_groups(read.opt_string("logGroupNamePrefix") or "", read.int_or("limit", DEFAULT_PAGE),
                                         read.opt_string("nextToken"))
    shapes = []
    for g in groups:
        shape: dict[str, Any] = {"logGroupName": g.record.name, "creationTime": g.record.created_ms,
                                 "metricFilterCount": g.metric_filter_count, "arn": g.arn,
                                 "logGroupArn": g.arn.removesuffix(":*"), "storedBytes": g.stored_bytes,
                                 "logGroupClass": "STANDARD"}
        if g.record.retention_days is not None:
            shape["retentionInDays"] = g.record.retention_days
        if g.record.kms_key_id is not None:
            shape["kmsKeyId"] = g.record.kms_key_id
        shapes.append(shape)
    return _page("logGroups", shapes, token)


def _put_retention_policy(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    days = read.opt_int("retentionInDays")
    if days is None:
        raise invalid("retentionInDays is required.")
    logs.set_retention(read.string("logGroupName"), days)
    return {}


def _delete_retention_policy(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.set_retention(read.string("logGroupName"), None)
    return {}


def _create_log_stream(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.create_stream(read.string("logGroupName"), read.string("logStreamName"))
    return {}


def _describe_log_streams(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    order = read.opt_string("orderBy") or "LogStreamName"
    if order not in ("LogStreamName", "LastEventTime"):
        raise invalid("orderBy must be LogStreamName or LastEventTime.")
    group = read.string("logGroupName")
    streams, token = logs.describe_streams(group, read.opt_string("logStreamNamePrefix") or "",
                                           order == "LastEventTime", read.params.get("descending") is True,
                                           read.int_or("limit", DEFAULT_PAGE), read.opt_string("nextToken"))
    shapes = []
    for s in streams:
        shape: dict[str, Any] = {"logStreamName": s.name, "creationTime": s.created_ms,
                                 "arn": f"{logs.arn(group)}:log-stream:{s.name}", "storedBytes": s.stored_bytes}
        for key, value in (("firstEventTimestamp", s.first_event_ms), ("lastEventTimestamp", s.last_event_ms),
                           ("lastIngestionTime", s.last_ingestion_ms)):
            if value is not None:
                shape[key] = value
        shapes.append(shape)
    return _page("logStreams", shapes, token)


def _put_log_events(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    # sequenceToken is accepted and ignored, as AWS has done since 2023.
    result = logs.put_events(read.string("logGroupName"), read.string("logStreamName"), _events(read))
    info = {key: value for key, value in (("tooNewLogEventStartIndex", result.rejected.too_new_start),
                                          ("tooOldLogEventEndIndex", result.rejected.too_old_end),
                                          ("expiredLogEventEndIndex", result.rejected.expired_end))
            if value is not None}
    return {"rejectedLogEventsInfo": info} if info else {}


def _event(event: StoredEvent) -> dict[str, Any]:
    return {"timestamp": event.timestamp_ms, "message": event.message, "ingestionTime": event.ingestion_ms}


def _get_log_events(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    page = logs.get_events(read.string("logGroupName"), read.string("logStreamName"),
                           read.opt_int("startTime"), read.opt_int("endTime"),
                           read.params.get("startFromHead") is True, read.int_or("limit", DEFAULT_EVENTS_PAGE),
                           read.opt_string("nextToken"))
    return {"events": [_event(e) for e in page.events], "nextForwardToken": page.forward,
            "nextBackwardToken": page.backward}


def _filter_log_events(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    page = logs.filter_events(read.string("logGroupName"), read.opt_string("filterPattern") or "",
                              read.opt_strings("logStreamNames"), read.opt_string("logStreamNamePrefix"),
                              read.opt_int("startTime"), read.opt_int("endTime"),
                              read.int_or("limit", DEFAULT_EVENTS_PAGE), read.opt_string("nextToken"))
    events = [{**_event(e), "logStreamName": e.stream, "eventId": str(e.seq)} for e in page.events]
    return _page("events", events, page.next_token)


def _tag_resource(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.tag(logs.group_of_arn(read.string("resourceArn")), read.str_map("tags") or {})
    return {}


def _untag_resource(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.untag(logs.group_of_arn(read.string("resourceArn")), read.opt_strings("tagKeys") or [])
    return {}


def _list_tags_for_resource(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    return {"tags": logs.tags(logs.group_of_arn(read.string("resourceArn")))}


def _put_metric_filter(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.put_metric_filter(read.string("logGroupName"), read.string("filterName"), read.string("filterPattern"),
                           _transformations(read))
    return {}


def _describe_metric_filters(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    name, namespace = read.opt_string("metricName"), read.opt_string("metricNamespace")
    if (name is None) != (namespace is None):
        raise invalid("metricName and metricNamespace must be given together.")
    metric = (name, namespace) if name is not None and namespace is not None else None
    filters, token = logs.describe_metric_filters(read.opt_string("logGroupName"),
                                                  read.opt_string("filterNamePrefix") or "", metric,
                                                  read.int_or("limit", DEFAULT_PAGE), read.opt_string("nextToken"))
    shapes = [{"filterName": f.name, "filterPattern": f.pattern, "metricTransformations": f.transformations,
               "creationTime": f.created_ms, "logGroupName": f.group} for f in filters]
    return _page("metricFilters", shapes, token)


def _delete_metric_filter(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    logs.delete_metric_filter(read.string("logGroupName"), read.string("filterName"))
    return {}


def _test_metric_filter(logs: LogGroups, _: Principal, read: Reader) -> dict[str, Any]:
    matches = logs.test_metric_filter(read.string("filterPattern"), read.opt_strings("logEventMessages") or [])
    return {"matches": [{"eventNumber": m.number, "eventMessage": m.message, "extractedValues": m.extracted}
                        for m in matches]}


def _op(handler: ReadingHandler[LogGroups], permission: str, read_only: bool = False) -> OperationSpec[LogGroups]:
    return OperationSpec(reading(handler, invalid), permission, read_only)


def log_groups_of(service: Service) -> LogGroups:
    return service.runtime.log_groups


LOGS: ServiceSpec[LogGroups] = ServiceSpec(
    name="logs", title="CloudWatch Logs", signing_name="logs", protocol="json", event_source=LOGS_SOURCE,
    api_version="2014-03-28", target_prefix=LOGS_TARGET_PREFIX, client_errors_as_400=True, context=log_groups_of,
    operations={
        "CreateLogGroup": _op(_create_log_group, "loggroups:write"),
        "DeleteLogGroup": _op(_delete_log_group, "loggroups:write"),
        "DescribeLogGroups": _op(_describe_log_groups, "loggroups:read", read_only=True),
        "PutRetentionPolicy": _op(_put_retention_policy, "loggroups:write"),
        "DeleteRetentionPolicy": _op(_delete_retention_policy, "loggroups:write"),
        # Writers create the streams they send to, as the AWS agents do on start.
        "CreateLogStream": _op(_create_log_stream, "loggroups:put-events"),
        "DescribeLogStreams": _op(_describe_log_streams, "loggroups:read", read_only=True),
        "PutLogEvents": _op(_put_log_events, "loggroups:put-events"),
        "GetLogEvents": _op(_get_log_events, "loggroups:read", read_only=True),
        # CloudTrail records FilterLogEvents and TestMetricFilter as read-only: they change nothing.
        "FilterLogEvents": _op(_filter_log_events, "loggroups:read", read_only=True),
        "TagResource": _op(_tag_resource, "loggroups:write"),
        "UntagResource": _op(_untag_resource, "loggroups:write"),
        "ListTagsForResource": _op(_list_tags_for_resource, "loggroups:read", read_only=True),
        "PutMetricFilter": _op(_put_metric_filter, "loggroups:write"),
        "DescribeMetricFilters": _op(_describe_metric_filters, "loggroups:read", read_only=True),
        "DeleteMetricFilter": _op(_delete_metric_filter, "loggroups:write"),
        "TestMetricFilter": _op(_test_metric_filter, "loggroups:read", read_only=True),
        "AssociateKmsKey": _op(_associate_kms_key, "loggroups:write"),
        "DisassociateKmsKey": _op(_disassociate_kms_key, "loggroups:write"),
    })
