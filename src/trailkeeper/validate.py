"""Offline validator: checks a trail's digest chain and log files in an ObjectStore.

Unlike the AWS CLI's backward walk (which follows `previousDigestS3Object` and so
cannot see deleted newest digests, collapses consecutive deletions and never
lists log folders), this validator derives the digest windows that *must* exist
from the trail's logging history, lists what does exist, and reports every
difference with a reason code (integrity-and-compliance.md §3, §4). It never
stops at the first problem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import orjson

from trailkeeper import digest as digestfmt
from trailkeeper import envelope, layout
from trailkeeper._internal import gzipio
from trailkeeper._internal.fsutil import replace_atomically
from trailkeeper.clock import floor_to, iso_seconds, parse_iso_seconds
from trailkeeper.errors import ConfigError, EnvelopeError, ObjectNotFoundError, ValidationRunError
from trailkeeper.keys.signing import PublicKeyInfo
from trailkeeper.storage.base import ObjectStore, ObjectVersion, VersionedStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

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


# ---------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """One digest window [start, end) that the logging history says must exist."""

    start: datetime
    end: datetime
    starting: bool  # first window of a logging period: previous* fields are null
    final: bool  # last window of a closed period (ends at the stop time)


def expected_windows(
    periods: Sequence[tuple[datetime, datetime | None]], interval: timedelta, lo: datetime, hi: datetime
) -> list[Window]:
    """Windows with end > lo and start <= hi, in time order.

    Windows end on multiples of `interval` since the Unix epoch, except a final
    window, which ends at the period's stop time; a starting window begins at the
    period's start.
    """
    out: list[Window] = []
    for begin, stop in sorted(periods, key=lambda p: p[0]):
        out.extend(_period_windows(begin, stop, interval, lo, hi))
    return out


def _period_windows(
    begin: datetime, stop: datetime | None, interval: timedelta, lo: datetime, hi: datetime
) -> Iterator[Window]:
    t = begin
    # Skip whole windows before `lo` without walking years of history.
    skip_to = floor_to(lo, interval) - interval
    if skip_to > t and (stop is None or skip_to < stop):
        t = skip_to
    while t <= hi and (stop is None or t < stop):
        boundary = floor_to(t, interval) + interval
        end = boundary if stop is None else min(boundary, stop)
        if end > lo:
            yield Window(t, end, starting=t == begin, final=stop is not None and end == stop)
        t = end


# ---------------------------------------------------------------- verified state


class StateConflictError(ValidationRunError):
    """The state file changed since it was loaded (another validator run saved first)."""


class VerifiedState:
    """Newest verified digest per (trail, region), kept in a small local JSON file.

    It lets a later run notice deleted newest digests (tail truncation) and
    rewritten history. `save` is compare-and-swap: it writes only if the file
    still holds exactly what `load` read.
    """

    def __init__(self, path: Path, heads: dict[str, VerifiedHead], loaded: bytes | None) -> None:
        self.path = path
        self.heads = heads
        self._loaded = loaded

    @staticmethod
    def slot(trail_arn: str, region: str) -> str:
        return f"{trail_arn}|{region}"

    @classmethod
    def load(cls, path: Path) -> VerifiedState:
        raw = _read_optional(path)
        if raw is None:
            return cls(path, {}, None)
        try:
            doc = orjson.loads(raw)
            heads = {slot: _head_from_json(h) for slot, h in doc["heads"].items()}
            if doc.get("format") != STATE_FORMAT:
                raise ValueError(f"format {doc.get('format')!r} is not {STATE_FORMAT}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValidationRunError(
                f"verified-state file {path} is unreadable: {e}",
                "restore it from a backup; deleting it loses tail-truncation detection for past runs",
            ) from e
        return cls(path, heads, raw)

    def head(self, trail_arn: str, region: str) -> VerifiedHead | None:
        return self.heads.get(self.slot(trail_arn, region))

    def advance(self, report: ValidationReport) -> bool:
        """Move the heads forward to the report's newest valid digests, only if the run was fully valid."""
        if not report.ok:
            return False
        changed = False
        for region, head in report.heads.items():
            slot = self.slot(report.trail_arn, region)
            old = self.heads.get(slot)
            if old is None or head.end_time > old.end_time:
                self.heads[slot] = head
                changed = True
        return changed

    def to_bytes(self) -> bytes:
        heads = {slot: _head_to_json(h) for slot, h in sorted(self.heads.items())}
        return orjson.dumps({"format": STATE_FORMAT, "heads": heads}, option=orjson.OPT_INDENT_2)

    def save(self) -> None:
        """Write atomically; StateConflictError if the file changed since load."""
        import fcntl  # POSIX only, like the rest of the folder storage

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            current = _read_optional(self.path)
            if current != self._loaded:
                raise StateConflictError(
                    f"verified-state file {self.path} changed since it was loaded",
                    "another validation run saved first; run the validation again",
                )
            data = self.to_bytes()
            replace_atomically(self.path, data)
            self._loaded = data


def _head_to_json(h: VerifiedHead) -> dict[str, str]:
    doc = {"digestKey": h.digest_key, "endTime": iso_seconds(h.end_time), "hashValue": h.hash_value}
    if h.bucket:
        doc["bucket"] = h.bucket
    return doc


def _head_from_json(d: Mapping[str, str]) -> VerifiedHead:
    return VerifiedHead(str(d["digestKey"]), parse_iso_seconds(d["endTime"]), str(d["hashValue"]),
                        str(d.get("bucket", "")))


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValidationRunError(f"cannot read {path}: {e}", "check the file's permissions") from e


# ---------------------------------------------------------------- digests


Problem = tuple[Code, str]


@dataclass
class _Digest:
    """One stored digest object and what its checks found."""

    key: str
    end: datetime  # from the key
    backfill: bool
    doc: digestfmt.DigestDoc | None = None
    start: datetime | None = None  # digestStartTime, parsed
    doc_end: datetime | None = None  # digestEndTime, parsed
    inflated_sha: str = ""
    signature: str = ""
    problems: list[Problem] = field(default_factory=list)
    trusted: bool = False  # parsed, signed by a known key, at its own location
    moved: bool = False  # parsed, but found at another key than the one it names for itself
    authentic: bool = False  # its signature verifies (trusted, or moved with its content intact)

    def fail(self, code: Code, message: str) -> None:
        self.problems.append((code, message))


class _KeyRing:
    """Public keys by fingerprint, loaded lazily; SPKI is refused like the AWS CLI refuses it."""

    def __init__(self, keys: Sequence[PublicKeyInfo]) -> None:
        self._infos: dict[str, list[PublicKeyInfo]] = {}
        for info in keys:
            self._infos.setdefault(info.fingerprint, []).append(info)
        self._loaded: dict[bytes, rsa.RSAPublicKey | None] = {}

    def find(
        self, fp: str, end: datetime, region: str, allowance: timedelta
    ) -> tuple[PublicKeyInfo | None, Problem | None]:
        """The key that may have signed a digest ending at `end`.

        A digest is signed when it is delivered, up to `allowance` after its
        end, so the key may be newer than `end` by that much; it must not have
        been retired before `end`.
        """
        infos = self._infos.get(fp)
        if not infos:
            return None, (Code.KEY_UNKNOWN, f"public key not found in region {region} for fingerprint {fp}")
        for info in infos:
            if info.valid_from <= end + allowance and (info.valid_to is None or end <= info.valid_to):
                return info, None
        spans = ", ".join(f"{iso_seconds(i.valid_from)}..{_iso_or_open(i.valid_to)}" for i in infos)
        return None, (
            Code.KEY_UNKNOWN,
            f"public key {fp} is valid {spans}, which does not cover digestEndTime {iso_seconds(end)}",
        )

    def load(self, info: PublicKeyInfo) -> rsa.RSAPublicKey | None:
        if info.der_pkcs1 not in self._loaded:
            self._loaded[info.der_pkcs1] = _load_pkcs1(info.der_pkcs1)
        return self._loaded[info.der_pkcs1]


def _iso_or_open(when: datetime | None) -> str:
    return "open" if when is None else iso_seconds(when)


def _load_pkcs1(der: bytes) -> rsa.RSAPublicKey | None:
    """The key if `der` is exactly a DER PKCS#1 RSAPublicKey, else None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_der_public_key(der)
    except ValueError:
        return None
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    # cryptography also accepts SubjectPublicKeyInfo; re-encoding tells them apart.
    pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return key if pkcs1 == der else None


def _check_digest_file(store: ObjectStore, d: _Digest) -> bool:
    """The checks before the signature, in the AWS CLI's order; False at the first failure."""
    try:
        obj = store.get(d.key)
    except ObjectNotFoundError:
        d.fail(Code.DIGEST_MISSING, "not found (deleted while validating)")
        return False
    if not _parse_digest(d, obj.data) or not _check_metadata(d, obj.metadata):
        return False
    assert d.doc is not None
    if d.doc.bucket != store.bucket or d.doc.key != d.key:
        d.fail(Code.DIGEST_MOVED, f"has been moved from its original location s3://{d.doc.bucket}/{d.doc.key}")
        d.moved = True
        return False
    if d.doc_end != d.end:
        d.fail(Code.INVALID_FORMAT, f"invalid format: digestEndTime {d.doc.end_time} differs from the time in the key")
        return False
    return True


def _parse_digest(d: _Digest, data: bytes) -> bool:
    try:
        inflated = gzipio.gunzip_strict(data)
    except gzipio.GzipFormatError as e:
        d.fail(Code(e.code), str(e))
        return False
    d.inflated_sha = hashlib.sha256(inflated).hexdigest()
    try:
        d.doc = digestfmt.parse_digest(inflated)
        d.start = parse_iso_seconds(d.doc.start_time)
        doc_end = parse_iso_seconds(d.doc.end_time)
    except digestfmt.DigestFormatError as e:
        d.fail(Code.INVALID_FORMAT, f"invalid format: {e}")
        return False
    except ValueError as e:
        d.fail(Code.INVALID_FORMAT, f"invalid format: digest times are not YYYY-MM-DDTHH:MM:SSZ ({e})")
        return False
    d.doc_end = doc_end
    return True


def _check_metadata(d: _Digest, metadata: Mapping[str, str]) -> bool:
    # Exact lowercase names only: the AWS CLI looks them up verbatim (formats spec §3.3).
    signature = metadata.get(digestfmt.META_SIGNATURE)
    algorithm = metadata.get(digestfmt.META_SIGNATURE_ALGORITHM)
    if signature is None or algorithm is None:
        d.fail(Code.DIGEST_NO_SIGNATURE, "signature verification failed: lowercase signature metadata is missing")
        return False
    if d.backfill and BACKFILL_TIMESTAMP_META not in metadata:
        d.fail(Code.INVALID_FORMAT, f"invalid format: backfill digest without {BACKFILL_TIMESTAMP_META} metadata")
        return False
    if algorithm != digestfmt.SIGNATURE_ALGORITHM:
        d.fail(Code.DIGEST_BAD_SIGNATURE, f"signature verification failed: unsupported algorithm {algorithm!r}")
        return False
    d.signature = signature
    return True


def _check_signature(d: _Digest, keys: _KeyRing, region: str, allowance: timedelta) -> bool:
    problem = _signature_problem(d, keys, region, allowance)
    if problem is not None:
        d.fail(*problem)
    d.authentic = problem is None
    return d.authentic


def _signature_problem(d: _Digest, keys: _KeyRing, region: str, allowance: timedelta) -> Problem | None:
    """Why the digest's signature does not verify, or None when it does."""
    assert d.doc is not None and d.doc_end is not None
    fp = d.doc.fingerprint
    # The signing key is looked up for the window the digest names (a moved digest's key lies).
    info, problem = keys.find(fp, d.doc_end, region, allowance)
    if info is None:
        assert problem is not None
        return problem
    public = keys.load(info)
    if public is None:
        return Code.KEY_FORMAT, f"Unable to load PKCS #1 key with fingerprint {fp}"
    message = digestfmt.string_to_sign(
        d.doc.end_time, d.doc.bucket, d.doc.key, d.inflated_sha, d.doc.previous_signature
    )
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        public.verify(bytes.fromhex(d.signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return Code.DIGEST_BAD_SIGNATURE, "signature verification failed"
    return None


def _check_moved_signature(d: _Digest, keys: _KeyRing, region: str, allowance: timedelta) -> None:
    """A moved digest is already reported; if its content is intact, the window it names is
    proven to have had a digest (evidence, not trust: its logs are not verified through it)."""
    if d.moved and d.doc is not None and d.signature and d.doc_end is not None:
        d.authentic = _signature_problem(d, keys, region, allowance) is None


# ---------------------------------------------------------------- chain


@dataclass
class _Slot:
    """An expected window and the digest found for it, if any."""

    window: Window
    key: str
    required: bool
    in_range: bool
    digest: _Digest | None = None
    backfill: _Digest | None = None
    moved_to: str | None = None  # where an intact digest naming this window was found instead

    @property
    def satisfied(self) -> bool:
        return any(d is not None and d.trusted for d in (self.digest, self.backfill))


def _check_links(slots: list[_Slot], bucket: str, allowance: timedelta) -> None:
    """Window and link checks between neighbouring expected windows (trusted digests only)."""
    for i, slot in enumerate(slots):
        d = slot.digest
        if d is None or not d.trusted or not slot.in_range:
            continue
        prev = slots[i - 1] if i > 0 else None
        if slot.window.starting:
            _check_starting(d, slot.window, allowance)
        elif prev is not None:
            _check_link(d, slot.window, prev, bucket)


def _check_starting(d: _Digest, w: Window, allowance: timedelta) -> None:
    assert d.doc is not None and d.start is not None
    # The writer starts the chain a moment after StartLogging is recorded.
    earliest = w.start.replace(microsecond=0)
    if not earliest <= d.start <= w.start + allowance:
        d.fail(Code.CHAIN_GAP, f"digestStartTime {d.doc.start_time} is not the logging start {iso_seconds(w.start)}")
    if any(v is not None for v in _previous_fields(d.doc)):
        d.fail(
            Code.CHAIN_LINK_MISMATCH,
            f"first digest after logging started at {iso_seconds(w.start)} must have null previous* fields",
        )


def _previous_fields(doc: digestfmt.DigestDoc) -> tuple[str | None, ...]:
    return (doc.previous_bucket, doc.previous_key, doc.previous_hash_value, doc.previous_signature)


def _check_link(d: _Digest, w: Window, prev: _Slot, bucket: str) -> None:
    assert d.doc is not None and d.start is not None
    doc = d.doc
    if d.start != w.start:
        d.fail(Code.CHAIN_GAP, f"digestStartTime {doc.start_time} is not the previous digestEndTime {iso_seconds(w.start)}")
    if doc.is_starting:
        d.fail(Code.CHAIN_GAP, "previous* fields are null but no logged stop/start explains a new chain here")
        return
    if (doc.previous_bucket, doc.previous_key) != (bucket, prev.key):
        d.fail(
            Code.CHAIN_LINK_MISMATCH,
            f"previousDigestS3Object is s3://{doc.previous_bucket}/{doc.previous_key}, expected s3://{bucket}/{prev.key}",
        )
        return
    p = prev.digest
    if p is None or not p.trusted:
        return  # the previous digest's own failure is already reported
    if doc.previous_hash_value != p.inflated_sha:
        d.fail(Code.CHAIN_LINK_MISMATCH, f"previousDigestHashValue does not match the sha256 of {prev.key}")
    if doc.previous_signature != p.signature:
        d.fail(Code.CHAIN_LINK_MISMATCH, f"previousDigestSignature does not match the signature of {prev.key}")


# ---------------------------------------------------------------- logs


@dataclass
class _LogResult:
    bucket: str
    key: str
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Opener:
    """Decrypts envelope-encrypted log files of one trail (None keys: no KMS at hand)."""

    keys: envelope.DataKeys | None
    trail_arn: str

    def open(self, bucket: str, key: str, data: bytes) -> bytes:
        if self.keys is None:
            header = envelope.read_header(data)
            raise EnvelopeError(envelope.KEY_UNAVAILABLE, f"encrypted with {header.key_arn} version "
                                f"{header.key_version} and no KMS was given to decrypt it",
                                "validate on the server's data directory (its KMS), or use --mode stored")
        return envelope.open_log(self.keys, data, self.trail_arn, bucket, key)


def _check_log(store: ObjectStore, entry: digestfmt.DigestLogFile, mode: Mode, opener: _Opener) -> _LogResult:
    result = _LogResult(entry.s3_bucket, entry.s3_object)
    if entry.s3_bucket != store.bucket:
        result.problems.append((Code.LOG_MISSING, f"not found: bucket {entry.s3_bucket} is not the store being validated"))
        return result
    try:
        if mode == "stored" and entry.stored_hash_value is not None:
            # Stored bytes only: no decompression, no metadata.
            if store.sha256(entry.s3_object) != entry.stored_hash_value:
                result.problems.append((Code.STORED_HASH_MISMATCH, "stored bytes do not match storedHashValue"))
            return result
        data = store.get(entry.s3_object).data
    except ObjectNotFoundError:
        result.problems.append((Code.LOG_MISSING, "not found"))
        return result
    stored_ok = entry.stored_hash_value is None or hashlib.sha256(data).hexdigest() == entry.stored_hash_value
    if envelope.is_envelope(data):
        try:
            data = opener.open(entry.s3_bucket, entry.s3_object, data)
        except EnvelopeError as e:
            result.problems.append((Code.LOG_DECRYPT_FAILED, f"{e.reason}: {e}"))
            return result
    try:
        inflated_sha, _ = gzipio.gunzip_strict_sha256(data)
    except gzipio.GzipFormatError as e:
        result.problems.append((Code(e.code), str(e)))
        return result
    if inflated_sha != entry.hash_value:
        result.problems.append((Code.LOG_HASH_MISMATCH, "hash value doesn't match"))
    elif not stored_ok:
        result.problems.append((Code.STORED_HASH_MISMATCH, "stored bytes do not match storedHashValue (content is intact)"))
    return result


# ---------------------------------------------------------------- run


@dataclass
class _Run:
    store: ObjectStore
    trail: TrailInfo
    keys: _KeyRing
    start: datetime
    end: datetime
    now: datetime
    mode: Mode
    state: VerifiedState | None
    workers: int
    progress: Callable[[int, int], None] | None
    report: ValidationReport
    opener: _Opener
    done: int = 0
    total: int = 0

    def tick(self, added_total: int = 0, done: int = 0) -> None:
        self.total += added_total
        self.done += done
        if self.progress is not None:
            self.progress(self.done, self.total)


def validate_trail(
    store: ObjectStore,
    trail: TrailInfo,
    public_keys: Sequence[PublicKeyInfo],
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    mode: Mode = "full",
    state: VerifiedState | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    data_keys: envelope.DataKeys | None = None,
) -> ValidationReport:
    """Validate the trail's digests and logs delivered in [start, end], as seen at `now`.

    `mode="stored"` checks log files against `storedHashValue` only (no
    decompression). `state` is read, never written: call `state.advance(report)`
    and `state.save()` afterwards. `progress(done, total)` is called after each
    file; `total` grows once the digests have been read. `data_keys` (the KMS) decrypts
    envelope-encrypted log files in full mode; stored mode never needs it.
    """
    _check_args(trail, start, end, now, mode, workers)
    report = ValidationReport(trail.arn, start, end, now, mode)
    run = _Run(store, trail, _KeyRing(public_keys), start, end, now, mode, state, workers, progress, report,
               _Opener(data_keys, trail.arn))
    for region in trail.source_regions:
        _validate_region(run, region)
    return report


def merge_reports(reports: Sequence[ValidationReport]) -> ValidationReport:
    """One report of a trail validated in several places (one chain each), in the given order."""
    first = reports[0]
    merged = ValidationReport(first.trail_arn, first.start, first.end, first.now, first.mode)
    for report in reports:
        merged.items.extend(report.items)
        for when, pick in ((report.found_start, min), (report.found_end, max)):
            current = merged.found_start if pick is min else merged.found_end
            value = when if current is None else current if when is None else pick(current, when)
            if pick is min:
                merged.found_start = value
            else:
                merged.found_end = value
        for region, head in report.heads.items():
            if region not in merged.heads or head.end_time > merged.heads[region].end_time:
                merged.heads[region] = head
    return merged


def _check_args(trail: TrailInfo, start: datetime, end: datetime, now: datetime, mode: str, workers: int) -> None:
    for name, when in (("start", start), ("end", end), ("now", now)):
        if when.tzinfo is None:
            raise ConfigError(f"{name} time {when!r} has no timezone", "pass timezone-aware UTC datetimes")
    if start > end:
        raise ConfigError(f"start {iso_seconds(start)} is after end {iso_seconds(end)}", "swap the two times")
    if mode not in ("full", "stored"):
        raise ConfigError(f"mode {mode!r} is not 'full' or 'stored'")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if not trail.logging_periods:
        raise ConfigError(
            f"trail {trail.name} has no logging periods",
            "pass the trail's StartLogging/StopLogging history; without it missing digests cannot be counted",
        )
    if trail.digest_interval <= timedelta(0) or trail.digest_interval.total_seconds() % 1:
        raise ConfigError(f"digest interval {trail.digest_interval} must be a positive whole number of seconds")


def _validate_region(run: _Run, region: str) -> None:
    t = run.trail
    interval = t.digest_interval
    # One window past what is in range, so logs of the open window are recognised as pending.
    horizon = min(run.end, run.now) + interval
    windows = expected_windows(t.logging_periods, interval, run.start - interval, horizon)
    found = _list_digests(run, region, windows)
    slots = _make_slots(run, region, windows, found)
    unexpected = _attach_found(slots, found)
    digests = [d for s in slots for d in (s.digest, s.backfill) if d is not None] + unexpected
    run.tick(added_total=len(digests))
    keyring_region = t.home_region
    # hashlib and zlib/isal release the GIL on large buffers, so pool threads use every core;
    # a trusted digest's logs start hashing at once while later digests and the chain, the
    # log-folder listing and the report are worked out on this thread.
    with ThreadPoolExecutor(max_workers=run.workers) as pool:
        hashing = _LogHashing(run, pool)
        readable = []
        for d in digests:
            if _check_digest_file(run.store, d):
                readable.append(d)
                hashing.prefetch(d)
        for d in readable:
            d.trusted = _check_signature(d, run.keys, keyring_region, t.delivery_allowance)
        for d in digests:
            _check_moved_signature(d, run.keys, keyring_region, t.delivery_allowance)
            run.tick(done=1)
            hashing.add(d)
        for d in unexpected:
            if d.trusted:
                d.fail(Code.CHAIN_GAP, f"digest window ending {iso_seconds(d.end)} does not fit the trail's logging history")
        _require(run, region, slots, digests)
        in_range = [s for s in slots if s.in_range]
        _check_links([s for s in slots if s.window.end <= run.now], run.store.bucket, t.delivery_allowance)
        chain_items = _chain_findings(run, region, in_range, unexpected)
        stray, waiting = _stray_logs(run, region, in_range, slots, digests)
        log_results = hashing.results()
    pending = _pending(run, region, slots, waiting)
    _assemble(run, region, in_range, unexpected, chain_items, log_results, stray, pending)
    if isinstance(run.store, VersionedStore):
        _version_findings(run, run.store, region, min([run.start, *(s.window.start for s in in_range)]))


# A digest key dated this far past the validator's clock cannot be a window that has ended
# (a digest is written after its window): it was placed there. The margin is for clock skew.
FUTURE_KEY_SKEW = timedelta(minutes=5)


def _list_digests(run: _Run, region: str, windows: list[Window]) -> dict[str, layout.DigestKey]:
    """Every digest key of this trail and region from the first day of the checked span on.

    Keys whose time lies in the span are checked as the span's digests. Keys dated after the
    validator's own clock are checked too, wherever they lie: no window can have produced
    them, so a digest found there was moved (or copied) there. The folders are read
    leniently, as the AWS CLI reads them: a digest renamed into the wrong date folder is
    still found, and reported where it is.
    """
    t = run.trail
    lo = run.start
    hi = min(run.now, run.end + t.digest_interval + t.delivery_allowance)
    if windows:
        hi = max(hi, min(run.now, windows[-1].end))
    base = layout.digest_prefix(t.prefix, t.account_id, region)
    found: dict[str, layout.DigestKey] = {}
    for info in run.store.list(base, start_after=f"{base}{lo:%Y/%m/%d}"):
        claimed = _claimed_digest_key(info.key, base, t, region)
        if claimed is not None and (lo < claimed.end <= hi or claimed.end > run.now + FUTURE_KEY_SKEW):
            found[info.key] = claimed
    return found


def _claimed_digest_key(key: str, base: str, t: TrailInfo, region: str) -> layout.DigestKey | None:
    """This trail's digest key as its file name claims it, whatever folder it sits in."""
    if not key.startswith(base) or "/" not in key[len(base):]:
        return None
    name = key.rsplit("/", 1)[1]
    stem = f"{t.account_id}_CloudTrail-Digest_{region}_{t.name}_{t.home_region}_"
    tail = name[len(stem):] if name.startswith(stem) else ""
    backfill = tail.endswith("_backfill.json.gz")
    stamp = tail.removesuffix("_backfill.json.gz" if backfill else ".json.gz")
    if len(stamp) != len("YYYYMMDDTHHMMSSZ") or stamp == tail:
        return None
    try:
        end = datetime.strptime(stamp, layout.DIGEST_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return layout.DigestKey(t.prefix, t.account_id, region, t.name, t.home_region, end, backfill, None)


def _parse_own_digest_key(key: str, t: TrailInfo, region: str) -> layout.DigestKey | None:
    try:
        parsed = layout.parse_digest_key(key)
    except ValueError:
        return None  # not a digest key at all: nothing the chain vouches for
    own = (parsed.prefix, parsed.account, parsed.src_region, parsed.trail_name, parsed.home_region, parsed.org_id)
    return parsed if own == (t.prefix, t.account_id, region, t.name, t.home_region, None) else None


def _days(lo: datetime, hi: datetime) -> Iterator[datetime]:
    day = lo.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= hi:
        yield day
        day += timedelta(days=1)


def _make_slots(run: _Run, region: str, windows: list[Window], found: Mapping[str, layout.DigestKey]) -> list[_Slot]:
    t = run.trail
    slots = []
    found_ends = sorted(k.end for k in found.values() if not k.backfill)
    for w in windows:
        w = _settle_final(w, found_ends, t.delivery_allowance)
        key = layout.digest_key(t.prefix, t.account_id, region, t.name, t.home_region, w.end)
        in_range = w.end > run.start and w.start <= run.end and w.end <= run.now
        slots.append(_Slot(w, key, required=False, in_range=in_range))
    return slots


def _require(run: _Run, region: str, slots: list[_Slot], digests: list[_Digest]) -> None:
    """Decide which windows must have a digest by now (a missing one is then DIGEST_MISSING).

    The writer seals windows in order, so every ended window before the newest one is due
    whatever its age. The newest ended window is due once its delivery allowance has passed,
    or as soon as anything proves its digest was written: an authentic digest (at its own key
    or moved elsewhere) naming that window or a later one, or the verified state of an
    earlier run reaching it.
    """
    closed = [s for s in slots if s.window.end <= run.now]
    if not closed:
        return
    proof = [d.doc_end for d in digests if d.authentic and not d.backfill and d.doc_end is not None]
    head = _state_head(run, region)
    if head is not None:
        proof.append(head.end_time)
    proven_through = max(proof, default=None)
    for slot in closed[:-1]:
        slot.required = True
    newest = closed[-1]
    due = newest.window.end + run.trail.delivery_allowance <= run.now
    newest.required = due or (proven_through is not None and newest.window.end <= proven_through)
    claimed = {d.doc.key: d.key for d in digests if d.moved and d.authentic and d.doc is not None}
    for slot in slots:
        slot.moved_to = claimed.get(slot.key)


def _settle_final(w: Window, found_ends: list[datetime], allowance: timedelta) -> Window:
    """A final digest ends when the writer finished the stop, shortly after the recorded stop time."""
    if not w.final or w.end in found_ends:
        return w
    late = [e for e in found_ends if w.end < e <= w.end + allowance]
    return Window(w.start, late[0], w.starting, w.final) if late else w


def _attach_found(slots: list[_Slot], found: Mapping[str, layout.DigestKey]) -> list[_Digest]:
    """Put each found digest in its window's slot; return the ones no window expects."""
    by_end = {s.window.end: s for s in slots}
    unexpected = []
    for key, parsed in sorted(found.items(), key=lambda kv: kv[1].end):
        d = _Digest(key, parsed.end, parsed.backfill)
        slot = by_end.get(parsed.end)
        if slot is not None and parsed.backfill and slot.backfill is None:
            slot.backfill = d
        elif slot is not None and not parsed.backfill and key == slot.key:
            slot.digest = d
        else:
            unexpected.append(d)
    return unexpected


def _chain_findings(run: _Run, region: str, slots: list[_Slot], unexpected: list[_Digest]) -> list[ReportEntry]:
    """Missing windows, tail truncation (against the history and the saved state)."""
    bucket = run.store.bucket
    items = _state_findings(run, region, slots)
    required = [s for s in slots if s.required]
    present_ends = [d.end for s in slots for d in (s.digest, s.backfill) if d is not None]
    present_ends += [d.end for d in unexpected if not d.backfill and d.end <= run.now]
    newest = max(present_ends, default=None)
    if required and (newest is None or newest < required[-1].window.end):
        last = required[-1]
        seen = "no digest at all" if newest is None else f"the newest digest ends at {iso_seconds(newest)}"
        msg = f"digests are due through {iso_seconds(last.window.end)} but {seen}"
        if last.key not in {e.key for e in items}:  # the verified state already names it
            items.append(_invalid("digest", bucket, last.key, Code.CHAIN_TRUNCATED, msg, region))
    return items


def _state_head(run: _Run, region: str) -> VerifiedHead | None:
    """The head an earlier run verified, if it lies in the place this run validates (a trail
    that moved has its newest verified digest in its newest place)."""
    head = run.state.head(run.trail.arn, region) if run.state is not None else None
    if head is None or (head.bucket and head.bucket != run.store.bucket):
        return None
    return head


def _state_findings(run: _Run, region: str, slots: list[_Slot]) -> list[ReportEntry]:
    head = _state_head(run, region)
    if head is None or not run.start < head.end_time <= run.end:
        return []
    bucket = run.store.bucket
    match = next((s.digest for s in slots if s.key == head.digest_key), None)
    if match is None:
        msg = f"the digest ending {iso_seconds(head.end_time)} verified on an earlier run is gone"
        return [_invalid("digest", bucket, head.digest_key, Code.CHAIN_TRUNCATED, msg, region)]
    if match.inflated_sha and match.inflated_sha != head.hash_value:
        msg = "differs from the digest verified on an earlier run (history rewritten or forked)"
        return [_invalid("digest", bucket, head.digest_key, Code.CHAIN_LINK_MISMATCH, msg, region)]
    return []


class _LogHashing:
    """Every log a trusted digest lists, hashed once on the pool, keyed by log key.

    Hashing starts as soon as a digest parses (`prefetch`), before its signature is checked,
    so that the pool works while the signatures are verified; only what a trusted digest
    lists (`add`) is reported. A prefetched entry is reused only if a trusted digest lists
    the very same entry (key, hashes and bucket), so nothing an untrusted digest claims
    can stand in for what a trusted one says.
    """

    def __init__(self, run: _Run, pool: ThreadPoolExecutor) -> None:
        self._run = run
        self._pool = pool
        self._started: dict[tuple[str | None, ...], Future[_LogResult]] = {}
        self._jobs: dict[str, Future[_LogResult]] = {}

    def prefetch(self, d: _Digest) -> None:
        assert d.doc is not None
        for entry in d.doc.log_files:
            if _claim(entry) not in self._started:
                self._started[_claim(entry)] = self._pool.submit(_check_log, self._run.store, entry, self._run.mode, self._run.opener)

    def add(self, d: _Digest) -> None:
        if not d.trusted or d.doc is None:
            return
        fresh = [e for e in d.doc.log_files if e.s3_object not in self._jobs]
        self._run.tick(added_total=len(fresh))
        for entry in fresh:
            started = self._started.get(_claim(entry))
            self._jobs[entry.s3_object] = started if started is not None else self._pool.submit(
                _check_log, self._run.store, entry, self._run.mode, self._run.opener)

    def results(self) -> dict[str, _LogResult]:
        out: dict[str, _LogResult] = {}
        for future in as_completed(self._jobs.values()):
            result = future.result()
            out[result.key] = result
            self._run.tick(done=1)
        return out


def _claim(entry: digestfmt.DigestLogFile) -> tuple[str | None, ...]:
    """Everything `_check_log` reads from a digest entry."""
    return (entry.s3_bucket, entry.s3_object, entry.hash_value, entry.stored_hash_value)


def _stray_logs(
    run: _Run, region: str, slots: list[_Slot], all_slots: list[_Slot], digests: list[_Digest]
) -> tuple[list[ReportEntry], dict[str, list[str]]]:
    """Listed log files no trusted digest references: unreferenced or unverifiable entries, and
    the logs that wait for a digest not due yet (by that window's digest key)."""
    t = run.trail
    referenced = {e.s3_object for d in digests if d.trusted and d.doc is not None for e in d.doc.log_files}
    lo = min([run.start, *(s.window.start for s in slots)]) - _LOG_NAME_GRANULARITY
    base = layout.log_prefix(t.prefix, t.account_id, region)
    items = []
    waiting: dict[str, list[str]] = {}
    for day in _days(lo, run.end):
        for info in run.store.list(f"{base}{day:%Y/%m/%d}/"):
            if info.key in referenced:
                continue
            delivered = _log_delivery(info.key, t, region)
            if delivered is None or not lo <= delivered <= run.end:
                continue
            verdict = _classify_stray(delivered, all_slots, run.now, t.delivery_allowance)
            if isinstance(verdict, _Slot):
                waiting.setdefault(verdict.key, []).append(info.key)
            elif verdict is not None:
                items.append(_invalid("log", run.store.bucket, info.key, verdict[0], verdict[1], region))
    return items, waiting


def _version_findings(run: _Run, store: VersionedStore, region: str, lo: datetime) -> None:
    """Delete markers and overwrites on this trail's keys (tamper catalogue rows 20-21).

    A GET sees neither: behind a delete marker the locked version is still there (the GET says
    404), and an overwrite leaves only the newest bytes visible. Create-only writes mean an
    honest writer never makes a second version, so any is reported, even with identical bytes.
    A finding replaces the plain "missing" entry of the same key.
    """
    t = run.trail
    found: dict[str, list[ObjectVersion]] = {}
    for base in (layout.digest_prefix(t.prefix, t.account_id, region), layout.log_prefix(t.prefix, t.account_id, region)):
        for day in _days(lo - t.digest_interval, run.end + t.digest_interval):
            for version in store.list_versions(f"{base}{day:%Y/%m/%d}/"):
                found.setdefault(version.key, []).append(version)
    span = (lo - t.digest_interval, run.end + t.digest_interval)
    findings = {key: f for key, versions in found.items() if (f := _version_problem(key, versions, t, region, span))}
    if not findings:
        return
    items = run.report.items
    missing = (Code.DIGEST_MISSING, Code.LOG_MISSING)
    replaced = set()
    for i, item in enumerate(items):
        if isinstance(item, ReportEntry) and item.key in findings and item.code in missing:
            kind, code, message = findings[item.key]
            items[i] = replace(item, code=code, message=message)
            replaced.add(item.key)
    for key, (kind, code, message) in sorted(findings.items()):
        if key not in replaced:
            items.append(_invalid(kind, run.store.bucket, key, code, message, region))


def _version_problem(key: str, versions: list[ObjectVersion], t: TrailInfo, region: str,
                     span: tuple[datetime, datetime]) -> tuple[Kind, Code, str] | None:
    """The finding for one of this trail's keys whose time falls in `span`, if any."""
    kind: Kind
    digest = _parse_own_digest_key(key, t, region)
    delivered = _log_delivery(key, t, region)
    if digest is not None:
        kind, when = "digest", digest.end
    elif delivered is not None:
        kind, when = "log", delivered
    else:
        return None
    if not span[0] <= when <= span[1]:
        return None
    markers = [v for v in versions if v.is_delete_marker]
    kept = [v for v in versions if not v.is_delete_marker]
    if markers:
        ids = ", ".join(v.version_id for v in kept) or "none"
        return kind, Code.DELETE_MARKER, (f"deleted: {len(markers)} delete marker(s) hide the key; the stored "
                                          f"version(s) {ids} are still present (locked)")
    if len(kept) > 1:
        return kind, Code.OVERWRITTEN, (f"overwritten: the key has {len(kept)} versions; create-only writes "
                                        "never make a second one")
    return None


def _log_delivery(key: str, t: TrailInfo, region: str) -> datetime | None:
    try:
        parsed = layout.parse_log_key(key)
    except ValueError:
        return None
    own = (parsed.prefix, parsed.account, parsed.region, parsed.org_id)
    return parsed.delivered if own == (t.prefix, t.account_id, region, None) else None


def _classify_stray(delivered: datetime, slots: list[_Slot], now: datetime, allowance: timedelta) -> Problem | _Slot | None:
    """What an unreferenced log is: a problem, or the window whose pending digest it waits for."""
    # The key holds only the delivery minute, so any window overlapping that minute may own it.
    minute_end = delivered + _LOG_NAME_GRANULARITY
    owners = [s for s in slots if s.window.start < minute_end and delivered < s.window.end]
    if not owners:
        closed = [s for s in slots if s.window.end <= now]
        last = closed[-1] if closed else None
        after_last = last is not None and delivered >= last.window.end and not any(
            s.window.start > delivered for s in slots)
        if after_last and last is not None and not last.required and last.digest is None:
            return last  # delivered after a stop whose final digest is not due yet
        return Code.LOG_UNREFERENCED, "delivered while no logging period was open; no digest references it"
    waiting = [s for s in owners if not s.satisfied and not s.required and s.digest is None]
    if waiting:
        return waiting[-1]
    broken = [s for s in owners if not s.satisfied]
    if broken and broken[0].digest is not None:
        return Code.LOG_UNVERIFIABLE, f"the digest of its window ({broken[0].key}) is invalid"
    if broken:
        return Code.LOG_UNREFERENCED, (f"no present digest references it: the digest of its window, "
                                       f"{broken[0].key}, is missing")
    return Code.LOG_UNREFERENCED, "no digest references it although its window's digest is valid"


def _invalid(kind: Kind, bucket: str, key: str, code: Code, message: str, region: str, backfill: bool = False) -> ReportEntry:
    return ReportEntry(kind, bucket, key, Status.INVALID, code, message, region, backfill)


# ---------------------------------------------------------------- assembly


def _pending(run: _Run, region: str, slots: list[_Slot], waiting: Mapping[str, list[str]]) -> dict[str, PendingNotice]:
    """Windows whose digest is not due yet, by digest key: the newest ended window when its
    digest is still missing, and the open window when logs already wait for it."""
    out: dict[str, PendingNotice] = {}
    for slot in slots:
        w = slot.window
        is_open = w.end > run.now
        missing = slot.in_range and not slot.required and slot.digest is None and slot.backfill is None
        logs = waiting.get(slot.key, [])
        if missing or (is_open and logs and w.start <= run.end):
            out[slot.key] = PendingNotice(region, run.store.bucket, slot.key, w.start, w.end,
                                          w.end + run.trail.delivery_allowance, is_open, tuple(logs))
    return out


def _assemble(
    run: _Run,
    region: str,
    slots: list[_Slot],
    unexpected: list[_Digest],
    chain_items: list[ReportEntry],
    log_results: Mapping[str, _LogResult],
    stray: list[ReportEntry],
    pending: Mapping[str, PendingNotice],
) -> None:
    """Append this region's findings in AWS CLI order: newest digest first, each followed by its logs."""
    items = run.report.items
    items.extend(chain_items)
    in_slots = {s.key for s in slots}
    items.extend(p for key, p in pending.items() if key not in in_slots)  # the open window, newest of all
    bucket = run.store.bucket
    for i in range(len(slots) - 1, -1, -1):
        slot = slots[i]
        for d in (slot.digest, slot.backfill):
            if d is not None:
                items.extend(_digest_items(d, bucket, region, log_results))
                _track_found(run, region, d)
        if slot.digest is None and slot.backfill is None and slot.required:
            items.append(_invalid("digest", bucket, slot.key, Code.DIGEST_MISSING, _missing_text(slot), region))
        if slot.key in pending:
            items.append(pending[slot.key])
        if slot.window.starting and i > 0:
            items.append(GapNotice(region, slots[i - 1].window.end, slot.window.start))
    for d in unexpected:
        items.extend(_digest_items(d, bucket, region, log_results))
    items.extend(stray)


def _missing_text(slot: _Slot) -> str:
    if slot.moved_to is None:
        return "not found"
    return f"not found: the digest of this window was found at {slot.moved_to}"


def _digest_items(d: _Digest, bucket: str, region: str, logs: Mapping[str, _LogResult]) -> list[ReportEntry]:
    if d.problems:
        out = [_invalid("digest", bucket, d.key, code, msg, region, d.backfill) for code, msg in d.problems]
    else:
        out = [ReportEntry("digest", bucket, d.key, Status.VALID, None, "valid", region, d.backfill)]
    if d.trusted and d.doc is not None:
        for entry in d.doc.log_files:
            result = logs.get(entry.s3_object)
            if result is not None:
                out.extend(_log_items(result, region))
    return out


def _log_items(r: _LogResult, region: str) -> list[ReportEntry]:
    if not r.problems:
        return [ReportEntry("log", r.bucket, r.key, Status.VALID, None, "valid", region)]
    return [_invalid("log", r.bucket, r.key, code, msg, region) for code, msg in r.problems]


def _track_found(run: _Run, region: str, d: _Digest) -> None:
    if not d.trusted or d.problems or d.start is None:
        return
    report = run.report
    start = max(d.start, run.start)
    end = min(d.end, run.end)
    report.found_start = start if report.found_start is None else min(report.found_start, start)
    report.found_end = end if report.found_end is None else max(report.found_end, end)
    head = report.heads.get(region)
    if not d.backfill and (head is None or d.end > head.end_time):
        report.heads[region] = VerifiedHead(d.key, d.end, d.inflated_sha, run.store.bucket)
