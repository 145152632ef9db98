"""One way to open SQLite: `connect` (every connection trailkeeper opens) and `Database`.

`connect` applies what every connection needs: explicit transactions (autocommit mode, so
callers write `BEGIN IMMEDIATE` themselves), a busy timeout, and for a writable connection
WAL and the durability of its commits. A read-only connection is opened by URI with
`mode=ro`, so it can never create or change the file. Settings that only one database needs
(the history's cache and mmap sizes, KMS's secure_delete) stay with the code that opens it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0  # how long a statement waits for another connection's write lock


def connect(path: Path, *, readonly: bool = False, durable: bool = True, wal: bool = True,
            timeout: float = BUSY_TIMEOUT_S, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to the database at `path`, in autocommit mode.

    Writable connections switch the file to WAL (unless `wal=False`: the caller decides
    when) and commit with synchronous FULL when `durable` (each commit survives power loss:
    state commits gate exactly-once delivery), NORMAL otherwise. Read-only connections set
    nothing. Raises sqlite3.Error; callers wrap it in their own error.
    """
    if readonly:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                               check_same_thread=check_same_thread, isolation_level=None)
        return conn
    conn = sqlite3.connect(path, timeout=timeout, check_same_thread=check_same_thread, isolation_level=None)
    try:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    except BaseException:
        conn.close()
        raise
    return conn


class Database:
    """A connection guarded by a lock; `tx()` is one durable transaction."""

    def __init__(self, path: Path, *, durable: bool = True, readonly: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = connect(path, readonly=readonly, durable=durable, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.RLock()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return list(self.conn.execute(sql, params))

    def write(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """Run one statement of the transaction this thread holds (`tx()`); the number of rows
        it changed. RuntimeError outside a transaction: a write there would commit alone."""
        with self.lock:
            if not self.conn.in_transaction:
                raise RuntimeError("a repository write belongs inside transaction()")
            return self.conn.execute(sql, params).rowcount

    def close(self) -> None:
        with self.lock:
            self.conn.close()
