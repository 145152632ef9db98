"""Refusals of unauthenticated requests are recorded, but cannot fill the spool.

Every refused request is evidence (PCI DSS 10.2.1.4), yet anyone who can reach the port can
send them: each one recorded costs a durable record. So each source address gets a token
bucket (and all sources together one more); what the buckets drop is counted, and once per
interval one `UnauthenticatedRequestsSuppressed` record says how many were dropped, from
where, and with which error codes. The evidence survives; the disk does not fill.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

PER_SOURCE_RATE = 5.0  # records per second per source address, sustained
PER_SOURCE_BURST = 20.0
TOTAL_RATE = 50.0  # all sources together: many addresses (an IPv6 /64) are cheap to have
TOTAL_BURST = 200.0
SUMMARY_INTERVAL_S = 10.0
MAX_SUMMARY_SOURCES = 20  # the summary names the top sources; the rest are counted together
MAX_TRACKED_SOURCES = 10_000  # buckets of this many sources at most (idle ones are forgotten)


@dataclass
class _Bucket:
    tokens: float
    at: float

    def take(self, now: float, rate: float, burst: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class Suppressed:
    """What was dropped since the last summary."""

    since: float
    until: float
    by_source: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_source.values())

    def details(self) -> dict[str, object]:
        top = self.by_source.most_common(MAX_SUMMARY_SOURCES)
        others = self.total - sum(count for _, count in top)
        return {"dropped": self.total, "intervalSeconds": round(self.until - self.since, 3),
                "sources": [{"sourceIPAddress": ip, "dropped": count} for ip, count in top],
                "otherSourcesDropped": others, "errorCodes": dict(self.codes.most_common(20))}


class RefusalLimiter:
    """Decides which unauthenticated refusals get a record of their own (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, per_source_rate: float = PER_SOURCE_RATE,
                 per_source_burst: float = PER_SOURCE_BURST, total_rate: float = TOTAL_RATE,
                 total_burst: float = TOTAL_BURST) -> None:
        self._clock = clock
        self._rates = (per_source_rate, per_source_burst, total_rate, total_burst)
        self._lock = threading.Lock()
        self._sources: dict[str, _Bucket] = {}
        now = clock()
        self._total = _Bucket(total_burst, now)
        self._dropped = Suppressed(now, now)

    def admit(self, source: str, code: str) -> bool:
        """True: record this refusal. False: it is counted for the next summary instead."""
        rate, burst, total_rate, total_burst = self._rates
        with self._lock:
            now = self._clock()
            bucket = self._sources.get(source)
            if bucket is None:
                if len(self._sources) >= MAX_TRACKED_SOURCES:
                    self._forget_idle(now, rate, burst)
                bucket = self._sources[source] = _Bucket(burst, now)
            if bucket.take(now, rate, burst) and self._total.take(now, total_rate, total_burst):
                return True
            self._dropped.by_source[source] += 1
            self._dropped.codes[code] += 1
            self._dropped.until = now
            return False

    def exhausted(self, source: str) -> bool:
        """Whether `source` has no refusal left to record right now (nothing is consumed)."""
        rate = self._rates[0]
        with self._lock:
            bucket = self._sources.get(source)
            if bucket is None:
                return False
            return bucket.tokens + (self._clock() - bucket.at) * rate < 1.0

    def drop(self, source: str, code: str) -> None:
        """Count a refusal that was answered without a record (for the next summary)."""
        with self._lock:
            self._dropped.by_source[source] += 1
            self._dropped.codes[code] += 1
            self._dropped.until = self._clock()

    def summary_due(self) -> Suppressed | None:
        """What was dropped, once SUMMARY_INTERVAL_S has passed since the last summary."""
        with self._lock:
            now = self._clock()
            if not self._dropped.total or now - self._dropped.since < SUMMARY_INTERVAL_S:
                return None
            done, self._dropped = self._dropped, Suppressed(now, now)
            done.until = now
            return done

    def _forget_idle(self, now: float, rate: float, burst: float) -> None:
        full = [ip for ip, b in self._sources.items() if b.tokens + (now - b.at) * rate >= burst]
        for ip in full or list(self._sources)[: len(self._sources) // 2]:
            del self._sources[ip]
