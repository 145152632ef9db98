"""Clock seam: production code asks a Clock for the time so tests can freeze or advance it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (thread-safe)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)


def monotonic() -> float:
    return time.monotonic()


def iso_seconds(when: datetime) -> str:
    """CloudTrail time format: YYYY-MM-DDTHH:MM:SSZ, UTC, no fractions, always four year digits
    (strftime's %Y writes year 999 as "999", which no parser of this format reads back)."""
    t = when.astimezone(UTC)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


def parse_iso_seconds(text: str) -> datetime:
    """Parse YYYY-MM-DDTHH:MM:SSZ strictly (raises ValueError otherwise)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def floor_to(when: datetime, period: timedelta) -> datetime:
    """Largest multiple of `period` since the Unix epoch that is <= when."""
    seconds = int(period.total_seconds())
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)
