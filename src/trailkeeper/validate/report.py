"""The report model: what the validator found, file by file, and its verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from trailkeeper import layout

if TYPE_CHECKING:
    pass

# cryptography (~30 ms to import) is imported at the first signature check, by which time
# the pool is already hashing log files: start-up overlaps with I/O instead of preceding it.

# A log is delivered at most one flush interval after its events, and a digest
# shortly after its window ends; this covers both with room for a slow store.



DEFAULT_DELIVERY_ALLOWANCE = timedelta(minutes=6)
DEFAULT_DIGEST_INTERVAL = timedelta(hours=1)
BACKFILL_TIMESTAMP_META = "backfill-generation-timestamp"
STATE_FORMAT = 1
_LOG_NAME_GRANULARITY = timedelta(minutes=1)  # log keys carry the delivery minute only

Mode = Literal["full", "stored"]
Kind = Literal["digest", "log"]


class Code(StrEnum):
    """Reason codes (integrity-and-compliance.md §4) plus trailkeeper's extensions."""

    LOG_HASH_MISMATCH = "LOG_HASH_MISMATCH"
    LOG_MISSING = "LOG_MISSING"
    LOG_UNREFERENCED = "LOG_UNREFERENCED"
    LOG_UNVERIFIABLE = "LOG_UNVERIFIABLE"
    STORED_HASH_MISMATCH = "STORED_HASH_MISMATCH"
    DIGEST_BAD_SIGNATURE = "DIGEST_BAD_SIGNATURE"
    DIGEST_NO_SIGNATURE = "DIGEST_NO_SIGNATURE"
    DIGEST_MISSING = "DIGEST_MISSING"
    DIGEST_MOVED = "DIGEST_MOVED"
    CHAIN_TRUNCATED = "CHAIN_TRUNCATED"
    CHAIN_LINK_MISMATCH = "CHAIN_LINK_MISMATCH"
    CHAIN_GAP = "CHAIN_GAP"
    KEY_UNKNOWN = "KEY_UNKNOWN"
    KEY_FORMAT = "KEY_FORMAT"
    TRAILING_DATA = "TRAILING_DATA"
    MULTI_MEMBER_GZIP = "MULTI_MEMBER_GZIP"
    INVALID_FORMAT = "INVALID_FORMAT"
    LOG_DECRYPT_FAILED = "LOG_DECRYPT_FAILED"
    DELETE_MARKER = "DELETE_MARKER"
    OVERWRITTEN = "OVERWRITTEN"


class Status(StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"


@dataclass(frozen=True)
class TrailInfo:
    """What the validator must know about a trail besides its stored objects.

    `logging_periods` are the intervals during which logging *and* validation were
    on: (chain start, final digest end), the end None while still on. The time
    between two periods is an explained gap. `regions` are the source regions
    whose digest chains are checked (default: the home region only).
    """

    name: str
    account_id: str
    home_region: str
    bucket: str
    prefix: str = ""
    digest_interval: timedelta = DEFAULT_DIGEST_INTERVAL
    logging_periods: Sequence[tuple[datetime, datetime | None]] = ()
    delivery_allowance: timedelta = DEFAULT_DELIVERY_ALLOWANCE
    regions: tuple[str, ...] = ()

    @property
    def arn(self) -> str:
        return layout.trail_arn(self.home_region, self.account_id, self.name)

    @property
    def source_regions(self) -> tuple[str, ...]:
        return self.regions or (self.home_region,)


@dataclass(frozen=True)
class ReportEntry:
    kind: Kind
    bucket: str
    key: str
    status: Status
    code: Code | None  # None when VALID
    message: str = ""
    region: str = ""
    backfill: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind, "bucket": self.bucket, "key": self.key, "status": str(self.status),
            "code": None if self.code is None else str(self.code), "message": self.message,
            "region": self.region, "backfill": self.backfill,
        }


@dataclass(frozen=True)
class GapNotice:
    """Logging was off between `start` and `end` (an explained gap, not an error)."""

    region: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PendingNotice:
    """A window whose digest is not due yet: nothing is wrong yet, and nothing in it is verified.

    Only the newest closed window (or the open one) can be pending: digests are written in
    order, so once a later digest exists an earlier one is due whatever its age. `due` is
    when a still-missing digest becomes DIGEST_MISSING; `log_keys` are the delivered log
    files that wait for it.
    """

    region: str
    bucket: str
    key: str  # the digest key the window's digest will have
    start: datetime
    end: datetime
    due: datetime
    is_open: bool  # the window had not ended at validation time
    log_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifiedHead:
    digest_key: str
    end_time: datetime
    hash_value: str  # sha256 of the digest's inflated bytes
    bucket: str = ""  # where it was verified ("": a state saved before buckets were kept)


ReportItem = ReportEntry | GapNotice | PendingNotice


@dataclass
class ValidationReport:
    trail_arn: str
    start: datetime
    end: datetime
    now: datetime
    mode: Mode
    items: list[ReportItem] = field(default_factory=list)  # in output order
    found_start: datetime | None = None  # earliest valid digestStartTime, clamped to the range
    found_end: datetime | None = None  # latest valid digestEndTime, clamped to the range
    heads: dict[str, VerifiedHead] = field(default_factory=dict)  # region -> newest valid digest

    @property
    def entries(self) -> list[ReportEntry]:
        return [i for i in self.items if isinstance(i, ReportEntry)]

    @property
    def gaps(self) -> list[GapNotice]:
        return [i for i in self.items if isinstance(i, GapNotice)]

    @property
    def pending(self) -> list[PendingNotice]:
        return [i for i in self.items if isinstance(i, PendingNotice)]

    def _files(self, kind: Kind, backfill: bool) -> dict[str, bool]:
        """key -> valid, for distinct files of one kind (a file is invalid if any entry is)."""
        files: dict[str, bool] = {}
        for e in self.entries:
            if e.kind == kind and e.backfill == backfill:
                files[e.key] = files.get(e.key, True) and e.status is Status.VALID
        return files

    def count(self, kind: Kind, valid: bool, backfill: bool = False) -> int:
        return sum(1 for ok in self._files(kind, backfill).values() if ok == valid)

    @property
    def digests_valid(self) -> int:
        return self.count("digest", True)

    @property
    def digests_invalid(self) -> int:
        return self.count("digest", False)

    @property
    def logs_valid(self) -> int:
        return self.count("log", True)

    @property
    def logs_invalid(self) -> int:
        return self.count("log", False)

    def codes(self) -> list[Code]:
        return [e.code for e in self.entries if e.code is not None]

    @property
    def ok(self) -> bool:
        return all(e.status is Status.VALID for e in self.entries)


def _invalid(kind: Kind, bucket: str, key: str, code: Code, message: str, region: str, backfill: bool = False) -> ReportEntry:
    return ReportEntry(kind, bucket, key, Status.INVALID, code, message, region, backfill)
