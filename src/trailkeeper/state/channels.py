"""Channel repositories (CloudTrail Lake): SQLite (table channels of the state database) and
memory. The memory repository keeps the columns' values (destinations and tags as JSON), so
a channel read back is a copy in both."""

from __future__ import annotations

import sqlite3
import threading

import orjson

from trailkeeper._internal.sqlite import Database
from trailkeeper.lake import Channel
from trailkeeper.state.schema import STATE_SCHEMA

_Row = tuple[str, str, str, str, str, float]  # the columns: arn, name, source, destinations, tags, created


def _row(channel: Channel) -> _Row:
    return (channel.arn, channel.name, channel.source, orjson.dumps(channel.destinations).decode(),
            orjson.dumps(channel.tags).decode(), channel.created)


def _channel(arn: str, name: str, source: str, destinations: str, tags: str, created: float) -> Channel:
    return Channel(arn, name, source, orjson.loads(destinations), orjson.loads(tags), created)


class SqliteChannelRepository:
    """Channels in the state database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    def add(self, channel: Channel) -> bool:
        try:
            with self.db.tx() as conn:
                conn.execute("INSERT INTO channels VALUES (?, ?, ?, ?, ?, ?)", _row(channel))
        except sqlite3.IntegrityError:
            return False
        return True

    def get(self, channel_id: str) -> Channel | None:
        rows = self.db.query("SELECT * FROM channels WHERE arn LIKE ?", (f"%:channel/{channel_id}",))
        return _channel(*rows[0]) if rows else None

    def all(self) -> list[Channel]:
        return [_channel(*row) for row in self.db.query("SELECT * FROM channels ORDER BY arn")]

    def remove(self, arn: str) -> bool:
        with self.db.tx() as conn:
            return conn.execute("DELETE FROM channels WHERE arn = ?", (arn,)).rowcount > 0


class MemoryChannelRepository:
    """Channels in a dictionary, for tests; the same contract as the SQLite repository."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}  # arn -> columns

    def add(self, channel: Channel) -> bool:
        with self._lock:
            if channel.arn in self._rows or any(row[1] == channel.name for row in self._rows.values()):
                return False
            self._rows[channel.arn] = _row(channel)
            return True

    def get(self, channel_id: str) -> Channel | None:
        suffix = f":channel/{channel_id}".lower()  # SQLite's LIKE ignores ASCII case
        with self._lock:
            found = [row for arn, row in self._rows.items() if arn.lower().endswith(suffix)]
            return _channel(*found[0]) if found else None

    def all(self) -> list[Channel]:
        with self._lock:
            return [_channel(*self._rows[arn]) for arn in sorted(self._rows)]

    def remove(self, arn: str) -> bool:
        with self._lock:
            return self._rows.pop(arn, None) is not None
