"""Trail configuration, event selectors and delivery state; TrailStore keeps them in a
TrailRepository (state.trails: SQLite in the state database, or memory)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trailkeeper.errors import TrailError
from trailkeeper.records import is_reserved_source
from trailkeeper.selectors import selects_advanced

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
    # CloudWatch Logs forwarding (monitoring.forwarder): the group's ARN as given and the role
    # CloudTrail would act as; both set or both "" (not forwarded).
    cloudwatch_logs_group_arn: str = ""
    cloudwatch_logs_role_arn: str = ""

    @property
    def forwards(self) -> bool:
        return bool(self.cloudwatch_logs_group_arn)

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
class ForwardingStatus:
    """How a trail's forwarding to CloudWatch Logs fares (GetTrailStatus's
    LatestCloudWatchLogsDelivery{Time,Error}); kept apart from TrailState, which the delivery
    worker rewrites whole."""

    latest_delivery: datetime | None = None
    latest_error: str = ""
    failing_since: datetime | None = None
    forwarded: int = 0  # log events stored (a resent event already there is not counted again)
    oversize: int = 0  # selected events too large for a log event: not forwarded
    counted_seq: int = 0  # the last spool seq whose oversize events are counted (crash-safe counting)


class ForwardingStatusRepository(Protocol):
    """Where forwarding status is kept (state.trails); each write is one transaction."""

    def get(self, name: str) -> ForwardingStatus: ...

    def delivered(self, name: str, when: datetime | None, stored: int, oversize: int, through_seq: int) -> None:
        """A batch up to `through_seq` is done: `stored` new log events, `oversize` more events left
        out (the caller counts only those past `counted_seq`, so a batch offered again after a
        crash is not counted twice). `when`: the batch reached the group then (the latest delivery
        time, the error cleared); None when it had nothing to send."""
        ...

    def failed(self, name: str, when: datetime, error: str) -> bool:
        """Record the error; True when it starts a failure (none was recorded since the last success)."""
        ...

    def forget(self, name: str) -> None: ...


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


class TrailRepository(Protocol):
    """Where trails are kept: configurations, delivery states, logging periods, the files
    delivered and deleted trails. Each write is one transaction on its own. A missing trail is
    None (or a write that changes nothing); TrailStore turns that into the API's errors.
    Implementations: state.trails.SqliteTrailRepository, MemoryTrailRepository."""

    def create(self, config: TrailConfig, state: TrailState, created: datetime) -> bool:
        """Add a trail with its first state; False (nothing written) when the name is taken."""
        ...

    def count(self) -> int: ...

    def get(self, name: str) -> Trail | None: ...

    def all(self) -> list[Trail]:
        """Every live trail, by name."""
        ...

    def update_config(self, config: TrailConfig) -> None: ...

    def archive(self, name: str, key: str, deleted: datetime) -> None:
        """Remove a live trail; if it exists, keep its configuration as a deleted trail under
        `key` and move its logging periods and delivered files to that key."""
        ...

    def deleted(self) -> list[DeletedTrail]:
        """Deleted trails, oldest deletion first."""
        ...

    def save_state(self, name: str, state: TrailState) -> None: ...

    def start_chain(self, name: str, state: TrailState, started: datetime, location: Location) -> None:
        """Save the state and open a logging period at `started` (replacing one that starts then)."""
        ...

    def mark_stopped(self, name: str, state: TrailState, stopped: datetime) -> None:
        """Save the state and close the open logging periods of `name`."""
        ...

    def periods(self, name: str) -> list[LoggingPeriod]:
        """The logging periods kept under `name` (a trail, or a deleted trail's key), oldest first."""
        ...

    def period_places(self) -> list[tuple[str, Location]]:
        """(trail name, location) of every logging period that recorded its location, by key
        and start; a deleted trail's periods are named by the trail's name, not its key."""
        ...

    def record_delivery(self, name: str, state: TrailState, file: DeliveredFile, seq_from: int,
                        seq_to: int) -> None:
        """Keep a delivered file (once: a file already kept is left as it is) and save the state."""
        ...

    def undigested(self, name: str, before: datetime) -> list[DeliveredFile]:
        """Files delivered before `before` that no digest names yet, by delivery time and key."""
        ...

    def record_digest(self, name: str, state: TrailState, keys: list[str], end: datetime, final: bool) -> None:
        """Mark the files named `keys` digested by the digest ending at `end` and save the state;
        a final digest also closes the newest logging period's chain at `end`."""
        ...

    def delivered_files(self, name: str) -> list[DeliveredFile]:
        """Every file delivered under `name`, by delivery time and key."""
        ...


class TrailStore:
    """The trails of an installation, kept in a TrailRepository. Methods are short transactions."""

    def __init__(self, repository: TrailRepository) -> None:
        self.repository = repository

    # ---- configuration ----
    def create(self, config: TrailConfig, now: datetime) -> Trail:
        if not self.repository.create(config, TrailState(), now):
            raise TrailError("TrailAlreadyExistsException", f"Trail {config.name} already exists.")
        return Trail(config, TrailState(), now)

    def count(self) -> int:
        return self.repository.count()

    def update_config(self, config: TrailConfig) -> None:
        self.repository.update_config(config)

    def delete(self, name: str, when: datetime) -> None:
        """Remove a trail, keeping its configuration and logging history as a deleted trail:
        its files stay where they are, and can still be served and validated."""
        self.repository.archive(name, f"{name}@{when.timestamp():.6f}", when)

    def places(self) -> list[tuple[str, Location]]:
        """(trail name, location) of every place any trail, live or deleted, has delivered to or
        delivers to now: what the S3 gateway may serve, read-only."""
        found: dict[tuple[str, Location], None] = {}
        for trail in self.all():
            found[(trail.config.name, trail.config.location)] = None
        for gone in self.deleted():
            found[(gone.config.name, gone.config.location)] = None
        for place in self.repository.period_places():
            found[place] = None
        return list(found)

    def deleted(self) -> list[DeletedTrail]:
        """Deleted trails, oldest deletion first."""
        return self.repository.deleted()

    def get(self, name: str) -> Trail:
        trail = self.repository.get(name)
        if trail is None:
            raise TrailError("TrailNotFoundException", f"Unknown trail: {name}.")
        return trail

    def find(self, name: str) -> Trail | None:
        return self.repository.get(name)

    def all(self) -> list[Trail]:
        return self.repository.all()

    # ---- state ----
    def save_state(self, name: str, state: TrailState) -> None:
        self.repository.save_state(name, state)

    def start_chain(self, name: str, state: TrailState, started: datetime, location: Location) -> None:
        """A starting digest window opens: the validator expects digests from here on, at `location`."""
        self.repository.start_chain(name, state, started, location)

    def mark_stopped(self, name: str, state: TrailState, stopped: datetime) -> None:
        self.repository.mark_stopped(name, state, stopped)

    def periods(self, name: str) -> list[LoggingPeriod]:
        """The logging periods of a trail (by name) or a deleted trail (by its key)."""
        return self.repository.periods(name)

    def record_delivery(self, name: str, state: TrailState, file: DeliveredFile, seq_from: int, seq_to: int) -> None:
        """The log file is stored: remember it for the digest and advance the offset, atomically."""
        self.repository.record_delivery(name, state, file, seq_from, seq_to)

    def undigested(self, name: str, before: datetime) -> list[DeliveredFile]:
        return self.repository.undigested(name, before)

    def record_digest(self, name: str, state: TrailState, keys: list[str], end: datetime, final: bool) -> None:
        self.repository.record_digest(name, state, keys, end, final)

    def delivered_files(self, name: str) -> list[DeliveredFile]:
        return self.repository.delivered_files(name)
