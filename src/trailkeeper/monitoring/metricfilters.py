"""Metric filters applied: a log group's filters compiled once, turning log events into datums.

    compiled = compile_filters(repo.filters("group"))
    datums = compiled.apply([LogEvent(timestamp_ms, message, event_id), ...])
    sink.put_metric_data(datums)

Each filter's pattern is parsed once; every event is wrapped in one `filterpattern.Event`, so
its JSON is parsed at most once however many JSON filters look at it, and not at all when no
JSON filter runs and no filter matches. AWS's rules (docs/log-groups.md, "Metric datapoints"):

- a matching event emits its `metricValue`, a number or the number a selector extracts; an
  event whose selector yields no finite number emits nothing;
- dimensions take their values from selectors; an event missing one (or whose value is not
  a 1-1024 character string or number) emits nothing, as its metric could not be named;
- `defaultValue`: for each minute of event time the batch touches in which the filter emitted
  nothing, one datapoint of the default value at the start of the minute, at most once per
  filter and minute while the compiled filters live;
- the datapoint is stamped with the log event's timestamp and carries the event's ID: the
  `eventID` of a forwarded CloudTrail record (a JSON object with a string eventID), else the
  ID the caller gave.

`unit` is kept on the compiled filter but not on the datum: `metrics.Datum` has no unit.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from trailkeeper.errors import TrailkeeperError
from trailkeeper.monitoring.filterpattern import (
    Event,
    FilterPattern,
    FilterPatternError,
    Match,
    PatternIndex,
    check_metric_selector,
    parse,
)
from trailkeeper.monitoring.loggroups_store import MetricFilterRecord
from trailkeeper.monitoring.metrics import (
    MAX_DIMENSION_VALUE_LENGTH,
    Datum,
    MetricError,
    MetricKey,
    StatisticSet,
)

MINUTE_MS: Final = 60_000
# How many minutes per filter the defaultValue ledger remembers: a day of event time, so a
# late batch within a day does not emit a second default for a minute already covered.
LEDGER_MINUTES: Final = 1440
# Distinct dimension-value combinations whose MetricKey is kept per filter; AWS disables a
# filter beyond 1,000 combinations an hour, so more than that is a flood, not a working set.
MAX_CACHED_KEYS: Final = 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class MetricFilterError(TrailkeeperError):
    """A stored metric filter cannot be applied (its pattern or transformation is invalid)."""


class MetricSink(Protocol):
    """Where datums go: CloudWatch's PutMetricData, or a test's recorder."""

    def put_metric_data(self, data: Sequence[Datum]) -> None: ...


@dataclass(frozen=True)
class LogEvent:
    """One stored log event as the filters see it; `event_id` is the store's ID for it, used
    when the message is not a CloudTrail record with its own eventID."""

    timestamp_ms: int
    message: str
    event_id: str | None = None


@dataclass
class CompiledFilter:
    """One metric filter, ready to apply: parsed pattern, metric key and value source."""

    name: str
    pattern: FilterPattern
    metric: MetricKey  # without dimensions: those come from each event
    constant: float | None  # metricValue when it is a number
    selector: str | None  # metricValue when it names a field
    default: float | None = None
    dimensions: tuple[tuple[str, str], ...] = ()  # (dimension name, selector)
    unit: str | None = None
    _keys: dict[tuple[str, ...], MetricKey] = field(default_factory=dict, repr=False)

    def datum(self, found: Match, timestamp: datetime, event_id: str | None) -> Datum | None:
        """The datum `found` (a match of this filter) emits, or None when it emits nothing."""
        if self.constant is not None:
            value = self.constant
        else:
            number = found.number(self.selector or "")
            if number is None or not math.isfinite(number):
                return None
            value = number
        metric = self.metric if not self.dimensions else self._dimensioned(found)
        if metric is None:
            return None
        return Datum(metric, timestamp, StatisticSet.single(value, event_id))

    def _dimensioned(self, found: Match) -> MetricKey | None:
        values = []
        for _, selector in self.dimensions:
            text = found.text(selector)
            if not text or len(text) > MAX_DIMENSION_VALUE_LENGTH:
                return None  # no metric can be named for this event
            values.append(text)
        key = tuple(values)
        metric = self._keys.get(key)
        if metric is None:
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()  # a flood of distinct values: rebuild rather than grow
            names = (name for name, _ in self.dimensions)
            metric = MetricKey.of(self.metric.namespace, self.metric.name, zip(names, key, strict=True))
            self._keys[key] = metric
        return metric


def compile_filter(record: MetricFilterRecord) -> CompiledFilter:
    """Compile one stored filter, or raise MetricFilterError saying why it cannot run."""
    if len(record.transformations) != 1:
        raise MetricFilterError(f"metric filter {record.name!r} has {len(record.transformations)} "
                                "transformations; exactly one is applied: put the filter again")
    t = record.transformations[0]
    try:
        pattern = parse(record.pattern)
        name, namespace, value = str(t["metricName"]), str(t["metricNamespace"]), str(t["metricValue"])
        constant = _number(value)
        if constant is None:
            check_metric_selector(pattern, value)
        dimensions = _dimensions(t.get("dimensions"))
        for _, selector in dimensions:
            check_metric_selector(pattern, selector)
        metric = MetricKey.of(namespace, name)
        # Dimension names are checked once here, with a stand-in value, not per event.
        MetricKey.of(namespace, name, [(n, "x") for n, _ in dimensions])
        default = t.get("defaultValue")
        unit = t.get("unit")
    except (FilterPatternError, MetricError, KeyError) as e:
        raise MetricFilterError(f"metric filter {record.name!r} cannot be applied: {e}",
                                hint="put the filter again with a valid pattern and transformation") from e
    return CompiledFilter(record.name, pattern, metric, constant, None if constant is not None else value,
                          float(default) if isinstance(default, int | float) else None, dimensions,
                          unit if isinstance(unit, str) else None)


def _number(text: str) -> float | None:
    # The same test PutMetricFilter applies: a finite float literal is a number, else a selector.
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _dimensions(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple((str(name), str(selector)) for name, selector in raw.items())


def compile_filters(records: Iterable[MetricFilterRecord]) -> CompiledFilters:
    """Compile a group's filters; one that cannot run is left out and listed in `skipped`."""
    compiled: list[CompiledFilter] = []
    skipped: list[tuple[str, str]] = []
    for record in records:
        try:
            compiled.append(compile_filter(record))
        except MetricFilterError as e:
            skipped.append((record.name, str(e)))
    return CompiledFilters(tuple(compiled), tuple(skipped))


class CompiledFilters:
    """A log group's compiled filters. `apply` may be called from several threads: only the
    defaultValue ledger is shared state, and it is updated under a lock."""

    def __init__(self, filters: tuple[CompiledFilter, ...], skipped: tuple[tuple[str, str], ...] = (),
                 indexed: bool = True) -> None:
        self.filters = filters
        self.skipped = skipped
        # Each event is tried only against the filters whose pinned field it matches (plus those
        # that pin none); `indexed=False` tries every filter (the reference the index is tested
        # against).
        self._index = PatternIndex([f.pattern for f in filters]) if indexed else None
        self._everything = list(range(len(filters)))
        self._defaulting = tuple(i for i, f in enumerate(filters) if f.default is not None)
        # filter index -> minutes (event time) for which the filter already emitted something;
        # a dict used as an insertion-ordered set, so the oldest entries are evicted first.
        self._covered: dict[int, dict[int, None]] = {i: {} for i in self._defaulting}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.filters)

    def apply(self, events: Sequence[LogEvent]) -> list[Datum]:
        """The datums a batch of log events emits: per event, per filter, in that order; then
        the defaultValue datums, oldest minute first."""
        out: list[Datum] = []
        filters = self.filters
        emitted: dict[int, set[int]] = {i: set() for i in self._defaulting}
        for event in events:
            shared = Event(event.message)
            when: datetime | None = None
            event_id: str | None = None
            positions = self._everything if self._index is None else self._index.candidates(shared)
            for index in positions:
                compiled = filters[index]
                found = compiled.pattern.match(shared)
                if found is None:
                    continue
                if when is None:
                    when = _EPOCH + timedelta(milliseconds=event.timestamp_ms)
                    event_id = _cloudtrail_event_id(shared) or event.event_id
                datum = compiled.datum(found, when, event_id)
                if datum is not None:
                    out.append(datum)
                    if index in emitted:
                        emitted[index].add(event.timestamp_ms // MINUTE_MS)
        if self._defaulting and events:
            out.extend(self._defaults(events, emitted))
        return out

    def _defaults(self, events: Sequence[LogEvent], emitted: dict[int, set[int]]) -> list[Datum]:
        minutes = sorted({event.timestamp_ms // MINUTE_MS for event in events})
        out: list[Datum] = []
        with self._lock:
            for index in self._defaulting:
                compiled, covered = self.filters[index], self._covered[index]
                for minute in minutes:
                    if minute in covered:
                        continue
                    if minute not in emitted[index]:
                        value = compiled.default if compiled.default is not None else 0.0
                        at = _EPOCH + timedelta(milliseconds=minute * MINUTE_MS)
                        out.append(Datum(compiled.metric, at, StatisticSet.single(value)))
                    covered[minute] = None
                    if len(covered) > LEDGER_MINUTES:
                        del covered[next(iter(covered))]
        return out


def _cloudtrail_event_id(event: Event) -> str | None:
    """The eventID of a forwarded CloudTrail record; None for any other message.

    The first-character test keeps a non-JSON message from being handed to the JSON parser
    when no JSON filter has parsed it already."""
    head = event.message[:1]
    if head.isspace():
        head = event.message.lstrip()[:1]  # rare: only then is the message copied
    if head != "{":
        return None
    document = event.document
    if isinstance(document, dict):
        found = document.get("eventID")
        if isinstance(found, str) and found:
            return found
    return None


__all__ = ["LEDGER_MINUTES", "MINUTE_MS", "CompiledFilter", "CompiledFilters", "LogEvent", "MetricFilterError",
           "MetricSink", "compile_filter", "compile_filters"]
