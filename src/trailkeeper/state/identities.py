"""Identity repositories: SQLite (tables identity_account, identity_users,
identity_access_keys and identity_version of the state database) and memory.

User names match ignoring ASCII case in both: the SQLite column is `COLLATE NOCASE`, which
folds A-Z only, and the memory repository folds the same letters.
"""

from __future__ import annotations

import sqlite3
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from trailkeeper._internal.memory import MemoryRepository
from trailkeeper._internal.sqlite import Database, connect
from trailkeeper.errors import IdentityError
from trailkeeper.identity import DELETED, Account, StoredAccessKey, StoredUser
from trailkeeper.state.schema import STATE_SCHEMA

_ACCOUNT_QUERY = "SELECT account_id, region, created_us FROM identity_account"
_USER_COLUMNS = "user_id, name, role, created_us"
_KEY_COLUMNS = "access_key_id, user_id, user_name, status, secret_envelope, created_us, status_changed_us"
_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _to_us(when: datetime) -> int:
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _account(row: sqlite3.Row | None) -> Account | None:
    return Account(row[0], row[1], _from_us(row[2])) if row is not None else None


def _stored_user(user_id: str, name: str, role: str, created_us: int) -> StoredUser:
    return StoredUser(user_id, name, role, _from_us(created_us))


def _stored_key(access_key_id: str, user_id: str | None, user_name: str | None, status: str,
                envelope: bytes | None, created_us: int, changed_us: int) -> StoredAccessKey:
    return StoredAccessKey(access_key_id, user_id, user_name, status, envelope, _from_us(created_us),
                           _from_us(changed_us))


def read_account_readonly(path: Path) -> Account | None:
    """The account of a state database, through a read-only connection (offline tools)."""
    try:
        conn = connect(path, readonly=True)
        try:
            row = conn.execute(_ACCOUNT_QUERY).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise IdentityError("InvalidState", f"cannot read the account from {path}: {e}", status=500) from e
    return _account(row)


class SqliteIdentityRepository:
    """Identities in the state database; a transaction is `BEGIN IMMEDIATE`, so writers in
    other processes (`trailkeeper user` while the server runs) are serialised with ours."""

    def __init__(self, path: Path) -> None:
        STATE_SCHEMA.ensure(path)
        self._db = Database(path)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.tx() as conn:
            yield
            # Bumped with every identity change, so key caches (in any process) reload only
            # then, not whenever another table of the shared state database is written.
            conn.execute("UPDATE identity_version SET version = version + 1")

    def version(self) -> int:
        return int(self._db.query("SELECT version FROM identity_version")[0][0])

    def account(self) -> Account | None:
        rows = self._db.query(_ACCOUNT_QUERY)
        return _account(rows[0] if rows else None)

    def add_account(self, account: Account) -> bool:
        return self._insert("INSERT INTO identity_account VALUES (1, ?, ?, ?)",
                            (account.account_id, account.region, _to_us(account.created)))

    def user(self, name: str) -> StoredUser | None:
        rows = self._db.query(f"SELECT {_USER_COLUMNS} FROM identity_users WHERE name = ?", (name,))
        return _stored_user(*rows[0]) if rows else None

    def users(self) -> list[StoredUser]:
        return [_stored_user(*row) for row in self._db.query(f"SELECT {_USER_COLUMNS} FROM identity_users ORDER BY name")]

    def add_user(self, user: StoredUser) -> bool:
        return self._insert("INSERT INTO identity_users VALUES (?, ?, ?, ?)",
                            (user.user_id, user.name, user.role, _to_us(user.created)))

    def remove_user(self, user_id: str) -> None:
        self._db.write("DELETE FROM identity_users WHERE user_id = ?", (user_id,))

    def access_keys(self, user_id: str | None) -> list[StoredAccessKey]:
        rows = self._db.query(f"SELECT {_KEY_COLUMNS} FROM identity_access_keys WHERE user_id IS ?"
                              " AND status != 'Deleted' ORDER BY created_us, rowid", (user_id,))
        return [_stored_key(*row) for row in rows]

    def add_access_key(self, key: StoredAccessKey) -> bool:
        return self._insert("INSERT INTO identity_access_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (key.access_key_id, key.user_id, key.user_name, key.status, key.secret_envelope,
                             _to_us(key.created), _to_us(key.status_changed)))

    def set_key_status(self, access_key_id: str, user_id: str | None, status: str, when: datetime,
                       erase_secret: bool) -> bool:
        secret_sql = ", secret_envelope = NULL" if erase_secret else ""
        return self._db.write(
            f"UPDATE identity_access_keys SET status = ?, status_changed_us = ?{secret_sql}"
            " WHERE access_key_id = ? AND user_id IS ? AND status != 'Deleted'",
            (status, _to_us(when), access_key_id, user_id)) > 0

    def live_keys(self) -> list[tuple[StoredAccessKey, StoredUser | None]]:
        rows = self._db.query(
            "SELECT k.access_key_id, k.user_id, k.user_name, k.status, k.secret_envelope, k.created_us,"
            " k.status_changed_us, u.user_id, u.name, u.role, u.created_us FROM identity_access_keys k LEFT JOIN identity_users u ON k.user_id = u.user_id"
            " WHERE k.status != 'Deleted' ORDER BY k.created_us, k.rowid")
        return [(_stored_key(*row[:7]), _stored_user(*row[7:]) if row[7] is not None else None) for row in rows]

    def _insert(self, sql: str, args: tuple[object, ...]) -> bool:
        try:
            self._db.write(sql, args)
        except sqlite3.IntegrityError:
            return False
        return True


def _fold(name: str) -> str:
    return name.translate(_ASCII_FOLD)


@dataclass
class _Identities:
    account: Account | None = None
    users: dict[str, StoredUser] = field(default_factory=dict)  # user_id -> user
    keys: dict[str, StoredAccessKey] = field(default_factory=dict)  # access_key_id -> key


class MemoryIdentityRepository(MemoryRepository[_Identities]):
    """Identities in dictionaries, for tests; the same contract as the SQLite repository."""

    def __init__(self) -> None:
        super().__init__(_Identities())

    def version(self) -> int:
        return self._tables.version

    def account(self) -> Account | None:
        with self._tables.lock:
            return self._tables.current.account

    def add_account(self, account: Account) -> bool:
        tables = self._tables.writable()
        if tables.account is not None:
            return False
        tables.account = account
        return True

    def user(self, name: str) -> StoredUser | None:
        with self._tables.lock:
            found = [u for u in self._tables.current.users.values() if _fold(u.name) == _fold(name)]
            return found[0] if found else None

    def users(self) -> list[StoredUser]:
        with self._tables.lock:
            return sorted(self._tables.current.users.values(), key=lambda u: _fold(u.name))

    def add_user(self, user: StoredUser) -> bool:
        users = self._tables.writable().users
        if user.user_id in users or self.user(user.name) is not None:
            return False
        users[user.user_id] = user
        return True

    def remove_user(self, user_id: str) -> None:
        self._tables.writable().users.pop(user_id, None)

    def access_keys(self, user_id: str | None) -> list[StoredAccessKey]:
        with self._tables.lock:
            return sorted((k for k in self._tables.current.keys.values()
                           if k.user_id == user_id and k.status != DELETED), key=_age)

    def add_access_key(self, key: StoredAccessKey) -> bool:
        keys = self._tables.writable().keys
        if key.access_key_id in keys:
            return False
        keys[key.access_key_id] = key
        return True

    def set_key_status(self, access_key_id: str, user_id: str | None, status: str, when: datetime,
                       erase_secret: bool) -> bool:
        keys = self._tables.writable().keys
        key = keys.get(access_key_id)
        if key is None or key.user_id != user_id or key.status == DELETED:
            return False
        envelope = None if erase_secret else key.secret_envelope
        keys[access_key_id] = replace(key, status=status, status_changed=when, secret_envelope=envelope)
        return True

    def live_keys(self) -> list[tuple[StoredAccessKey, StoredUser | None]]:
        with self._tables.lock:
            users = self._tables.current.users
            live = sorted((k for k in self._tables.current.keys.values() if k.status != DELETED), key=_age)
            return [(k, users.get(k.user_id) if k.user_id is not None else None) for k in live]


def _age(key: StoredAccessKey) -> datetime:
    return key.created  # a stable sort: keys made at the same time stay in the order they were added
