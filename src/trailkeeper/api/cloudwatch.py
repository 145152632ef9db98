"""CloudWatch metrics and alarms over Smithy RPC v2 CBOR (`api/cbor.py`) onto `monitoring.cloudwatch`.

Handlers read and answer the member names of botocore's `cloudwatch` model (2010-08-01);
times arrive and leave as aware datetimes (CBOR tag 1). What trailkeeper does not implement is
refused by name, never ignored: metric math (`Metrics`, `Expression`), percentiles
(`ExtendedStatistic(s)`), composite and log alarms. Two members go beyond the model and are
ignored by AWS clients (docs/contracts.md): `EventIds` and `DroppedEventIds` on datapoints and
alarm history items, the evidence behind each value and each transition.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from trailkeeper.api.registry import OperationSpec, ServiceSpec
from trailkeeper.identity import Principal
from trailkeeper.monitoring.alarms import AlarmConfig
from trailkeeper.monitoring.cloudwatch import CloudWatch, alarm_time, config_from_dict
from trailkeeper.monitoring.cloudwatch_store import AlarmRecord, HistoryRecord
from trailkeeper.monitoring.metrics import Datum, MetricError, MetricKey, StatisticSet

if TYPE_CHECKING:
    from trailkeeper.service import Service

Params = dict[str, Any]
CLOUDWATCH_TARGET_PREFIX = "GraniteServiceVersion20100801"
CLOUDWATCH_SOURCE = "monitoring.amazonaws.com"
MAX_METRIC_DATA = 1000  # PutMetricData entries per call
MAX_PAST = timedelta(days=14)  # AWS refuses datapoints older than two weeks ...
MAX_FUTURE = timedelta(hours=2)  # ... or more than two hours ahead
DEFAULT_ALARM_PAGE, MAX_ALARM_PAGE = 50, 100
METRICS_PAGE = 500
EVIDENCE_MEMBERS = frozenset({"EventIds", "DroppedEventIds"})


# ---- request parameters ---------------------------------------------------------------------
def _invalid(message: str) -> MetricError:
    return MetricError("InvalidParameterValue", message)


def _missing(name: str) -> MetricError:
    return MetricError("MissingParameter", f"The parameter {name} is required.")


def _str(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None:
        raise _missing(name)
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string.")
    return value


def _opt_str(params: Params, name: str) -> str | None:
    return None if params.get(name) is None else _str(params, name)


def _int(params: Params, name: str, default: int | None = None) -> int | None:
    value = params.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _invalid(f"{name} must be an integer.")
    return value


def _required_int(params: Params, name: str) -> int:
    value = _int(params, name)
    if value is None:
        raise _missing(name)
    return value


def _number(params: Params, name: str) -> float:
    value = params.get(name)
    if value is None:
        raise _missing(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"{name} must be a finite number.")
    return float(value)


def _as_time(value: Any, name: str) -> datetime:
    """A timestamp as CBOR (a datetime), AWS JSON 1.0 (epoch seconds) or the native API carries it."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):  # the native API (POST /v1/ops) also takes ISO 8601
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(f"{name} {value!r} is not an ISO 8601 time or epoch seconds.") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise _invalid(f"{name} must be a timestamp.")


def _time(params: Params, name: str) -> datetime:
    value = params.get(name)
    if value is None:
        raise _missing(name)
    return _as_time(value, name)


def _opt_time(params: Params, name: str) -> datetime | None:
    return None if params.get(name) is None else _as_time(params[name], name)


def _str_list(params: Params, name: str) -> list[str]:
    value = params.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(f"{name} must be a list of strings.")
    return value


def _dimensions(params: Params, name: str = "Dimensions") -> list[tuple[str, str]]:
    value = params.get(name) or []
    if not isinstance(value, list):
        raise _invalid(f"{name} must be a list of {{Name, Value}}.")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str) or not isinstance(item.get("Value"), str):
            raise _invalid(f"{name}[{i}] must have a string Name and a string Value.")
        out.append((item["Name"], item["Value"]))
    return out


def _dimension_filters(params: Params) -> list[tuple[str, str | None]]:
    value = params.get("Dimensions") or []
    if not isinstance(value, list) or not all(isinstance(d, dict) and isinstance(d.get("Name"), str) for d in value):
        raise _invalid("Dimensions must be a list of {Name, Value?} filters.")
    return [(d["Name"], d.get("Value") if isinstance(d.get("Value"), str) else None) for d in value]


def _refuse(params: Params, *names: str) -> None:
    """Members of features trailkeeper does not implement: refused by name, not ignored."""
    for name in names:
        if params.get(name):
            raise MetricError("InvalidParameterCombination",
                              f"{name} is not supported by trailkeeper (single-metric alarms and the five "
                              "standard statistics only); leave it out.")


def _page_offset(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise MetricError("InvalidNextToken", "NextToken is not one this API returned; start again without it.")
    return int(token)


def _paged(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    start = _page_offset(token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


# ---- metrics ----------------------------------------------------------------------------------
def _stats_of(entry: Params, i: int) -> StatisticSet:
    if entry.get("Values") is not None:
        values, counts = entry["Values"], entry.get("Counts") or [1] * len(entry["Values"])
        if not isinstance(values, list) or not isinstance(counts, list) or len(values) != len(counts) or not values:
            raise _invalid(f"MetricData[{i}]: Values and Counts must be non-empty lists of the same length.")
        sets = [_statistic_set({"SampleCount": c, "Sum": v * c, "Minimum": v, "Maximum": v}, i)
                for v, c in zip(values, counts, strict=True)]
        total = sets[0]
        for more in sets[1:]:
            total = total.merge(more)
        return total
    if entry.get("StatisticValues") is not None:
        if entry.get("Value") is not None:
            raise MetricError("InvalidParameterCombination",
                              f"MetricData[{i}]: give Value, StatisticValues or Values, not several.")
        return _statistic_set(entry["StatisticValues"], i)
    return StatisticSet.single(_number(entry, "Value"))


def _statistic_set(value: Any, i: int) -> StatisticSet:
    if not isinstance(value, dict):
        raise _invalid(f"MetricData[{i}].StatisticValues must be a structure.")
    numbers = {k: _number(value, k) for k in ("SampleCount", "Sum", "Minimum", "Maximum")}
    if numbers["SampleCount"] <= 0 or numbers["Minimum"] > numbers["Maximum"]:
        raise _invalid(f"MetricData[{i}]: SampleCount must be positive and Minimum at most Maximum.")
    return StatisticSet(int(numbers["SampleCount"]), numbers["Sum"], numbers["Minimum"], numbers["Maximum"])


def _datum(namespace: str, entry: Any, i: int, now: datetime) -> Datum:
    if not isinstance(entry, dict):
        raise _invalid(f"MetricData[{i}] must be a structure.")
    when = _opt_time(entry, "Timestamp") or now
    if not now - MAX_PAST <= when <= now + MAX_FUTURE:
        raise _invalid(f"MetricData[{i}].Timestamp {when.isoformat()} is more than two weeks in the past "
                       "or two hours in the future; CloudWatch refuses it.")
    metric = MetricKey.of(namespace, _str(entry, "MetricName"), _dimensions(entry))
    return Datum(metric, when, _stats_of(entry, i))


def _put_metric_data(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    namespace = _str(params, "Namespace")
    if namespace.startswith("AWS/"):
        raise _invalid(f"The value {namespace} for parameter Namespace is invalid: AWS/ is reserved.")
    entries = params.get("MetricData")
    if not isinstance(entries, list) or not entries:
        raise _missing("MetricData")
    if len(entries) > MAX_METRIC_DATA:
        raise _invalid(f"MetricData holds at most {MAX_METRIC_DATA} entries per call.")
    now = cw.clock.now()
    cw.put_metric_data([_datum(namespace, entry, i, now) for i, entry in enumerate(entries)])
    return {}


def _metric(params: Params) -> MetricKey:
    return MetricKey.of(_str(params, "Namespace"), _str(params, "MetricName"), _dimensions(params))


def _get_metric_statistics(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    _refuse(params, "ExtendedStatistics")
    statistics = _str_list(params, "Statistics")
    if not statistics:
        raise _missing("Statistics")
    points = cw.statistics(_metric(params), _time(params, "StartTime"), _time(params, "EndTime"),
                           _required_int(params, "Period"), statistics)
    return {"Label": _str(params, "MetricName"), "Datapoints": points}


def _get_metric_data(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    queries = params.get("MetricDataQueries")
    if not isinstance(queries, list) or not queries:
        raise _missing("MetricDataQueries")
    start, end = _time(params, "StartTime"), _time(params, "EndTime")
    descending = (_opt_str(params, "ScanBy") or "TimestampDescending") == "TimestampDescending"
    results = []
    for query in queries:
        if not isinstance(query, dict):
            raise _invalid("each MetricDataQuery must be a structure.")
        _refuse(query, "Expression")
        stat = query.get("MetricStat")
        if not isinstance(stat, dict) or not isinstance(stat.get("Metric"), dict):
            raise _missing("MetricStat")
        name = _str(stat, "Stat")
        points = cw.statistics(_metric(stat["Metric"]), start, end, _required_int(stat, "Period"), [name])
        points.sort(key=lambda p: p["Timestamp"], reverse=descending)
        if query.get("ReturnData", True):
            results.append({"Id": _str(query, "Id"), "Label": query.get("Label") or stat["Metric"].get("MetricName"),
                            "Timestamps": [p["Timestamp"] for p in points], "Values": [p[name] for p in points],
                            "StatusCode": "Complete"})
    return {"MetricDataResults": results, "Messages": []}


def _list_metrics(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    found = cw.list_metrics(_opt_str(params, "Namespace"), _opt_str(params, "MetricName"), _dimension_filters(params))
    page, token = _paged([m.to_dict() for m in found], _opt_str(params, "NextToken"), METRICS_PAGE)
    return {"Metrics": page, "NextToken": token}


# ---- alarms -----------------------------------------------------------------------------------
def _actions(params: Params, name: str) -> tuple[str, ...]:
    return tuple(_str_list(params, name))


def _put_metric_alarm(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    _refuse(params, "Metrics", "ExtendedStatistic", "ThresholdMetricId", "EvaluateLowSampleCountPercentile")
    actions_enabled = params.get("ActionsEnabled", True)
    if not isinstance(actions_enabled, bool):
        raise _invalid("ActionsEnabled must be a boolean.")
    config = AlarmConfig(
        name=_str(params, "AlarmName"), metric=_metric(params), period=_required_int(params, "Period"),
        evaluation_periods=_required_int(params, "EvaluationPeriods"), threshold=_number(params, "Threshold"),
        comparison_operator=_str(params, "ComparisonOperator"), statistic=_str(params, "Statistic"),
        datapoints_to_alarm=_int(params, "DatapointsToAlarm"),
        treat_missing_data=_opt_str(params, "TreatMissingData") or "missing", actions_enabled=actions_enabled,
        alarm_actions=_actions(params, "AlarmActions"), ok_actions=_actions(params, "OKActions"),
        insufficient_data_actions=_actions(params, "InsufficientDataActions"),
        description=_opt_str(params, "AlarmDescription"))
    cw.put_alarm(config)
    return {}


def _alarm_shape(cw: CloudWatch, record: AlarmRecord) -> dict[str, Any]:
    config = config_from_dict(record.config)
    shape: dict[str, Any] = {
        "AlarmName": record.name, "AlarmArn": cw.alarm_arn(record.name), "AlarmDescription": config.description,
        "AlarmConfigurationUpdatedTimestamp": alarm_time(record.config_updated),
        "ActionsEnabled": config.actions_enabled, "OKActions": list(config.ok_actions),
        "AlarmActions": list(config.alarm_actions), "InsufficientDataActions": list(config.insufficient_data_actions),
        "StateValue": record.state, "StateReason": record.reason, "StateReasonData": record.reason_data,
        "StateUpdatedTimestamp": alarm_time(record.state_updated),
        "StateTransitionedTimestamp": alarm_time(record.state_updated),
        "MetricName": config.metric.name, "Namespace": config.metric.namespace, "Statistic": config.statistic,
        "Dimensions": config.metric.to_dict()["Dimensions"], "Period": config.period,
        "EvaluationPeriods": config.evaluation_periods, "DatapointsToAlarm": config.datapoints_to_alarm,
        "Threshold": config.threshold, "ComparisonOperator": config.comparison_operator,
        "TreatMissingData": config.treat_missing_data,
    }
    return shape


def _max_records(params: Params) -> int:
    size = _int(params, "MaxRecords", DEFAULT_ALARM_PAGE)
    assert size is not None
    if not 1 <= size <= MAX_ALARM_PAGE:
        raise _invalid(f"MaxRecords must be 1 to {MAX_ALARM_PAGE}.")
    return size


def _describe_alarms(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    _refuse(params, "ChildrenOfAlarmName", "ParentsOfAlarmName")
    names, prefix = _str_list(params, "AlarmNames"), _opt_str(params, "AlarmNamePrefix")
    if names and prefix is not None:
        raise MetricError("InvalidParameterCombination", "Give AlarmNames or AlarmNamePrefix, not both.")
    state, action = _opt_str(params, "StateValue"), _opt_str(params, "ActionPrefix")
    types = _str_list(params, "AlarmTypes")

    def wanted(record: AlarmRecord) -> bool:
        config = config_from_dict(record.config)
        all_actions = config.alarm_actions + config.ok_actions + config.insufficient_data_actions
        return ((not names or record.name in names) and (prefix is None or record.name.startswith(prefix))
                and (state is None or record.state == state)
                and (action is None or any(a.startswith(action) for a in all_actions)))

    # Only metric alarms exist here: asking for composite alarms alone finds none.
    found = [] if types and "MetricAlarm" not in types else [r for r in cw.alarms() if wanted(r)]
    page, token = _paged(found, _opt_str(params, "NextToken"), _max_records(params))
    return {"MetricAlarms": [_alarm_shape(cw, r) for r in page], "CompositeAlarms": [], "NextToken": token}


def _describe_alarms_for_metric(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    metric = _metric(params)
    statistic, period = _opt_str(params, "Statistic"), _int(params, "Period")

    def wanted(config: AlarmConfig) -> bool:
        return (config.metric == metric and (statistic is None or config.statistic == statistic)
                and (period is None or config.period == period))

    return {"MetricAlarms": [_alarm_shape(cw, r) for r in cw.alarms() if wanted(config_from_dict(r.config))]}


def _history_item(item: HistoryRecord) -> dict[str, Any]:
    return {"AlarmName": item.alarm_name, "AlarmType": "MetricAlarm", "Timestamp": alarm_time(item.timestamp),
            "HistoryItemType": item.item_type, "HistorySummary": item.summary, "HistoryData": item.data,
            "EventIds": list(item.event_ids)}


def _describe_alarm_history(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    kind = _opt_str(params, "HistoryItemType")
    start, end = _opt_time(params, "StartDate"), _opt_time(params, "EndDate")

    def wanted(item: HistoryRecord) -> bool:
        at = alarm_time(item.timestamp)
        return ((kind is None or item.item_type == kind) and (start is None or at >= start)
                and (end is None or at <= end))

    items = [i for i in cw.history(_opt_str(params, "AlarmName")) if wanted(i)]
    if (_opt_str(params, "ScanBy") or "TimestampDescending") == "TimestampDescending":
        items.reverse()
    page, token = _paged(items, _opt_str(params, "NextToken"), _max_records(params))
    return {"AlarmHistoryItems": [_history_item(i) for i in page], "NextToken": token}


def _delete_alarms(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    cw.delete_alarms(_str_list(params, "AlarmNames"))
    return {}


def _set_alarm_state(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    cw.set_state(_str(params, "AlarmName"), _str(params, "StateValue"), _str(params, "StateReason"),
                 _opt_str(params, "StateReasonData"))
    return {}


def _enable_alarm_actions(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    cw.set_actions_enabled(_str_list(params, "AlarmNames"), True)
    return {}


def _disable_alarm_actions(cw: CloudWatch, _: Principal, params: Params) -> dict[str, Any]:
    cw.set_actions_enabled(_str_list(params, "AlarmNames"), False)
    return {}


def _op(handler: Callable[[CloudWatch, Principal, Params], dict[str, Any]], permission: str,
        read_only: bool = False, extensions: Iterable[str] = ()) -> OperationSpec[CloudWatch]:
    return OperationSpec(handler, permission, read_only, extensions=frozenset(extensions))


def cloudwatch_of(service: Service) -> CloudWatch:
    return service.runtime.cloudwatch


CLOUDWATCH: ServiceSpec[CloudWatch] = ServiceSpec(
    name="cloudwatch", title="CloudWatch", signing_name="monitoring", protocol="smithy-rpc-v2-cbor",
    event_source=CLOUDWATCH_SOURCE, api_version="2010-08-01", target_prefix=CLOUDWATCH_TARGET_PREFIX,
    json_version="1.0", query_compatible=True, context=cloudwatch_of,
    operations={
        "PutMetricData": _op(_put_metric_data, "metrics:put-data"),
        "GetMetricStatistics": _op(_get_metric_statistics, "metrics:read", read_only=True,
                                   extensions=EVIDENCE_MEMBERS),
        "GetMetricData": _op(_get_metric_data, "metrics:read", read_only=True),
        "ListMetrics": _op(_list_metrics, "metrics:read", read_only=True),
        "PutMetricAlarm": _op(_put_metric_alarm, "alarms:write"),
        "DescribeAlarms": _op(_describe_alarms, "metrics:read", read_only=True),
        "DescribeAlarmsForMetric": _op(_describe_alarms_for_metric, "metrics:read", read_only=True),
        "DescribeAlarmHistory": _op(_describe_alarm_history, "metrics:read", read_only=True,
                                    extensions={"EventIds"}),
        "DeleteAlarms": _op(_delete_alarms, "alarms:write"),
        "SetAlarmState": _op(_set_alarm_state, "alarms:write"),
        "EnableAlarmActions": _op(_enable_alarm_actions, "alarms:write"),
        "DisableAlarmActions": _op(_disable_alarm_actions, "alarms:write"),
    })
