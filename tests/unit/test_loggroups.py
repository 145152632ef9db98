"""CloudWatch Logs: `LogGroups` rules and limits, each refusal its own case, and the `logs`
API through the App (botocore's client, audit records of reads)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.pipeline import SHARED, call_app, open_pipeline

from trailkeeper.api.app import App
from trailkeeper.clock import FrozenClock
from trailkeeper.monitoring.alarms import AlarmConfig
from trailkeeper.monitoring.cis import ALARM_DEFAULTS, find_control
from trailkeeper.monitoring.cloudwatch import CloudWatch
from trailkeeper.monitoring.cloudwatch_store import MemoryCloudWatchRepository
from trailkeeper.monitoring.loggroups import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    LogGroups,
    LogsError,
    RetentionPurge,
    Transformation,
)
from trailkeeper.monitoring.loggroups_store import EventQuery, MemoryLogGroupRepository, NewEvent
from trailkeeper.monitoring.metricfilters import MetricSink
from trailkeeper.monitoring.metrics import Datum, MetricKey

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(T0.timestamp() * 1000)
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
COUNT = Transformation("Logins", "Trail", "1")


def _logs(clock: FrozenClock | None = None) -> LogGroups:
    logs = LogGroups(MemoryLogGroupRepository(), clock or FrozenClock(T0), "123456789012", "eu-west-1")
    logs.create_group("g")
    logs.create_stream("g", "s")
    return logs


def _code(call: Any) -> str:
    with pytest.raises(LogsError) as caught:
        call()
    return caught.value.code


# ---- groups and streams --------------------------------------------------------------------
def test_a_group_is_described_with_its_arn_filters_and_bytes() -> None:
    logs = _logs()
    logs.set_retention("g", 30)
    logs.put_events("g", "s", [NewEvent(NOW_MS, "hello")])
    logs.put_metric_filter("g", "f", "hello", [COUNT])
    [group], token = logs.describe_groups()
    assert token is None
    assert group.arn == "arn:aws:logs:eu-west-1:123456789012:log-group:g:*"
    assert (group.record.retention_days, group.stored_bytes, group.metric_filter_count) == (30, 5 + 26, 1)


@pytest.mark.parametrize("name", ["", "a" * 513, "with space", "colon:name", "star*"])
def test_a_malformed_group_name_is_refused(name: str) -> None:
    assert _code(lambda: _logs().create_group(name)) == "InvalidParameterException"


def test_a_group_is_created_once() -> None:
    assert _code(lambda: _logs().create_group("g")) == "ResourceAlreadyExistsException"


def test_deleting_a_missing_group_is_not_found() -> None:
    assert _code(lambda: _logs().delete_group("nope")) == "ResourceNotFoundException"


def test_groups_page_with_a_token() -> None:
    logs = _logs()
    for name in ("g1", "g2", "h"):
        logs.create_group(name)
    first, token = logs.describe_groups("g", limit=2)
    second, last = logs.describe_groups("g", limit=2, token=token)
    assert [g.record.name for g in first + second] == ["g", "g1", "g2"] and last is None


@pytest.mark.parametrize("limit", [0, 51])
def test_a_limit_out_of_range_is_refused(limit: int) -> None:
    assert _code(lambda: _logs().describe_groups(limit=limit)) == "InvalidParameterException"


def test_a_retention_aws_does_not_offer_is_refused() -> None:
    assert _code(lambda: _logs().set_retention("g", 2)) == "InvalidParameterException"


def test_tags_merge_and_untag() -> None:
    logs = _logs()
    logs.tag("g", {"a": "1"})
    logs.tag("g", {"b": "2"})
    logs.untag("g", ["a"])
    assert logs.tags("g") == {"b": "2"}


def test_more_than_50_tags_are_refused() -> None:
    assert _code(lambda: _logs().tag("g", {f"k{i}": "v" for i in range(51)})) == "InvalidParameterException"


def test_a_foreign_arn_is_refused() -> None:
    assert _code(lambda: _logs().group_of_arn("arn:aws:logs:us-east-1:1:log-group:g")) == "InvalidParameterException"


def test_a_stream_needs_its_group_and_is_created_once() -> None:
    logs = _logs()
    assert _code(lambda: logs.create_stream("nope", "s")) == "ResourceNotFoundException"
    assert _code(lambda: logs.create_stream("g", "s")) == "ResourceAlreadyExistsException"
    assert _code(lambda: logs.create_stream("g", "a:b")) == "InvalidParameterException"


def test_streams_order_by_last_event_descending() -> None:
    logs = _logs()
    logs.create_stream("g", "t")
    logs.put_events("g", "t", [NewEvent(NOW_MS - 10, "x")])
    logs.put_events("g", "s", [NewEvent(NOW_MS, "y")])
    streams, _ = logs.describe_streams("g", by_last_event=True, descending=True)
    assert [s.name for s in streams] == ["s", "t"]


# ---- PutLogEvents ----------------------------------------------------------------------------
def test_events_too_new_too_old_and_expired_are_reported_and_left_out() -> None:
    logs = _logs()
    logs.set_retention("g", 1)
    old = logs.put_events("g", "s", [NewEvent(NOW_MS - DAY_MS - 60_000, "expired"), NewEvent(NOW_MS - HOUR_MS, "kept")])
    new = logs.put_events("g", "s", [NewEvent(NOW_MS, "kept too"), NewEvent(NOW_MS + 3 * HOUR_MS, "too new")])
    assert (old.stored, old.rejected.too_old_end, old.rejected.expired_end, old.rejected.too_new_start) == (
        1, 1, 1, None)
    assert (new.stored, new.rejected.too_old_end, new.rejected.too_new_start) == (1, None, 1)
    assert [e.message for e in logs.repo.events(EventQuery("g"))] == ["kept", "kept too"]


def test_events_older_than_14_days_are_too_old_without_retention() -> None:
    result = _logs().put_events("g", "s", [NewEvent(NOW_MS - 14 * DAY_MS - HOUR_MS, "x"),
                                           NewEvent(NOW_MS - 14 * DAY_MS + HOUR_MS, "y")])
    assert (result.stored, result.rejected.too_old_end, result.rejected.expired_end) == (1, 1, None)


def test_an_empty_batch_is_refused() -> None:
    assert _code(lambda: _logs().put_events("g", "s", [])) == "InvalidParameterException"


def test_more_than_10000_events_are_refused() -> None:
    events = [NewEvent(NOW_MS, "x")] * 10_001
    assert _code(lambda: _logs().put_events("g", "s", events)) == "InvalidParameterException"


def test_a_batch_over_1mib_counting_26_bytes_per_event_is_refused() -> None:
    size = MAX_BATCH_BYTES // 4 - 26
    fits = [NewEvent(NOW_MS, "x" * size)] * 4
    assert _logs().put_events("g", "s", fits).stored == 4
    assert _code(lambda: _logs().put_events("g", "s", [*fits, NewEvent(NOW_MS, "")])) == "InvalidParameterException"


def test_an_event_over_256kib_is_refused() -> None:
    event = NewEvent(NOW_MS, "é" * ((MAX_EVENT_BYTES - 26) // 2 + 1))
    assert _code(lambda: _logs().put_events("g", "s", [event])) == "InvalidParameterException"


def test_events_out_of_order_are_refused() -> None:
    events = [NewEvent(NOW_MS, "b"), NewEvent(NOW_MS - 1, "a")]
    assert _code(lambda: _logs().put_events("g", "s", events)) == "InvalidParameterException"


def test_a_batch_spanning_more_than_24_hours_is_refused() -> None:
    events = [NewEvent(NOW_MS - DAY_MS - 1, "a"), NewEvent(NOW_MS, "b")]
    assert _code(lambda: _logs().put_events("g", "s", events)) == "InvalidParameterException"


def test_a_missing_stream_is_not_found() -> None:
    assert _code(lambda: _logs().put_events("g", "nope", [NewEvent(NOW_MS, "x")])) == "ResourceNotFoundException"


def test_a_resent_dedup_key_stores_nothing_twice() -> None:
    logs = _logs()
    batch = [NewEvent(NOW_MS, "a", "event-1"), NewEvent(NOW_MS, "b", "event-2")]
    assert logs.put_events("g", "s", batch).stored == 2
    assert logs.put_events("g", "s", batch).stored == 0


_refusing = st.sampled_from(["order", "span", "bytes", "count"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, HOUR_MS), min_size=1, max_size=20), _refusing)
def test_a_refused_batch_stores_nothing(offsets: list[int], fault: str) -> None:
    logs = _logs()
    events = [NewEvent(NOW_MS - HOUR_MS + o, f"m{i}") for i, o in enumerate(sorted(offsets))]
    if fault == "order":
        events.append(NewEvent(events[-1].timestamp_ms - 1, "late"))
    elif fault == "span":
        events.insert(0, NewEvent(events[0].timestamp_ms - DAY_MS - 1, "early"))
    elif fault == "bytes":
        events.append(NewEvent(events[-1].timestamp_ms, "x" * (MAX_EVENT_BYTES - 26)))
        events.extend([NewEvent(events[-1].timestamp_ms, "x" * (MAX_EVENT_BYTES - 26))] * 4)
    else:
        events.extend([events[-1]] * 10_000)
    with pytest.raises(LogsError):
        logs.put_events("g", "s", events)
    assert logs.repo.events(EventQuery("g")) == []


# ---- reading events ---------------------------------------------------------------------------
def test_get_events_pages_forward_and_back() -> None:
    logs = _logs()
    logs.put_events("g", "s", [NewEvent(NOW_MS + i, f"m{i}") for i in range(5)])
    latest = logs.get_events("g", "s", limit=2)
    assert [e.message for e in latest.events] == ["m3", "m4"]
    earlier = logs.get_events("g", "s", limit=2, token=latest.backward)
    assert [e.message for e in earlier.events] == ["m1", "m2"]
    head = logs.get_events("g", "s", from_head=True, limit=3)
    rest = logs.get_events("g", "s", limit=3, token=head.forward)
    assert [e.message for e in head.events + rest.events] == [f"m{i}" for i in range(5)]
    end = logs.get_events("g", "s", limit=3, token=rest.forward)
    assert end.events == [] and end.forward == rest.forward  # the same token: nothing newer


def test_get_events_honours_start_and_end_time() -> None:
    logs = _logs()
    logs.put_events("g", "s", [NewEvent(NOW_MS + i, f"m{i}") for i in range(5)])
    page = logs.get_events("g", "s", start_ms=NOW_MS + 1, end_ms=NOW_MS + 3, from_head=True)
    assert [e.message for e in page.events] == ["m1", "m2"]


def test_a_forged_token_is_refused() -> None:
    assert _code(lambda: _logs().get_events("g", "s", token="nonsense")) == "InvalidParameterException"


def test_filter_events_matches_the_pattern_across_streams_and_pages() -> None:
    logs = _logs()
    logs.create_stream("g", "t")
    logs.put_events("g", "s", [NewEvent(NOW_MS, '{"eventName": "ConsoleLogin"}'), NewEvent(NOW_MS + 1, "{}")])
    logs.put_events("g", "t", [NewEvent(NOW_MS + 2, '{"eventName": "ConsoleLogin"}')])
    first = logs.filter_events("g", '{ $.eventName = "ConsoleLogin" }', limit=1)
    second = logs.filter_events("g", '{ $.eventName = "ConsoleLogin" }', limit=1, token=first.next_token)
    assert [(e.stream, e.timestamp_ms) for e in first.events + second.events] == [("s", NOW_MS), ("t", NOW_MS + 2)]
    only_t = logs.filter_events("g", "ConsoleLogin", stream_prefix="t")
    assert [e.stream for e in only_t.events] == ["t"] and only_t.next_token is None


def test_a_malformed_filter_pattern_names_its_position() -> None:
    with pytest.raises(LogsError, match="at character") as caught:
        _logs().filter_events("g", "{ $.a = }")
    assert caught.value.code == "InvalidParameterException"


def test_stream_names_and_prefix_together_are_refused() -> None:
    assert _code(lambda: _logs().filter_events("g", "", ["s"], "s")) == "InvalidParameterException"


def test_purge_expired_removes_what_retention_no_longer_keeps() -> None:
    clock = FrozenClock(T0)
    logs = _logs(clock)
    logs.create_group("forever")
    logs.create_stream("forever", "s")
    logs.set_retention("g", 1)
    logs.put_events("g", "s", [NewEvent(NOW_MS - HOUR_MS, "old"), NewEvent(NOW_MS, "new")])
    logs.put_events("forever", "s", [NewEvent(NOW_MS - HOUR_MS, "kept")])
    clock.advance(timedelta(days=1) - timedelta(minutes=30))
    assert logs.purge_expired() == [("g", 1)]
    assert [e.message for e in logs.repo.events(EventQuery("g"))] == ["new"]
    assert logs.purge_expired() == []


def test_the_purge_task_reports_each_purge_and_waits_between_rounds() -> None:
    clock = FrozenClock(T0)
    logs = _logs(clock)
    logs.set_retention("g", 1)
    logs.put_events("g", "s", [NewEvent(NOW_MS - HOUR_MS, "old")])
    reports: list[tuple[str, dict[str, Any]]] = []
    task = RetentionPurge(lambda: logs, lambda name, details: reports.append((name, details)), clock)
    clock.advance(timedelta(days=1))
    task()
    logs.put_events("g", "s", [NewEvent(NOW_MS + 30_000, "later")])
    clock.advance(timedelta(minutes=1))
    task()  # "later" has expired, but the last round was a minute ago
    assert len(reports) == 1
    clock.advance(timedelta(minutes=4))
    task()
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:g"
    assert reports == [("PurgeLogEvents", {"logGroupName": "g", "logGroupArn": arn, "removedEvents": n}) for n in (1, 1)]


# ---- metric filters ---------------------------------------------------------------------------
def test_a_metric_filter_is_described_and_deleted() -> None:
    logs = _logs()
    selector = Transformation("Latency", "App", "$.latency", dimensions={"Op": "$.op"})
    logs.put_metric_filter("g", "lat", "{ $.latency > 0 }", [selector])
    logs.put_metric_filter("g", "count", "ERROR", [COUNT])
    found, _ = logs.describe_metric_filters(metric=("Latency", "App"))
    assert [f.name for f in found] == ["lat"]
    assert found[0].transformations == [{"metricName": "Latency", "metricNamespace": "App", "metricValue": "$.latency",
                                         "dimensions": {"Op": "$.op"}}]
    logs.delete_metric_filter("g", "lat")
    assert _code(lambda: logs.delete_metric_filter("g", "lat")) == "ResourceNotFoundException"


def test_a_metric_filter_needs_exactly_one_transformation() -> None:
    assert _code(lambda: _logs().put_metric_filter("g", "f", "x", [COUNT, COUNT])) == "InvalidParameterException"


def test_a_selector_value_on_a_term_pattern_is_refused() -> None:
    bad = Transformation("m", "n", "$.latency")
    assert _code(lambda: _logs().put_metric_filter("g", "f", "ERROR", [bad])) == "InvalidParameterException"


def test_dimensions_on_a_term_pattern_are_refused() -> None:
    bad = Transformation("m", "n", "1", dimensions={"a": "$.a"})
    assert _code(lambda: _logs().put_metric_filter("g", "f", "ERROR", [bad])) == "InvalidParameterException"


def test_more_than_3_dimensions_are_refused() -> None:
    bad = Transformation("m", "n", "1", dimensions={k: f"$.{k}" for k in "abcd"})
    assert _code(lambda: _logs().put_metric_filter("g", "f", "{ $.a = 1 }", [bad])) == "InvalidParameterException"


def test_dimensions_with_a_default_value_are_refused() -> None:
    bad = Transformation("m", "n", "1", default=0.0, dimensions={"a": "$.a"})
    assert _code(lambda: _logs().put_metric_filter("g", "f", "{ $.a = 1 }", [bad])) == "InvalidParameterException"


def test_the_101st_filter_of_a_group_is_refused() -> None:
    logs = _logs()
    for i in range(100):
        logs.put_metric_filter("g", f"f{i}", "ERROR", [COUNT])
    logs.put_metric_filter("g", "f0", "WARN", [COUNT])  # replacing one is not one more
    assert _code(lambda: logs.put_metric_filter("g", "f100", "ERROR", [COUNT])) == "LimitExceededException"


def test_the_sixth_regex_pattern_of_a_group_is_refused() -> None:
    logs = _logs()
    for i in range(5):
        logs.put_metric_filter("g", f"r{i}", "%err[0-9]%", [COUNT])
    logs.put_metric_filter("g", "plain", "ERROR", [COUNT])
    assert _code(lambda: logs.put_metric_filter("g", "r5", "%err%", [COUNT])) == "LimitExceededException"


def test_test_metric_filter_answers_matches_with_extracted_values() -> None:
    matches = _logs().test_metric_filter("[ip, user, status = 4*]", ["1.2.3.4 bob 200", "5.6.7.8 eve 403"])
    assert [(m.number, m.extracted) for m in matches] == [(2, {"$ip": "5.6.7.8", "$user": "eve", "$status": "403"})]


def test_more_than_50_test_messages_are_refused() -> None:
    assert _code(lambda: _logs().test_metric_filter("x", ["x"] * 51)) == "InvalidParameterException"


# ---- through the App ----------------------------------------------------------------------------
def _call(app: App, pipeline: Any, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    creds = pipeline.creds
    status, answer = call_app(app, creds.region, creds.access_key_id, creds.secret_access_key, "logs", "/",
                              orjson.dumps(body), {"Content-Type": "application/x-amz-json-1.1",
                                                   "X-Amz-Target": f"Logs_20140328.{operation}"})
    return status, answer


def _last_record(pipeline: Any) -> dict[str, Any]:
    spool = pipeline.service.spool
    [(_, body)] = spool.read(spool.next_seq() - 1, 1, 1 << 20)
    record: dict[str, Any] = orjson.loads(body)
    return record


def test_reads_of_events_are_audited_without_the_events(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=1)
        now = int(pipeline.clock.now().timestamp() * 1000)
        assert _call(app, pipeline, "CreateLogGroup", {"logGroupName": "g"})[0] == 200
        assert _call(app, pipeline, "CreateLogStream", {"logGroupName": "g", "logStreamName": "s"})[0] == 200
        _call(app, pipeline, "PutLogEvents", {"logGroupName": "g", "logStreamName": "s",
                                              "logEvents": [{"timestamp": now, "message": '{"pw": "hunter2"}'}]})
        for operation, body in (("GetLogEvents", {"logGroupName": "g", "logStreamName": "s"}),
                                ("FilterLogEvents", {"logGroupName": "g", "filterPattern": '{ $.pw = "hunter*" }'})):
            status, answer = _call(app, pipeline, operation, body)
            assert status == 200 and answer["events"][0]["message"] == '{"pw": "hunter2"}'
            record = _last_record(pipeline)
            assert (record["eventName"], record["eventSource"], record["readOnly"]) == (
                operation, "logs.amazonaws.com", True)
            assert record["responseElements"] is None and "hunter2" not in orjson.dumps(record).decode()
        status, answer = _call(app, pipeline, "CreateLogGroup", {"logGroupName": "g"})
        assert (status, answer["__type"]) == (400, "ResourceAlreadyExistsException")
        status, answer = _call(app, pipeline, "PutLogEvents", {
            "logGroupName": "g", "logStreamName": "s", "logEvents": [{"timestamp": now + 3 * HOUR_MS, "message": "x"}]})
        assert (status, answer) == (200, {"rejectedLogEventsInfo": {"tooNewLogEventStartIndex": 0}})
        status, answer = _call(app, pipeline, "FilterLogEvents", {"logGroupName": "g", "filterPattern": "{ $.a = "})
        assert (status, answer["__type"]) == (400, "InvalidParameterException") and "at character" in answer["message"]
        app.pool.shutdown()


def test_the_service_purges_in_maintenance_and_records_it(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as pipeline:
        logs = pipeline.service.runtime.log_groups
        logs.create_group("g")
        logs.create_stream("g", "s")
        logs.set_retention("g", 1)
        logs.put_events("g", "s", [NewEvent(int(pipeline.clock.now().timestamp() * 1000) - HOUR_MS, "old")])
        pipeline.clock.advance(timedelta(days=1))
        [purge] = [task for task in pipeline.service._periodic if isinstance(task, RetentionPurge)]
        purge()
        record = _last_record(pipeline)
        assert record["eventName"] == "PurgeLogEvents"
        assert record["serviceEventDetails"]["logGroupName"] == "g"
        assert record["serviceEventDetails"]["removedEvents"] == 1


# ---- metric filters feeding a metric sink -----------------------------------------------------
class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[list[Datum]] = []

    def put_metric_data(self, data: Sequence[Datum]) -> None:
        if self.fail:
            raise OSError("metrics store unavailable")
        self.calls.append(list(data))


def _logs_with(sink: MetricSink) -> LogGroups:
    logs = LogGroups(MemoryLogGroupRepository(), FrozenClock(T0), "123456789012", "eu-west-1", metrics=sink)
    logs.create_group("g")
    logs.create_stream("g", "s")
    return logs


def test_stored_events_matching_a_filter_reach_the_sink() -> None:
    sink = RecordingSink()
    logs = _logs_with(sink)
    logs.put_metric_filter("g", "errors", "ERROR", [Transformation("Errors", "App", "1")])
    logs.put_events("g", "s", [NewEvent(NOW_MS, "ERROR 1", "k1"), NewEvent(NOW_MS + 1, "ok", "k2"),
                               NewEvent(NOW_MS + 2, '{"eventID": "ct-9", "msg": "ERROR"}')])
    [call] = sink.calls
    assert [(d.metric, d.stats.sum, d.stats.event_ids) for d in call] == [
        (MetricKey.of("App", "Errors"), 1.0, ("k1",)), (MetricKey.of("App", "Errors"), 1.0, ("ct-9",))]
    logs.put_events("g", "s", [NewEvent(NOW_MS + 3, "fine")])
    assert len(sink.calls) == 1  # no datum, no call


def test_a_resent_batch_is_not_counted_twice() -> None:
    sink = RecordingSink()
    logs = _logs_with(sink)
    logs.put_metric_filter("g", "errors", "ERROR", [Transformation("Errors", "App", "1")])
    batch = [NewEvent(NOW_MS, "ERROR a", "k1"), NewEvent(NOW_MS + 1, "ERROR b", "k2")]
    logs.put_events("g", "s", batch)
    assert logs.put_events("g", "s", batch).stored == 0
    logs.put_events("g", "s", [NewEvent(NOW_MS + 2, "ERROR c", "k3"), NewEvent(NOW_MS + 3, "ERROR c", "k3")])
    assert [[d.stats.event_ids for d in call] for call in sink.calls] == [[("k1",), ("k2",)], [("k3",)]]


def test_a_failing_sink_loses_datapoints_not_events() -> None:
    logs = _logs_with(RecordingSink(fail=True))
    logs.put_metric_filter("g", "errors", "ERROR", [Transformation("Errors", "App", "1")])
    result = logs.put_events("g", "s", [NewEvent(NOW_MS, "ERROR")])
    assert result.stored == 1 and logs.metric_failures == 1
    assert [e.message for e in logs.get_events("g", "s").events] == ["ERROR"]


def test_a_put_log_events_matching_a_cis_filter_sets_its_alarm_off() -> None:
    cloudwatch = CloudWatch(MemoryCloudWatchRepository(), FrozenClock(T0), "123456789012", "eu-west-1")
    logs = _logs_with(cloudwatch)
    control = find_control("4.5")
    metric = MetricKey.of(ALARM_DEFAULTS.namespace, control.metric_name)
    cloudwatch.put_alarm(AlarmConfig(control.filter_name, metric, ALARM_DEFAULTS.period, 1, 1.0,
                                     "GreaterThanOrEqualToThreshold", "Sum"))
    logs.put_metric_filter("g", control.filter_name, control.pattern,
                           [Transformation(control.metric_name, ALARM_DEFAULTS.namespace, "1")])
    sample = SHARED / "data" / "cloudtrail-samples" / "stratus-red-team" / "aws.defense-evasion.cloudtrail-stop.json"
    record = orjson.loads(sample.read_bytes())[0]
    logs.put_events("g", "s", [NewEvent(NOW_MS, orjson.dumps(record).decode(), record["eventID"])])
    assert cloudwatch.alarm(control.filter_name).state == "ALARM"
    [item] = [h for h in cloudwatch.history(control.filter_name) if h.item_type == "StateUpdate"]
    assert item.event_ids == (record["eventID"],)


def test_filter_events_answers_within_its_budget_and_the_token_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A search that runs out of time answers with what it found and a token, as CloudWatch
    Logs may; following the tokens finds every match, once."""
    from trailkeeper.monitoring import loggroups

    logs = _logs()
    messages = [NewEvent(NOW_MS + i, f'{{"n": {i}, "errorCode": "{"AccessDenied" if i % 700 == 0 else "x"}"}}')
                for i in range(5000)]
    logs.put_events("g", "s", messages)
    monkeypatch.setattr(loggroups, "FILTER_SCAN_BUDGET_S", 0.0)  # every scan batch is over budget
    pattern = '{ $.errorCode = "Access*" }'
    found, token, pages = [], None, 0
    while True:
        page = logs.filter_events("g", pattern, token=token)
        found += [e.timestamp_ms - NOW_MS for e in page.events]
        pages, token = pages + 1, page.next_token
        if token is None:
            break
    assert found == list(range(0, 5000, 700))
    assert pages == 6  # 1,000 events searched per page, then one that finds the end
