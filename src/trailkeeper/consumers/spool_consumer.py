"""The generic consumer: a handler over batches of spooled records, with a durable offset.

Each step reads a batch from the offset, decodes each record, hands the batch to the handler,
then commits the offset past it. A crash between the handler's effect and the commit offers
the batch again: handlers must be idempotent (each record comes with its spool seq, which
never changes, and its eventID). What cannot be processed never stalls the consumer:
- a record that is not a JSON object is quarantined before the offset passes it;
- when the handler fails on a batch, the batch is retried a record at a time, and a record on
  which the handler fails by itself is quarantined with the error;
- except an outage (StorageError, which includes an unavailable KMS or root of trust, or an
  OSError: network, disk full): then nothing is quarantined, the step raises, and the registry
  retries it with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from trailkeeper.consumers.base import OUTAGES, OffsetStore
from trailkeeper.spool import Spool

DEFAULT_BATCH_RECORDS = 500
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Yield:
    """When to give way to the acknowledgement path: while the consumer is more than `behind`
    records behind and its backlog still grows (records arrive faster than it consumes them:
    the server is saturated), it works at most `duty` of the time (its CPU time against its
    pauses), so that ingest keeps the interpreter. Under that overload it falls further behind
    (nothing is lost: the records wait in the spool); as soon as its backlog stops growing (the
    burst is over, or the load is one it keeps up with) it runs flat out again, so a backlog
    left by a burst is always worked off."""

    behind: int
    duty: float

    def pause_after(self, cpu_s: float, backlog_before: int, backlog_after: int) -> float:
        if backlog_after <= self.behind or backlog_after <= backlog_before:
            return 0.0
        return cpu_s * (1 - self.duty) / self.duty


@dataclass(frozen=True)
class Spooled:
    seq: int
    record: dict[str, Any]


Handler = Callable[[Sequence[Spooled]], None]
SetAside = Callable[[str, int, bytes, str], None]  # consumer, seq, body, reason


class SpoolConsumer:
    """A named, resumable reader of the spool that feeds `handle`."""

    def __init__(self, name: str, spool: Spool, offsets: OffsetStore, handle: Handler, set_aside: SetAside,
                 *, start_at: int | None = None, batch_records: int = DEFAULT_BATCH_RECORDS,
                 batch_bytes: int = DEFAULT_BATCH_BYTES, yield_to_ingest: Yield | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """`start_at`: where a consumer never committed begins (default: the next record
        appended, so a new consumer does not replay the spool's past)."""
        self._name = name
        self._spool = spool
        self._offsets = offsets
        self._handle = handle
        self._set_aside = set_aside
        self._batch = (batch_records, batch_bytes)
        self._yield = yield_to_ingest
        self._sleep = sleep
        if offsets.get(name) is None:
            offsets.commit(name, start_at if start_at is not None else spool.next_seq())

    @property
    def consumer_name(self) -> str:
        return self._name

    def needed(self) -> int | None:
        return self._offsets.get(self._name)

    def step(self) -> bool:
        start = self._offsets.get(self._name)
        assert start is not None  # committed at construction
        began, before = time.thread_time(), self._spool.next_seq() - start
        batch = self._spool.read(start, *self._batch)
        if not batch:
            return False
        decoded = [item for item in (self._decode(seq, body) for seq, body in batch) if item is not None]
        if decoded:
            self._process(decoded, dict(batch))
        done = batch[-1][0] + 1
        self._offsets.commit(self._name, done)
        if self._yield is not None:
            pause = self._yield.pause_after(time.thread_time() - began, before, self._spool.next_seq() - done)
            if pause:
                self._sleep(pause)
        return True

    def _decode(self, seq: int, body: bytes) -> Spooled | None:
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            self._set_aside(self._name, seq, body, f"not JSON: {e}")
            return None
        if not isinstance(record, dict):
            self._set_aside(self._name, seq, body, f"JSON {type(record).__name__}, not an object")
            return None
        return Spooled(seq, record)

    def _process(self, items: list[Spooled], bodies: dict[int, bytes]) -> None:
        """Hand `items` over; when the handler fails on them (not an outage), hand them over one
        at a time, and set aside each one it fails on alone."""
        try:
            self._handle(items)
        except OUTAGES:
            raise  # retried whole, later
        except Exception as e:
            if len(items) > 1:
                for item in items:
                    self._process([item], bodies)
            else:
                self._set_aside(self._name, items[0].seq, bodies[items[0].seq], f"{type(e).__name__}: {e}")
