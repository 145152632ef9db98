"""Trail repositories: SQLite (tables trails, trail_state, logging_periods, delivered_files and
deleted_trails of the state database) and memory.

The memory repository keeps the very values the SQLite columns hold (JSON documents, epoch
seconds), so both read back identically; tests/contract/test_state_repositories.py holds them
to the same contract.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from trailkeeper._internal.sqlite import Database
from trailkeeper.state.schema import STATE_SCHEMA
from trailkeeper.trails import (
    DeletedTrail,
    DeliveredFile,
    ForwardingStatus,
    Location,
    LoggingPeriod,
    Trail,
    TrailConfig,
    TrailState,
)

_FILE_COLUMNS = "key, hash, stored_hash, newest, oldest, delivered_at, events"


def _ts(when: datetime | None) -> float | None:
    return when.timestamp() if when else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _req_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _trail(config: str, created: float | None, state: str) -> Trail:
    return Trail(TrailConfig.from_json(config), TrailState.from_json(state), _dt(created))


def _period(started: float, stopped: float | None, final_end: float | None, bucket: str | None,
            prefix: str | None, destination: str) -> LoggingPeriod:
    location = Location(bucket, prefix or "", destination) if bucket is not None else None
    return LoggingPeriod(_req_dt(started), _dt(stopped), _dt(final_end), location)


def _file(key: str, hash_value: str, stored_hash: str, newest: float | None, oldest: float | None,
          delivered_at: float, events: int) -> DeliveredFile:
    return DeliveredFile(key, hash_value, stored_hash, _dt(newest), _dt(oldest), _req_dt(delivered_at), events)


class SqliteTrailRepository:
    """Trails in the state database; every write is one `BEGIN IMMEDIATE` transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    def create(self, config: TrailConfig, state: TrailState, created: datetime) -> bool:
        with self.db.tx() as c:
            if c.execute("SELECT 1 FROM trails WHERE name=?", (config.name,)).fetchone():
                return False
            c.execute("INSERT INTO trails VALUES (?,?,?)", (config.name, config.to_json(), created.timestamp()))
            c.execute("INSERT OR REPLACE INTO trail_state VALUES (?,?)", (config.name, state.to_json()))
        return True

    def count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM trails")[0][0])

    def get(self, name: str) -> Trail | None:
        rows = self.db.query("SELECT t.config, t.created, s.state FROM trails t JOIN trail_state s USING(name) "
                             "WHERE name=?", (name,))
        return _trail(*rows[0]) if rows else None

    def all(self) -> list[Trail]:
        rows = self.db.query("SELECT t.config, t.created, s.state FROM trails t JOIN trail_state s USING(name) "
                             "ORDER BY name")
        return [_trail(*row) for row in rows]

    def update_config(self, config: TrailConfig) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE trails SET config=? WHERE name=?", (config.to_json(), config.name))

    def archive(self, name: str, key: str, deleted: datetime) -> None:
        with self.db.tx() as c:
            row = c.execute("SELECT config, created FROM trails WHERE name=?", (name,)).fetchone()
            if row is not None:
                c.execute("INSERT INTO deleted_trails VALUES (?,?,?,?,?)", (key, name, row[0], row[1], deleted.timestamp()))
                c.execute("UPDATE logging_periods SET name=? WHERE name=?", (key, name))
                c.execute("UPDATE delivered_files SET name=? WHERE name=?", (key, name))
            c.execute("DELETE FROM trails WHERE name=?", (name,))
            c.execute("DELETE FROM trail_state WHERE name=?", (name,))

    def deleted(self) -> list[DeletedTrail]:
        rows = self.db.query("SELECT key, config, created, deleted FROM deleted_trails ORDER BY deleted")
        return [DeletedTrail(r[0], TrailConfig.from_json(r[1]), _req_dt(r[2]), _req_dt(r[3])) for r in rows]

    def save_state(self, name: str, state: TrailState) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))

    def start_chain(self, name: str, state: TrailState, started: datetime, location: Location) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))
            c.execute("INSERT OR REPLACE INTO logging_periods (name, started, stopped, final_digest_end, bucket, "
                      "prefix, destination) VALUES (?,?,NULL,NULL,?,?,?)",
                      (name, started.timestamp(), location.bucket, location.prefix, location.destination))

    def mark_stopped(self, name: str, state: TrailState, stopped: datetime) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))
            c.execute("UPDATE logging_periods SET stopped=? WHERE name=? AND stopped IS NULL", (stopped.timestamp(), name))

    def periods(self, name: str) -> list[LoggingPeriod]:
        rows = self.db.query("SELECT started, stopped, final_digest_end, bucket, prefix, destination "
                             "FROM logging_periods WHERE name=? ORDER BY started", (name,))
        return [_period(*row) for row in rows]

    def period_places(self) -> list[tuple[str, Location]]:
        rows = self.db.query("SELECT p.name, p.bucket, p.prefix, p.destination, d.name FROM logging_periods p "
                             "LEFT JOIN deleted_trails d ON d.key = p.name WHERE p.bucket IS NOT NULL "
                             "ORDER BY p.name, p.started")
        return [(deleted_name or key, Location(bucket, prefix or "", destination))
                for key, bucket, prefix, destination, deleted_name in rows]

    def record_delivery(self, name: str, state: TrailState, file: DeliveredFile, seq_from: int,
                        seq_to: int) -> None:
        with self.db.tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO delivered_files VALUES (?,?,?,?,?,?,?,NULL,?,?,?)",
                (name, file.key, file.hash_value, file.stored_hash, _ts(file.newest), _ts(file.oldest),
                 file.delivered_at.timestamp(), seq_from, seq_to, file.events),
            )
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))

    def undigested(self, name: str, before: datetime) -> list[DeliveredFile]:
        rows = self.db.query(
            f"SELECT {_FILE_COLUMNS} FROM delivered_files "
            "WHERE name=? AND digest_end IS NULL AND delivered_at < ? ORDER BY delivered_at, key",
            (name, before.timestamp()),
        )
        return [_file(*row) for row in rows]

    def record_digest(self, name: str, state: TrailState, keys: list[str], end: datetime, final: bool) -> None:
        with self.db.tx() as c:
            c.executemany("UPDATE delivered_files SET digest_end=? WHERE name=? AND key=?",
                          [(end.timestamp(), name, k) for k in keys])
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))
            if final:
                c.execute(
                    "UPDATE logging_periods SET final_digest_end=? WHERE name=? AND started=(SELECT max(started) "
                    "FROM logging_periods WHERE name=?)",
                    (end.timestamp(), name, name),
                )

    def delivered_files(self, name: str) -> list[DeliveredFile]:
        rows = self.db.query(
            f"SELECT {_FILE_COLUMNS} FROM delivered_files WHERE name=? ORDER BY delivered_at, key", (name,))
        return [_file(*row) for row in rows]


@dataclass
class _PeriodRow:
    name: str
    started: float
    stopped: float | None
    final_digest_end: float | None
    bucket: str | None
    prefix: str | None
    destination: str


@dataclass
class _FileRow:
    name: str
    key: str
    hash_value: str
    stored_hash: str
    newest: float | None
    oldest: float | None
    delivered_at: float
    digest_end: float | None
    events: int

    def delivered(self) -> DeliveredFile:
        return _file(self.key, self.hash_value, self.stored_hash, self.newest, self.oldest, self.delivered_at,
                     self.events)


@dataclass(frozen=True)
class _DeletedRow:
    name: str
    config: str
    created: float
    deleted: float


class MemoryTrailRepository:
    """Trails in dictionaries, for tests; one lock makes every write atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trails: dict[str, tuple[str, float]] = {}  # name -> (config JSON, created)
        self._states: dict[str, str] = {}  # name -> state JSON
        self._periods: list[_PeriodRow] = []
        self._files: dict[tuple[str, str], _FileRow] = {}  # (name, key) -> row
        self._deleted: dict[str, _DeletedRow] = {}  # key -> row

    def create(self, config: TrailConfig, state: TrailState, created: datetime) -> bool:
        with self._lock:
            if config.name in self._trails:
                return False
            self._trails[config.name] = (config.to_json(), created.timestamp())
            self._states[config.name] = state.to_json()
            return True

    def count(self) -> int:
        with self._lock:
            return len(self._trails)

    def get(self, name: str) -> Trail | None:
        with self._lock:
            if name not in self._trails or name not in self._states:
                return None
            config, created = self._trails[name]
            return _trail(config, created, self._states[name])

    def all(self) -> list[Trail]:
        with self._lock:
            return [_trail(*self._trails[name], self._states[name])
                    for name in sorted(self._trails) if name in self._states]

    def update_config(self, config: TrailConfig) -> None:
        with self._lock:
            if config.name in self._trails:
                self._trails[config.name] = (config.to_json(), self._trails[config.name][1])

    def archive(self, name: str, key: str, deleted: datetime) -> None:
        with self._lock:
            live = self._trails.pop(name, None)
            self._states.pop(name, None)
            if live is None:
                return
            self._deleted[key] = _DeletedRow(name, live[0], live[1], deleted.timestamp())
            for period in self._periods:
                if period.name == name:
                    period.name = key
            for row in self._files.values():
                if row.name == name:
                    row.name = key
            self._files = {(row.name, row.key): row for row in self._files.values()}

    def deleted(self) -> list[DeletedTrail]:
        with self._lock:
            rows = sorted(self._deleted.items(), key=lambda item: item[1].deleted)
            return [DeletedTrail(key, TrailConfig.from_json(row.config), _req_dt(row.created), _req_dt(row.deleted))
                    for key, row in rows]

    def save_state(self, name: str, state: TrailState) -> None:
        with self._lock:
            self._save(name, state)

    def _save(self, name: str, state: TrailState) -> None:
        if name in self._states:
            self._states[name] = state.to_json()

    def start_chain(self, name: str, state: TrailState, started: datetime, location: Location) -> None:
        with self._lock:
            self._save(name, state)
            at = started.timestamp()
            self._periods = [p for p in self._periods if (p.name, p.started) != (name, at)]
            self._periods.append(_PeriodRow(name, at, None, None, location.bucket, location.prefix,
                                            location.destination))

    def mark_stopped(self, name: str, state: TrailState, stopped: datetime) -> None:
        with self._lock:
            self._save(name, state)
            for period in self._periods:
                if period.name == name and period.stopped is None:
                    period.stopped = stopped.timestamp()

    def periods(self, name: str) -> list[LoggingPeriod]:
        with self._lock:
            rows = sorted((p for p in self._periods if p.name == name), key=lambda p: p.started)
            return [_period(p.started, p.stopped, p.final_digest_end, p.bucket, p.prefix, p.destination)
                    for p in rows]

    def period_places(self) -> list[tuple[str, Location]]:
        with self._lock:
            rows = sorted(self._periods, key=lambda p: (p.name, p.started))
            return [(self._deleted[p.name].name if p.name in self._deleted else p.name,
                     Location(p.bucket, p.prefix or "", p.destination)) for p in rows if p.bucket is not None]

    def record_delivery(self, name: str, state: TrailState, file: DeliveredFile, seq_from: int,
                        seq_to: int) -> None:
        with self._lock:
            self._files.setdefault((name, file.key), _FileRow(
                name, file.key, file.hash_value, file.stored_hash, _ts(file.newest), _ts(file.oldest),
                file.delivered_at.timestamp(), None, file.events))
            self._save(name, state)

    def undigested(self, name: str, before: datetime) -> list[DeliveredFile]:
        limit = before.timestamp()
        return self._files_of(name, lambda row: row.digest_end is None and row.delivered_at < limit)

    def record_digest(self, name: str, state: TrailState, keys: list[str], end: datetime, final: bool) -> None:
        with self._lock:
            for key in keys:
                row = self._files.get((name, key))
                if row is not None:
                    row.digest_end = end.timestamp()
            self._save(name, state)
            own = [p for p in self._periods if p.name == name]
            if final and own:
                newest = max(p.started for p in own)
                for period in own:
                    if period.started == newest:
                        period.final_digest_end = end.timestamp()

    def delivered_files(self, name: str) -> list[DeliveredFile]:
        return self._files_of(name, lambda row: True)

    def _files_of(self, name: str, keep: Callable[[_FileRow], bool]) -> list[DeliveredFile]:
        with self._lock:
            rows = sorted((r for r in self._files.values() if r.name == name and keep(r)),
                          key=lambda r: (r.delivered_at, r.key))
            return [row.delivered() for row in rows]


# ---- CloudWatch Logs forwarding status (table trail_forwarding) ----------------------------
class SqliteForwardingStatus:
    """Forwarding status in the state database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    def get(self, name: str) -> ForwardingStatus:
        rows = self.db.query("SELECT latest_delivery, latest_error, failing_since, forwarded, oversize, counted_seq "
                             "FROM trail_forwarding WHERE name=?", (name,))
        if not rows:
            return ForwardingStatus()
        delivery, error, since, forwarded, oversize, counted = rows[0]
        return ForwardingStatus(_dt(delivery), error, _dt(since), forwarded, oversize, counted)

    def delivered(self, name: str, when: datetime | None, stored: int, oversize: int, through_seq: int) -> None:
        with self.db.tx() as c:
            c.execute("INSERT OR IGNORE INTO trail_forwarding (name) VALUES (?)", (name,))
            if when is not None:
                c.execute("UPDATE trail_forwarding SET latest_delivery=?, latest_error='', failing_since=NULL "
                          "WHERE name=?", (when.timestamp(), name))
            c.execute("UPDATE trail_forwarding SET forwarded=forwarded+?, oversize=oversize+?, "
                      "counted_seq=max(counted_seq, ?) WHERE name=?", (stored, oversize, through_seq, name))

    def failed(self, name: str, when: datetime, error: str) -> bool:
        with self.db.tx() as c:
            c.execute("INSERT OR IGNORE INTO trail_forwarding (name) VALUES (?)", (name,))
            first = c.execute("SELECT failing_since IS NULL FROM trail_forwarding WHERE name=?", (name,)).fetchone()[0]
            c.execute("UPDATE trail_forwarding SET latest_error=?, failing_since=coalesce(failing_since, ?) "
                      "WHERE name=?", (error, when.timestamp(), name))
        return bool(first)

    def forget(self, name: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM trail_forwarding WHERE name=?", (name,))


class MemoryForwardingStatus:
    """Forwarding status in a dictionary, for tests; the same contract as the SQLite one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, ForwardingStatus] = {}

    def get(self, name: str) -> ForwardingStatus:
        with self._lock:
            return self._rows.get(name, ForwardingStatus())

    def delivered(self, name: str, when: datetime | None, stored: int, oversize: int, through_seq: int) -> None:
        with self._lock:
            row = self._rows.get(name, ForwardingStatus())
            if when is not None:
                row = replace(row, latest_delivery=when, latest_error="", failing_since=None)
            self._rows[name] = replace(row, forwarded=row.forwarded + stored, oversize=row.oversize + oversize,
                                       counted_seq=max(row.counted_seq, through_seq))

    def failed(self, name: str, when: datetime, error: str) -> bool:
        with self._lock:
            row = self._rows.get(name, ForwardingStatus())
            self._rows[name] = replace(row, latest_error=error, failing_since=row.failing_since or when)
            return row.failing_since is None

    def forget(self, name: str) -> None:
        with self._lock:
            self._rows.pop(name, None)
