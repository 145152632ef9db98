"""Where topics, subscriptions and the delivery queue live: the SQLite implementation of
`NotifyRepository` (tables sns_* of the state database, migration 6) and a memory twin held to
the same contract.

Each method is one transaction. `queue` writes every delivery of a publish and its dedup key
together, so a publish is queued whole or not at all, and a keyed publish repeated after a
crash finds its key and queues nothing twice.
"""

from __future__ import annotations

import copy
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from trailkeeper._internal.sqlite import Database
from trailkeeper.notify.model import Delivery, DeliveryCounts, NewDelivery, Subscription, Topic
from trailkeeper.state.schema import STATE_SCHEMA


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqliteNotifyRepository:
    """Topics, subscriptions and deliveries in the state database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    def close(self) -> None:
        pass  # the state database is the runtime's, closed by it

    # ---- topics ----
    def get_topic(self, arn: str) -> Topic | None:
        found = self.db.query("SELECT arn, name, attributes, created FROM sns_topics WHERE arn = ?", (arn,))
        return _topic(found[0]) if found else None

    def topics(self) -> list[Topic]:
        return [_topic(r) for r in self.db.query("SELECT arn, name, attributes, created FROM sns_topics ORDER BY arn")]

    def put_topic(self, topic: Topic) -> None:
        with self.db.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO sns_topics VALUES (?, ?, ?, ?)",
                         (topic.arn, topic.name, _json(dict(topic.attributes)), topic.created))

    def delete_topic(self, arn: str) -> bool:
        with self.db.tx() as conn:
            if conn.execute("DELETE FROM sns_topics WHERE arn = ?", (arn,)).rowcount == 0:
                return False
            conn.execute("DELETE FROM sns_deliveries WHERE subscription_arn IN"
                         " (SELECT arn FROM sns_subscriptions WHERE topic_arn = ?)", (arn,))
            conn.execute("DELETE FROM sns_subscriptions WHERE topic_arn = ?", (arn,))
        return True

    # ---- subscriptions ----
    def get_subscription(self, arn: str) -> Subscription | None:
        found = self.db.query("SELECT * FROM sns_subscriptions WHERE arn = ?", (arn,))
        return _subscription(found[0]) if found else None

    def subscriptions(self, topic_arn: str | None = None) -> list[Subscription]:
        if topic_arn is None:
            found = self.db.query("SELECT * FROM sns_subscriptions ORDER BY arn")
        else:
            found = self.db.query("SELECT * FROM sns_subscriptions WHERE topic_arn = ? ORDER BY arn", (topic_arn,))
        return [_subscription(r) for r in found]

    def put_subscription(self, subscription: Subscription, deliveries: Sequence[NewDelivery] = ()) -> None:
        s = subscription
        with self.db.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO sns_subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (s.arn, s.topic_arn, s.protocol, s.endpoint, s.token, int(s.confirmed),
                          int(s.authenticate_on_unsubscribe), s.created))
            _insert_deliveries(conn, deliveries)

    def delete_subscription(self, arn: str) -> bool:
        with self.db.tx() as conn:
            if conn.execute("DELETE FROM sns_subscriptions WHERE arn = ?", (arn,)).rowcount == 0:
                return False
            conn.execute("DELETE FROM sns_deliveries WHERE subscription_arn = ?", (arn,))
        return True

    # ---- the delivery queue ----
    def queue(self, deliveries: Sequence[NewDelivery], message_id: str, dedup_key: str | None = None,
              now: float = 0.0) -> str:
        with self.db.tx() as conn:
            if dedup_key is not None:
                found = conn.execute("SELECT message_id FROM sns_published WHERE dedup_key = ?",
                                     (dedup_key,)).fetchone()
                if found is not None:
                    return str(found[0])
                conn.execute("INSERT INTO sns_published VALUES (?, ?, ?)", (dedup_key, message_id, now))
            _insert_deliveries(conn, deliveries)
        return message_id

    def due(self, now: float, limit: int) -> list[Delivery]:
        found = self.db.query("SELECT * FROM sns_deliveries WHERE failed IS NULL AND next_attempt <= ?"
                              " ORDER BY next_attempt, id LIMIT ?", (now, limit))
        return [_delivery(r) for r in found]

    def next_due(self) -> float | None:
        found = self.db.query("SELECT MIN(next_attempt) FROM sns_deliveries WHERE failed IS NULL")
        return float(found[0][0]) if found and found[0][0] is not None else None

    def delivered(self, delivery_id: int) -> None:
        with self.db.tx() as conn:
            conn.execute("DELETE FROM sns_deliveries WHERE id = ?", (delivery_id,))

    def retry_later(self, delivery_id: int, attempts: int, next_attempt: float, error: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE sns_deliveries SET attempts = ?, next_attempt = ?, last_error = ? WHERE id = ?",
                         (attempts, next_attempt, error, delivery_id))

    def give_up(self, delivery_id: int, attempts: int, error: str, when: float) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE sns_deliveries SET attempts = ?, last_error = ?, failed = ? WHERE id = ?",
                         (attempts, error, when, delivery_id))

    def counts(self) -> DeliveryCounts:
        [row] = self.db.query("SELECT SUM(failed IS NULL), SUM(failed IS NOT NULL),"
                              " MIN(CASE WHEN failed IS NULL THEN created END) FROM sns_deliveries")
        return DeliveryCounts(int(row[0] or 0), int(row[1] or 0), row[2])

    # ---- signing identity ----
    def signing_identity(self) -> tuple[bytes, bytes] | None:
        found = self.db.query("SELECT sealed_key, certificate FROM sns_signing_identity WHERE id = 1")
        return (bytes(found[0][0]), bytes(found[0][1])) if found else None

    def save_signing_identity(self, sealed_key: bytes, certificate: bytes, now: float) -> bool:
        with self.db.tx() as conn:
            done = conn.execute("INSERT OR IGNORE INTO sns_signing_identity VALUES (1, ?, ?, ?)",
                                (sealed_key, certificate, now))
            return done.rowcount == 1


def _insert_deliveries(conn: sqlite3.Connection, deliveries: Sequence[NewDelivery]) -> None:
    # One row per (subscription, message): queuing the same message again adds nothing.
    conn.executemany(
        "INSERT OR IGNORE INTO sns_deliveries (subscription_arn, message_id, message, created, next_attempt)"
        " VALUES (?, ?, ?, ?, ?)",
        [(d.subscription_arn, d.message_id, _json(dict(d.message)), d.created, d.created) for d in deliveries])


def _topic(row: Sequence[Any]) -> Topic:
    return Topic(row[0], row[1], orjson.loads(row[2]), row[3])


def _subscription(row: Sequence[Any]) -> Subscription:
    return Subscription(row[0], row[1], row[2], row[3], row[4], bool(row[5]), bool(row[6]), row[7])


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(row[0], row[1], row[2], orjson.loads(row[3]), row[4], row[5], row[6], row[7], row[8])


# ---- memory -----------------------------------------------------------------------------------
class MemoryNotifyRepository:
    """The same contract in dictionaries (unit tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._topics: dict[str, Topic] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._deliveries: dict[int, Delivery] = {}
        self._published: dict[str, str] = {}
        self._identity: tuple[bytes, bytes] | None = None
        self._next_id = 1

    def close(self) -> None:
        pass

    def get_topic(self, arn: str) -> Topic | None:
        with self._lock:
            found = self._topics.get(arn)
            return _copied(found) if found is not None else None

    def topics(self) -> list[Topic]:
        with self._lock:
            return [_copied(self._topics[a]) for a in sorted(self._topics)]

    def put_topic(self, topic: Topic) -> None:
        with self._lock:
            self._topics[topic.arn] = _copied(topic)

    def delete_topic(self, arn: str) -> bool:
        with self._lock:
            if self._topics.pop(arn, None) is None:
                return False
            for sub in [s for s in self._subscriptions.values() if s.topic_arn == arn]:
                self._drop_subscription(sub.arn)
            return True

    def get_subscription(self, arn: str) -> Subscription | None:
        with self._lock:
            return self._subscriptions.get(arn)

    def subscriptions(self, topic_arn: str | None = None) -> list[Subscription]:
        with self._lock:
            return [self._subscriptions[a] for a in sorted(self._subscriptions)
                    if topic_arn is None or self._subscriptions[a].topic_arn == topic_arn]

    def put_subscription(self, subscription: Subscription, deliveries: Sequence[NewDelivery] = ()) -> None:
        with self._lock:
            self._subscriptions[subscription.arn] = subscription
            self._insert(deliveries)

    def delete_subscription(self, arn: str) -> bool:
        with self._lock:
            if arn not in self._subscriptions:
                return False
            self._drop_subscription(arn)
            return True

    def queue(self, deliveries: Sequence[NewDelivery], message_id: str, dedup_key: str | None = None,
              now: float = 0.0) -> str:
        with self._lock:
            if dedup_key is not None:
                if dedup_key in self._published:
                    return self._published[dedup_key]
                self._published[dedup_key] = message_id
            self._insert(deliveries)
            return message_id

    def due(self, now: float, limit: int) -> list[Delivery]:
        with self._lock:
            found = [d for d in self._deliveries.values() if d.failed is None and d.next_attempt <= now]
        return sorted(found, key=lambda d: (d.next_attempt, d.id))[:limit]

    def next_due(self) -> float | None:
        with self._lock:
            return min((d.next_attempt for d in self._deliveries.values() if d.failed is None), default=None)

    def delivered(self, delivery_id: int) -> None:
        with self._lock:
            self._deliveries.pop(delivery_id, None)

    def retry_later(self, delivery_id: int, attempts: int, next_attempt: float, error: str) -> None:
        with self._lock:
            found = self._deliveries.get(delivery_id)
            if found is not None:
                self._deliveries[delivery_id] = replace(found, attempts=attempts, next_attempt=next_attempt,
                                                        last_error=error)

    def give_up(self, delivery_id: int, attempts: int, error: str, when: float) -> None:
        with self._lock:
            found = self._deliveries.get(delivery_id)
            if found is not None:
                self._deliveries[delivery_id] = replace(found, attempts=attempts, last_error=error, failed=when)

    def counts(self) -> DeliveryCounts:
        with self._lock:
            pending = [d.created for d in self._deliveries.values() if d.failed is None]
            failed = sum(1 for d in self._deliveries.values() if d.failed is not None)
        return DeliveryCounts(len(pending), failed, min(pending, default=None))

    def signing_identity(self) -> tuple[bytes, bytes] | None:
        with self._lock:
            return self._identity

    def save_signing_identity(self, sealed_key: bytes, certificate: bytes, now: float) -> bool:
        with self._lock:
            if self._identity is not None:
                return False
            self._identity = (sealed_key, certificate)
            return True

    def _insert(self, deliveries: Sequence[NewDelivery]) -> None:
        taken = {(d.subscription_arn, d.message_id) for d in self._deliveries.values()}
        for d in deliveries:
            if (d.subscription_arn, d.message_id) in taken:
                continue
            taken.add((d.subscription_arn, d.message_id))
            self._deliveries[self._next_id] = Delivery(self._next_id, d.subscription_arn, d.message_id,
                                                       dict(d.message), d.created, d.created)
            self._next_id += 1

    def _drop_subscription(self, arn: str) -> None:
        self._subscriptions.pop(arn, None)
        for key in [k for k, d in self._deliveries.items() if d.subscription_arn == arn]:
            del self._deliveries[key]


def _copied(topic: Topic) -> Topic:
    """A copy whose attributes share nothing with the caller's (as SQLite gives back)."""
    return replace(topic, attributes=copy.deepcopy(dict(topic.attributes)))
