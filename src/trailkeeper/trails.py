"""Trail configuration, event selectors and delivery state, persisted in the state database."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from trailkeeper._internal.sqlite import Database
from trailkeeper.errors import TrailError
from trailkeeper.records import is_reserved_source
from trailkeeper.selectors import selects_advanced
from trailkeeper.state.schema import STATE_SCHEMA

READ_WRITE_TYPES = ("ReadOnly", "WriteOnly", "All")
DEFAULT_SELECTORS: tuple[dict[str, Any], ...] = (
    {"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": [], "ExcludeManagementEventSources": []},
)
MAX_EVENT_SELECTORS = 5
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

_STATE_TIMES = ("start_logging_time", "stop_logging_time", "latest_delivery_time", "latest_delivery_attempt_time",
                "latest_digest_time", "latest_digest_attempt_time", "failing_since", "digest_start", "final_end")


def _ts(when: datetime | None) -> float | None:
    return when.timestamp() if when else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _req_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class TrailConfig:
    name: str
    bucket: str
    destination: str  # folder holding the bucket's objects
    prefix: str = ""
    validation: bool = False
    flush_interval_s: float = 60.0
    digest_interval_s: float = 3600.0
    selectors: tuple[dict[str, Any], ...] = DEFAULT_SELECTORS
    include_global_service_events: bool = True
    is_multi_region: bool = False
    advanced_selectors: tuple[dict[str, Any], ...] = ()  # when set, they replace `selectors`
    tags: tuple[tuple[str, str], ...] = ()
    kms_key_id: str = ""  # KMS key ARN encrypting the trail's log files ("" = not encrypted)
    # COMPLIANCE-mode Object Lock retention put on every log and digest file (0: none; S3 only).
    object_lock_days: int = 0

    @property
    def flush_interval(self) -> timedelta:
        return timedelta(seconds=self.flush_interval_s)

    @property
    def digest_interval(self) -> timedelta:
        return timedelta(seconds=self.digest_interval_s)

    def to_json(self) -> str:
        data = asdict(self)
        data["selectors"] = list(self.selectors)
        data["advanced_selectors"] = list(self.advanced_selectors)
        data["tags"] = [list(t) for t in self.tags]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrailConfig:
        data = json.loads(text)
        data["selectors"] = tuple(data["selectors"])
        data["advanced_selectors"] = tuple(data.get("advanced_selectors", ()))
        data["tags"] = tuple(tuple(t) for t in data.get("tags", ()))
        return cls(**data)

    @property
    def location(self) -> Location:
        return Location(self.bucket, self.prefix, self.destination)

    def selects(self, record: dict[str, Any]) -> bool:
        if is_own_change(record):
            return True  # the audit of the audit system is not selectable (docs/contracts.md)
        if self.advanced_selectors:
            return selects_advanced(self.advanced_selectors, record)
        return selects(self.selectors, record)


@dataclass
class ChainHead:
    """The newest digest written for a trail: what the next digest links back to."""

    bucket: str
    key: str
    hash_value: str
    signature: str
    end: datetime


@dataclass
class TrailState:
    is_logging: bool = False
    offset_seq: int = 0  # next spool seq this trail has not yet consumed
    stop_seq: int | None = None  # deliver up to (excluding) this seq, then write the final digest
    start_logging_time: datetime | None = None
    stop_logging_time: datetime | None = None
    latest_delivery_time: datetime | None = None
    latest_delivery_attempt_time: datetime | None = None
    latest_delivery_error: str = ""
    latest_digest_time: datetime | None = None
    latest_digest_attempt_time: datetime | None = None
    latest_digest_error: str = ""
    failing_since: datetime | None = None
    intent: dict[str, Any] | None = None  # a log file being written: seq range, key
    digest_start: datetime | None = None  # start of the open digest window (None: chain not started)
    chain: ChainHead | None = None
    digest_fingerprint: str | None = None  # key chosen for the digest being written (crash-stable)
    deleted: bool = False
    final_end: datetime | None = None  # end chosen for the final digest being written (crash-stable)

    def to_json(self) -> str:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            out[key] = value
        for key in _STATE_TIMES:
            out[key] = _ts(getattr(self, key))
        if self.chain:
            out["chain"] = {**asdict(self.chain), "end": self.chain.end.timestamp()}
        return json.dumps(out, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrailState:
        data = json.loads(text)
        for key in _STATE_TIMES:
            data[key] = _dt(data.get(key))
        chain = data.get("chain")
        data["chain"] = ChainHead(**{**chain, "end": _dt(chain["end"])}) if chain else None
        return cls(**data)


@dataclass(frozen=True)
class DeliveredFile:
    key: str
    hash_value: str
    stored_hash: str
    newest: datetime | None
    oldest: datetime | None
    delivered_at: datetime
    events: int


@dataclass(frozen=True)
class Location:
    """Where a trail's files go: a logging period's files and digests all share one."""

    bucket: str
    prefix: str
    destination: str


@dataclass(frozen=True)
class LoggingPeriod:
    started: datetime
    stopped: datetime | None
    final_digest_end: datetime | None
    location: Location | None = None  # None: recorded before locations were (the trail's own)


@dataclass(frozen=True)
class DeletedTrail:
    key: str  # "{name}@{deleted epoch}": its periods are kept under this key
    config: TrailConfig
    created: datetime
    deleted: datetime


@dataclass
class Trail:
    config: TrailConfig
    state: TrailState = field(default_factory=TrailState)
    created: datetime | None = None


def validate_bucket_name(name: str) -> None:
    if not _BUCKET_RE.match(name) or ".." in name:
        raise TrailError("InvalidS3BucketNameException", f"Bucket name {name!r} is not valid: use 3-63 lowercase letters, digits, '.' or '-'.")


def validate_selectors(selectors: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    if not 1 <= len(selectors) <= MAX_EVENT_SELECTORS:
        raise TrailError("InvalidEventSelectorsException", f"Between 1 and {MAX_EVENT_SELECTORS} event selectors are allowed.")
    out = []
    for i, sel in enumerate(selectors):
        if not isinstance(sel, dict):
            raise TrailError("InvalidEventSelectorsException", f"EventSelectors[{i}] must be an object.")
        rw = sel.get("ReadWriteType", "All")
        if rw not in READ_WRITE_TYPES:
            raise TrailError("InvalidEventSelectorsException", f"EventSelectors[{i}].ReadWriteType must be one of {', '.join(READ_WRITE_TYPES)}.")
        include = sel.get("IncludeManagementEvents", True)
        if not isinstance(include, bool):
            raise TrailError("InvalidEventSelectorsException", f"EventSelectors[{i}].IncludeManagementEvents must be a boolean.")
        data = sel.get("DataResources", [])
        excluded = sel.get("ExcludeManagementEventSources", [])
        if not isinstance(data, list) or not isinstance(excluded, list):
            raise TrailError("InvalidEventSelectorsException", f"EventSelectors[{i}]: DataResources and ExcludeManagementEventSources must be lists.")
        out.append({"ReadWriteType": rw, "IncludeManagementEvents": include, "DataResources": data, "ExcludeManagementEventSources": excluded})
    return tuple(out)


def is_own_change(record: dict[str, Any]) -> bool:
    """A change trailkeeper itself recorded about itself: a write to its trails, selectors,
    identities, keys or any other configuration, a stop or start, a refused attempt at one,
    or an event of its own service. Every logging trail delivers these whatever its selectors
    say, so that no administrator can write the administration out of the signed logs
    (PCI DSS 10.2.1.2, 10.2.1.5, 10.2.1.6, 10.2.1.7); AWS lets selectors exclude them.
    A relayed record of the same sources carries `additionalEventData.forwardedBy` and is
    selected as usual; reads (`readOnly`) are selected as usual too."""
    if record.get("readOnly") is not False or not is_reserved_source(record.get("eventSource")):
        return False
    extra = record.get("additionalEventData")
    return not (isinstance(extra, dict) and "forwardedBy" in extra)


def selects(selectors: tuple[dict[str, Any], ...], record: dict[str, Any]) -> bool:
    """Does any basic event selector select this record?"""
    read_only = record.get("readOnly") is True
    category = record.get("eventCategory", "Management")
    for sel in selectors:
        rw = sel["ReadWriteType"]
        if (rw == "ReadOnly" and not read_only) or (rw == "WriteOnly" and read_only):
            continue
        if category == "Data":
            if _data_resource_match(sel["DataResources"], record):
                return True
            continue
        if sel["IncludeManagementEvents"] and record.get("eventSource") not in sel["ExcludeManagementEventSources"]:
            return True
    return False


def _data_resource_match(resources: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    for res in resources:
        rtype = res.get("Type")
        values = res.get("Values", [])
        for item in record.get("resources") or []:
            if not isinstance(item, dict) or item.get("type") != rtype:
                continue
            arn = str(item.get("ARN", ""))
            if any(arn.startswith(v.rstrip("*")) for v in values):
                return True
    return False


class TrailStore:
    """All trail rows of the state database. Methods are short transactions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    # ---- configuration ----
    def create(self, config: TrailConfig, now: datetime) -> Trail:
        with self.db.tx() as c:
            if c.execute("SELECT 1 FROM trails WHERE name=?", (config.name,)).fetchone():
                raise TrailError("TrailAlreadyExistsException", f"Trail {config.name} already exists.")
            c.execute("INSERT INTO trails VALUES (?,?,?)", (config.name, config.to_json(), now.timestamp()))
            c.execute("INSERT OR REPLACE INTO trail_state VALUES (?,?)", (config.name, TrailState().to_json()))
        return Trail(config, TrailState(), now)

    def count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM trails")[0][0])

    def update_config(self, config: TrailConfig) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE trails SET config=? WHERE name=?", (config.to_json(), config.name))

    def delete(self, name: str, when: datetime) -> None:
        """Remove a trail, keeping its configuration and logging history as a deleted trail:
        its files stay where they are, and can still be served and validated."""
        key = f"{name}@{when.timestamp():.6f}"
        with self.db.tx() as c:
            row = c.execute("SELECT config, created FROM trails WHERE name=?", (name,)).fetchone()
            if row is not None:
                c.execute("INSERT INTO deleted_trails VALUES (?,?,?,?,?)", (key, name, row[0], row[1], when.timestamp()))
                c.execute("UPDATE logging_periods SET name=? WHERE name=?", (key, name))
                c.execute("UPDATE delivered_files SET name=? WHERE name=?", (key, name))
            c.execute("DELETE FROM trails WHERE name=?", (name,))
            c.execute("DELETE FROM trail_state WHERE name=?", (name,))

    def places(self) -> list[tuple[str, Location]]:
        """(trail name, location) of every place any trail, live or deleted, has delivered to or
        delivers to now: what the S3 gateway may serve, read-only."""
        found: dict[tuple[str, Location], None] = {}
        for trail in self.all():
            found[(trail.config.name, trail.config.location)] = None
        for gone in self.deleted():
            found[(gone.config.name, gone.config.location)] = None
        rows = self.db.query("SELECT p.name, p.bucket, p.prefix, p.destination, d.name FROM logging_periods p "
                             "LEFT JOIN deleted_trails d ON d.key = p.name WHERE p.bucket IS NOT NULL")
        for key, bucket, prefix, destination, deleted_name in rows:
            found[(deleted_name or key, Location(bucket, prefix or "", destination))] = None
        return list(found)

    def deleted(self) -> list[DeletedTrail]:
        """Deleted trails, oldest deletion first."""
        rows = self.db.query("SELECT key, config, created, deleted FROM deleted_trails ORDER BY deleted")
        return [DeletedTrail(r[0], TrailConfig.from_json(r[1]), _req_dt(r[2]), _req_dt(r[3])) for r in rows]

    def get(self, name: str) -> Trail:
        rows = self.db.query("SELECT t.config, t.created, s.state FROM trails t JOIN trail_state s USING(name) WHERE name=?", (name,))
        if not rows:
            raise TrailError("TrailNotFoundException", f"Unknown trail: {name}.")
        row = rows[0]
        return Trail(TrailConfig.from_json(row[0]), TrailState.from_json(row[2]), _dt(row[1]))

    def find(self, name: str) -> Trail | None:
        try:
            return self.get(name)
        except TrailError:
            return None

    def all(self) -> list[Trail]:
        rows = self.db.query("SELECT t.config, t.created, s.state FROM trails t JOIN trail_state s USING(name) ORDER BY name")
        return [Trail(TrailConfig.from_json(r[0]), TrailState.from_json(r[2]), _dt(r[1])) for r in rows]

    # ---- state ----
    def save_state(self, name: str, state: TrailState) -> None:
        with self.db.tx() as c:
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))

    def start_chain(self, name: str, state: TrailState, started: datetime, location: Location) -> None:
        """A starting digest window opens: the validator expects digests from here on, at `location`."""
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
        """The logging periods of a trail (by name) or a deleted trail (by its key)."""
        rows = self.db.query("SELECT started, stopped, final_digest_end, bucket, prefix, destination "
                             "FROM logging_periods WHERE name=? ORDER BY started", (name,))
        return [LoggingPeriod(_req_dt(r[0]), _dt(r[1]), _dt(r[2]),
                              Location(r[3], r[4] or "", r[5]) if r[3] is not None else None) for r in rows]

    def record_delivery(self, name: str, state: TrailState, file: DeliveredFile, seq_from: int, seq_to: int) -> None:
        """The log file is stored: remember it for the digest and advance the offset, atomically."""
        with self.db.tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO delivered_files VALUES (?,?,?,?,?,?,?,NULL,?,?,?)",
                (name, file.key, file.hash_value, file.stored_hash, _ts(file.newest), _ts(file.oldest),
                 file.delivered_at.timestamp(), seq_from, seq_to, file.events),
            )
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))

    def undigested(self, name: str, before: datetime) -> list[DeliveredFile]:
        rows = self.db.query(
            "SELECT key, hash, stored_hash, newest, oldest, delivered_at, events FROM delivered_files "
            "WHERE name=? AND digest_end IS NULL AND delivered_at < ? ORDER BY delivered_at, key",
            (name, before.timestamp()),
        )
        return [DeliveredFile(r[0], r[1], r[2], _dt(r[3]), _dt(r[4]), _req_dt(r[5]), r[6]) for r in rows]

    def record_digest(self, name: str, state: TrailState, keys: list[str], end: datetime, final: bool) -> None:
        with self.db.tx() as c:
            c.executemany("UPDATE delivered_files SET digest_end=? WHERE name=? AND key=?", [(end.timestamp(), name, k) for k in keys])
            c.execute("UPDATE trail_state SET state=? WHERE name=?", (state.to_json(), name))
            if final:
                c.execute(
                    "UPDATE logging_periods SET final_digest_end=? WHERE name=? AND started=(SELECT max(started) FROM logging_periods WHERE name=?)",
                    (end.timestamp(), name, name),
                )

    def delivered_files(self, name: str) -> list[DeliveredFile]:
        rows = self.db.query(
            "SELECT key, hash, stored_hash, newest, oldest, delivered_at, events FROM delivered_files WHERE name=? ORDER BY delivered_at, key",
            (name,),
        )
        return [DeliveredFile(r[0], r[1], r[2], _dt(r[3]), _dt(r[4]), _req_dt(r[5]), r[6]) for r in rows]
