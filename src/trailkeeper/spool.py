"""Durable append-only spool: the single writer of truth for ingested events.

An event is acknowledged only after the frame holding it is fsynced. Concurrent
callers are batched by one writer thread doing one write + fsync for many frames
(group commit).

On disk: segment files named by the sequence number of their first record
(`00000000000000000001.seg`), each starting with SEGMENT_MAGIC and followed by
frames. A frame holds one appended batch:

    u32 payload_len | u32 crc32(payload_len bytes + payload) | payload
    payload = u64 first_seq | u32 count | u8 flags | u64 timestamp_ms
              [flags & FLAG_IDEMPOTENT: u16 key_len | key (UTF-8) | 32-byte request hash]
              count x (u32 record_len | record)

All integers little-endian. Sequence numbers are per record, start at 1 and are dense.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import logging
import os
import re
import struct
import threading
import zlib
from array import array
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType

from trailkeeper._internal.fsutil import fsync_dir
from trailkeeper.clock import Clock, SystemClock
from trailkeeper.errors import SpoolError

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"TKSPOOL1"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_IDEMPOTENCY_WINDOW = timedelta(hours=1)
# Bounds one group-commit write, and so the size of a torn tail after a crash.
MAX_WRITE_BYTES = 8 * 1024 * 1024
FLAG_IDEMPOTENT = 0x01
IDEM_HASH_BYTES = 32
MAX_IDEM_KEY_BYTES = 1024
LOCK_FILE = "spool.lock"

_FRAME_HEAD = struct.Struct("<II")
_BODY_HEAD = struct.Struct("<QIBQ")
_KEY_LEN = struct.Struct("<H")
_REC_LEN = struct.Struct("<I")
_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")
_MAGIC_LEN = len(SEGMENT_MAGIC)

_ERRNO_HINTS = {
    errno.ENOSPC: "the spool disk is full: free space; nothing from the failed batch was kept",
    errno.EDQUOT: "the disk quota is exhausted: raise it or free space",
    errno.EACCES: "permission denied: check the owner and mode of the spool directory",
    errno.EROFS: "the filesystem is read-only: remount it read-write",
    errno.EIO: "the disk reported an I/O error: check the device",
}


# -- frames (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    first_seq: int
    records: tuple[bytes, ...]
    timestamp_ms: int
    idem_key: str | None = None
    idem_hash: bytes | None = None

    @property
    def count(self) -> int:
        return len(self.records)


class FrameDecodeError(ValueError):
    """`torn` is True when the bytes may be an interrupted write (incomplete or bad CRC)."""

    def __init__(self, message: str, torn: bool) -> None:
        super().__init__(message)
        self.torn = torn


def encode_frame(frame: Frame) -> bytes:
    flags = FLAG_IDEMPOTENT if frame.idem_key is not None else 0
    parts = [_BODY_HEAD.pack(frame.first_seq, frame.count, flags, frame.timestamp_ms)]
    if frame.idem_key is not None and frame.idem_hash is not None:
        key = frame.idem_key.encode("utf-8")
        parts += [_KEY_LEN.pack(len(key)), key, frame.idem_hash]
    for record in frame.records:
        parts += [_REC_LEN.pack(len(record)), record]
    body = b"".join(parts)
    length = _REC_LEN.pack(len(body))
    # The CRC covers the length too, so a zero-filled tail never passes as a frame.
    return length + _REC_LEN.pack(zlib.crc32(body, zlib.crc32(length))) + body


def decode_frame(buf: bytes, offset: int = 0) -> tuple[Frame, int]:
    """Decode the frame at `offset`; return it and the offset just past it."""
    if len(buf) - offset < _FRAME_HEAD.size:
        raise FrameDecodeError("incomplete frame header", torn=True)
    length, crc = _FRAME_HEAD.unpack_from(buf, offset)
    start = offset + _FRAME_HEAD.size
    end = start + length
    if end > len(buf):
        raise FrameDecodeError(f"frame of {length} bytes extends past the end of the data", True)
    body = memoryview(buf)[start:end]
    if zlib.crc32(body, zlib.crc32(memoryview(buf)[offset : offset + 4])) != crc:
        raise FrameDecodeError("frame CRC mismatch", torn=True)
    return _decode_body(body), end


def _decode_body(body: memoryview) -> Frame:
    try:
        first_seq, count, flags, ts = _BODY_HEAD.unpack_from(body, 0)
        pos = _BODY_HEAD.size
        key: str | None = None
        digest: bytes | None = None
        if flags & FLAG_IDEMPOTENT:
            (key_len,) = _KEY_LEN.unpack_from(body, pos)
            pos += _KEY_LEN.size
            key = bytes(body[pos : pos + key_len]).decode("utf-8")
            digest = bytes(body[pos + key_len : pos + key_len + IDEM_HASH_BYTES])
            pos += key_len + IDEM_HASH_BYTES
        records = []
        for _ in range(count):
            (rec_len,) = _REC_LEN.unpack_from(body, pos)
            pos += _REC_LEN.size
            records.append(bytes(body[pos : pos + rec_len]))
            pos += rec_len
    except (struct.error, UnicodeDecodeError) as e:
        raise FrameDecodeError(f"malformed frame: {e}", torn=False) from e
    if pos != len(body) or first_seq < 1 or count < 1 or flags & ~FLAG_IDEMPOTENT:
        raise FrameDecodeError("malformed frame: lengths, sequence or flags are invalid", False)
    if digest is not None and len(digest) != IDEM_HASH_BYTES:
        raise FrameDecodeError("malformed frame: truncated idempotency hash", torn=False)
    return Frame(first_seq, tuple(records), ts, key, digest)


def could_be_torn_tail(data: bytes, offset: int) -> bool:
    """Whether a bad frame at `offset` may be an interrupted last write.

    One write is either at most MAX_WRITE_BYTES or a single frame, so damage
    further from the end than that is corruption of acknowledged data.
    """
    remaining = len(data) - offset
    if remaining <= MAX_WRITE_BYTES or remaining < _FRAME_HEAD.size:
        return True
    length, _crc = _FRAME_HEAD.unpack_from(data, offset)
    return bool(offset + _FRAME_HEAD.size + length >= len(data))


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


# -- public results -----------------------------------------------------------


@dataclass(frozen=True)
class AppendResult:
    first_seq: int
    count: int
    duplicate: bool = False


@dataclass(frozen=True)
class SpoolStats:
    next_seq: int
    first_seq: int  # oldest record still kept
    segments: int
    bytes_on_disk: int
    fsyncs: int  # data fsyncs since open (one per group commit)
    frames: int  # frames written since open
    records: int  # records written since open
    truncated_bytes: int  # torn tail dropped when the spool was opened


# -- internals ----------------------------------------------------------------


@dataclass
class _Segment:
    first_seq: int
    path: Path
    size: int
    end_seq: int
    last_ts_ms: int
    frame_seqs: array[int] = field(default_factory=lambda: array("q"))
    frame_offsets: array[int] = field(default_factory=lambda: array("q"))
    idem_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _IdemEntry:
    digest: bytes
    result: AppendResult


@dataclass
class _Request:
    records: list[bytes]
    idem_key: str | None
    idem_hash: bytes | None
    future: Future[AppendResult]


@dataclass
class _Plan:
    """Frames for one write + fsync into one segment."""

    first_seq: int
    ts_ms: int
    rotate: bool = False
    frames: list[bytes] = field(default_factory=list)
    frame_seqs: list[int] = field(default_factory=list)
    frame_offsets: list[int] = field(default_factory=list)
    outcomes: list[tuple[_Request, AppendResult | SpoolError]] = field(default_factory=list)
    new_idem: dict[str, _IdemEntry] = field(default_factory=dict)
    next_seq: int = 0
    end_size: int = 0


def _spool_error(action: str, exc: OSError) -> SpoolError:
    hint = _ERRNO_HINTS.get(exc.errno or 0, "check the spool directory and the disk")
    return SpoolError(f"spool could not {action}: {exc.strerror or exc}", hint)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_request(records: Sequence[bytes], idem_key: str | None, idem_hash: bytes | None) -> None:
    if not records:
        raise SpoolError("append needs at least one record", "send a non-empty batch")
    if not all(isinstance(r, bytes) for r in records):
        raise SpoolError("spool records must be bytes", "encode records before appending")
    if (idem_key is None) != (idem_hash is None):
        raise SpoolError(
            "idempotency key and request hash must be given together",
            "pass both idem_key and idem_hash, or neither",
        )
    if idem_key is not None and len(idem_key.encode("utf-8")) > MAX_IDEM_KEY_BYTES:
        raise SpoolError(
            f"idempotency key longer than {MAX_IDEM_KEY_BYTES} bytes", "use a shorter key"
        )
    if idem_hash is not None and len(idem_hash) != IDEM_HASH_BYTES:
        raise SpoolError(
            f"request hash must be {IDEM_HASH_BYTES} bytes, got {len(idem_hash)}",
            "pass a SHA-256 digest of the request",
        )


# -- the spool ----------------------------------------------------------------


class Spool:
    def __init__(
        self,
        directory: Path,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
        idempotency_window: timedelta = DEFAULT_IDEMPOTENCY_WINDOW,
        clock: Clock | None = None,
    ) -> None:
        if segment_bytes < 4096:
            raise SpoolError(f"segment_bytes {segment_bytes} is too small", "use at least 4096")
        if idempotency_window < timedelta(0):
            raise SpoolError("idempotency_window is negative", "use a window of zero or more")
        self._dir = Path(directory)
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._window_ms = int(idempotency_window.total_seconds() * 1000)
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._durable = threading.Condition(self._lock)
        self._queue = threading.Condition(threading.Lock())
        self._pending: list[_Request] = []
        self._closing = False
        self._closed = False
        self._broken: SpoolError | None = None
        self._fsyncs = 0
        self._frames = 0
        self._records = 0
        self._truncated = 0
        self._idem: dict[str, _IdemEntry] = {}
        self._lock_fd = self._acquire_dir_lock()
        try:
            self._segments = self._recover()
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._committed_next = self._segments[-1].end_seq
        self._writer = threading.Thread(
            target=self._run_writer, name="trailkeeper-spool-writer", daemon=True
        )
        self._writer.start()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API -----------------------------------------------------

    def append(
        self, records: list[bytes], idem_key: str | None = None, idem_hash: bytes | None = None
    ) -> AppendResult:
        """Append one batch; returns once it is fsynced (or raises SpoolError)."""
        return self.submit(records, idem_key, idem_hash).result()

    def submit(
        self, records: list[bytes], idem_key: str | None = None, idem_hash: bytes | None = None
    ) -> Future[AppendResult]:
        """Queue one batch for the next group commit; the future resolves once it is fsynced."""
        _check_request(records, idem_key, idem_hash)
        future: Future[AppendResult] = Future()
        with self._queue:
            if self._closing:
                raise SpoolError("the spool is closed", "open it again before appending")
            self._pending.append(_Request(list(records), idem_key, idem_hash, future))
            self._queue.notify()
        return future

    def next_seq(self) -> int:
        with self._lock:
            return self._committed_next

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until record `seq` is durable; False on timeout or close."""
        with self._durable:
            self._durable.wait_for(lambda: self._committed_next > seq or self._closed, timeout)
            return self._committed_next > seq

    def read(self, from_seq: int, max_records: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Durable records with seq >= from_seq, oldest first.

        Stops before exceeding max_records or max_bytes (record bytes), but always
        returns at least one record when one is available so a consumer cannot stall.
        """
        if max_records < 1 or max_bytes < 1:
            raise SpoolError(
                "read needs max_records and max_bytes of at least 1", "pass positive limits"
            )
        if from_seq < 1:
            raise SpoolError(f"cannot read from sequence {from_seq}", "sequence numbers start at 1")
        spans = self._spans_from(from_seq)
        out: list[tuple[int, bytes]] = []
        budget = [max_records, max_bytes]
        for path, start, end in spans:
            if self._read_span(path, start, end, from_seq, out, budget):
                break
        return out

    def trim(self, min_needed_seq: int) -> None:
        """Delete old segments holding only records < min_needed_seq.

        The active segment and segments written to within the idempotency window are kept.
        """
        now_ms = self._now_ms()
        removed: list[Path] = []
        with self._lock:
            while len(self._segments) > 1:
                oldest = self._segments[0]
                if oldest.end_seq > min_needed_seq or now_ms - oldest.last_ts_ms < self._window_ms:
                    break
                self._segments.pop(0)
                for key in oldest.idem_keys:
                    self._idem.pop(key, None)
                removed.append(oldest.path)
        try:
            for path in removed:
                os.unlink(path)
            if removed:
                fsync_dir(self._dir)
        except OSError as e:
            raise _spool_error("delete old segments", e) from e

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(
                next_seq=self._committed_next,
                first_seq=self._segments[0].first_seq,
                segments=len(self._segments),
                bytes_on_disk=sum(seg.size for seg in self._segments),
                fsyncs=self._fsyncs,
                frames=self._frames,
                records=self._records,
                truncated_bytes=self._truncated,
            )

    def close(self) -> None:
        """Commit what is queued, stop the writer and release the directory."""
        with self._queue:
            if self._closing:
                return
            self._closing = True
            self._queue.notify()
        self._writer.join()
        with self._durable:
            self._closed = True
            self._durable.notify_all()
        os.close(self._fd)
        os.close(self._lock_fd)

    # -- opening and recovery -------------------------------------------

    def _acquire_dir_lock(self) -> int:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _spool_error(f"open the directory {self._dir}", e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise SpoolError(
                f"spool directory {self._dir} is already in use",
                "stop the other trailkeeper process (or close the other Spool) first",
            ) from e
        return fd

    def _recover(self) -> list[_Segment]:
        firsts = sorted(
            int(m.group(1)) for name in os.listdir(self._dir) if (m := _SEGMENT_NAME.match(name))
        )
        if not firsts:
            return [self._create_segment(1)]
        segments: list[_Segment] = []
        for index, first in enumerate(firsts):
            if segments and segments[-1].end_seq != first:
                raise SpoolError(
                    f"spool segment {segment_name(segments[-1].end_seq)} is missing in {self._dir}",
                    "restore it from a backup; records would otherwise be lost silently",
                )
            segments.append(self._scan_segment(first, is_last=index == len(firsts) - 1))
        return segments

    def _scan_segment(self, first_seq: int, is_last: bool) -> _Segment:
        path = self._dir / segment_name(first_seq)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise _spool_error(f"read {path}", e) from e
        if len(data) < _MAGIC_LEN and is_last and SEGMENT_MAGIC.startswith(data):
            self._rewrite_magic(path, len(data))
            data = SEGMENT_MAGIC
        if not data.startswith(SEGMENT_MAGIC):
            raise SpoolError(
                f"{path} is not a trailkeeper spool segment (bad magic)",
                "move foreign files out of the spool directory",
            )
        seg = _Segment(first_seq, path, _MAGIC_LEN, first_seq, 0)
        offset = _MAGIC_LEN
        while offset < len(data):
            try:
                frame, nxt = decode_frame(data, offset)
            except FrameDecodeError as e:
                if not (e.torn and is_last and could_be_torn_tail(data, offset)):
                    raise SpoolError(
                        f"spool segment {path} is corrupt at byte {offset}: {e}",
                        "restore the segment from a backup; corruption is never skipped",
                    ) from e
                self._truncate_tail(path, offset, len(data))
                break
            self._index_frame(seg, frame, offset, nxt)
            offset = nxt
        return seg

    def _index_frame(self, seg: _Segment, frame: Frame, offset: int, end: int) -> None:
        if frame.first_seq != seg.end_seq:
            raise SpoolError(
                f"spool segment {seg.path} has sequence {frame.first_seq} where "
                f"{seg.end_seq} was expected",
                "restore the segment from a backup",
            )
        seg.frame_seqs.append(frame.first_seq)
        seg.frame_offsets.append(offset)
        seg.end_seq += frame.count
        seg.size = end
        seg.last_ts_ms = frame.timestamp_ms
        if frame.idem_key is not None and frame.idem_hash is not None:
            if frame.idem_key not in self._idem:
                result = AppendResult(frame.first_seq, frame.count, duplicate=True)
                self._idem[frame.idem_key] = _IdemEntry(frame.idem_hash, result)
            seg.idem_keys.append(frame.idem_key)

    def _truncate_tail(self, path: Path, offset: int, size: int) -> None:
        log.warning("spool: dropping %d bytes of torn tail from %s", size - offset, path)
        try:
            os.truncate(path, offset)
            _fsync_path(path)
        except OSError as e:
            raise _spool_error(f"truncate the torn tail of {path}", e) from e
        self._truncated += size - offset

    def _rewrite_magic(self, path: Path, size: int) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                self._write_all(fd, SEGMENT_MAGIC)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise _spool_error(f"repair the header of {path}", e) from e
        self._truncated += size

    def _create_segment(self, first_seq: int) -> _Segment:
        try:
            seg, fd = self._new_segment(first_seq)
            os.close(fd)
        except OSError as e:
            raise _spool_error(f"create a segment in {self._dir}", e) from e
        return seg

    def _new_segment(self, first_seq: int) -> tuple[_Segment, int]:
        """Create a durable, empty segment; return it with an append fd (raises OSError)."""
        path = self._dir / segment_name(first_seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            self._write_all(fd, SEGMENT_MAGIC)
            os.fsync(fd)
            fsync_dir(self._dir)
        except OSError:
            os.close(fd)
            self._discard(path)
            raise
        return _Segment(first_seq, path, _MAGIC_LEN, first_seq, self._now_ms()), fd

    @staticmethod
    def _discard(path: Path) -> None:
        # Harmless if it stays: a short last segment is repaired on the next open.
        with contextlib.suppress(OSError):
            os.unlink(path)

    # -- the writer thread ----------------------------------------------

    def _run_writer(self) -> None:
        while True:
            with self._queue:
                while not self._pending and not self._closing:
                    self._queue.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            live = [req for req in batch if req.future.set_running_or_notify_cancel()]
            try:
                self._process(live)
            except Exception as e:
                # A bug must fail callers, not leave them blocked forever.
                self._broken = SpoolError(f"spool writer failed: {e!r}", "reopen the spool")
                self._fail(live, self._broken)

    def _process(self, batch: list[_Request]) -> None:
        pos = 0
        while pos < len(batch):
            if self._broken is not None:
                self._fail(batch[pos:], self._broken)
                return
            plan = self._plan(batch, pos)
            try:
                self._commit(plan)
            except OSError as e:
                self._rollback()
                self._fail(batch[pos:], _spool_error("append (nothing was acknowledged)", e))
                return
            self._publish(plan)
            pos += len(plan.outcomes)

    def _plan(self, batch: list[_Request], pos: int) -> _Plan:
        active = self._segments[-1]
        plan = _Plan(first_seq=self._committed_next, ts_ms=self._now_ms())
        seq, size, written = plan.first_seq, active.size, 0
        for req in batch[pos:]:
            known = self._idem_outcome(req, plan.new_idem)
            if known is not None:
                plan.outcomes.append((req, known))
                continue
            data = encode_frame(
                Frame(seq, tuple(req.records), plan.ts_ms, req.idem_key, req.idem_hash)
            )
            if not plan.frames:
                if size > _MAGIC_LEN and size + len(data) > self._segment_bytes:
                    plan.rotate, size = True, _MAGIC_LEN
            elif size + len(data) > self._segment_bytes or written + len(data) > MAX_WRITE_BYTES:
                break
            result = AppendResult(seq, len(req.records))
            plan.frames.append(data)
            plan.frame_seqs.append(seq)
            plan.frame_offsets.append(size)
            plan.outcomes.append((req, result))
            if req.idem_key is not None and req.idem_hash is not None:
                plan.new_idem[req.idem_key] = _IdemEntry(req.idem_hash, result)
            seq, size, written = seq + len(req.records), size + len(data), written + len(data)
        plan.next_seq, plan.end_size = seq, size
        return plan

    def _idem_outcome(
        self, req: _Request, pending: dict[str, _IdemEntry]
    ) -> AppendResult | SpoolError | None:
        if req.idem_key is None:
            return None
        entry = pending.get(req.idem_key)
        if entry is None:
            with self._lock:
                entry = self._idem.get(req.idem_key)
        if entry is None:
            return None
        if entry.digest != req.idem_hash:
            return SpoolError(
                f"idempotency key {req.idem_key!r} reused with a different request",
                "use a new idempotency key for a different request",
            )
        return AppendResult(entry.result.first_seq, entry.result.count, duplicate=True)

    def _commit(self, plan: _Plan) -> None:
        if not plan.frames:
            return
        if plan.rotate:
            self._rotate(plan.first_seq)
        self._write_all(self._fd, b"".join(plan.frames))
        if self._fsync:
            os.fsync(self._fd)
            self._fsyncs += 1

    def _rotate(self, first_seq: int) -> None:
        seg, fd = self._new_segment(first_seq)
        old, self._fd = self._fd, fd
        os.close(old)
        with self._lock:
            self._segments.append(seg)

    def _rollback(self) -> None:
        """Cut the active segment back to its last acknowledged frame."""
        active = self._segments[-1]
        try:
            os.ftruncate(self._fd, active.size)
            os.fsync(self._fd)
        except OSError as e:
            self._broken = _spool_error(
                f"cut {active.path} back after a failed append; reopen the spool", e
            )

    def _publish(self, plan: _Plan) -> None:
        with self._lock:
            seg = self._segments[-1]
            seg.frame_seqs.extend(plan.frame_seqs)
            seg.frame_offsets.extend(plan.frame_offsets)
            if plan.frames:
                seg.size, seg.end_seq, seg.last_ts_ms = plan.end_size, plan.next_seq, plan.ts_ms
            for key, entry in plan.new_idem.items():
                self._idem[key] = entry
                seg.idem_keys.append(key)
            self._committed_next = seg.end_seq
            self._frames += len(plan.frames)
            self._records += plan.next_seq - plan.first_seq
            self._durable.notify_all()
        for req, outcome in plan.outcomes:
            if isinstance(outcome, SpoolError):
                req.future.set_exception(outcome)
            else:
                req.future.set_result(outcome)

    @staticmethod
    def _fail(requests: list[_Request], error: SpoolError) -> None:
        for req in requests:
            if not req.future.done():
                req.future.set_exception(error)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    # -- reading --------------------------------------------------------

    def _spans_from(self, from_seq: int) -> list[tuple[Path, int, int]]:
        with self._lock:
            if from_seq >= self._committed_next:
                return []
            first_kept = self._segments[0].first_seq
            if from_seq < first_kept:
                raise SpoolError(
                    f"records before {first_kept} were trimmed (asked for {from_seq})",
                    "a consumer must not trim records it has not yet delivered",
                )
            index = bisect.bisect_right([s.first_seq for s in self._segments], from_seq) - 1
            spans: list[tuple[Path, int, int]] = []
            for seg in self._segments[index:]:
                start = _MAGIC_LEN
                if not spans and len(seg.frame_seqs):
                    frame = bisect.bisect_right(seg.frame_seqs, from_seq) - 1
                    start = seg.frame_offsets[frame]
                spans.append((seg.path, start, seg.size))
            return spans

    def _read_span(
        self,
        path: Path,
        start: int,
        end: int,
        from_seq: int,
        out: list[tuple[int, bytes]],
        budget: list[int],
    ) -> bool:
        """Append records from one segment to `out`; True once the budget is spent."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as e:
            raise SpoolError(
                f"segment {path.name} was trimmed while reading",
                "a consumer must not trim records it has not yet delivered",
            ) from e
        except OSError as e:
            raise _spool_error(f"read {path}", e) from e
        try:
            offset = start
            while offset < end:
                frame, offset = self._read_frame(fd, path, offset)
                for i, record in enumerate(frame.records):
                    seq = frame.first_seq + i
                    if seq < from_seq:
                        continue
                    if out and (budget[0] < 1 or budget[1] < len(record)):
                        return True
                    out.append((seq, record))
                    budget[0] -= 1
                    budget[1] -= len(record)
        finally:
            os.close(fd)
        return False

    @staticmethod
    def _read_frame(fd: int, path: Path, offset: int) -> tuple[Frame, int]:
        try:
            head = os.pread(fd, _FRAME_HEAD.size, offset)
            (length, _crc) = _FRAME_HEAD.unpack(head) if len(head) == _FRAME_HEAD.size else (0, 0)
            data = head + os.pread(fd, length, offset + _FRAME_HEAD.size)
        except OSError as e:
            raise _spool_error(f"read {path}", e) from e
        try:
            frame, used = decode_frame(data)
        except FrameDecodeError as e:
            raise SpoolError(
                f"spool segment {path} is corrupt at byte {offset}: {e}",
                "restore the segment from a backup; corruption is never skipped",
            ) from e
        return frame, offset + used

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)
