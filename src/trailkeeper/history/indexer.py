"""The history indexer in its own process.

Indexing costs about 30 µs of CPU per event, most of it Python holding the GIL; in the server
process it would compete with request handling. A child process gets the machine's other core.
The parent reads the spool and sends batches over a pipe; the child indexes them and answers
with the last sequence number it committed. If the parent dies, the pipe closes and the child
exits; the committed offset lives in the history database, so nothing is indexed twice.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import struct
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

from trailkeeper.errors import HistoryError

_ENTRY = struct.Struct("<QI")
CONSUMER = "history-indexer"  # its name in the quarantine
ACK_TIMEOUT_S = 120.0
EXIT_WAIT_S = 2.0  # how long a child whose pipe closed may take to be reaped
# The server's history connections: enough cache for the hot index pages, no mmap, so the
# resident memory of a long-running server stays flat as the database grows.
SERVER_CACHE_KIB = 64 * 1024


def pack(entries: Sequence[tuple[int, bytes]]) -> bytes:
    parts: list[bytes] = []
    for seq, body in entries:
        parts.append(_ENTRY.pack(seq, len(body)))
        parts.append(body)
    return b"".join(parts)


def unpack(buffer: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    view = memoryview(buffer)
    offset = 0
    while offset < len(view):
        seq, size = _ENTRY.unpack_from(view, offset)
        offset += _ENTRY.size
        out.append((seq, bytes(view[offset : offset + size])))
        offset += size
    return out


def _child_main(db_path: str, quarantine_dir: str, conn: Connection) -> None:
    # The server's signals are for the server: it stops this child by closing the pipe, after
    # its own shutdown work, so that a Ctrl-C or SIGTERM never kills the indexer mid-batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from datetime import UTC, datetime

    from trailkeeper.history.sqlite import SqliteHistory
    from trailkeeper.quarantine import Quarantine

    history = SqliteHistory(Path(db_path), cache_kib=SERVER_CACHE_KIB, mmap_bytes=0)
    quarantine = Quarantine(Path(quarantine_dir))

    def set_aside(seq: int, body: bytes, reason: str) -> None:
        quarantine.put(CONSUMER, seq, body, reason, datetime.now(UTC))

    try:
        while True:
            try:
                message = conn.recv_bytes()
            except (EOFError, OSError):
                return
            if not message:
                return
            try:
                poisoned = history.index(unpack(message), set_aside)
                conn.send(("ok", history.last_indexed_seq(), poisoned))
            except Exception as e:  # reported to the parent, which logs and retries
                conn.send(("error", f"{type(e).__name__}: {e}", 0))
    finally:
        history.close()


class IndexerProcess:
    """A child process that owns all writes to the history database."""

    def __init__(self, db_path: Path, quarantine_dir: Path) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self.poisoned = 0  # records the last batch set aside (quarantined)
        self._proc = ctx.Process(
            target=_child_main,
            args=(str(db_path), str(quarantine_dir), child_conn),
            name="trailkeeper-indexer",
            daemon=True,
        )
        self._proc.start()
        child_conn.close()

    def index(self, entries: Sequence[tuple[int, bytes]]) -> int:
        """Index a batch; return the last committed seq. Raises HistoryError on failure."""
        self.send(entries)
        return self.wait()

    def send(self, entries: Sequence[tuple[int, bytes]]) -> None:
        """Hand a batch to the child without waiting (one batch may be in flight)."""
        if not self._proc.is_alive():
            raise HistoryError(f"the history indexer process has exited ({self.exit_description()})",
                               "the server restarts it")
        self._conn.send_bytes(pack(entries))

    def wait(self) -> int:
        """The last seq committed for the batch in flight (`poisoned`: how many it set aside)."""
        if not self._conn.poll(ACK_TIMEOUT_S):
            raise HistoryError("the history indexer did not answer in time")
        try:
            status, value, poisoned = self._conn.recv()
        except (EOFError, OSError) as e:
            # The pipe closes while the dying child is torn down, a moment before it can be
            # reaped: wait for that moment, so that the exit status is known and said.
            self._proc.join(timeout=EXIT_WAIT_S)
            raise HistoryError(f"the history indexer process has exited ({self.exit_description()})") from e
        if status != "ok":
            raise HistoryError(f"history indexing failed: {value}")
        self.poisoned = int(poisoned)
        return int(value)

    def exit_description(self) -> str:
        code = self._proc.exitcode
        if code is None:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    @property
    def alive(self) -> bool:
        return self._proc.is_alive()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send_bytes(b"")
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
        self._conn.close()
