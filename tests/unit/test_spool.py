"""Spool: frame format, group commit, recovery, rotation, trim, idempotency, failures."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trailkeeper import spool as spool_module
from trailkeeper.clock import FrozenClock
from trailkeeper.errors import SpoolError
from trailkeeper.spool import (
    SEGMENT_MAGIC,
    AppendResult,
    Frame,
    FrameDecodeError,
    Spool,
    decode_frame,
    encode_frame,
    segment_name,
)

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def opened(tmp_path: Path, clock: FrozenClock) -> Iterator[Callable[..., Spool]]:
    spools: list[Spool] = []

    def open_spool(**kwargs: object) -> Spool:
        kwargs.setdefault("clock", clock)
        sp = Spool(tmp_path / "spool", **kwargs)  # type: ignore[arg-type]
        spools.append(sp)
        return sp

    yield open_spool
    for sp in spools:
        sp.close()


def h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def segments(sp_dir: Path) -> list[Path]:
    return sorted(sp_dir.glob("*.seg"))


def all_records(sp: Spool) -> list[tuple[int, bytes]]:
    return sp.read(sp.stats().first_seq, 10**9, 10**12)


# -- frame format -------------------------------------------------------------

KNOWN_FRAME = bytes.fromhex(
    "20000000"  # payload length 32
    "d4b95379"  # crc32 of length + payload
    "0100000000000000"  # first_seq 1
    "02000000"  # count 2
    "00"  # flags
    "0000000000000000"  # timestamp_ms 0
    "0100000061"  # b"a"
    "020000006263"  # b"bc"
)


def test_frame_known_answer() -> None:
    assert encode_frame(Frame(1, (b"a", b"bc"), 0)) == KNOWN_FRAME
    assert decode_frame(KNOWN_FRAME) == (Frame(1, (b"a", b"bc"), 0), len(KNOWN_FRAME))


def test_frame_round_trip_with_idempotency() -> None:
    frame = Frame(7, (b"z", b""), 1_700_000_000_000, "k\u00e9y", bytes(range(32)))
    data = b"prefix" + encode_frame(frame)
    assert decode_frame(data, 6) == (frame, len(data))


@pytest.mark.parametrize(
    ("mutate", "torn"),
    [
        (lambda b: b[:5], True),
        (lambda b: b[:-1], True),
        (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], True),
        (lambda b: b"\x00" * len(b), True),
    ],
    ids=["short-header", "short-payload", "bit-flip", "zeros"],
)
def test_frame_damage_detected(mutate: Callable[[bytes], bytes], torn: bool) -> None:
    with pytest.raises(FrameDecodeError) as caught:
        decode_frame(mutate(KNOWN_FRAME))
    assert caught.value.torn is torn


def test_frame_with_valid_crc_but_bad_structure_is_not_torn() -> None:
    import struct
    import zlib

    body = struct.pack("<QIBQ", 1, 3, 0, 0) + struct.pack("<I", 1) + b"a"  # claims 3 records
    length = struct.pack("<I", len(body))
    data = length + struct.pack("<I", zlib.crc32(body, zlib.crc32(length))) + body
    with pytest.raises(FrameDecodeError) as caught:
        decode_frame(data)
    assert caught.value.torn is False


def test_segment_name() -> None:
    assert segment_name(1) == "00000000000000000001.seg"


# -- append and read ----------------------------------------------------------


def test_append_read_dense(opened: Callable[..., Spool]) -> None:
    sp = opened()
    assert sp.next_seq() == 1
    assert sp.append([b"a", b"b"]) == AppendResult(1, 2, False)
    assert sp.append([b"c"]) == AppendResult(3, 1, False)
    assert sp.next_seq() == 4
    assert sp.read(1, 100, 10**6) == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert sp.read(2, 100, 10**6) == [(2, b"b"), (3, b"c")]
    assert sp.read(4, 100, 10**6) == []
    with pytest.raises(SpoolError, match="cannot read from sequence 0"):
        sp.read(0, 100, 10**6)


def test_read_limits(opened: Callable[..., Spool]) -> None:
    sp = opened()
    sp.append([b"x" * 10 for _ in range(10)])
    sp.append([b"y" * 10 for _ in range(10)])
    assert [s for s, _ in sp.read(5, 3, 10**6)] == [5, 6, 7]
    assert [s for s, _ in sp.read(9, 100, 35)] == [9, 10, 11]
    # A record larger than max_bytes is still returned alone, so consumers never stall.
    assert [s for s, _ in sp.read(1, 100, 1)] == [1]


def test_read_survives_reopen(opened: Callable[..., Spool]) -> None:
    sp = opened()
    sp.append([b"one", b"two"])
    sp.close()
    again = opened()
    assert again.read(1, 10, 100) == [(1, b"one"), (2, b"two")]
    assert again.append([b"three"]) == AppendResult(3, 1)


def test_bad_requests_refused(opened: Callable[..., Spool]) -> None:
    sp = opened()
    with pytest.raises(SpoolError, match="at least one record"):
        sp.append([])
    with pytest.raises(SpoolError, match="together"):
        sp.append([b"a"], idem_key="k")
    with pytest.raises(SpoolError, match="32 bytes"):
        sp.append([b"a"], idem_key="k", idem_hash=b"short")
    with pytest.raises(SpoolError, match="must be bytes"):
        sp.append(["text"])  # type: ignore[list-item]
    assert sp.next_seq() == 1


def test_second_spool_on_same_directory_refused(opened: Callable[..., Spool]) -> None:
    opened()
    with pytest.raises(SpoolError, match="already in use"):
        opened()


def test_closed_spool_refuses_appends(opened: Callable[..., Spool]) -> None:
    sp = opened()
    sp.close()
    with pytest.raises(SpoolError, match="closed"):
        sp.append([b"a"])


def test_wait_for(opened: Callable[..., Spool]) -> None:
    sp = opened()
    assert sp.wait_for(1, 0.01) is False
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(sp.wait_for(2, 5.0)))
    waiter.start()
    sp.append([b"a", b"b"])
    waiter.join()
    assert woke == [True]


# -- concurrency and group commit ----------------------------------------------


def test_concurrent_appends_are_dense_and_contiguous(
    opened: Callable[..., Spool], tmp_path: Path
) -> None:
    sp = opened(segment_bytes=16 * 1024)
    results: dict[tuple[int, int], AppendResult] = {}

    def worker(tid: int) -> None:
        for n in range(40):
            records = [f"{tid}-{n}-{i}".encode() for i in range(1 + (tid + n) % 5)]
            results[(tid, n)] = sp.append(records)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = dict(all_records(sp))
    assert sorted(stored) == list(range(1, sp.next_seq()))
    for (tid, n), res in results.items():
        got = [stored[res.first_seq + i] for i in range(res.count)]
        assert got == [f"{tid}-{n}-{i}".encode() for i in range(res.count)]
    assert len(segments(tmp_path / "spool")) > 1


class FsyncGate:
    """Holds the writer inside fsync until released, so queued appends pile up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        real = self.real = os.fsync

        def gated(fd: int) -> None:
            self.entered.set()
            self.release.wait(10)
            real(fd)

        monkeypatch.setattr(os, "fsync", gated)


def test_group_commit_batches_fsyncs(
    opened: Callable[..., Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = opened()
    gate = FsyncGate(monkeypatch)
    first = sp.submit([b"first"])
    assert gate.entered.wait(5)
    rest = [sp.submit([f"r{i}".encode()]) for i in range(50)]
    gate.release.set()
    assert first.result(5) == AppendResult(1, 1)
    assert [f.result(5).first_seq for f in rest] == list(range(2, 52))
    assert sp.stats().fsyncs == 2
    assert sp.stats().frames == 51


def test_cancelled_submission_is_not_written(
    opened: Callable[..., Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = opened()
    gate = FsyncGate(monkeypatch)
    first = sp.submit([b"kept"])
    assert gate.entered.wait(5)
    dropped = sp.submit([b"dropped"])
    assert dropped.cancel()
    after = sp.submit([b"after"])
    gate.release.set()
    assert first.result(5).first_seq == 1
    assert after.result(5).first_seq == 2
    assert all_records(sp) == [(1, b"kept"), (2, b"after")]


# -- idempotency --------------------------------------------------------------


def test_idempotent_duplicate_returns_original(opened: Callable[..., Spool]) -> None:
    sp = opened()
    original = sp.append([b"a", b"b"], "req-1", h("body"))
    sp.append([b"c"])
    again = sp.append([b"a", b"b"], "req-1", h("body"))
    assert again == AppendResult(original.first_seq, 2, duplicate=True)
    assert sp.next_seq() == 4


def test_idempotency_conflict(opened: Callable[..., Spool]) -> None:
    sp = opened()
    sp.append([b"a"], "req-1", h("body"))
    with pytest.raises(SpoolError, match="different request"):
        sp.append([b"a"], "req-1", h("other body"))
    assert sp.next_seq() == 2


def test_idempotency_survives_reopen(opened: Callable[..., Spool]) -> None:
    sp = opened()
    sp.append([b"x"])
    sp.append([b"a", b"b"], "req-1", h("body"))
    sp.close()
    again = opened()
    assert again.append([b"a", b"b"], "req-1", h("body")) == AppendResult(2, 2, duplicate=True)
    with pytest.raises(SpoolError, match="different request"):
        again.append([b"a"], "req-1", h("x"))


def test_duplicate_inside_one_group_commit(
    opened: Callable[..., Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = opened()
    gate = FsyncGate(monkeypatch)
    sp.submit([b"hold"])
    assert gate.entered.wait(5)
    one = sp.submit([b"a"], "k", h("a"))
    two = sp.submit([b"a"], "k", h("a"))
    clash = sp.submit([b"b"], "k", h("b"))
    gate.release.set()
    assert one.result(5) == AppendResult(2, 1)
    assert two.result(5) == AppendResult(2, 1, duplicate=True)
    with pytest.raises(SpoolError, match="different request"):
        clash.result(5)
    assert sp.next_seq() == 3


# -- recovery -----------------------------------------------------------------


def test_torn_tail_truncated_on_reopen(opened: Callable[..., Spool], tmp_path: Path) -> None:
    sp = opened()
    sp.append([b"a"])
    sp.append([b"b", b"c"])
    sp.close()
    seg = segments(tmp_path / "spool")[-1]
    good_size = seg.stat().st_size
    half = encode_frame(Frame(4, (b"d" * 100,), 0))[:50]
    with open(seg, "ab") as f:
        f.write(half)
    again = opened()
    assert again.stats().truncated_bytes == 50
    assert seg.stat().st_size == good_size
    assert all_records(again) == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert again.append([b"d"]) == AppendResult(4, 1)


@pytest.mark.parametrize("garbage", [b"\x00" * 3, b"\xff" * 40, b"\x00" * 4096])
def test_garbage_tail_truncated(
    opened: Callable[..., Spool], tmp_path: Path, garbage: bytes
) -> None:
    sp = opened()
    sp.append([b"a"])
    sp.close()
    with open(segments(tmp_path / "spool")[-1], "ab") as f:
        f.write(garbage)
    again = opened()
    assert again.stats().truncated_bytes == len(garbage)
    assert all_records(again) == [(1, b"a")]


def test_bad_crc_in_last_frame_is_a_torn_tail(opened: Callable[..., Spool], tmp_path: Path) -> None:
    sp = opened()
    sp.append([b"a"])
    sp.append([b"b"])
    sp.close()
    seg = segments(tmp_path / "spool")[-1]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    again = opened()
    assert all_records(again) == [(1, b"a")]
    assert again.next_seq() == 2


def flip_first_frame_byte(seg: Path) -> None:
    data = bytearray(seg.read_bytes())
    data[len(SEGMENT_MAGIC) + 30] ^= 0xFF
    seg.write_bytes(bytes(data))


def test_corruption_in_non_last_segment_detected(
    opened: Callable[..., Spool], tmp_path: Path
) -> None:
    sp = opened(segment_bytes=4096)
    for _ in range(10):
        sp.append([b"z" * 1000])
    sp.close()
    segs = segments(tmp_path / "spool")
    assert len(segs) >= 3
    flip_first_frame_byte(segs[0])
    with pytest.raises(SpoolError, match="corrupt"):
        opened(segment_bytes=4096)


def test_corruption_far_from_the_end_of_last_segment_detected(
    opened: Callable[..., Spool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "MAX_WRITE_BYTES", 2000)
    sp = opened()
    for _ in range(10):
        sp.append([b"z" * 500])
    sp.close()
    flip_first_frame_byte(segments(tmp_path / "spool")[-1])
    with pytest.raises(SpoolError, match="corrupt"):
        opened()


def test_corruption_seen_by_read(opened: Callable[..., Spool], tmp_path: Path) -> None:
    sp = opened()
    sp.append([b"a" * 100])
    flip_first_frame_byte(segments(tmp_path / "spool")[-1])
    with pytest.raises(SpoolError, match="corrupt"):
        sp.read(1, 10, 1000)


def test_missing_middle_segment_detected(opened: Callable[..., Spool], tmp_path: Path) -> None:
    sp = opened(segment_bytes=4096)
    for _ in range(10):
        sp.append([b"z" * 1000])
    sp.close()
    segments(tmp_path / "spool")[1].unlink()
    with pytest.raises(SpoolError, match="missing"):
        opened(segment_bytes=4096)


def test_foreign_segment_refused(opened: Callable[..., Spool], tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / segment_name(1)).write_bytes(b"NOTASPOOLFILE")
    with pytest.raises(SpoolError, match="bad magic"):
        opened()


def test_short_last_segment_header_repaired(opened: Callable[..., Spool], tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / segment_name(1)).write_bytes(SEGMENT_MAGIC[:3])
    sp = opened()
    assert sp.append([b"a"]) == AppendResult(1, 1)


# -- rotation and trim --------------------------------------------------------


def fill(sp: Spool, batches: int, size: int = 1000) -> None:
    for n in range(batches):
        sp.append([bytes([n % 256]) * size])


def test_rotation_and_reads_across_segments(opened: Callable[..., Spool], tmp_path: Path) -> None:
    sp = opened(segment_bytes=4096)
    fill(sp, 12)
    names = [p.name for p in segments(tmp_path / "spool")]
    assert len(names) == sp.stats().segments >= 3
    assert names[0] == segment_name(1)
    assert [s for s, _ in sp.read(2, 100, 10**6)] == list(range(2, 13))
    for seq, rec in all_records(sp):
        assert rec == bytes([(seq - 1) % 256]) * 1000


def test_trim_respects_needed_seq_window_and_active(
    opened: Callable[..., Spool], clock: FrozenClock, tmp_path: Path
) -> None:
    sp = opened(segment_bytes=4096, idempotency_window=timedelta(minutes=10))
    fill(sp, 12)
    before = sp.stats()
    sp.trim(100)
    assert sp.stats().segments == before.segments  # all younger than the window
    clock.advance(timedelta(minutes=11))
    sp.trim(5)
    after = sp.stats()
    assert after.first_seq <= 5 < after.first_seq + 4
    assert after.segments < before.segments
    with pytest.raises(SpoolError, match="trimmed"):
        sp.read(1, 10, 10**6)
    assert sp.read(after.first_seq, 1, 10**6)[0][0] == after.first_seq
    sp.trim(10**9)
    assert sp.stats().segments == 1  # the active segment stays
    assert sp.append([b"next"]).first_seq == 13
    kept_from = sp.stats().first_seq
    sp.close()
    again = opened(segment_bytes=4096)
    assert again.next_seq() == 14
    assert again.stats().first_seq == kept_from > 1
    assert again.read(13, 10, 10**6) == [(13, b"next")]


def test_trim_forgets_idempotency_keys(opened: Callable[..., Spool], clock: FrozenClock) -> None:
    sp = opened(segment_bytes=4096, idempotency_window=timedelta(minutes=1))
    sp.append([b"a" * 1000], "old", h("old"))
    fill(sp, 8)
    assert sp.append([b"a" * 1000], "old", h("old")).duplicate
    clock.advance(timedelta(minutes=2))
    sp.trim(sp.next_seq())
    assert sp.append([b"a" * 1000], "old", h("new")).duplicate is False


# -- write failures -----------------------------------------------------------


def test_enospc_fails_callers_and_leaves_no_partial_frame(
    opened: Callable[..., Spool], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sp = opened()
    sp.append([b"a"])
    seg = segments(tmp_path / "spool")[-1]
    size = seg.stat().st_size
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(SpoolError, match="No space left") as caught:
        sp.append([b"b" * 500])
    assert "disk is full" in caught.value.hint
    assert seg.stat().st_size == size
    monkeypatch.setattr(os, "write", real_write)
    assert sp.append([b"c"]) == AppendResult(2, 1)
    assert all_records(sp) == [(1, b"a"), (2, b"c")]
    sp.close()
    again = opened()
    assert again.stats().truncated_bytes == 0
    assert all_records(again) == [(1, b"a"), (2, b"c")]


def test_fsync_failure_fails_every_waiting_caller(
    opened: Callable[..., Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = opened()
    gate = FsyncGate(monkeypatch)
    held = sp.submit([b"first"])
    assert gate.entered.wait(5)
    waiting = [sp.submit([f"w{i}".encode()]) for i in range(5)]
    real_fsync = gate.real
    failures = [OSError(errno.EIO, "Input/output error")]

    def fails_once(fd: int) -> None:
        if failures:
            raise failures.pop()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fails_once)
    gate.release.set()
    # The gated call goes on to the real fsync it captured, so the first append succeeds.
    assert held.result(5) == AppendResult(1, 1)
    for future in waiting:
        with pytest.raises(SpoolError, match="Input/output error"):
            future.result(5)
    assert sp.next_seq() == 2
    assert sp.append([b"later"]) == AppendResult(2, 1)
    assert all_records(sp) == [(1, b"first"), (2, b"later")]


def test_failed_cut_back_stops_appends_until_reopen(
    opened: Callable[..., Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = opened()
    sp.append([b"first"])

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(SpoolError, match="Input/output error"):
        sp.append([b"lost"])
    monkeypatch.undo()
    with pytest.raises(SpoolError, match="reopen the spool"):
        sp.append([b"refused"])
    sp.close()
    again = opened()
    # Without a durable cut-back the unacknowledged frame may survive; it is never acknowledged.
    assert all_records(again)[0] == (1, b"first")
    assert again.append([b"next"]).first_seq == again.next_seq() - 1


def test_failed_rotation_keeps_spool_consistent(
    opened: Callable[..., Spool], monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = opened(segment_bytes=4096)
    fill(sp, 3)
    real_open = os.open

    def no_new_files(path: str | Path, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_new_files)
    with pytest.raises(SpoolError, match="No space left"):
        fill(sp, 3)
    monkeypatch.undo()
    fill(sp, 3)
    assert [s for s, _ in all_records(sp)] == list(range(1, sp.next_seq()))
