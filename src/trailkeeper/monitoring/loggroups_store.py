"""Where CloudWatch Logs state lives: the `LogGroupRepository` protocol, its SQLite
implementation (tables log_groups, log_group_tags, log_streams, log_events, metric_filters,
log_group_data_keys of the state database) and a memory twin with the same contract
(tests/contract).

An encrypted event is stored with `message` empty, its ciphertext in `sealed` and the id of the
data key that sealed it; the repository never sees plaintext of such an event and never decrypts
(monitoring.logcrypto seals, through the `Sealer` given to `append_events`).

The repositories store and look up; every rule (names, limits, retention, tokens) is
`monitoring.loggroups`'s. Times are epoch milliseconds, as on the wire.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from trailkeeper._internal.memory import MemoryRepository
from trailkeeper._internal.sqlite import Database
from trailkeeper.monitoring.logcrypto import SEAL_OVERHEAD_BYTES
from trailkeeper.state.schema import STATE_SCHEMA

EVENT_OVERHEAD_BYTES = 26  # what CloudWatch Logs counts per event on top of its message


@dataclass(frozen=True)
class LogGroupRecord:
    name: str
    created_ms: int
    retention_days: int | None = None
    kms_key_id: str | None = None  # the ARN of the associated KMS key
    tags: dict[str, str] = field(default_factory=dict)
    data_key: int | None = None  # the data key new events are sealed with (with kms_key_id)


@dataclass(frozen=True)
class LogStreamRecord:
    group: str
    name: str
    created_ms: int
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    last_ingestion_ms: int | None = None
    stored_bytes: int = 0


@dataclass(frozen=True)
class NewEvent:
    """One event to store; `dedup_key` (e.g. a CloudTrail eventID) makes a repeat a no-op."""

    timestamp_ms: int
    message: str
    dedup_key: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    seq: int  # the event's position in the repository: ascending in insertion order
    group: str
    stream: str
    timestamp_ms: int
    ingestion_ms: int
    message: str  # "" while `sealed` holds the message encrypted
    sealed: bytes | None = None
    data_key: int | None = None  # the id of the data key that sealed it

    @property
    def key(self) -> tuple[int, int]:
        """The order events are read in: by timestamp, then by arrival."""
        return (self.timestamp_ms, self.seq)


@dataclass(frozen=True)
class DataKeyRecord:
    """A log group's data key, wrapped by the KMS key `key_arn`; `id` is unique for ever."""

    id: int
    group: str
    key_arn: str
    wrapped: bytes
    created_ms: int


@dataclass(frozen=True)
class Sealer:
    """How `append_events` stores a batch encrypted: `seal(seq, event)` is the ciphertext of
    `event` as the row numbered `seq` (the seq is bound into it), under data key `data_key`."""

    data_key: int
    seal: Callable[[int, NewEvent], bytes]


@dataclass(frozen=True)
class MetricFilterRecord:
    group: str
    name: str
    pattern: str
    transformations: list[dict[str, object]]
    regex: bool
    created_ms: int


@dataclass(frozen=True)
class EventQuery:
    """Events of one group between `start_ms` (inclusive) and `end_ms` (exclusive), of the
    named streams (None: all), strictly after (or, descending, before) `cursor`."""

    group: str
    streams: Sequence[str] | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    cursor: tuple[int, int] | None = None
    descending: bool = False
    limit: int = 10_000
    # Only events whose JSON message has one of these top-level eventName strings (the index a
    # FilterLogEvents pattern that pins eventName reads; None: every event).
    event_names: frozenset[str] | None = None


def event_bytes(message: str) -> int:
    return len(message.encode("utf-8")) + EVENT_OVERHEAD_BYTES


class LogGroupRepository(Protocol):
    def add_group(self, group: LogGroupRecord, wrapped_key: bytes | None = None) -> bool:
        """Add `group`; with `wrapped_key` (and group.kms_key_id) also its first data key,
        made current, in the same transaction. False if the name is taken."""
        ...
    def add_data_key(self, group: str, key_arn: str, wrapped: bytes, created_ms: int) -> int | None:
        """A new data key of `group`, made current with kms_key_id = key_arn; its id, or None
        when there is no such group."""
        ...
    def clear_data_key(self, group: str) -> bool:
        """No KMS key and no current data key any more (old ones stay); False: no such group."""
        ...
    def data_key(self, data_key: int) -> DataKeyRecord | None: ...
    def data_keys(self, group: str) -> list[DataKeyRecord]: ...
    def get_group(self, name: str) -> LogGroupRecord | None: ...
    def groups(self, prefix: str = "", after: str = "", limit: int = 50) -> list[LogGroupRecord]: ...
    def remove_group(self, name: str) -> bool: ...
    def set_retention(self, name: str, days: int | None) -> bool: ...
    def set_tags(self, name: str, tags: dict[str, str]) -> bool: ...
    def add_stream(self, stream: LogStreamRecord) -> bool: ...
    def streams(self, group: str) -> list[LogStreamRecord]: ...
    def has_stream(self, group: str, name: str) -> bool: ...
    def append_events(self, group: str, stream: str, events: Sequence[NewEvent], ingestion_ms: int,
                      sealer: Sealer | None = None) -> int: ...
    def events(self, query: EventQuery) -> list[StoredEvent]: ...
    def purge_before(self, group: str, cutoff_ms: int) -> int: ...
    def put_filter(self, record: MetricFilterRecord) -> None: ...
    def filters(self, group: str | None = None) -> list[MetricFilterRecord]: ...
    def remove_filter(self, group: str, name: str) -> bool: ...
    def close(self) -> None: ...


_GROUP_COLUMNS = "name, created_ms, retention_days, kms_key_id, data_key_id"
_EVENT_COLUMNS = "seq, group_name, stream_name, timestamp_ms, ingestion_ms, message, sealed, data_key_id"


def _group(row: sqlite3.Row, tags: dict[str, str]) -> LogGroupRecord:
    return LogGroupRecord(row[0], row[1], row[2], row[3], tags, row[4])


# ---- SQLite -----------------------------------------------------------------------------------
class SqliteLogGroupRepository:
    """Log groups in the state database. `append_events` is one transaction: all or nothing."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    def close(self) -> None:
        pass  # the state database is the runtime's, closed by it

    def add_group(self, group: LogGroupRecord, wrapped_key: bytes | None = None) -> bool:
        try:
            with self.db.tx() as conn:
                conn.execute(f"INSERT INTO log_groups ({_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, NULL)",
                             (group.name, group.created_ms, group.retention_days, group.kms_key_id))
                conn.executemany("INSERT INTO log_group_tags VALUES (?, ?, ?)",
                                 [(group.name, k, v) for k, v in group.tags.items()])
                if wrapped_key is not None and group.kms_key_id is not None:
                    self._add_data_key(conn, group.name, group.kms_key_id, wrapped_key, group.created_ms)
        except sqlite3.IntegrityError:
            return False
        return True

    @staticmethod
    def _add_data_key(conn: sqlite3.Connection, group: str, key_arn: str, wrapped: bytes, created_ms: int) -> int:
        cursor = conn.execute("INSERT INTO log_group_data_keys (group_name, key_arn, wrapped, created_ms) "
                              "VALUES (?, ?, ?, ?)", (group, key_arn, wrapped, created_ms))
        data_key = int(cursor.lastrowid or 0)
        conn.execute("UPDATE log_groups SET kms_key_id = ?, data_key_id = ? WHERE name = ?", (key_arn, data_key, group))
        return data_key

    def add_data_key(self, group: str, key_arn: str, wrapped: bytes, created_ms: int) -> int | None:
        with self.db.tx() as conn:
            if not conn.execute("SELECT 1 FROM log_groups WHERE name = ?", (group,)).fetchone():
                return None
            return self._add_data_key(conn, group, key_arn, wrapped, created_ms)

    def clear_data_key(self, group: str) -> bool:
        with self.db.tx():
            return self.db.write("UPDATE log_groups SET kms_key_id = NULL, data_key_id = NULL WHERE name = ?",
                                 (group,)) > 0

    def data_key(self, data_key: int) -> DataKeyRecord | None:
        rows = self.db.query("SELECT id, group_name, key_arn, wrapped, created_ms FROM log_group_data_keys "
                             "WHERE id = ?", (data_key,))
        return DataKeyRecord(*rows[0]) if rows else None

    def data_keys(self, group: str) -> list[DataKeyRecord]:
        rows = self.db.query("SELECT id, group_name, key_arn, wrapped, created_ms FROM log_group_data_keys "
                             "WHERE group_name = ? ORDER BY id", (group,))
        return [DataKeyRecord(*row) for row in rows]

    def _tags(self, name: str) -> dict[str, str]:
        rows = self.db.query("SELECT tag_key, tag_value FROM log_group_tags WHERE group_name = ? ORDER BY tag_key",
                             (name,))
        return {row[0]: row[1] for row in rows}

    def get_group(self, name: str) -> LogGroupRecord | None:
        rows = self.db.query(f"SELECT {_GROUP_COLUMNS} FROM log_groups WHERE name = ?", (name,))
        return _group(rows[0], self._tags(name)) if rows else None

    def groups(self, prefix: str = "", after: str = "", limit: int = 50) -> list[LogGroupRecord]:
        # substr, not LIKE: a name may hold _ and LIKE ignores case.
        rows = self.db.query(f"SELECT {_GROUP_COLUMNS} FROM log_groups WHERE substr(name, 1, ?) = ? AND name > ? "
                             "ORDER BY name LIMIT ?", (len(prefix), prefix, after, limit))
        return [_group(row, self._tags(row[0])) for row in rows]

    def remove_group(self, name: str) -> bool:
        with self.db.tx() as conn:
            for table in ("log_events", "log_streams", "log_group_tags", "metric_filters", "log_group_data_keys"):
                conn.execute(f"DELETE FROM {table} WHERE group_name = ?", (name,))
            return conn.execute("DELETE FROM log_groups WHERE name = ?", (name,)).rowcount > 0

    def set_retention(self, name: str, days: int | None) -> bool:
        with self.db.tx():
            return self.db.write("UPDATE log_groups SET retention_days = ? WHERE name = ?", (days, name)) > 0

    def set_tags(self, name: str, tags: dict[str, str]) -> bool:
        with self.db.tx() as conn:
            if not conn.execute("SELECT 1 FROM log_groups WHERE name = ?", (name,)).fetchone():
                return False
            conn.execute("DELETE FROM log_group_tags WHERE group_name = ?", (name,))
            conn.executemany("INSERT INTO log_group_tags VALUES (?, ?, ?)", [(name, k, v) for k, v in tags.items()])
            return True

    def add_stream(self, stream: LogStreamRecord) -> bool:
        try:
            with self.db.tx() as conn:
                conn.execute("INSERT INTO log_streams VALUES (?, ?, ?)", (stream.group, stream.name, stream.created_ms))
        except sqlite3.IntegrityError:
            return False
        return True

    def streams(self, group: str) -> list[LogStreamRecord]:
        rows = self.db.query(
            "SELECT s.name, s.created_ms, min(e.timestamp_ms), max(e.timestamp_ms), max(e.ingestion_ms), "
            # A sealed event counts its message's bytes, as a clear one does (what the sender sent).
            f"coalesce(sum(coalesce(length(e.sealed) - {SEAL_OVERHEAD_BYTES}, length(CAST(e.message AS BLOB))) "
            f"+ {EVENT_OVERHEAD_BYTES}), 0) "
            "FROM log_streams s LEFT JOIN log_events e ON e.group_name = s.group_name AND e.stream_name = s.name "
            "WHERE s.group_name = ? GROUP BY s.name ORDER BY s.name", (group,))
        return [LogStreamRecord(group, *row) for row in rows]

    def has_stream(self, group: str, name: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM log_streams WHERE group_name = ? AND name = ?", (group, name)))

    def append_events(self, group: str, stream: str, events: Sequence[NewEvent], ingestion_ms: int,
                      sealer: Sealer | None = None) -> int:
        if sealer is not None:
            return self._append_sealed(group, stream, events, ingestion_ms, sealer)
        rows = [(group, stream, e.timestamp_ms, ingestion_ms, e.message, e.dedup_key, event_name(e.message))
                for e in events]
        with self.db.tx() as conn:
            # One statement for the batch; its rowcount is the rows inserted (a resent key is ignored).
            return int(conn.executemany(
                "INSERT OR IGNORE INTO log_events (group_name, stream_name, timestamp_ms, ingestion_ms, message, "
                "dedup_key, event_name) VALUES (?, ?, ?, ?, ?, ?, ?)", rows).rowcount)

    def _append_sealed(self, group: str, stream: str, events: Sequence[NewEvent], ingestion_ms: int,
                       sealer: Sealer) -> int:
        with self.db.tx() as conn:
            # Each ciphertext is bound to its row's seq, so the seqs are chosen here, inside the
            # write transaction: after the largest AUTOINCREMENT ever handed out (a seq skipped
            # by a resent dedup_key stays unused, as AUTOINCREMENT's own gaps do).
            found = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log_events'").fetchone()
            first = (int(found[0]) if found else 0) + 1
            # event_name stays NULL: the index would keep part of the plaintext in clear.
            rows = [(first + i, group, stream, e.timestamp_ms, ingestion_ms, "", e.dedup_key, sealer.data_key,
                     sealer.seal(first + i, e)) for i, e in enumerate(events)]
            return int(conn.executemany(
                "INSERT OR IGNORE INTO log_events (seq, group_name, stream_name, timestamp_ms, ingestion_ms, message, "
                "dedup_key, data_key_id, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows).rowcount)

    def events(self, query: EventQuery) -> list[StoredEvent]:
        where: list[str] = ["group_name = ?"]
        args: list[object] = [query.group]
        if query.streams is not None:
            where.append(f"stream_name IN ({', '.join('?' * len(query.streams))})")
            args.extend(query.streams)
        if query.start_ms is not None:
            where.append("timestamp_ms >= ?")
            args.append(query.start_ms)
        if query.end_ms is not None:
            where.append("timestamp_ms < ?")
            args.append(query.end_ms)
        if query.cursor is not None:
            where.append("(timestamp_ms, seq) < (?, ?)" if query.descending else "(timestamp_ms, seq) > (?, ?)")
            args.extend(query.cursor)
        if query.event_names is not None:
            where.append(f"event_name IN ({', '.join('?' * len(query.event_names))})")
            args.extend(sorted(query.event_names))
        order = "DESC" if query.descending else "ASC"
        rows = self.db.query(
            f"SELECT {_EVENT_COLUMNS} FROM log_events "
            f"WHERE {' AND '.join(where)} ORDER BY timestamp_ms {order}, seq {order} LIMIT ?",
            (*args, query.limit))
        return [StoredEvent(*row) for row in rows]

    def purge_before(self, group: str, cutoff_ms: int) -> int:
        with self.db.tx():
            return self.db.write("DELETE FROM log_events WHERE group_name = ? AND timestamp_ms < ?", (group, cutoff_ms))

    def put_filter(self, record: MetricFilterRecord) -> None:
        with self.db.tx():
            self.db.write("INSERT OR REPLACE INTO metric_filters VALUES (?, ?, ?, ?, ?, ?)",
                          (record.group, record.name, record.pattern, orjson.dumps(record.transformations).decode(),
                           int(record.regex), record.created_ms))

    def filters(self, group: str | None = None) -> list[MetricFilterRecord]:
        sql = "SELECT * FROM metric_filters"
        rows = (self.db.query(sql + " ORDER BY group_name, name") if group is None else
                self.db.query(sql + " WHERE group_name = ? ORDER BY name", (group,)))
        return [MetricFilterRecord(row[0], row[1], row[2], orjson.loads(row[3]), bool(row[4]), row[5]) for row in rows]

    def remove_filter(self, group: str, name: str) -> bool:
        with self.db.tx():
            return self.db.write("DELETE FROM metric_filters WHERE group_name = ? AND name = ?", (group, name)) > 0


# ---- memory -----------------------------------------------------------------------------------
@dataclass
class _Tables:
    groups: dict[str, LogGroupRecord] = field(default_factory=dict)
    streams: dict[tuple[str, str], LogStreamRecord] = field(default_factory=dict)
    events: list[StoredEvent] = field(default_factory=list)
    dedup: dict[tuple[str, str], int] = field(default_factory=dict)  # (group, key) -> seq
    filters: dict[tuple[str, str], MetricFilterRecord] = field(default_factory=dict)
    data_keys: dict[int, DataKeyRecord] = field(default_factory=dict)
    next_seq: int = 1
    next_data_key: int = 1


class MemoryLogGroupRepository(MemoryRepository[_Tables]):
    """Log groups in dictionaries, for tests; the same contract as the SQLite repository."""

    def __init__(self) -> None:
        super().__init__(_Tables())

    def add_group(self, group: LogGroupRecord, wrapped_key: bytes | None = None) -> bool:
        with self._tables.transaction() as t:
            if group.name in t.groups:
                return False
            t.groups[group.name] = dataclasses.replace(group, tags=dict(group.tags), data_key=None)
            if wrapped_key is not None and group.kms_key_id is not None:
                self._add_data_key(t, group.name, group.kms_key_id, wrapped_key, group.created_ms)
            return True

    @staticmethod
    def _add_data_key(t: _Tables, group: str, key_arn: str, wrapped: bytes, created_ms: int) -> int:
        data_key = t.next_data_key
        t.next_data_key += 1
        t.data_keys[data_key] = DataKeyRecord(data_key, group, key_arn, wrapped, created_ms)
        t.groups[group] = dataclasses.replace(t.groups[group], kms_key_id=key_arn, data_key=data_key)
        return data_key

    def add_data_key(self, group: str, key_arn: str, wrapped: bytes, created_ms: int) -> int | None:
        with self._tables.transaction() as t:
            if group not in t.groups:
                return None
            return self._add_data_key(t, group, key_arn, wrapped, created_ms)

    def clear_data_key(self, group: str) -> bool:
        with self._tables.transaction() as t:
            if group not in t.groups:
                return False
            t.groups[group] = dataclasses.replace(t.groups[group], kms_key_id=None, data_key=None)
            return True

    def data_key(self, data_key: int) -> DataKeyRecord | None:
        with self._tables.lock:
            return self._tables.current.data_keys.get(data_key)

    def data_keys(self, group: str) -> list[DataKeyRecord]:
        with self._tables.lock:
            return [k for _, k in sorted(self._tables.current.data_keys.items()) if k.group == group]

    def get_group(self, name: str) -> LogGroupRecord | None:
        with self._tables.lock:
            found = self._tables.current.groups.get(name)
            return None if found is None else dataclasses.replace(found, tags=dict(found.tags))

    def groups(self, prefix: str = "", after: str = "", limit: int = 50) -> list[LogGroupRecord]:
        with self._tables.lock:
            names = sorted(n for n in self._tables.current.groups if n.startswith(prefix) and n > after)
        return [g for g in (self.get_group(n) for n in names[:limit]) if g is not None]

    def remove_group(self, name: str) -> bool:
        with self._tables.transaction() as t:
            t.events = [e for e in t.events if e.group != name]
            t.dedup = {d: seq for d, seq in t.dedup.items() if d[0] != name}
            t.streams = {k: s for k, s in t.streams.items() if k[0] != name}
            t.filters = {k: f for k, f in t.filters.items() if k[0] != name}
            t.data_keys = {i: k for i, k in t.data_keys.items() if k.group != name}
            return t.groups.pop(name, None) is not None

    def set_retention(self, name: str, days: int | None) -> bool:
        with self._tables.transaction() as t:
            if name not in t.groups:
                return False
            t.groups[name] = dataclasses.replace(t.groups[name], retention_days=days)
            return True

    def set_tags(self, name: str, tags: dict[str, str]) -> bool:
        with self._tables.transaction() as t:
            if name not in t.groups:
                return False
            t.groups[name] = dataclasses.replace(t.groups[name], tags=dict(sorted(tags.items())))
            return True

    def add_stream(self, stream: LogStreamRecord) -> bool:
        with self._tables.transaction() as t:
            if (stream.group, stream.name) in t.streams:
                return False
            t.streams[(stream.group, stream.name)] = LogStreamRecord(stream.group, stream.name, stream.created_ms)
            return True

    def streams(self, group: str) -> list[LogStreamRecord]:
        with self._tables.lock:
            t = self._tables.current
            out = []
            for (g, name), stream in sorted(t.streams.items()):
                if g != group:
                    continue
                mine = [e for e in t.events if e.group == g and e.stream == name]
                out.append(dataclasses.replace(
                    stream,
                    first_event_ms=min((e.timestamp_ms for e in mine), default=None),
                    last_event_ms=max((e.timestamp_ms for e in mine), default=None),
                    last_ingestion_ms=max((e.ingestion_ms for e in mine), default=None),
                    stored_bytes=sum(_stored_bytes(e) for e in mine)))
            return out

    def has_stream(self, group: str, name: str) -> bool:
        with self._tables.lock:
            return (group, name) in self._tables.current.streams

    def append_events(self, group: str, stream: str, events: Sequence[NewEvent], ingestion_ms: int,
                      sealer: Sealer | None = None) -> int:
        stored = 0
        with self._tables.transaction() as t:
            for event in events:
                if event.dedup_key is not None:
                    if (group, event.dedup_key) in t.dedup:
                        continue
                    t.dedup[(group, event.dedup_key)] = t.next_seq
                if sealer is None:
                    row = StoredEvent(t.next_seq, group, stream, event.timestamp_ms, ingestion_ms, event.message)
                else:
                    row = StoredEvent(t.next_seq, group, stream, event.timestamp_ms, ingestion_ms, "",
                                      sealer.seal(t.next_seq, event), sealer.data_key)
                t.events.append(row)
                t.next_seq += 1
                stored += 1
        return stored

    def events(self, query: EventQuery) -> list[StoredEvent]:
        with self._tables.lock:
            found = [e for e in self._tables.current.events if _selected(e, query)]
        found.sort(key=lambda e: e.key, reverse=query.descending)
        return found[:query.limit]

    def purge_before(self, group: str, cutoff_ms: int) -> int:
        with self._tables.transaction() as t:
            kept = [e for e in t.events if e.group != group or e.timestamp_ms >= cutoff_ms]
            removed = len(t.events) - len(kept)
            t.events = kept
            # A purged event's key is free again, as the SQLite unique index's row is gone.
            alive = {e.seq for e in kept}
            t.dedup = {d: seq for d, seq in t.dedup.items() if seq in alive}
            return removed

    def put_filter(self, record: MetricFilterRecord) -> None:
        with self._tables.transaction() as t:
            t.filters[(record.group, record.name)] = record

    def filters(self, group: str | None = None) -> list[MetricFilterRecord]:
        with self._tables.lock:
            items = sorted(self._tables.current.filters.items())
        return [f for (g, _), f in items if group is None or g == group]

    def remove_filter(self, group: str, name: str) -> bool:
        with self._tables.transaction() as t:
            return t.filters.pop((group, name), None) is not None


def event_name(message: str) -> str | None:
    """The top-level `eventName` string of a JSON object message (a CloudTrail record), else None."""
    if not message.lstrip(" \t\n\r").startswith("{"):  # JSON's whitespace may lead
        return None
    try:
        document = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    name = document.get("eventName") if isinstance(document, dict) else None
    return name if isinstance(name, str) else None


def _stored_bytes(event: StoredEvent) -> int:
    if event.sealed is not None:
        return len(event.sealed) - SEAL_OVERHEAD_BYTES + EVENT_OVERHEAD_BYTES
    return event_bytes(event.message)


def _selected(event: StoredEvent, query: EventQuery) -> bool:
    if event.group != query.group or (query.streams is not None and event.stream not in query.streams):
        return False
    if query.event_names is not None and event_name(event.message) not in query.event_names:
        return False
    if query.start_ms is not None and event.timestamp_ms < query.start_ms:
        return False
    if query.end_ms is not None and event.timestamp_ms >= query.end_ms:
        return False
    if query.cursor is not None:
        return event.key < query.cursor if query.descending else event.key > query.cursor
    return True
