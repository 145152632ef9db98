"""Accounts, users, access keys and roles, persisted in the state database.

One account per installation. Its root identity has every permission; users get exactly one
role from ROLES. Access-key secrets are stored only as keyring envelopes bound to the key id,
so a copied database file authenticates nobody. Deleted keys stay in the table (status
`Deleted`, secret erased) so audit records can still name their owner.

`resolve` runs on every request, so it answers from an in-memory map that is rebuilt after
any change made through this store and, via a version row bumped by every identity write,
after any change made by another process (e.g. `trailkeeper user` commands while the server runs).
"""

from __future__ import annotations

import base64
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trailkeeper.clock import Clock
from trailkeeper.errors import AuthError, IdentityError
from trailkeeper.state.schema import STATE_SCHEMA

if TYPE_CHECKING:
    from trailkeeper.keys.keyring import KeyProvider

# log-reader may fetch stored log and digest files but holds no key: encrypted logs stay
# closed to it (reading them needs the store and the key, as with S3 and KMS in AWS).
ROLES = ("administrator", "auditor", "writer", "forwarder", "log-reader")
PERMISSIONS: Mapping[str, frozenset[str]] = {
    "events:write": frozenset({"writer", "forwarder", "administrator"}),
    "events:write-on-behalf": frozenset({"forwarder"}),
    "events:read": frozenset({"auditor", "administrator"}),
    "logs:read": frozenset({"auditor", "administrator", "log-reader"}),
    "validate": frozenset({"auditor", "administrator", "log-reader"}),
    "trails:read": frozenset({"auditor", "administrator", "log-reader"}),
    "trails:write": frozenset({"administrator"}),
    "identity:read": frozenset({"auditor", "administrator"}),
    "identity:write": frozenset({"administrator"}),
    # KMS: administrators manage keys; auditors may read key metadata and decrypt (reading
    # encrypted logs needs both logs:read and kms:decrypt, as in AWS: the store and the key).
    "kms:read": frozenset({"auditor", "administrator"}),
    "kms:write": frozenset({"administrator"}),
    "kms:encrypt": frozenset({"administrator"}),
    "kms:decrypt": frozenset({"auditor", "administrator"}),
}
_ACCOUNT_QUERY = "SELECT account_id, region, created_us FROM identity_account"
MAX_KEYS_PER_USER = 2
ACTIVE, INACTIVE, DELETED = "Active", "Inactive", "Deleted"
SQLITE_TIMEOUT_SECONDS = 30.0
# AWS unique ids use this base32 alphabet after their 4-letter type prefix.
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ID_SUFFIX_LEN = 16
_USER_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+", re.ASCII)
_CONTEXT_PREFIX = b"access-key:"
MSG_INVALID_TOKEN = "The security token included in the request is invalid."



def allowed(role: str | None, permission: str) -> bool:
    """Whether `role` (None = the account root) holds `permission`.

    Unknown roles or permissions are programming errors, not denials, so they raise.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; known: {sorted(PERMISSIONS)}")
    if role is None:
        return True
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    return role in PERMISSIONS[permission]


@dataclass(frozen=True)
class Account:
    account_id: str
    region: str
    created: datetime


@dataclass(frozen=True)
class RootCredentials:
    account_id: str
    region: str
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class User:
    name: str
    user_id: str
    arn: str
    role: str
    created: datetime


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    user_name: str | None  # None for the root's keys
    status: str
    created: datetime


@dataclass(frozen=True)
class AccessKeyWithSecret(AccessKey):
    secret_access_key: str


@dataclass(frozen=True)
class Principal:
    """Who owns an access key. For the root, `user_id` is the account id (CloudTrail's
    principalId for Root), `user_name` and `role` are None."""

    account_id: str
    is_root: bool
    user_name: str | None
    user_id: str
    arn: str
    role: str | None
    access_key_id: str
    key_status: str


def user_arn(account_id: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:user/{name}"


def root_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:root"


def _unique_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_SUFFIX_LEN))


def _new_secret() -> str:
    # 30 random bytes are exactly 40 base64 characters, the length of an AWS secret key.
    return base64.b64encode(secrets.token_bytes(30)).decode("ascii")


def _new_account_id() -> str:
    return str(10**11 + secrets.randbelow(9 * 10**11))


def _to_us(when: datetime) -> int:
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _context(access_key_id: str) -> bytes:
    return _CONTEXT_PREFIX + access_key_id.encode()


def read_account(db_path: Path) -> Account:
    """The account, read through a read-only connection (offline tools; no keyring needed)."""
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_SECONDS)
        try:
            rows = conn.execute(_ACCOUNT_QUERY).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise IdentityError("InvalidState", f"cannot read the account from {db_path}: {e}", status=500) from e
    return _account_of(rows)


def _account_of(rows: list[tuple[Any, ...]]) -> Account:
    if not rows:
        raise _not_initialised()
    account_id, region, created_us = rows[0]
    return Account(account_id, region, _from_us(created_us))


def _not_initialised() -> IdentityError:
    error = IdentityError(
        "NoSuchEntity", "this trailkeeper installation has no account yet", status=404
    )
    error.hint = "run `trailkeeper init` first"
    return error


def _no_such_user(name: str) -> IdentityError:
    return IdentityError("NoSuchEntity", f"The user with name {name} cannot be found.", 404)


def _no_such_key(key_id: str) -> IdentityError:
    return IdentityError("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.", 404)


class IdentityStore:
    def __init__(self, db_path: Path, keyring: KeyProvider, clock: Clock) -> None:
        self._keyring = keyring
        self._clock = clock
        self._lock = threading.Lock()
        # Autocommit mode: every write opens its own BEGIN IMMEDIATE so that checks such as
        # the per-user key quota hold against other processes sharing the file.
        STATE_SCHEMA.ensure(db_path)
        self._conn = sqlite3.connect(
            db_path,
            timeout=SQLITE_TIMEOUT_SECONDS,
            check_same_thread=False,
            isolation_level=None,
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._cache: dict[str, tuple[Principal, str]] | None = None
        self._cache_version = -1

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            # Bumped with every identity change, so key caches (in any process) reload only
            # then, not whenever another table of the shared state database is written.
            self._conn.execute("UPDATE identity_version SET version = version + 1")
            self._conn.execute("COMMIT")
            self._cache = None

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    # --- account ---------------------------------------------------------------------------

    def init_account(self, region: str) -> RootCredentials:
        """Create the account and the root's first access key; fails if already done."""
        if not _REGION_RE.fullmatch(region):
            raise IdentityError(
                "ValidationError", f"'{region}' is not a region name like us-east-1"
            )
        with self._write() as conn:
            if conn.execute("SELECT account_id FROM identity_account").fetchone():
                raise IdentityError(
                    "EntityAlreadyExists",
                    "this installation already has an account; `trailkeeper init` runs once",
                    409,
                )
            account_id = _new_account_id()
            conn.execute(
                "INSERT INTO identity_account VALUES (1, ?, ?, ?)",
                (account_id, region, _to_us(self._clock.now())),
            )
            key = self._insert_key(conn, None, None)
        return RootCredentials(account_id, region, key.access_key_id, key.secret_access_key)

    def account(self) -> Account:
        return _account_of(self._query(_ACCOUNT_QUERY))

    # --- users -----------------------------------------------------------------------------

    def create_user(self, name: str, role: str) -> User:
        _check_user_name(name)
        if name.lower() == ROOT_NAME:
            raise IdentityError("ValidationError", f"The user name '{name}' is reserved: audit records name the "
                                "account root 'root', and no user may be mistaken for it. Choose another name.")
        if role not in ROLES:
            raise IdentityError(
                "ValidationError", f"Role '{role}' is not one of: {', '.join(ROLES)}."
            )
        account_id = self.account().account_id
        created = self._clock.now()
        user = User(name, _unique_id("AIDA"), user_arn(account_id, name), role, created)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM identity_users WHERE name = ?", (name,)).fetchone():
                raise IdentityError(
                    "EntityAlreadyExists", f"User with name {name} already exists.", 409
                )
            conn.execute(
                "INSERT INTO identity_users VALUES (?, ?, ?, ?)",
                (user.user_id, name, role, _to_us(created)),
            )
        return user

    def get_user(self, name: str) -> User:
        account_id = self.account().account_id
        rows = self._query(
            "SELECT name, user_id, role, created_us FROM identity_users WHERE name = ?", (name,)
        )
        if not rows:
            raise _no_such_user(name)
        return _user(account_id, rows[0])

    def list_users(self) -> list[User]:
        account_id = self.account().account_id
        rows = self._query(
            "SELECT name, user_id, role, created_us FROM identity_users ORDER BY name"
        )
        return [_user(account_id, row) for row in rows]

    def delete_user(self, name: str) -> None:
        """Like IAM, refuse while the user still has (active or inactive) access keys."""
        with self._write() as conn:
            row = conn.execute("SELECT user_id FROM identity_users WHERE name = ?", (name,))
            found = row.fetchone()
            if not found:
                raise _no_such_user(name)
            if _live_key_count(conn, found[0]):
                raise IdentityError(
                    "DeleteConflict", "Cannot delete entity, must delete access keys first.", 409
                )
            conn.execute("DELETE FROM identity_users WHERE user_id = ?", (found[0],))

    # --- access keys -----------------------------------------------------------------------

    def create_access_key(self, user_name: str | None) -> AccessKeyWithSecret:
        """A new Active key for `user_name`, or for the root when None."""
        self.account()
        with self._write() as conn:
            user_id, name = _owner(conn, user_name)
            if _live_key_count(conn, user_id) >= MAX_KEYS_PER_USER:
                raise IdentityError(
                    "LimitExceeded",
                    f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}",
                    409,
                )
            return self._insert_key(conn, user_id, name)

    def list_access_keys(self, user_name: str | None) -> list[AccessKey]:
        """Keys that are not deleted, oldest first, without their secrets."""
        with self._lock:
            user_id, _ = _owner(self._conn, user_name)
            rows = self._conn.execute(
                "SELECT access_key_id, user_name, status, created_us FROM identity_access_keys"
                " WHERE user_id IS ? AND status != 'Deleted' ORDER BY created_us, access_key_id",
                (user_id,),
            ).fetchall()
        return [AccessKey(k, name, status, _from_us(us)) for k, name, status, us in rows]

    def update_access_key(self, access_key_id: str, status: str, owner: str | None) -> None:
        """Set the status of a key of `owner` (a user name, or None for the root)."""
        if status not in (ACTIVE, INACTIVE):
            raise IdentityError(
                "ValidationError",
                f"Value '{status}' at 'status' failed to satisfy constraint: "
                "Member must satisfy enum value set: [Active, Inactive]",
            )
        self._set_status(access_key_id, status, owner, keep_secret=True)

    def delete_access_key(self, access_key_id: str, owner: str | None) -> None:
        """Mark a key of `owner` Deleted and erase its secret; the row stays for audit."""
        self._set_status(access_key_id, DELETED, owner, keep_secret=False)

    def _set_status(self, access_key_id: str, status: str, owner: str | None, keep_secret: bool) -> None:
        # The owner is always checked: a key id alone never reaches another identity's key
        # (AWS answers NoSuchEntity when the key is not the named, or the caller's own, user's).
        secret_sql = "" if keep_secret else ", secret_envelope = NULL"
        with self._write() as conn:
            user_id, _ = _owner(conn, owner)
            if user_id is None and status != ACTIVE:
                _keep_a_root_key(conn, access_key_id)
            cursor = conn.execute(
                f"UPDATE identity_access_keys SET status = ?, status_changed_us = ?{secret_sql}"
                " WHERE access_key_id = ? AND user_id IS ? AND status != 'Deleted'",
                (status, _to_us(self._clock.now()), access_key_id, user_id),
            )
            if cursor.rowcount == 0:
                raise _no_such_key(access_key_id)

    def recover_root(self) -> tuple[AccessKeyWithSecret, list[str]]:
        """Break glass (local access only): revoke every root key, issue a fresh one. Returns the
        new key with its secret and the ids of the keys revoked."""
        self.account()
        with self._write() as conn:
            revoked = [str(r[0]) for r in conn.execute(
                "SELECT access_key_id FROM identity_access_keys WHERE user_id IS NULL AND status != 'Deleted' "
                "ORDER BY created_us").fetchall()]
            conn.execute("UPDATE identity_access_keys SET status = 'Deleted', secret_envelope = NULL, "
                         "status_changed_us = ? WHERE user_id IS NULL AND status != 'Deleted'",
                         (_to_us(self._clock.now()),))
            return self._insert_key(conn, None, None), revoked

    def _insert_key(
        self, conn: sqlite3.Connection, user_id: str | None, user_name: str | None
    ) -> AccessKeyWithSecret:
        key_id, secret = _unique_id("AKIA"), _new_secret()
        created = self._clock.now()
        envelope = self._keyring.encrypt(secret.encode(), _context(key_id))
        conn.execute(
            "INSERT INTO identity_access_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key_id, user_id, user_name, ACTIVE, envelope, _to_us(created), _to_us(created)),
        )
        return AccessKeyWithSecret(key_id, user_name, ACTIVE, created, secret)

    # --- authentication --------------------------------------------------------------------

    def resolve(self, access_key_id: str) -> tuple[Principal, str] | None:
        """The owner and secret of a non-deleted key (Active or Inactive), else None."""
        with self._lock:
            version = int(self._conn.execute("SELECT version FROM identity_version").fetchone()[0])
            if self._cache is None or version != self._cache_version:
                self._cache = self._load_keys()
                self._cache_version = version
            return self._cache.get(access_key_id)

    def secret_for(self, access_key_id: str) -> str | None:
        """A sigv4 `lookup_secret`: None for unknown or deleted keys; an inactive key raises
        the same InvalidClientTokenId AWS answers for it, so callers cannot tell the two apart."""
        found = self.active_key(access_key_id)
        return found[1] if found is not None else None

    def active_key(self, access_key_id: str) -> tuple[Principal, str] | None:
        """Owner and secret of an Active key; None if unknown or deleted; AuthError if inactive."""
        found = self.resolve(access_key_id)
        if found is not None and found[0].key_status != ACTIVE:
            raise AuthError("InvalidClientTokenId", MSG_INVALID_TOKEN, 403)
        return found

    def _load_keys(self) -> dict[str, tuple[Principal, str]]:
        account = self._conn.execute("SELECT account_id FROM identity_account").fetchone()
        if account is None:
            return {}
        account_id = str(account[0])
        rows = self._conn.execute(
            "SELECT k.access_key_id, k.status, k.secret_envelope, k.user_id, u.name, u.role"
            " FROM identity_access_keys k LEFT JOIN identity_users u ON k.user_id = u.user_id"
            " WHERE k.status != 'Deleted'"
        ).fetchall()
        loaded: dict[str, tuple[Principal, str]] = {}
        for key_id, status, envelope, user_id, name, role in rows:
            principal = _principal(account_id, key_id, status, user_id, name, role)
            if principal is not None:
                secret = self._keyring.decrypt(envelope, _context(key_id)).decode()
                loaded[key_id] = (principal, secret)
        return loaded


def _principal(
    account_id: str,
    key_id: str,
    status: str,
    user_id: str | None,
    name: str | None,
    role: str | None,
) -> Principal | None:
    """None for a key whose user row is gone: such a key must never pass as the root's."""
    if user_id is None:
        arn = root_arn(account_id)
        return Principal(account_id, True, None, account_id, arn, None, key_id, status)
    if name is None:
        return None
    arn = user_arn(account_id, name)
    return Principal(account_id, False, name, user_id, arn, role, key_id, status)


ROOT_NAME = "root"  # how CloudTrail names the account root (LookupEvents Username): no user may take it


def _check_user_name(name: str) -> None:
    if not _USER_NAME_RE.fullmatch(name):
        shown = "".join(c if c.isprintable() else "?" for c in name[:64])  # never echo control bytes
        raise IdentityError(
            "ValidationError",
            f"1 validation error detected: Value '{shown}' at 'userName' failed to satisfy "
            r"constraint: Member must be 1-64 characters matching [\w+=,.@-]+",
        )


def _user(account_id: str, row: tuple[Any, ...]) -> User:
    name, user_id, role, created_us = row
    return User(name, user_id, user_arn(account_id, name), role, _from_us(created_us))


def _owner(conn: sqlite3.Connection, user_name: str | None) -> tuple[str | None, str | None]:
    """(user_id, stored name) of a user, or (None, None) for the root."""
    if user_name is None:
        return None, None
    row = conn.execute(
        "SELECT user_id, name FROM identity_users WHERE name = ?", (user_name,)
    ).fetchone()
    if row is None:
        raise _no_such_user(user_name)
    return str(row[0]), str(row[1])


def _keep_a_root_key(conn: sqlite3.Connection, access_key_id: str) -> None:
    """Refuse to delete or deactivate the root's last active key: nothing could restore it
    but `trailkeeper recover-root` on the server's own machine."""
    active = [str(r[0]) for r in conn.execute(
        "SELECT access_key_id FROM identity_access_keys WHERE user_id IS NULL AND status = 'Active'").fetchall()]
    if active == [access_key_id]:
        raise IdentityError("DeleteConflict", "Cannot delete or deactivate the root's last active access key: "
                            "create another root key first (the root alone may manage its keys).", 409)


def _live_key_count(conn: sqlite3.Connection, user_id: str | None) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM identity_access_keys WHERE user_id IS ? AND status != 'Deleted'",
        (user_id,),
    ).fetchone()
    return int(row[0])
