"""Signing-key repositories: SQLite (table signing_keys of the state database) and memory."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trailkeeper._internal.memory import MemoryRepository
from trailkeeper._internal.sqlite import connect
from trailkeeper.errors import SigningKeyError
from trailkeeper.keys.signing import PublicKeyInfo
from trailkeeper.state.schema import STATE_SCHEMA

_COLUMNS = "public_der, fingerprint, valid_from_us, valid_to_us"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"time {when!r} has no timezone; pass a timezone-aware UTC datetime")
    return (when.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def _from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _info(der: bytes, fp: str, valid_from: int, valid_to: int | None) -> PublicKeyInfo:
    return PublicKeyInfo(der, fp, _from_us(valid_from), None if valid_to is None else _from_us(valid_to))


def _all_keys(conn: sqlite3.Connection) -> list[PublicKeyInfo]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM signing_keys ORDER BY valid_from_us").fetchall()
    return [_info(*row) for row in rows]


def read_public_keys(path: Path) -> list[PublicKeyInfo]:
    """Every public key of a state database, through a read-only connection (offline validator)."""
    try:
        with closing(connect(path, readonly=True)) as conn:
            return _all_keys(conn)
    except sqlite3.Error as e:
        raise SigningKeyError(
            f"cannot read signing keys from {path}: {e}",
            "check that the file is a trailkeeper state database",
        ) from e


class SqliteSigningKeyRepository:
    """Signing keys in the state database. One connection per operation (a transaction keeps
    its own until it ends) keeps threads independent; SQLite's `BEGIN IMMEDIATE` orders
    writers across processes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()  # .conn: the connection of this thread's transaction
        STATE_SCHEMA.ensure(path)

    def _open(self) -> sqlite3.Connection:
        try:
            return connect(self._path)
        except sqlite3.Error as e:
            raise SigningKeyError(
                f"cannot open state database {self._path}: {e}",
                "check the data directory's permissions",
            ) from e

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        current: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with closing(self._open()) as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with closing(self._open()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            self._local.conn = conn
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                self._local.conn = None
            conn.execute("COMMIT")

    def current(self) -> PublicKeyInfo | None:
        with self._conn() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM signing_keys WHERE valid_to_us IS NULL "
                               "ORDER BY valid_from_us DESC LIMIT 1").fetchone()
        return None if row is None else _info(*row)

    def all(self) -> list[PublicKeyInfo]:
        with self._conn() as conn:
            return _all_keys(conn)

    def private_envelope(self, fingerprint: str) -> bytes | None:
        with self._conn() as conn:
            row = conn.execute("SELECT private_envelope FROM signing_keys WHERE fingerprint = ?",
                               (fingerprint,)).fetchone()
        return None if row is None else bytes(row[0])

    def _writing(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("a repository write belongs inside transaction()")
        return conn

    def add(self, key: PublicKeyInfo, private_envelope: bytes, keyring_id: str) -> bool:
        conn = self._writing()
        try:
            conn.execute(
                "INSERT INTO signing_keys (fingerprint, public_der, private_envelope, keyring_id, valid_from_us,"
                " valid_to_us) VALUES (?, ?, ?, ?, ?, ?)",
                (key.fingerprint, key.der_pkcs1, private_envelope, keyring_id, _to_us(key.valid_from),
                 None if key.valid_to is None else _to_us(key.valid_to)))
        except sqlite3.IntegrityError:
            return False
        return True

    def retire(self, fingerprint: str, valid_to: datetime) -> None:
        self._writing().execute("UPDATE signing_keys SET valid_to_us = ? WHERE fingerprint = ?",
                                (_to_us(valid_to), fingerprint))


@dataclass(frozen=True)
class _Stored:
    info: PublicKeyInfo
    private_envelope: bytes
    keyring_id: str


@dataclass
class _Keys:
    by_fingerprint: dict[str, _Stored] = field(default_factory=dict)


class MemorySigningKeyRepository(MemoryRepository[_Keys]):
    """Signing keys in a dictionary, for tests; the same contract as the SQLite repository."""

    def __init__(self) -> None:
        super().__init__(_Keys())

    def current(self) -> PublicKeyInfo | None:
        live = [k for k in self.all() if k.valid_to is None]
        return live[-1] if live else None

    def all(self) -> list[PublicKeyInfo]:
        with self._tables.lock:
            return sorted((s.info for s in self._tables.current.by_fingerprint.values()),
                          key=lambda k: k.valid_from)

    def private_envelope(self, fingerprint: str) -> bytes | None:
        with self._tables.lock:
            found = self._tables.current.by_fingerprint.get(fingerprint)
            return None if found is None else found.private_envelope

    def add(self, key: PublicKeyInfo, private_envelope: bytes, keyring_id: str) -> bool:
        keys = self._tables.writable().by_fingerprint
        _to_us(key.valid_from)  # the same refusal of a time without a timezone
        if key.fingerprint in keys:
            return False
        keys[key.fingerprint] = _Stored(key, private_envelope, keyring_id)
        return True

    def retire(self, fingerprint: str, valid_to: datetime) -> None:
        keys = self._tables.writable().by_fingerprint
        _to_us(valid_to)
        if fingerprint in keys:
            stored = keys[fingerprint]
            keys[fingerprint] = replace(stored, info=replace(stored.info, valid_to=valid_to))
