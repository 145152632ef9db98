"""Where CloudWatch metrics and alarms live: the `CloudWatchRepository` protocol, its SQLite
implementation (tables cw_metric_buckets, cw_alarms, cw_alarm_history, cw_pending_notifications
of the state database) and a memory twin with the same contract (tests/contract).

Metric rows are `MetricAggregator.rows()`'s buckets; storing a bucket that exists merges it
(`StatisticSet.merge`), as `MetricAggregator.load` does. An alarm's state change, its history
item and its pending notification are one transaction (`record_transition`), so a crash never
leaves an ALARM without the notification its sender must still deliver. Times are epoch seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from trailkeeper._internal.sqlite import Database
from trailkeeper.monitoring.metrics import MetricKey, MetricRow, StatisticSet
from trailkeeper.state.schema import STATE_SCHEMA


@dataclass(frozen=True)
class AlarmRecord:
    name: str
    config: dict[str, Any]  # the AlarmConfig as `monitoring.cloudwatch.config_to_dict` writes it
    state: str
    reason: str
    reason_data: str | None
    state_updated: float
    config_updated: float


@dataclass(frozen=True)
class HistoryRecord:
    alarm_name: str
    timestamp: float
    item_type: str  # "StateUpdate" or "ConfigurationUpdate"
    summary: str
    data: str
    event_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PendingNotification:
    """An ALARM (or other) transition whose actions the notification sender has yet to run."""

    alarm_name: str
    timestamp: float
    new_state: str
    actions: tuple[str, ...]
    event_ids: tuple[str, ...]
    # Its row number, as read back from the store (None before it is stored): what
    # `remove_pending` takes once the sender has queued its messages. Not part of equality.
    seq: int | None = field(default=None, compare=False)


class CloudWatchRepository(Protocol):
    def add_rows(self, rows: Iterable[MetricRow]) -> None: ...
    def rows(self, metric: MetricKey | None = None, since: int | None = None) -> list[MetricRow]: ...
    def metrics(self) -> list[MetricKey]: ...
    def put_alarm(self, alarm: AlarmRecord, history: HistoryRecord) -> None: ...
    def get_alarm(self, name: str) -> AlarmRecord | None: ...
    def alarms(self) -> list[AlarmRecord]: ...
    def remove_alarm(self, name: str, history: HistoryRecord) -> bool: ...
    def record_transition(self, alarm: AlarmRecord, history: HistoryRecord | None,
                          notification: PendingNotification | None) -> None: ...
    def history(self, alarm_name: str | None = None) -> list[HistoryRecord]: ...
    def pending_notifications(self) -> list[PendingNotification]: ...
    def remove_pending(self, seq: int) -> bool: ...  # False when no such row (already removed)
    def close(self) -> None: ...


def metric_key_text(metric: MetricKey) -> str:
    """The stable text form of a metric key (the SQLite primary key; dimensions are sorted)."""
    return orjson.dumps([metric.namespace, metric.name, [list(d) for d in metric.dimensions]]).decode()


def _metric_of(text: str) -> MetricKey:
    namespace, name, dims = orjson.loads(text)
    return MetricKey(namespace, name, tuple((k, v) for k, v in dims))


# ---- SQLite -----------------------------------------------------------------------------------
class SqliteCloudWatchRepository:
    """Metrics and alarms in the state database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    def close(self) -> None:
        pass  # the state database is the runtime's, closed by it

    def add_rows(self, rows: Iterable[MetricRow]) -> None:
        with self.db.tx() as conn:
            for row in rows:
                key = metric_key_text(row.metric)
                found = conn.execute(
                    "SELECT sample_count, sum, minimum, maximum, event_ids, dropped_event_ids"
                    " FROM cw_metric_buckets WHERE metric_key = ? AND bucket_start = ?",
                    (key, row.bucket_start)).fetchone()
                stats = _stats(found).merge(row.stats) if found is not None else row.stats
                conn.execute(
                    "INSERT OR REPLACE INTO cw_metric_buckets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, row.bucket_start, row.metric.namespace, row.metric.name, stats.sample_count,
                     stats.sum, stats.minimum, stats.maximum, orjson.dumps(list(stats.event_ids)).decode(),
                     stats.dropped_event_ids))

    def rows(self, metric: MetricKey | None = None, since: int | None = None) -> list[MetricRow]:
        sql = ("SELECT metric_key, bucket_start, sample_count, sum, minimum, maximum, event_ids,"
               " dropped_event_ids FROM cw_metric_buckets WHERE bucket_start >= ?")
        params: tuple[object, ...] = (since if since is not None else -(2**62),)
        if metric is not None:
            sql += " AND metric_key = ?"
            params += (metric_key_text(metric),)
        found = self.db.query(sql + " ORDER BY metric_key, bucket_start", params)
        return [MetricRow(r[1], _metric_of(r[0]), _stats(r[2:])) for r in found]

    def metrics(self) -> list[MetricKey]:
        return sorted(_metric_of(r[0]) for r in self.db.query("SELECT DISTINCT metric_key FROM cw_metric_buckets"))

    def put_alarm(self, alarm: AlarmRecord, history: HistoryRecord) -> None:
        with self.db.tx() as conn:
            self._write_alarm(conn, alarm)
            self._write_history(conn, history)

    def get_alarm(self, name: str) -> AlarmRecord | None:
        found = self.db.query("SELECT * FROM cw_alarms WHERE name = ?", (name,))
        return _alarm(found[0]) if found else None

    def alarms(self) -> list[AlarmRecord]:
        return [_alarm(r) for r in self.db.query("SELECT * FROM cw_alarms ORDER BY name")]

    def remove_alarm(self, name: str, history: HistoryRecord) -> bool:
        with self.db.tx() as conn:
            if conn.execute("DELETE FROM cw_alarms WHERE name = ?", (name,)).rowcount == 0:
                return False
            self._write_history(conn, history)
        return True

    def record_transition(self, alarm: AlarmRecord, history: HistoryRecord | None,
                          notification: PendingNotification | None) -> None:
        with self.db.tx() as conn:
            self._write_alarm(conn, alarm)
            if history is not None:
                self._write_history(conn, history)
            if notification is not None:
                conn.execute(
                    "INSERT INTO cw_pending_notifications (alarm_name, timestamp, new_state, actions, event_ids)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (notification.alarm_name, notification.timestamp, notification.new_state,
                     orjson.dumps(list(notification.actions)).decode(),
                     orjson.dumps(list(notification.event_ids)).decode()))

    def history(self, alarm_name: str | None = None) -> list[HistoryRecord]:
        sql = "SELECT alarm_name, timestamp, item_type, summary, data, event_ids FROM cw_alarm_history"
        found = (self.db.query(sql + " WHERE alarm_name = ? ORDER BY seq", (alarm_name,)) if alarm_name is not None
                 else self.db.query(sql + " ORDER BY seq"))
        return [HistoryRecord(r[0], r[1], r[2], r[3], r[4], tuple(orjson.loads(r[5]))) for r in found]

    def pending_notifications(self) -> list[PendingNotification]:
        found = self.db.query("SELECT alarm_name, timestamp, new_state, actions, event_ids, seq"
                              " FROM cw_pending_notifications ORDER BY seq")
        return [PendingNotification(r[0], r[1], r[2], tuple(orjson.loads(r[3])), tuple(orjson.loads(r[4])), r[5])
                for r in found]

    def remove_pending(self, seq: int) -> bool:
        with self.db.tx() as conn:
            return bool(conn.execute("DELETE FROM cw_pending_notifications WHERE seq = ?", (seq,)).rowcount)

    @staticmethod
    def _write_alarm(conn: Any, alarm: AlarmRecord) -> None:
        conn.execute("INSERT OR REPLACE INTO cw_alarms VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (alarm.name, orjson.dumps(alarm.config).decode(), alarm.state, alarm.reason,
                      alarm.reason_data, alarm.state_updated, alarm.config_updated))

    @staticmethod
    def _write_history(conn: Any, item: HistoryRecord) -> None:
        conn.execute("INSERT INTO cw_alarm_history (alarm_name, timestamp, item_type, summary, data, event_ids)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
                     (item.alarm_name, item.timestamp, item.item_type, item.summary, item.data,
                      orjson.dumps(list(item.event_ids)).decode()))


def _stats(row: Sequence[Any]) -> StatisticSet:
    return StatisticSet(int(row[0]), float(row[1]), float(row[2]), float(row[3]),
                        tuple(orjson.loads(row[4])), int(row[5]))


def _alarm(row: Sequence[Any]) -> AlarmRecord:
    return AlarmRecord(row[0], orjson.loads(row[1]), row[2], row[3], row[4], row[5], row[6])


# ---- memory -----------------------------------------------------------------------------------
class MemoryCloudWatchRepository:
    """The same contract in dictionaries (tests and the in-process fake)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[MetricKey, int], StatisticSet] = {}
        self._alarms: dict[str, AlarmRecord] = {}
        self._history: list[HistoryRecord] = []
        self._pending: list[PendingNotification] = []
        self._next_seq = 1

    def close(self) -> None:
        pass

    def add_rows(self, rows: Iterable[MetricRow]) -> None:
        with self._lock:
            for row in rows:
                key = (row.metric, row.bucket_start)
                found = self._buckets.get(key)
                self._buckets[key] = found.merge(row.stats) if found is not None else row.stats

    def rows(self, metric: MetricKey | None = None, since: int | None = None) -> list[MetricRow]:
        with self._lock:
            found = [MetricRow(start, key, stats) for (key, start), stats in self._buckets.items()
                     if (metric is None or key == metric) and (since is None or start >= since)]
        return sorted(found, key=lambda r: (metric_key_text(r.metric), r.bucket_start))

    def metrics(self) -> list[MetricKey]:
        with self._lock:
            return sorted({key for key, _ in self._buckets})

    def put_alarm(self, alarm: AlarmRecord, history: HistoryRecord) -> None:
        with self._lock:
            self._alarms[alarm.name] = _detached(alarm)
            self._history.append(history)

    def get_alarm(self, name: str) -> AlarmRecord | None:
        with self._lock:
            found = self._alarms.get(name)
            return _detached(found) if found is not None else None

    def alarms(self) -> list[AlarmRecord]:
        with self._lock:
            return [_detached(self._alarms[name]) for name in sorted(self._alarms)]

    def remove_alarm(self, name: str, history: HistoryRecord) -> bool:
        with self._lock:
            if self._alarms.pop(name, None) is None:
                return False
            self._history.append(history)
            return True

    def record_transition(self, alarm: AlarmRecord, history: HistoryRecord | None,
                          notification: PendingNotification | None) -> None:
        with self._lock:
            self._alarms[alarm.name] = _detached(alarm)
            if history is not None:
                self._history.append(history)
            if notification is not None:
                self._pending.append(replace(notification, seq=self._next_seq))
                self._next_seq += 1

    def history(self, alarm_name: str | None = None) -> list[HistoryRecord]:
        with self._lock:
            return [h for h in self._history if alarm_name is None or h.alarm_name == alarm_name]

    def pending_notifications(self) -> list[PendingNotification]:
        with self._lock:
            return list(self._pending)

    def remove_pending(self, seq: int) -> bool:
        with self._lock:
            kept = [p for p in self._pending if p.seq != seq]
            removed = len(kept) != len(self._pending)
            self._pending = kept
            return removed


def _detached(alarm: AlarmRecord) -> AlarmRecord:
    """A copy whose config shares nothing with the caller's, in the JSON types SQLite gives back
    (lists, not tuples): changing a record read from the store never changes the store."""
    return replace(alarm, config=orjson.loads(orjson.dumps(alarm.config)))
