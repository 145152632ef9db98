"""The digest windows a trail's logging history says must exist."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trailkeeper.clock import floor_to

if TYPE_CHECKING:
    pass

# cryptography (~30 ms to import) is imported at the first signature check, by which time
# the pool is already hashing log files: start-up overlaps with I/O instead of preceding it.

# A log is delivered at most one flush interval after its events, and a digest
# shortly after its window ends; this covers both with room for a slow store.


@dataclass(frozen=True)
class Window:
    """One digest window [start, end) that the logging history says must exist."""

    start: datetime
    end: datetime
    starting: bool  # first window of a logging period: previous* fields are null
    final: bool  # last window of a closed period (ends at the stop time)


def expected_windows(
    periods: Sequence[tuple[datetime, datetime | None]], interval: timedelta, lo: datetime, hi: datetime
) -> list[Window]:
    """Windows with end > lo and start <= hi, in time order.

    Windows end on multiples of `interval` since the Unix epoch, except a final
    window, which ends at the period's stop time; a starting window begins at the
    period's start.
    """
    out: list[Window] = []
    for begin, stop in sorted(periods, key=lambda p: p[0]):
        out.extend(_period_windows(begin, stop, interval, lo, hi))
    return out


def _period_windows(
    begin: datetime, stop: datetime | None, interval: timedelta, lo: datetime, hi: datetime
) -> Iterator[Window]:
    t = begin
    # Skip whole windows before `lo` without walking years of history.
    skip_to = floor_to(lo, interval) - interval
    if skip_to > t and (stop is None or skip_to < stop):
        t = skip_to
    while t <= hi and (stop is None or t < stop):
        boundary = floor_to(t, interval) + interval
        end = boundary if stop is None else min(boundary, stop)
        if end > lo:
            yield Window(t, end, starting=t == begin, final=stop is not None and end == stop)
        t = end
