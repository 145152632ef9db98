"""Metric filters applied to log events (monitoring.metricfilters): each AWS rule a named case,
a CIS filter over a real CloudTrail record (DataDog/stratus-red-team, Apache-2.0), the
defaultValue ledger, the per-group cache of LogGroups, and random messages."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.pipeline import SHARED

from trailkeeper.clock import FrozenClock
from trailkeeper.monitoring.cis import CONTROLS, find_control
from trailkeeper.monitoring.forwarding import log_message
from trailkeeper.monitoring.loggroups import LogGroups, Transformation
from trailkeeper.monitoring.loggroups_store import (
    MemoryLogGroupRepository,
    MetricFilterRecord,
    NewEvent,
)
from trailkeeper.monitoring.metricfilters import (
    CompiledFilters,
    LogEvent,
    MetricFilterError,
    compile_filter,
    compile_filters,
)
from trailkeeper.monitoring.metrics import Datum, MetricKey

STOP_LOGGING = SHARED / "data" / "cloudtrail-samples" / "stratus-red-team" / "aws.defense-evasion.cloudtrail-stop.json"
T0_MS = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000


def _record(pattern: str, value: str = "1", name: str = "f", **extra: Any) -> MetricFilterRecord:
    transformation: dict[str, object] = {"metricName": "M", "metricNamespace": "NS", "metricValue": value, **extra}
    return MetricFilterRecord("g", name, pattern, [transformation], False, 0)


def _events(*messages: str) -> list[LogEvent]:
    return [LogEvent(T0_MS + i, m, f"log-{i}") for i, m in enumerate(messages)]


def _seen(datums: list[Datum]) -> list[tuple[tuple[tuple[str, str], ...], float, tuple[str, ...]]]:
    return [(d.metric.dimensions, d.stats.sum, d.stats.event_ids) for d in datums]


# Each case: pattern, transformation extras, messages, and (dimensions, value, event IDs) per datum.
CASES = [
    pytest.param("ERROR", {}, ["an ERROR here", "all fine"], [((), 1.0, ("log-0",))],
                 id="numeric-metric-value"),
    pytest.param("{ $.latency = * }", {"value": "$.latency"}, ['{"latency": 42.5}', '{"latency": 7}', "x"],
                 [((), 42.5, ("log-0",)), ((), 7.0, ("log-1",))], id="json-selector-value"),
    pytest.param("[ip, user, status, bytes]", {"value": "$bytes"},
                 ["10.0.0.1 frank 200 1534", "10.0.0.2 ann 404 0", "too few fields"],
                 [((), 1534.0, ("log-0",)), ((), 0.0, ("log-1",))], id="space-delimited-named-value"),
    pytest.param("{ $.latency = * }", {"value": "$.latency"},
                 ['{"latency": "fast"}', '{"latency": true}', '{"latency": null}', '{"latency": [1]}',
                  '{"latency": 3}'],
                 [((), 3.0, ("log-4",))], id="non-numeric-json-value-skipped"),
    pytest.param("[ip, user, status, bytes]", {"value": "$bytes"}, ["10.0.0.1 frank 200 -", "10.0.0.1 a 200 12"],
                 [((), 12.0, ("log-1",))], id="non-numeric-space-value-skipped"),
    pytest.param("{ $.eventName = * }", {"dimensions": {"Event": "$.eventName", "Region": "$.awsRegion"}},
                 ['{"eventName": "StopLogging", "awsRegion": "eu-west-1"}', '{"eventName": "StopLogging"}',
                  '{"eventName": "StopLogging", "awsRegion": ""}', '{"eventName": "X", "awsRegion": 5}'],
                 [((("Event", "StopLogging"), ("Region", "eu-west-1")), 1.0, ("log-0",)),
                  ((("Event", "X"), ("Region", "5")), 1.0, ("log-3",))],
                 id="dimensions-present-or-missing"),
    pytest.param("[ip, user, status, bytes]", {"dimensions": {"Status": "$status"}},
                 ["10.0.0.1 frank 404 10", "10.0.0.1 frank 200 10"],
                 [((("Status", "404"),), 1.0, ("log-0",)), ((("Status", "200"),), 1.0, ("log-1",))],
                 id="space-delimited-dimension"),
    pytest.param("Stop", {}, ['{"eventID": "ct-1", "eventName": "StopLogging"}', "Stop here",
                              '{"eventID": 7, "eventName": "StopLogging"}', '  {"eventID": "ct-2", "x": "Stop"}'],
                 [((), 1.0, ("ct-1",)), ((), 1.0, ("log-1",)), ((), 1.0, ("log-2",)), ((), 1.0, ("ct-2",))],
                 id="event-id-from-cloudtrail-record-else-log-event"),
    pytest.param("ERROR", {"defaultValue": 0}, ["all fine"], [((), 0.0, ())], id="default-value-without-match"),
    pytest.param("ERROR", {"defaultValue": 0}, ["ERROR", "all fine"], [((), 1.0, ("log-0",))],
                 id="default-value-not-emitted-after-a-match"),
]


@pytest.mark.parametrize(("pattern", "extra", "messages", "expected"), CASES)
def test_a_batch_emits_the_datums_aws_would(pattern: str, extra: dict[str, Any], messages: list[str],
                                              expected: list[Any]) -> None:
    value = extra.pop("value", "1")
    compiled = compile_filters([_record(pattern, value, **extra)])
    assert _seen(compiled.apply(_events(*messages))) == expected


def test_a_datum_is_stamped_with_its_log_event_time() -> None:
    [datum] = compile_filters([_record("ERROR")]).apply([LogEvent(T0_MS + 1234, "ERROR", "e")])
    assert datum.timestamp == datetime(2026, 3, 1, 12, 0, 1, 234000, tzinfo=UTC)
    assert datum.metric == MetricKey.of("NS", "M")


def test_the_default_value_is_emitted_once_per_minute_without_a_datum() -> None:
    compiled = compile_filters([_record("ERROR", defaultValue=2.5)])
    first = compiled.apply([LogEvent(T0_MS, "fine", "a"), LogEvent(T0_MS + MINUTE, "ERROR", "b")])
    # Minute 0 had events but no match: its default, at the minute's start; minute 1 matched.
    assert [(d.stats.sum, d.stats.event_ids) for d in first] == [(1.0, ("b",)), (2.5, ())]
    assert first[1].timestamp == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # Later batches in minutes already covered (by a default or a match) add no second default.
    assert compiled.apply([LogEvent(T0_MS + 5, "fine", "c"), LogEvent(T0_MS + MINUTE + 5, "fine", "d")]) == []
    [late] = compiled.apply([LogEvent(T0_MS + 2 * MINUTE, "fine", "e")])
    assert late.stats.sum == 2.5


def test_without_a_default_value_a_batch_without_match_emits_nothing() -> None:
    assert compile_filters([_record("ERROR")]).apply(_events("fine", "also fine")) == []


def test_a_cis_filter_counts_a_real_cloudtrail_record_under_its_event_id() -> None:
    record = orjson.loads(STOP_LOGGING.read_bytes())[0]
    message = log_message(orjson.dumps(record))
    assert message is not None
    compiled = compile_filters([_record(c.pattern, name=c.filter_name, metricName=c.metric_name,
                                        metricNamespace="CISBenchmark") for c in CONTROLS])
    [datum] = compiled.apply([LogEvent(T0_MS, message, "log-1")])
    assert datum.metric == MetricKey.of("CISBenchmark", find_control("4.5").metric_name)
    assert (datum.stats.sum, datum.stats.event_ids) == (1.0, (record["eventID"],))


@pytest.mark.parametrize(("record", "why"), [
    pytest.param(_record("{ $.x = "), "cannot be applied", id="pattern-no-longer-parses"),
    pytest.param(_record("ERROR", "$.x"), "extracts no values", id="selector-on-a-term-pattern"),
    pytest.param(_record("[a, b]", "$c"), "not a field", id="unknown-space-field"),
    pytest.param(_record("ERROR", metricNamespace=":bad"), "must not start with ':'", id="bad-namespace"),
    pytest.param(MetricFilterRecord("g", "f", "ERROR", [], False, 0), "0 transformations",
                 id="no-transformation"),
])
def test_a_stored_filter_that_cannot_run_is_skipped_with_the_reason(record: MetricFilterRecord, why: str) -> None:
    with pytest.raises(MetricFilterError, match=why):
        compile_filter(record)
    compiled = compile_filters([record, _record("ERROR", name="ok")])
    assert [f.name for f in compiled.filters] == ["ok"] and compiled.skipped[0][0] == "f"


# ---- the per-group cache of LogGroups ------------------------------------------------------
class CountingRepository(MemoryLogGroupRepository):
    def __init__(self) -> None:
        super().__init__()
        self.filter_reads = 0

    def filters(self, group: str | None = None) -> list[MetricFilterRecord]:
        self.filter_reads += 1
        return super().filters(group)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[Datum]] = []

    def put_metric_data(self, data: Any) -> None:
        self.calls.append(list(data))


def test_filters_are_compiled_once_and_again_after_a_put_or_a_delete() -> None:
    repo, sink = CountingRepository(), Recorder()
    logs = LogGroups(repo, FrozenClock(datetime.fromtimestamp(T0_MS / 1000, UTC)), "123456789012", "eu-west-1",
                     metrics=sink)
    logs.create_group("g")
    logs.create_stream("g", "s")

    def send() -> set[str]:
        sink.calls.clear()
        logs.put_events("g", "s", [NewEvent(T0_MS, "ERROR WARN")])
        return {d.metric.name for call in sink.calls for d in call}

    logs.put_metric_filter("g", "errors", "ERROR", [Transformation("Errors", "App", "1")])
    reads = repo.filter_reads
    assert send() == {"Errors"} and send() == {"Errors"}
    assert repo.filter_reads == reads + 1  # the second batch used the cached compilation
    logs.put_metric_filter("g", "warnings", "WARN", [Transformation("Warnings", "App", "1")])
    assert send() == {"Errors", "Warnings"}
    logs.delete_metric_filter("g", "errors")
    assert send() == {"Warnings"}
    logs.delete_group("g")
    logs.create_group("g")
    logs.create_stream("g", "s")
    assert send() == set()


# ---- random input --------------------------------------------------------------------------
_FILTERS: CompiledFilters = compile_filters([
    _record("{ $.latency > 1 }", "$.latency", name="json-value"),
    _record("{ $.a = * }", name="json-dims", dimensions={"A": "$.a", "B": "$.b[0]"}),
    _record("[ip, user, status, bytes]", "$bytes", name="space-value", defaultValue=0),
    _record("[ip, ..., status]", name="space-dims", dimensions={"S": "$status"}),
    _record("ERROR -DEBUG", name="terms"),
    _record("%[0-9]{3}%", name="regex"),
    _record("", name="all", defaultValue=1),
])
_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-10**20, 10**20) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "latency", "eventID"]),
                                                               inner, max_size=4),
    max_leaves=10,
)
# json.dumps, not orjson: it writes integers beyond 64 bits and Infinity, edge cases to keep.
_MESSAGES = st.one_of(st.text(max_size=80), _JSON.map(json.dumps), st.just('{"latency": 1e400, "a": 1}'),
                      st.lists(st.sampled_from(["1.2.3.4", "ERROR", "-", "404", "12", '"a b"', "[x y]"]),
                               max_size=6).map(" ".join))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10 * MINUTE), _MESSAGES), min_size=1, max_size=8))
def test_random_messages_never_crash_the_applier(batch: list[tuple[int, str]]) -> None:
    events = [LogEvent(T0_MS + offset, message, f"id-{i}") for i, (offset, message) in enumerate(sorted(batch))]
    for datum in _FILTERS.apply(events):
        assert math.isfinite(datum.stats.sum) and datum.stats.sample_count == 1
        assert all(1 <= len(value) <= 1024 for _, value in datum.metric.dimensions)
