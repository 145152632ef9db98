"""Where alerts live: tables alert_* of the state database (migration 9).

Reads are single statements; every change happens in a `transaction()`, whose `AlertTx` offers
the steps the alert rules are made of (claim a match, find the latest alert of a dedup key,
absorb a match, open an alert with its history and outbox row, ...). The rules themselves live
in `alerts/lifecycle.py`: this module only stores rows. Times are epoch microseconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson

from trailkeeper._internal.sqlite import Database
from trailkeeper.alerts.model import (
    MAX_EVENT_IDS,
    Alert,
    AlertState,
    Change,
    Notification,
    Suppression,
)
from trailkeeper.state.schema import STATE_SCHEMA

_ALERT_COLUMNS = ("id, rule_id, rule_title, severity, dedup_key, state, first_seen_us, last_seen_us, match_count,"
                  " dropped, summary, updated_us, notified_us")
_SUPPRESSION_COLUMNS = ("id, rule_id, fields, reason, actor, created_us, expires_us, lifted_us, lifted_by,"
                        " suppressed, last_suppressed_us")


def to_us(when: datetime) -> int:
    """Exact epoch microseconds (a float of seconds would lose some)."""
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    seconds, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqliteAlertRepository:
    """Alerts, their events, history, suppressions, outbox and settings in the state database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    @contextmanager
    def transaction(self) -> Iterator[AlertTx]:
        with self.db.tx() as conn:
            yield AlertTx(conn)

    # ---- reads ----
    def get(self, alert_id: str) -> Alert | None:
        found = self.db.query(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return _alert(found[0]) if found else None

    def page(self, state: str | None, severity: str | None, rule: str | None, before: str | None,
             limit: int) -> list[Alert]:
        """Alerts newest first (by id), those with an id below `before` when given."""
        where, params = [], []
        for column, value in (("state", state), ("severity", severity), ("rule_id", rule)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        found = self.db.query(f"SELECT {_ALERT_COLUMNS} FROM alerts{clause} ORDER BY id DESC LIMIT ?",
                              (*params, limit))
        return [_alert(r) for r in found]

    def newest_id(self) -> str | None:
        found = self.db.query("SELECT MAX(id) FROM alerts")
        return str(found[0][0]) if found[0][0] is not None else None

    def history(self, alert_id: str) -> list[Change]:
        found = self.db.query("SELECT alert_id, seq, at_us, actor, action, from_state, to_state, comment"
                              " FROM alert_history WHERE alert_id = ? ORDER BY seq", (alert_id,))
        return [_change(r) for r in found]

    def event_ids(self, alert_id: str) -> list[str]:
        found = self.db.query("SELECT event_id FROM alert_events WHERE alert_id = ? ORDER BY seq", (alert_id,))
        return [str(r[0]) for r in found]

    def suppressions(self, active_at: datetime | None) -> list[Suppression]:
        """Every suppression, or those active at `active_at`; oldest first."""
        if active_at is None:
            found = self.db.query(f"SELECT {_SUPPRESSION_COLUMNS} FROM alert_suppressions ORDER BY id")
        else:
            found = self.db.query(f"SELECT {_SUPPRESSION_COLUMNS} FROM alert_suppressions"
                                  " WHERE lifted_us IS NULL AND expires_us > ? ORDER BY id", (to_us(active_at),))
        return [_suppression(r) for r in found]

    def settings(self) -> Mapping[str, Any] | None:
        found = self.db.query("SELECT value FROM alert_settings WHERE id = 1")
        return orjson.loads(found[0][0]) if found else None

    # ---- the outbox ----
    def due_notifications(self, now: datetime, limit: int) -> list[Notification]:
        found = self.db.query("SELECT id, alert_id, topic_arn, subject, message, created_us, next_attempt_us,"
                              " attempts, last_error FROM alert_outbox WHERE next_attempt_us <= ?"
                              " ORDER BY next_attempt_us, id LIMIT ?", (to_us(now), limit))
        return [_notification(r) for r in found]

    def pending_notifications(self) -> list[Notification]:
        found = self.db.query("SELECT id, alert_id, topic_arn, subject, message, created_us, next_attempt_us,"
                              " attempts, last_error FROM alert_outbox ORDER BY id")
        return [_notification(r) for r in found]

    def next_due(self) -> datetime | None:
        found = self.db.query("SELECT MIN(next_attempt_us) FROM alert_outbox")
        return from_us(found[0][0]) if found[0][0] is not None else None

    def notification_sent(self, notification: Notification, now: datetime) -> None:
        with self.db.tx() as conn:
            conn.execute("DELETE FROM alert_outbox WHERE id = ?", (notification.row_id,))
            conn.execute("UPDATE alerts SET notified_us = ? WHERE id = ?", (to_us(now), notification.alert_id))

    def notification_failed(self, notification: Notification, next_attempt: datetime, error: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_us = ?, last_error = ?"
                         " WHERE id = ?", (to_us(next_attempt), error, notification.row_id))


class AlertTx:
    """The steps of one transaction (see the module's docstring)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # ---- matching ----
    def claim(self, rule_id: str, event_id: str, expires: datetime) -> bool:
        """Whether (rule, eventID) is new; remembered until `expires` either way."""
        done = self.conn.execute("INSERT OR IGNORE INTO alert_seen VALUES (?, ?, ?)",
                                 (rule_id, event_id, to_us(expires)))
        return done.rowcount == 1

    def prune(self, now: datetime) -> None:
        self.conn.execute("DELETE FROM alert_seen WHERE expires_us <= ?", (to_us(now),))
        self.conn.execute("DELETE FROM alert_pending WHERE expires_us <= ?", (to_us(now),))

    def latest(self, dedup_key: str) -> Alert | None:
        found = self.conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE dedup_key = ?"
                                  " ORDER BY id DESC LIMIT 1", (dedup_key,)).fetchone()
        return _alert(found) if found is not None else None

    def absorb(self, alert: Alert, event_id: str, now: datetime) -> Alert | None:
        """`alert` with one more match; None when it holds that event ID already (a replay
        older than what `claim` remembers)."""
        if alert.count - alert.dropped < MAX_EVENT_IDS:
            added = self.conn.execute("INSERT OR IGNORE INTO alert_events VALUES (?, ?, ?)",
                                      (alert.id, event_id, alert.count))
            if added.rowcount == 0:
                return None
            dropped = 0
        else:
            dropped = 1
        self.conn.execute("UPDATE alerts SET match_count = match_count + 1, dropped = dropped + ?,"
                          " last_seen_us = ? WHERE id = ?", (dropped, to_us(now), alert.id))
        return self.get(alert.id)

    def add_pending(self, dedup_key: str, rule_id: str, event_id: str, now: datetime, window_s: int) -> int:
        """Count a match towards a threshold, forgetting those older than the window; how many
        the key has now."""
        now_us = to_us(now)
        self.conn.execute("DELETE FROM alert_pending WHERE dedup_key = ? AND at_us <= ?",
                          (dedup_key, now_us - window_s * 1_000_000))
        self.conn.execute("INSERT OR IGNORE INTO alert_pending VALUES (?, ?, ?, ?, ?)",
                          (dedup_key, event_id, rule_id, now_us, now_us + window_s * 1_000_000))
        found = self.conn.execute("SELECT COUNT(*) FROM alert_pending WHERE dedup_key = ?", (dedup_key,))
        return int(found.fetchone()[0])

    def pending(self, dedup_key: str) -> list[tuple[str, datetime]]:
        """The matches counted towards the key's threshold: (eventID, when), oldest first."""
        found = self.conn.execute("SELECT event_id, at_us FROM alert_pending WHERE dedup_key = ?"
                                  " ORDER BY at_us, event_id", (dedup_key,))
        return [(str(r[0]), from_us(r[1])) for r in found]

    def open(self, alert: Alert, event_ids: Sequence[str], change: Change,
             notification: tuple[str, str, str] | None) -> None:
        """Store a new alert with its event IDs, its first history entry and, given (topic ARN,
        subject, message), its notification; the key's threshold counters are spent."""
        a = alert
        self.conn.execute(f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (a.id, a.rule_id, a.rule_title, a.severity, a.dedup_key, a.state.value,
                           to_us(a.first_seen), to_us(a.last_seen), a.count, a.dropped, _json(dict(a.summary)),
                           to_us(a.updated), None))
        self.conn.executemany("INSERT OR IGNORE INTO alert_events VALUES (?, ?, ?)",
                              [(a.id, e, i) for i, e in enumerate(event_ids[:MAX_EVENT_IDS])])
        self.conn.execute("DELETE FROM alert_pending WHERE dedup_key = ?", (a.dedup_key,))
        self.add_change(change)
        if notification is not None:
            self.conn.execute("INSERT INTO alert_outbox (alert_id, topic_arn, subject, message, created_us,"
                              " next_attempt_us) VALUES (?, ?, ?, ?, ?, ?)",
                              (a.id, *notification, to_us(a.updated), to_us(a.updated)))

    # ---- state ----
    def get(self, alert_id: str) -> Alert | None:
        found = self.conn.execute(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return _alert(found) if found is not None else None

    def set_state(self, alert_id: str, state: AlertState, now: datetime) -> None:
        self.conn.execute("UPDATE alerts SET state = ?, updated_us = ? WHERE id = ?",
                          (state.value, to_us(now), alert_id))

    def next_seq(self, alert_id: str) -> int:
        found = self.conn.execute("SELECT MAX(seq) FROM alert_history WHERE alert_id = ?", (alert_id,)).fetchone()
        return 1 if found[0] is None else int(found[0]) + 1

    def add_change(self, c: Change) -> None:
        self.conn.execute("INSERT INTO alert_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (c.alert_id, c.seq, to_us(c.at), c.actor, c.action,
                           c.from_state.value if c.from_state else None, c.to_state.value, c.comment))

    # ---- suppressions ----
    def active_suppressions(self, now: datetime) -> list[Suppression]:
        found = self.conn.execute(f"SELECT {_SUPPRESSION_COLUMNS} FROM alert_suppressions"
                                  " WHERE lifted_us IS NULL AND expires_us > ? ORDER BY id", (to_us(now),))
        return [_suppression(r) for r in found]

    def count_suppressed(self, suppression_id: str, now: datetime) -> None:
        self.conn.execute("UPDATE alert_suppressions SET suppressed = suppressed + 1, last_suppressed_us = ?"
                          " WHERE id = ?", (to_us(now), suppression_id))

    def get_suppression(self, suppression_id: str) -> Suppression | None:
        found = self.conn.execute(f"SELECT {_SUPPRESSION_COLUMNS} FROM alert_suppressions WHERE id = ?",
                                  (suppression_id,)).fetchone()
        return _suppression(found) if found is not None else None

    def put_suppression(self, s: Suppression) -> None:
        self.conn.execute(f"INSERT OR REPLACE INTO alert_suppressions ({_SUPPRESSION_COLUMNS})"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (s.id, s.rule_id, _json(dict(s.fields)), s.reason, s.actor, to_us(s.created),
                           to_us(s.expires), to_us(s.lifted) if s.lifted else None, s.lifted_by, s.suppressed,
                           to_us(s.last_suppressed) if s.last_suppressed else None))

    # ---- settings ----
    def settings(self) -> Mapping[str, Any] | None:
        found = self.conn.execute("SELECT value FROM alert_settings WHERE id = 1").fetchone()
        return orjson.loads(found[0]) if found is not None else None

    def put_settings(self, value: Mapping[str, Any], actor: str, now: datetime) -> None:
        self.conn.execute("INSERT OR REPLACE INTO alert_settings VALUES (1, ?, ?, ?)",
                          (_json(dict(value)), to_us(now), actor))


def _alert(row: Sequence[Any]) -> Alert:
    return Alert(row[0], row[1], row[2], row[3], row[4], AlertState(row[5]), from_us(row[6]), from_us(row[7]),
                 int(row[8]), int(row[9]), orjson.loads(row[10]), from_us(row[11]),
                 from_us(row[12]) if row[12] is not None else None)


def _change(row: Sequence[Any]) -> Change:
    return Change(row[0], int(row[1]), from_us(row[2]), row[3], row[4],
                  AlertState(row[5]) if row[5] is not None else None, AlertState(row[6]), row[7])


def _suppression(row: Sequence[Any]) -> Suppression:
    return Suppression(row[0], orjson.loads(row[2]), row[1], row[3], row[4], from_us(row[5]), from_us(row[6]),
                       from_us(row[7]) if row[7] is not None else None, row[8], int(row[9]),
                       from_us(row[10]) if row[10] is not None else None)


def _notification(row: Sequence[Any]) -> Notification:
    return Notification(int(row[0]), row[1], row[2], row[3], row[4], from_us(row[5]), from_us(row[6]),
                        int(row[7]), row[8])
