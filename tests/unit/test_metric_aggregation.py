"""Metric aggregation: GetMetricStatistics known answers, alignment, event-ID evidence, refusals."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.monitoring.metrics import (
    MAX_EVENT_IDS,
    MetricAggregator,
    MetricError,
    MetricKey,
    StatisticSet,
    aggregate,
)

ALL = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"]
METRIC = MetricKey.of("CloudTrailMetrics", "ConsoleSigninFailureCount")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stats_dicts(
    metrics: MetricAggregator, start: float, end: float, period: int, metric: MetricKey = METRIC
) -> list[dict[str, object]]:
    return [
        {k: v for k, v in d.to_dict().items() if k not in {"EventIds", "DroppedEventIds"}}
        for d in metrics.statistics(metric, at(start), at(end), period, ALL)
    ]


def test_statistics_known_answer() -> None:
    metrics = MetricAggregator()
    for second, value in [(1, 1.0), (14, 2.0), (30, 3.0), (59, 4.0), (61, 10.0)]:
        metrics.add(METRIC, at(second), value)
    assert stats_dicts(metrics, 0, 120, 60) == [
        {
            "Timestamp": at(0),
            "SampleCount": 4.0,
            "Average": 2.5,
            "Sum": 10.0,
            "Minimum": 1.0,
            "Maximum": 4.0,
        },
        {
            "Timestamp": at(60),
            "SampleCount": 1.0,
            "Average": 10.0,
            "Sum": 10.0,
            "Minimum": 10.0,
            "Maximum": 10.0,
        },
    ]


def test_only_requested_statistics_are_returned() -> None:
    metrics = MetricAggregator()
    metrics.add(METRIC, at(5), 2.0)
    (point,) = metrics.statistics(METRIC, at(0), at(60), 60, ["Sum", "Maximum"])
    assert set(point.to_dict()) == {"Timestamp", "Sum", "Maximum", "EventIds", "DroppedEventIds"}


@pytest.mark.parametrize(
    ("period", "starts"),
    [
        pytest.param(10, [0, 10, 50, 60], id="10 s: each 10-second slot"),
        pytest.param(20, [0, 40, 60], id="20 s"),
        pytest.param(30, [0, 30, 60], id="30 s"),
        pytest.param(60, [0, 60], id="60 s: 59.9 s is still the first minute"),
        pytest.param(300, [0], id="300 s: one period"),
    ],
)
def test_periods_are_aligned_to_the_epoch(period: int, starts: list[int]) -> None:
    metrics = MetricAggregator()
    for second in (0, 9.9, 15, 59.9, 60):
        metrics.add(METRIC, at(second), 1.0)
    got = [p.timestamp for p in metrics.statistics(METRIC, at(0), at(300), period, ["SampleCount"])]
    assert got == [at(s) for s in starts]


def test_start_inside_a_period_includes_that_whole_period_and_end_is_exclusive() -> None:
    metrics = MetricAggregator()
    for second in (10, 290, 300, 600):
        metrics.add(METRIC, at(second), 1.0)
    points = metrics.statistics(METRIC, at(150), at(600), 300, ["SampleCount"])
    # [12:00, 12:05) contains 150 s so it is whole (10 s and 290 s); 12:10 starts at `end`: excluded.
    assert [(p.timestamp, p.stats.sample_count) for p in points] == [(at(0), 2), (at(300), 1)]


def test_periods_without_data_are_not_returned() -> None:
    metrics = MetricAggregator()
    metrics.add(METRIC, at(0), 1.0)
    metrics.add(METRIC, at(600), 1.0)
    assert [p.timestamp for p in metrics.statistics(METRIC, at(0), at(900), 60, ["Sum"])] == [
        at(0),
        at(600),
    ]


def test_event_ids_follow_their_datapoint() -> None:
    metrics = MetricAggregator()
    metrics.add(METRIC, at(70), 1.0, event_id="late")
    metrics.add(METRIC, at(5), 1.0, event_id="first")
    metrics.add(METRIC, at(6), 1.0)  # a value without an event ID (e.g. defaultValue)
    metrics.add(METRIC, at(45), 1.0, event_id="second")
    points = metrics.statistics(METRIC, at(0), at(120), 60, ["Sum"])
    assert [p.stats.event_ids for p in points] == [("first", "second"), ("late",)]
    assert points[0].to_dict()["EventIds"] == ["first", "second"]


def test_event_ids_are_bounded_and_the_rest_counted() -> None:
    metrics = MetricAggregator()
    for i in range(MAX_EVENT_IDS + 50):
        metrics.add(METRIC, at(i % 300), 1.0, event_id=f"ev-{i:03d}")
    (point,) = metrics.statistics(METRIC, at(0), at(300), 300, ["SampleCount"])
    assert point.stats.sample_count == MAX_EVENT_IDS + 50
    assert len(point.stats.event_ids) == MAX_EVENT_IDS and point.stats.dropped_event_ids == 50
    # Buckets merge oldest first, so the earliest events are the ones kept as evidence.
    assert point.stats.event_ids[0] == "ev-000" and "ev-149" not in point.stats.event_ids


def test_dimensions_keep_series_apart_and_their_order_does_not_matter() -> None:
    alice = MetricKey.of("CloudTrailMetrics", "Calls", {"user": "alice", "region": "eu-west-1"})
    same = MetricKey.of("CloudTrailMetrics", "Calls", [("region", "eu-west-1"), ("user", "alice")])
    bob = MetricKey.of("CloudTrailMetrics", "Calls", {"user": "bob", "region": "eu-west-1"})
    bare = MetricKey.of("CloudTrailMetrics", "Calls")
    metrics = MetricAggregator()
    metrics.add(alice, at(1), 1.0)
    metrics.add(same, at(2), 2.0)
    metrics.add(bob, at(3), 40.0)
    assert alice == same and alice.dimensions == (("region", "eu-west-1"), ("user", "alice"))
    assert [p.stats.sum for p in metrics.statistics(alice, at(0), at(60), 60, ["Sum"])] == [3.0]
    assert [p.stats.sum for p in metrics.statistics(bob, at(0), at(60), 60, ["Sum"])] == [40.0]
    assert metrics.statistics(bare, at(0), at(60), 60, ["Sum"]) == []


def test_series_gives_alarm_input() -> None:
    metrics = MetricAggregator()
    metrics.add(METRIC, at(10), 2.0)
    metrics.add(METRIC, at(20), 4.0)
    assert metrics.series(METRIC, at(0), at(60), 60, "Average") == {at(0): 3.0}


def test_rows_round_trip() -> None:
    metrics = MetricAggregator()
    for i in range(30):
        metrics.add(METRIC, at(i * 7), float(i), event_id=f"e{i}")
    copy = MetricAggregator()
    copy.load(metrics.rows())
    assert copy.statistics(METRIC, at(0), at(600), 60, ALL) == metrics.statistics(
        METRIC, at(0), at(600), 60, ALL
    )
    row = next(iter(metrics.rows()))
    assert StatisticSet.from_dict(row.stats.to_dict()) == row.stats
    assert MetricKey.from_dict(row.metric.to_dict()) == row.metric


def test_prune_forgets_old_buckets() -> None:
    metrics = MetricAggregator()
    metrics.add(METRIC, at(0), 1.0)
    metrics.add(METRIC, at(120), 1.0)
    assert metrics.prune(at(60)) == 1
    assert [p.timestamp for p in metrics.statistics(METRIC, at(0), at(300), 60, ["Sum"])] == [
        at(120)
    ]
    assert metrics.prune(at(600)) == 1 and metrics.metrics() == []


# --- refusals ------------------------------------------------------------------------------------

REFUSALS = [
    (
        "period 45",
        dict(period=45),
        "InvalidParameterValue",
        "Period must be 10, 20, 30 or a multiple of 60",
    ),
    ("period 5", dict(period=5), "InvalidParameterValue", "Period"),
    (
        "start after end",
        dict(start=at(60), end=at(0)),
        "InvalidParameterValue",
        "StartTime must be less than",
    ),
    (
        "start equals end",
        dict(start=at(0), end=at(0)),
        "InvalidParameterValue",
        "StartTime must be less than",
    ),
    ("no statistics", dict(statistics=[]), "MissingParameter", "Statistics is required"),
    (
        "unknown statistic",
        dict(statistics=["Median"]),
        "InvalidParameterValue",
        "Unknown statistic 'Median'",
    ),
    (
        "percentile",
        dict(statistics=["p90"]),
        "InvalidParameterValue",
        "Extended statistic 'p90' is not supported",
    ),
    (
        "trimmed mean",
        dict(statistics=["tm90"]),
        "InvalidParameterValue",
        "Extended statistic 'tm90'",
    ),
    (
        "six statistics",
        dict(statistics=[*ALL, "Sum"]),
        "InvalidParameterValue",
        "At most 5 statistics",
    ),
    (
        "1441 datapoints",
        dict(end=at(60 * 1441)),
        "InvalidParameterCombination",
        "up to 1441 datapoints",
    ),
    ("naive start", dict(start=datetime(2026, 3, 1)), "InvalidParameterValue", "no time zone"),
]


@pytest.mark.parametrize(
    ("changes", "code", "message"), [pytest.param(c, k, m, id=i) for i, c, k, m in REFUSALS]
)
def test_statistics_refuses(changes: dict[str, object], code: str, message: str) -> None:
    request: dict[str, object] = {
        "metric": METRIC,
        "start": at(0),
        "end": at(600),
        "period": 60,
        "statistics": ["Sum"],
    }
    request.update(changes)
    with pytest.raises(MetricError, match=message) as caught:
        MetricAggregator().statistics(**request)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_exactly_1440_datapoints_is_allowed() -> None:
    assert MetricAggregator().statistics(METRIC, at(0), at(60 * 1440), 60, ["Sum"]) == []


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_add_refuses_non_finite_values(value: float) -> None:
    with pytest.raises(MetricError, match="not a finite number"):
        MetricAggregator().add(METRIC, at(0), value)


def test_add_refuses_naive_timestamps() -> None:
    with pytest.raises(MetricError, match="no time zone"):
        MetricAggregator().add(METRIC, datetime(2026, 3, 1, 12), 1.0)


@pytest.mark.parametrize(
    ("namespace", "name", "dimensions", "message"),
    [
        pytest.param("", "m", {}, "Namespace must be 1 to 255", id="empty namespace"),
        pytest.param(":ns", "m", {}, "must not start with ':'", id="namespace starting with colon"),
        pytest.param("ns", "m" * 256, {}, "MetricName must be 1 to 255", id="long metric name"),
        pytest.param(
            "ns",
            "m",
            [("a", "1"), ("a", "2")],
            "Dimension names must be unique",
            id="duplicate dimension",
        ),
        pytest.param(
            "ns",
            "m",
            {f"d{i}": "v" for i in range(31)},
            "at most 30 dimensions",
            id="31 dimensions",
        ),
        pytest.param("ns", "m", {"d": ""}, "value of dimension 'd'", id="empty dimension value"),
    ],
)
def test_metric_key_refuses(namespace: str, name: str, dimensions: object, message: str) -> None:
    with pytest.raises(MetricError, match=message) as caught:
        MetricKey.of(namespace, name, dimensions)  # type: ignore[arg-type]
    assert caught.value.code == "InvalidParameterValue"


# --- property: order and split do not change the statistics --------------------------------------

EVENTS = st.lists(
    st.tuples(st.integers(0, 599), st.integers(-1000, 1000).map(lambda v: v / 4)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(events=EVENTS, order=st.randoms(use_true_random=False), cut=st.integers(0, 60))
def test_any_order_and_split_gives_the_direct_statistics(
    events: list[tuple[int, float]], order: random.Random, cut: int
) -> None:
    shuffled = list(events)
    order.shuffle(shuffled)
    metrics = MetricAggregator()
    for second, value in shuffled:
        metrics.add(METRIC, at(second), value)
    for period in (10, 60, 300):
        expected: dict[datetime, tuple[int, float, float, float]] = {}
        for start in sorted({s - s % period for s, _ in events}):
            values = [v for s, v in events if start <= s < start + period]
            expected[at(start)] = (len(values), sum(values), min(values), max(values))
        got = {
            p.timestamp: (p.stats.sample_count, p.stats.sum, p.stats.minimum, p.stats.maximum)
            for p in metrics.statistics(METRIC, at(0), at(600), period, ALL)
        }
        assert got == expected  # values are quarters: every sum is exact in binary floating point
    parts = [StatisticSet.single(v) for _, v in shuffled]
    left, right = aggregate(parts[:cut]), aggregate(parts[cut:])
    split = left.merge(right) if left and right else aggregate(parts)
    direct = [v for _, v in events]
    assert split is not None
    assert (split.sample_count, split.sum, split.minimum, split.maximum) == (
        len(direct),
        sum(direct),
        min(direct),
        max(direct),
    )
