"""What every consumer of the spool provides, and where generic consumers keep their offsets."""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from trailkeeper._internal.sqlite import Database
from trailkeeper.errors import StorageError
from trailkeeper.state.schema import STATE_SCHEMA

# Failures a consumer waits out and retries (a store, KMS or root of trust unavailable, a
# network or disk error): never a reason to set a record aside.
OUTAGES = (StorageError, OSError)


class Consumer(Protocol):
    """One reader of the spool. `needed()` is durable: after a crash the consumer resumes
    there, so a record it had processed but not yet committed is offered again (handlers are
    idempotent) and none is skipped."""

    @property
    def consumer_name(self) -> str:
        """Its name (in status, the quarantine, the offsets table): [A-Za-z0-9._-]{1,128}."""
        ...

    def needed(self) -> int | None:
        """The first spool seq it has not durably consumed; None when it needs none kept
        (a stopped trail). The spool is trimmed below the minimum over all consumers."""
        ...

    def step(self) -> bool:
        """Consume what is due, in the foreground; True if it did some work."""
        ...


@runtime_checkable
class FlushableConsumer(Consumer, Protocol):
    """A consumer that holds records back on purpose (a trail worker waits for its flush
    interval) and can be asked not to."""

    def flush_until(self, seq: int) -> None:
        """Consume everything below `seq` as soon as it can instead of when it would have; returns
        at once (the consumer's next steps do the work)."""
        ...


class OffsetStore(Protocol):
    """Durable offsets of generic consumers: the first seq each has not consumed."""

    def get(self, name: str) -> int | None:
        """None for a consumer never committed (it starts where its creator says)."""
        ...

    def commit(self, name: str, next_seq: int) -> None:
        """Durable once it returns; offsets only move forward."""
        ...


class SqliteOffsets:
    """Offsets in the state database (table consumer_offsets)."""

    def __init__(self, db: Database) -> None:
        STATE_SCHEMA.ensure(db.path)
        self._db = db

    def get(self, name: str) -> int | None:
        rows = self._db.query("SELECT next_seq FROM consumer_offsets WHERE name=?", (name,))
        return int(rows[0][0]) if rows else None

    def commit(self, name: str, next_seq: int) -> None:
        with self._db.tx() as conn:
            conn.execute("INSERT INTO consumer_offsets (name, next_seq) VALUES (?, ?) ON CONFLICT (name) "
                         "DO UPDATE SET next_seq = max(next_seq, excluded.next_seq)", (name, next_seq))


class MemoryOffsets:
    """Offsets in memory (tests; a 'crash' is a new consumer over the same instance)."""

    def __init__(self) -> None:
        self._offsets: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> int | None:
        with self._lock:
            return self._offsets.get(name)

    def commit(self, name: str, next_seq: int) -> None:
        with self._lock:
            self._offsets[name] = max(self._offsets.get(name, 0), next_seq)
