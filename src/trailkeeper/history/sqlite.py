"""SQLite event history, built for ingest speed.

Layout (one database file, WAL):

* `events(seq INTEGER PRIMARY KEY, t, body)`: the record bytes by spool seq; `t` is
  eventTime in epoch seconds.
* `attrs(k, t, seq)`, WITHOUT ROWID, primary key (k, t, seq): ONE compact index for all
  eight lookup attributes. `k` is a 64-bit hash of (attribute, value); the reserved key
  `ALL_KEY` has a row for every event and serves time-range-only lookups and purging. Reading
  (k, t, seq) backwards is exactly "newest first" for a key and time range. A hash can
  collide, so every candidate is checked against its record before it is returned.
* `ids(k, seq)`, WITHOUT ROWID: EventId lookups. `k` is the first 64 bits of the event ID.
  trailkeeper's IDs are time-ordered (UUID version 7 layout), so new rows land at the end of
  the index instead of on a random page, and a lookup is one index probe whatever the time
  range. IDs of any other shape still work (random ones just insert more slowly).
* `meta`: format version, last indexed seq and event count (written in the same transaction
  as the rows) and the secret that authenticates paging tokens.

Six ordinary secondary indexes manage far fewer rows per second than this single table:
rows are sorted by key before a batch is inserted, so most land next to each other.
Durability comes from the spool (replayed from last_indexed_seq after a crash), so commits
use synchronous=NORMAL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from trailkeeper._internal.sqlite import connect
from trailkeeper.errors import HistoryError
from trailkeeper.history.attributes import lookup_has, lookup_pairs
from trailkeeper.history.base import (
    INVALID_NEXT_TOKEN,
    MAX_ATTRIBUTE_VALUE_CHARS,
    LookupPage,
    LookupQuery,
    LookupRequestError,
    check_query,
)
from trailkeeper.records import parse_event_time
from trailkeeper.state.schema import HISTORY_SCHEMA

FORMAT_VERSION = "3"
ALL_KEY = 0
PURGE_BATCH = 5000
# Spool seqs are stored as SQLite integers; leave headroom below 2**63.
MAX_SEQ = (1 << 62) - 1
KEY_CACHE_ENTRIES = 200_000
# Checkpoint rarely: a page rewritten by many commits is then copied to the database once.
WAL_CHECKPOINT_PAGES = 50_000
CACHE_KIB = 512 * 1024
MMAP_BYTES = 8 << 30
_ISO_SECONDS_CHARS = len("2025-01-01T00:00:00Z")
_TOKEN = struct.Struct(">B16sqq")
_TOKEN_VERSION = 1
_MAC_BYTES = 16

_EVENT_ID_SQL = """
SELECT e.t, e.seq, e.body FROM ids i JOIN events e ON e.seq = i.seq
WHERE i.k = ? AND e.t >= ? AND (e.t, e.seq) <= (?, ?)
ORDER BY e.t DESC, e.seq DESC
"""
_LOOKUP_SQL = """
SELECT a.t, a.seq, e.body FROM attrs a JOIN events e ON e.seq = a.seq
WHERE a.k = ? AND a.t >= ? AND (a.t, a.seq) <= (?, ?)
ORDER BY a.t DESC, a.seq DESC
"""
_OLDEST_SQL = """
SELECT a.t, a.seq, e.body FROM attrs a JOIN events e ON e.seq = a.seq
WHERE a.k = ? AND a.t < ? ORDER BY a.t, a.seq LIMIT ?
"""


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def attr_key(attribute: str, value: str) -> int:
    """The index key of one (attribute, value); never ALL_KEY."""
    key = _hash64(f"{attribute}\x00{value}".encode())
    return key if key != ALL_KEY else ALL_KEY + 1


def event_id_key(event_id: str) -> int:
    """The first 64 bits of a UUID-shaped event ID (signed), else a hash of the ID."""
    head = event_id[:8] + event_id[9:13] + event_id[14:18]
    if len(event_id) >= 18 and event_id[8] == "-" and event_id[13] == "-":
        try:
            return int.from_bytes(bytes.fromhex(head), "big", signed=True)
        except ValueError:
            pass
    return _hash64(f"EventId\x00{event_id}".encode())


class _KeyCache:
    """attr_key memoised for repeating values (names, users, sources...), bounded in size;
    one dict per attribute so the hot loop looks a value up without building a tuple."""

    def __init__(self, limit: int = KEY_CACHE_ENTRIES) -> None:
        self._limit = limit
        self._size = 0
        self.by_attribute: dict[str, dict[str, int]] = {}

    def key(self, attribute: str, value: str) -> int:
        table = self.by_attribute.get(attribute)
        if table is None:
            table = self.by_attribute[attribute] = {}
        found = table.get(value)
        if found is None:
            found = attr_key(attribute, value)
            if self._size >= self._limit:
                for other in self.by_attribute.values():
                    other.clear()
                self._size = 0
            table[value] = found
            self._size += 1
        return found


class SqliteHistory:
    """HistoryStore on one SQLite file; index() from one thread, lookup() from any."""

    def __init__(self, path: Path, cache_kib: int = CACHE_KIB, mmap_bytes: int = MMAP_BYTES) -> None:
        """The defaults favour a dedicated indexer; a server sharing the machine passes smaller
        cache and mmap sizes to keep its resident memory flat."""
        self._cache_kib = cache_kib
        self._mmap_bytes = mmap_bytes
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._keys = _KeyCache()
        self._conn = self._connect()
        try:
            self._setup()
        except sqlite3.Error as e:
            self._conn.close()
            raise HistoryError(f"cannot set up the event history {path}: {e}") from e
        except BaseException:
            self._conn.close()
            raise
        self._secret = bytes(self._meta("token_secret"))
        self._last = int(self._meta("last_seq"))
        self._count = int(self._meta("count"))

    def _setup(self) -> None:
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        HISTORY_SCHEMA.ensure(Path(self._path))
        with self._tx():
            self._init_meta()

    # ---- connections ----
    def _connect(self) -> sqlite3.Connection:
        try:
            # WAL, synchronous=NORMAL: durability comes from the spool (see above).
            conn = connect(self._path, durable=False, check_same_thread=False)
            conn.execute(f"PRAGMA cache_size=-{self._cache_kib}")
            conn.execute(f"PRAGMA mmap_size={self._mmap_bytes}")
            conn.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.Error as e:
            raise HistoryError(f"cannot open the event history {self._path}: {e}") from e
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise HistoryError("the event history is closed")
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)

    def _init_meta(self) -> None:
        defaults = {
            "format": FORMAT_VERSION,
            "token_secret": os.urandom(32),
            "last_seq": -1,
            "count": 0,
        }
        for key, value in defaults.items():
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        found = str(self._meta("format"))
        if found != FORMAT_VERSION:
            raise HistoryError(
                f"event history {self._path} has format {found!r}; this version reads "
                f"{FORMAT_VERSION!r}: move it aside; a new history is rebuilt from what the spool "
                "still holds"
            )

    def _meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0]

    # ---- writing ----
    def index(self, entries: Sequence[tuple[int, bytes]], on_poison: OnPoison | None = None) -> int:
        """Index a batch; return how many records were set aside as unreadable. A record that is
        not a JSON object with a readable eventTime goes to `on_poison(seq, body, reason)`, which
        must keep it durably before this commits past it; without `on_poison` it raises."""
        with self._lock:
            fresh = sorted((e for e in entries if e[0] > self._last), key=lambda e: e[0])
            if not fresh:
                return 0
            if fresh[0][0] < 0 or fresh[-1][0] > MAX_SEQ:
                raise HistoryError(
                    f"spool seqs must be 0 to {MAX_SEQ}, got {fresh[0][0]}..{fresh[-1][0]}"
                )
            poisoned: list[int] = []

            def set_aside(seq: int, body: bytes, reason: str) -> None:
                if on_poison is None:
                    raise HistoryError(reason)
                on_poison(seq, body, reason)
                poisoned.append(seq)

            events, keys, ids = _rows_for(fresh, self._keys, set_aside)
            keys.sort()
            ids.sort()
            last = fresh[-1][0]
            with self._tx() as conn:
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?)", events)
                added = conn.total_changes - before
                conn.executemany("INSERT OR IGNORE INTO attrs VALUES (?, ?, ?)", keys)
                conn.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)", ids)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last,))
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'count'", (self._count + added,)
                )
            self._last = last
            self._count += added
            return len(poisoned)

    def purge(self, older_than: datetime) -> int:
        cutoff = math.ceil(older_than.timestamp())
        removed = 0
        while True:
            with self._lock:
                done = self._purge_batch(cutoff)
            if not done:
                return removed
            removed += done

    def _purge_batch(self, cutoff: int) -> int:
        with self._tx() as conn:
            rows = conn.execute(_OLDEST_SQL, (ALL_KEY, cutoff, PURGE_BATCH)).fetchall()
            if not rows:
                return 0
            _, keys, ids = _rows_for([(seq, body) for _, seq, body in rows], self._keys)
            keys.sort()
            conn.executemany("DELETE FROM attrs WHERE k = ? AND t = ? AND seq = ?", keys)
            conn.executemany("DELETE FROM ids WHERE k = ? AND seq = ?", ids)
            conn.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for _, seq, _ in rows])
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'count'", (self._count - len(rows),)
            )
        self._count -= len(rows)
        return len(rows)

    # ---- reading ----
    def last_indexed_seq(self) -> int:
        return self._last

    def count(self) -> int:
        return self._count

    def lookup(self, query: LookupQuery) -> LookupPage:
        check_query(query)
        try:
            return self._lookup(query)
        except sqlite3.Error as e:
            raise HistoryError(f"event history lookup failed: {e}") from e

    def _lookup(self, query: LookupQuery) -> LookupPage:
        digest = _query_digest(query)
        low = math.ceil(query.start.timestamp())
        high_t, high_seq = math.floor(query.end.timestamp()), 2**63 - 1
        if query.next_token is not None:
            high_t, high_seq = self._open_token(query.next_token, digest)
        if query.attribute_key == "EventId" and query.attribute_value is not None:
            rows = self._event_id_rows(query.attribute_value, low, high_t, high_seq)
            found = _take(rows, query, query.max_results + 1)
        else:
            key = ALL_KEY
            if query.attribute_key is not None and query.attribute_value is not None:
                key = attr_key(query.attribute_key, query.attribute_value)
            cursor = self._reader().execute(_LOOKUP_SQL, (key, low, high_t, high_seq))
            try:
                found = _take(cursor, query, query.max_results + 1)
            finally:
                # An unfinished statement pins its WAL snapshot and stalls checkpoints.
                cursor.close()
        token = None
        if len(found) > query.max_results:
            t, seq, _, _ = found[query.max_results - 1]
            token = self._seal_token(digest, t, seq - 1)
            del found[query.max_results :]
        return LookupPage(
            [row[2] for row in found], token, [row[3] for row in found], [row[0] for row in found]
        )

    def _event_id_rows(
        self, event_id: str, low: int, high_t: int, high_seq: int
    ) -> list[tuple[int, int, bytes]]:
        """Candidates under the ID's key, newest first (one index probe)."""
        rows: list[tuple[int, int, bytes]] = self._reader().execute(
            _EVENT_ID_SQL, (event_id_key(event_id), low, high_t, high_seq)
        ).fetchall()
        return rows

    def _seal_token(self, digest: bytes, t: int, seq: int) -> str:
        payload = _TOKEN.pack(_TOKEN_VERSION, digest, t, seq)
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def _open_token(self, token: str, digest: bytes) -> tuple[int, int]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError as e:
            raise _bad_token("it is not base64url") from e
        payload, mac = raw[: _TOKEN.size], raw[_TOKEN.size :]
        expected = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(raw) != _TOKEN.size + _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise _bad_token("it was not issued by this server or was altered")
        version, bound, t, seq = _TOKEN.unpack(payload)
        if version != _TOKEN_VERSION or not hmac.compare_digest(bound, digest):
            raise _bad_token("it belongs to a request with other lookup attributes or times")
        return t, seq

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._conn.close()


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error; sqlite errors become HistoryError."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise HistoryError(f"event history write failed: {e}") from e
        return self._conn

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is None:
            self._conn.execute("COMMIT")
            return
        self._conn.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise HistoryError(f"event history write failed: {error}") from error


OnPoison = Callable[[int, bytes, str], None]


def _strict(seq: int, body: bytes, reason: str) -> None:
    raise HistoryError(reason)


def _rows_for(
    entries: Sequence[tuple[int, bytes]], cache: _KeyCache, on_poison: OnPoison = _strict
) -> tuple[list[tuple[int, int, bytes]], list[tuple[int, int, int]], list[tuple[int, int]]]:
    """The events, attrs and ids rows of (seq, body) entries; an entry that cannot be indexed
    goes to `on_poison` instead."""
    events: list[tuple[int, int, bytes]] = []
    keys: list[tuple[int, int, int]] = []
    ids: list[tuple[int, int]] = []
    key_of = cache.key
    tables = cache.by_attribute
    epochs: dict[object, int] = {}  # events of a batch share few distinct eventTime strings
    for seq, body in entries:
        try:
            record = _decode(seq, body)
            stamp = record.get("eventTime")
            t = epochs.get(stamp) if isinstance(stamp, str) else None
            if t is None:
                t = _event_epoch(seq, record)
                if isinstance(stamp, str):
                    epochs[stamp] = t
        except HistoryError as e:
            on_poison(seq, body, str(e))
            continue
        events.append((seq, t, body))
        keys.append((ALL_KEY, t, seq))
        for attribute, value in lookup_pairs(record):
            if attribute == "EventId":
                ids.append((event_id_key(value), seq))
                continue
            table = tables.get(attribute)
            k = table.get(value) if table is not None else None
            if k is None:
                if len(value) > MAX_ATTRIBUTE_VALUE_CHARS:
                    continue
                k = key_of(attribute, value)
            keys.append((k, t, seq))
    return events, keys, ids


def _decode(seq: int, body: bytes) -> dict[str, Any]:
    try:
        record = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise HistoryError(f"spooled record {seq} is not JSON ({e}); the spool is damaged") from e
    if not isinstance(record, dict):
        raise HistoryError(f"spooled record {seq} is not a JSON object; the spool is damaged")
    return record


def _event_epoch(seq: int, record: dict[str, Any]) -> int:
    text = record.get("eventTime")
    try:
        if isinstance(text, str) and len(text) == _ISO_SECONDS_CHARS:
            # Fast path for the stored form YYYY-MM-DDTHH:MM:SSZ (C parser, exact epoch).
            when = datetime.fromisoformat(text)
            if when.tzinfo is not None:
                return int(when.timestamp())
        return int(parse_event_time(text).timestamp())
    except ValueError as e:
        raise HistoryError(f"spooled record {seq} has a bad eventTime: {e}") from e


def _take(
    rows: Iterable[tuple[int, int, bytes]], query: LookupQuery, limit: int
) -> list[tuple[int, int, bytes, dict[str, Any]]]:
    """Up to `limit` rows whose record really holds the attribute value (rules out hash
    collisions), each with its decoded record."""
    taken: list[tuple[int, int, bytes, dict[str, Any]]] = []
    attribute, value = query.attribute_key, query.attribute_value
    for t, seq, body in rows:
        record = _decode(seq, body)
        if attribute is None or (value is not None and lookup_has(record, attribute, value)):
            taken.append((t, seq, body, record))
            if len(taken) == limit:
                break
    return taken


def _query_digest(query: LookupQuery) -> bytes:
    bound = [
        query.attribute_key,
        query.attribute_value,
        query.start.timestamp(),
        query.end.timestamp(),
    ]
    return hashlib.sha256(orjson.dumps(bound)).digest()[:16]


def _bad_token(why: str) -> LookupRequestError:
    return LookupRequestError(
        INVALID_NEXT_TOKEN,
        f"NextToken is invalid: {why}; repeat the request without NextToken, or with the "
        "exact parameters of the request that returned it",
    )
