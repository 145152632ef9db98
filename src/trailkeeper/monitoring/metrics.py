"""CloudWatch-style metric aggregation, pure and in memory.

A metric is identified by a `MetricKey`: namespace, name and dimensions (a sorted tuple of
(name, value) pairs, so that the order a caller lists them in never splits a series).

Values land in 10-second buckets aligned to the Unix epoch. Every period CloudWatch accepts
(10, 20, 30 or a multiple of 60 seconds) is a multiple of 10, so the buckets compose into any
period exactly and no finer storage is needed. Each bucket is a `StatisticSet`: sample count,
sum, minimum, maximum and, as a trailkeeper addition, the IDs of the events that contributed
(at most `MAX_EVENT_IDS`; the rest are only counted, so a flood of events cannot exhaust memory).

`MetricAggregator.statistics` answers like GetMetricStatistics: periods aligned to the epoch,
the first being the one that contains `start`, the last the one that starts before `end`; only
periods with data are returned, oldest first. Percentile statistics are refused: they need the
raw values, which this module deliberately does not keep.

Everything here is plain data: a bucket is one row (period start, metric key, count, sum, min,
max, event IDs, dropped-ID count) via `MetricAggregator.rows()` / `load()`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from trailkeeper.errors import TrailkeeperError

STATISTICS: Final = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
HIGH_RESOLUTION_PERIODS: Final = (10, 20, 30)
BUCKET_SECONDS: Final = 10
MAX_EVENT_IDS: Final = 100
MAX_DATAPOINTS: Final = 1440  # GetMetricStatistics refuses to return more in one call
MAX_DIMENSIONS: Final = 30
MAX_NAME_LENGTH: Final = 255
MAX_DIMENSION_VALUE_LENGTH: Final = 1024


class MetricError(TrailkeeperError):
    """A metric request or metric data is invalid; `code` is the CloudWatch error code
    (InvalidParameterValue, InvalidParameterCombination, MissingParameter, ValidationError)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


def period_problem(period: int) -> str | None:
    """Why `period` is not a CloudWatch period, or None when it is one."""
    if period in HIGH_RESOLUTION_PERIODS or (period > 0 and period % 60 == 0):
        return None
    return f"Period must be 10, 20, 30 or a multiple of 60 seconds (got {period})."


def epoch_seconds(when: datetime) -> int:
    """Whole seconds since the epoch; refuses naive datetimes, whose zone would be a guess."""
    if when.tzinfo is None:
        raise MetricError(
            "InvalidParameterValue",
            f"Timestamp {when.isoformat()} has no time zone; pass a timezone-aware (UTC) datetime.",
        )
    return math.floor(when.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, order=True)
class MetricKey:
    """(namespace, name, dimensions); build it with `MetricKey.of` so dimensions are checked and sorted."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls,
        namespace: str,
        name: str,
        dimensions: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> MetricKey:
        pairs = list(dimensions.items()) if isinstance(dimensions, Mapping) else list(dimensions)
        _check_name("Namespace", namespace)
        if namespace.startswith(":"):
            raise MetricError(
                "InvalidParameterValue", f"Namespace {namespace!r} must not start with ':'."
            )
        _check_name("MetricName", name)
        _check_dimensions(pairs)
        return cls(namespace, name, tuple(sorted(pairs)))

    def to_dict(self) -> dict[str, Any]:
        dims = [{"Name": k, "Value": v} for k, v in self.dimensions]
        return {"Namespace": self.namespace, "MetricName": self.name, "Dimensions": dims}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricKey:
        dims = [(d["Name"], d["Value"]) for d in data.get("Dimensions", [])]
        return cls.of(data["Namespace"], data["MetricName"], dims)


def _check_name(parameter: str, value: str) -> None:
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise MetricError(
            "InvalidParameterValue",
            f"{parameter} must be 1 to {MAX_NAME_LENGTH} characters long (got {len(value)}).",
        )


def _check_dimensions(pairs: list[tuple[str, str]]) -> None:
    if len(pairs) > MAX_DIMENSIONS:
        raise MetricError(
            "InvalidParameterValue",
            f"A metric has at most {MAX_DIMENSIONS} dimensions (got {len(pairs)}).",
        )
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise MetricError(
            "InvalidParameterValue",
            f"Dimension names must be unique (got {sorted(names)}); give each dimension once.",
        )
    for name, value in pairs:
        _check_name("Dimension name", name)
        if not 1 <= len(value) <= MAX_DIMENSION_VALUE_LENGTH:
            raise MetricError(
                "InvalidParameterValue",
                f"The value of dimension {name!r} must be 1 to {MAX_DIMENSION_VALUE_LENGTH} characters long.",
            )


@dataclass(frozen=True)
class StatisticSet:
    """Aggregate of one or more values: what a bucket or a period holds."""

    sample_count: int
    sum: float
    minimum: float
    maximum: float
    event_ids: tuple[str, ...] = ()
    dropped_event_ids: int = 0

    @classmethod
    def single(cls, value: float, event_id: str | None = None) -> StatisticSet:
        return cls(1, value, value, value, (event_id,) if event_id is not None else ())

    def merge(self, other: StatisticSet) -> StatisticSet:
        """Combine two sets. Event IDs keep the first `MAX_EVENT_IDS` in merge order (the earliest
        evidence of a breach); the others are counted in `dropped_event_ids`."""
        ids = self.event_ids + other.event_ids
        kept = ids[:MAX_EVENT_IDS]
        dropped = self.dropped_event_ids + other.dropped_event_ids + len(ids) - len(kept)
        return StatisticSet(
            self.sample_count + other.sample_count,
            self.sum + other.sum,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
            kept,
            dropped,
        )

    @property
    def average(self) -> float:
        return self.sum / self.sample_count

    def value(self, statistic: str) -> float:
        """The named statistic (one of STATISTICS)."""
        values = {
            "SampleCount": float(self.sample_count),
            "Average": self.average,
            "Sum": self.sum,
            "Minimum": self.minimum,
            "Maximum": self.maximum,
        }
        return values[statistic]

    def to_dict(self) -> dict[str, Any]:
        return {
            "SampleCount": self.sample_count,
            "Sum": self.sum,
            "Minimum": self.minimum,
            "Maximum": self.maximum,
            "EventIds": list(self.event_ids),
            "DroppedEventIds": self.dropped_event_ids,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatisticSet:
        return cls(
            int(data["SampleCount"]),
            float(data["Sum"]),
            float(data["Minimum"]),
            float(data["Maximum"]),
            tuple(data.get("EventIds", ())),
            int(data.get("DroppedEventIds", 0)),
        )


def aggregate(sets: Iterable[StatisticSet]) -> StatisticSet | None:
    """Merge sets in the order given; None when there are none."""
    total: StatisticSet | None = None
    for item in sets:
        total = item if total is None else total.merge(item)
    return total


@dataclass(frozen=True)
class Datapoint:
    """One period of a GetMetricStatistics answer."""

    timestamp: datetime
    stats: StatisticSet
    statistics: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The API shape: Timestamp, the requested statistics, and the trailkeeper evidence fields."""
        out: dict[str, Any] = {"Timestamp": self.timestamp}
        out.update({name: self.stats.value(name) for name in self.statistics})
        out["EventIds"] = list(self.stats.event_ids)
        out["DroppedEventIds"] = self.stats.dropped_event_ids
        return out


@dataclass(frozen=True)
class Datum:
    """One value (or statistic set) of a metric at a time: a PutMetricData entry, or what a
    metric filter makes of a matching log event."""

    metric: MetricKey
    timestamp: datetime
    stats: StatisticSet


@dataclass(frozen=True)
class MetricRow:
    """One stored bucket: the persistence shape."""

    bucket_start: int
    metric: MetricKey
    stats: StatisticSet


class MetricAggregator:
    """In-memory metric store: `add` values, ask for `statistics` or an alarm's `series`."""

    def __init__(self) -> None:
        self._buckets: dict[MetricKey, dict[int, StatisticSet]] = {}

    def add(
        self, metric: MetricKey, timestamp: datetime, value: float, event_id: str | None = None
    ) -> None:
        """Record one value (e.g. one matching log event's metricValue) at `timestamp`."""
        if not math.isfinite(value):
            raise MetricError(
                "InvalidParameterValue",
                f"Metric value {value!r} for {metric.name} is not a finite number; publish a real number.",
            )
        start = _floor(epoch_seconds(timestamp), BUCKET_SECONDS)
        self._put(metric, start, StatisticSet.single(value, event_id))

    def metrics(self) -> list[MetricKey]:
        return sorted(self._buckets)

    def aggregate(
        self, metric: MetricKey, start: datetime, end: datetime, period: int
    ) -> dict[int, StatisticSet]:
        """Period start (epoch seconds) → merged set, for the periods with data in [start, end)."""
        first, last = _period_bounds(start, end, period)
        out: dict[int, StatisticSet] = {}
        for bucket, stats in _buckets_between(self._buckets.get(metric, {}), first, last + period):
            key = _floor(bucket, period)
            out[key] = out[key].merge(stats) if key in out else stats
        return out

    def statistics(
        self,
        metric: MetricKey,
        start: datetime,
        end: datetime,
        period: int,
        statistics: Sequence[str],
    ) -> list[Datapoint]:
        """GetMetricStatistics: one Datapoint per period with data, oldest first."""
        names = _check_statistics(statistics)
        _check_datapoint_count(start, end, period)
        periods = self.aggregate(metric, start, end, period)
        return [Datapoint(from_epoch(at), stats, names) for at, stats in sorted(periods.items())]

    def series(
        self, metric: MetricKey, start: datetime, end: datetime, period: int, statistic: str
    ) -> dict[datetime, float]:
        """Period start → statistic value: what alarm evaluation reads."""
        _check_statistics([statistic])
        return {
            from_epoch(at): stats.value(statistic)
            for at, stats in self.aggregate(metric, start, end, period).items()
        }

    def rows(self) -> Iterator[MetricRow]:
        for metric in sorted(self._buckets):
            for bucket, stats in sorted(self._buckets[metric].items()):
                yield MetricRow(bucket, metric, stats)

    def load(self, rows: Iterable[MetricRow]) -> None:
        """Merge stored rows back in (rows for the same bucket add up)."""
        for row in rows:
            if row.bucket_start % BUCKET_SECONDS:
                raise MetricError(
                    "InvalidParameterValue",
                    f"Stored bucket start {row.bucket_start} is not a multiple of {BUCKET_SECONDS} s; the row is corrupt.",
                )
            self._put(row.metric, row.bucket_start, row.stats)

    def prune(self, before: datetime) -> int:
        """Forget buckets that start before `before`; returns how many were dropped."""
        cutoff = epoch_seconds(before)
        dropped = 0
        for metric in list(self._buckets):
            buckets = self._buckets[metric]
            for start in [s for s in buckets if s < cutoff]:
                del buckets[start]
                dropped += 1
            if not buckets:
                del self._buckets[metric]
        return dropped

    def _put(self, metric: MetricKey, start: int, stats: StatisticSet) -> None:
        buckets = self._buckets.setdefault(metric, {})
        buckets[start] = buckets[start].merge(stats) if start in buckets else stats


def _buckets_between(
    buckets: Mapping[int, StatisticSet], lo: int, hi: int
) -> list[tuple[int, StatisticSet]]:
    """Buckets starting in [lo, hi), oldest first (so the earliest event IDs are kept first).
    Probes the range when it is shorter than the series, else filters the series."""
    if (hi - lo) // BUCKET_SECONDS <= len(buckets):
        starts = range(lo - lo % BUCKET_SECONDS, hi, BUCKET_SECONDS)
        return [(s, buckets[s]) for s in starts if s in buckets and s >= lo]
    return sorted((s, stats) for s, stats in buckets.items() if lo <= s < hi)


def _floor(seconds: int, period: int) -> int:
    return seconds - seconds % period


def _period_bounds(start: datetime, end: datetime, period: int) -> tuple[int, int]:
    """(first period start, last period start) for [start, end); checks the request."""
    problem = period_problem(period)
    if problem:
        raise MetricError("InvalidParameterValue", f"The parameter Period is invalid: {problem}")
    begin, finish = epoch_seconds(start), epoch_seconds(end)
    if begin >= finish:
        raise MetricError(
            "InvalidParameterValue",
            "The parameter StartTime must be less than the parameter EndTime.",
        )
    return _floor(begin, period), _floor(finish - 1, period)


def _check_datapoint_count(start: datetime, end: datetime, period: int) -> None:
    first, last = _period_bounds(start, end, period)
    count = (last - first) // period + 1
    if count > MAX_DATAPOINTS:
        raise MetricError(
            "InvalidParameterCombination",
            f"You have requested up to {count} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. "
            "You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
        )


def _check_statistics(statistics: Sequence[str]) -> tuple[str, ...]:
    if not statistics:
        raise MetricError(
            "MissingParameter",
            f"The parameter Statistics is required; ask for one or more of {', '.join(STATISTICS)}.",
        )
    if len(statistics) > len(STATISTICS):
        raise MetricError(
            "InvalidParameterValue",
            f"At most {len(STATISTICS)} statistics can be asked for at once (got {len(statistics)}).",
        )
    for name in statistics:
        if name in STATISTICS:
            continue
        if _looks_like_percentile(name):
            raise MetricError(
                "InvalidParameterValue",
                f"Extended statistic {name!r} is not supported: trailkeeper keeps no raw values to compute percentiles from. "
                f"Use one of {', '.join(STATISTICS)}.",
            )
        raise MetricError(
            "InvalidParameterValue",
            f"Unknown statistic {name!r}; use one of {', '.join(STATISTICS)}.",
        )
    return tuple(statistics)


def _looks_like_percentile(name: str) -> bool:
    lowered = name.lower()
    return lowered[:1] == "p" or lowered[:2] in {"tm", "tc", "ts", "wm", "pr"} or lowered == "iqm"
