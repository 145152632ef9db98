"""Accounts, users, access keys and roles, kept in an IdentityRepository (state.identities:
SQLite in the state database, or memory).

One account per installation. Its root identity has every permission; users get exactly one
role from ROLES. Access-key secrets are stored only as keyring envelopes bound to the key id,
so a copied database file authenticates nobody. Deleted keys stay in the table (status
`Deleted`, secret erased) so audit records can still name their owner.

`resolve` runs on every request, so it answers from an in-memory map that is rebuilt after
any change made through this store and, via a version row bumped by every identity write,
after any change made by another process (e.g. `trailkeeper user` commands while the server
runs): the repository's version changes with every identity transaction.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from trailkeeper.clock import Clock
from trailkeeper.errors import AuthError, IdentityError

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
    # CloudWatch Logs: applications and forwarders send their own logs (PCI DSS 10.2 wants every
    # system component's); reading log events is reading audit logs (auditors, log-readers).
    "loggroups:read": frozenset({"auditor", "administrator", "log-reader"}),
    "loggroups:write": frozenset({"administrator"}),
    "loggroups:put-events": frozenset({"writer", "forwarder", "administrator"}),
    # CloudWatch metrics and alarms.
    "metrics:read": frozenset({"auditor", "administrator"}),
    "metrics:put-data": frozenset({"writer", "forwarder", "administrator"}),
    "alarms:write": frozenset({"administrator"}),
    # SNS topics: auditors review who is told of what; only administrators change it, and only
    # they publish: a message signed with trailkeeper's key is taken as trailkeeper's own word
    # (an ALARM from a writer would look exactly like CloudWatch's).
    "topics:read": frozenset({"auditor", "administrator"}),
    "topics:write": frozenset({"administrator"}),
    "topics:publish": frozenset({"administrator"}),
    # EventBridge rules and trailkeeper's alerts: auditors review what is watched and the alerts
    # raised, and acknowledge or close alerts (the review PCI DSS 10.4 asks of them); only
    # administrators change what is watched or silence it (rules, suppressions, alert settings).
    "rules:read": frozenset({"auditor", "administrator"}),
    "rules:write": frozenset({"administrator"}),
    "alerts:read": frozenset({"auditor", "administrator"}),
    "alerts:triage": frozenset({"auditor", "administrator"}),
    "alerts:write": frozenset({"administrator"}),
}
MAX_KEYS_PER_USER = 2
ACTIVE, INACTIVE, DELETED = "Active", "Inactive", "Deleted"
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


def _context(access_key_id: str) -> bytes:
    return _CONTEXT_PREFIX + access_key_id.encode()


def read_account(db_path: Path) -> Account:
    """The account, read through a read-only connection (offline tools; no keyring needed)."""
    # Imported here: the SQLite repository imports this module's types.
    from trailkeeper.state.identities import read_account_readonly

    account = read_account_readonly(db_path)
    if account is None:
        raise _not_initialised()
    return account


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


@dataclass(frozen=True)
class StoredUser:
    """A user as an IdentityRepository keeps it."""

    user_id: str
    name: str
    role: str
    created: datetime


@dataclass(frozen=True)
class StoredAccessKey:
    """An access key as an IdentityRepository keeps it: its secret only as a keyring envelope
    (None once the key is deleted)."""

    access_key_id: str
    user_id: str | None  # None: a key of the account root
    user_name: str | None
    status: str
    secret_envelope: bytes | None
    created: datetime
    status_changed: datetime


class IdentityRepository(Protocol):
    """Where the account, its users and their access keys are kept. User names match ignoring
    ASCII letter case, as IAM's do. Writes belong inside `transaction()`; a missing or taken row
    is None or False, IdentityStore turns that into IAM's errors.
    Implementations: state.identities.SqliteIdentityRepository, MemoryIdentityRepository."""

    def transaction(self) -> AbstractContextManager[None]:
        """All or nothing, serialised against every other writer (other processes too); a
        committed transaction bumps `version()`."""
        ...

    def version(self) -> int:
        """Changes whenever an identity transaction commits, in any process sharing the store."""
        ...

    def account(self) -> Account | None: ...

    def add_account(self, account: Account) -> bool:
        """False (nothing written) when there is an account already."""
        ...

    def user(self, name: str) -> StoredUser | None: ...

    def users(self) -> list[StoredUser]:
        """Every user, by name ignoring ASCII case."""
        ...

    def add_user(self, user: StoredUser) -> bool:
        """False (nothing written) when the id or the name (ignoring ASCII case) is taken."""
        ...

    def remove_user(self, user_id: str) -> None: ...

    def access_keys(self, user_id: str | None) -> list[StoredAccessKey]:
        """The keys of a user (None: the root) that are not Deleted, oldest first; keys made at
        the same time in the order they were added."""
        ...

    def add_access_key(self, key: StoredAccessKey) -> bool:
        """False (nothing written) when the key id is taken."""
        ...

    def set_key_status(self, access_key_id: str, user_id: str | None, status: str, when: datetime,
                       erase_secret: bool) -> bool:
        """Set the status of a key of that owner that is not Deleted (erasing its secret when
        asked); False when there is no such key."""
        ...

    def live_keys(self) -> list[tuple[StoredAccessKey, StoredUser | None]]:
        """Every key that is not Deleted with its user (None for the root's keys, and for a key
        whose user row is gone)."""
        ...

    def close(self) -> None: ...


class IdentityStore:
    def __init__(self, repository: IdentityRepository, keyring: KeyProvider, clock: Clock) -> None:
        self._repo = repository
        self._keyring = keyring
        self._clock = clock
        self._lock = threading.Lock()  # guards the key cache
        self._cache: dict[str, tuple[Principal, str]] | None = None
        self._cache_version = -1

    def close(self) -> None:
        self._repo.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        # One repository transaction, so that checks such as the per-user key quota hold
        # against other processes sharing the store.
        with self._repo.transaction():
            yield
        self._cache = None

    # --- account ---------------------------------------------------------------------------

    def init_account(self, region: str) -> RootCredentials:
        """Create the account and the root's first access key; fails if already done."""
        if not _REGION_RE.fullmatch(region):
            raise IdentityError(
                "ValidationError", f"'{region}' is not a region name like us-east-1"
            )
        with self._write():
            account_id = _new_account_id()
            if not self._repo.add_account(Account(account_id, region, self._clock.now())):
                raise IdentityError(
                    "EntityAlreadyExists",
                    "this installation already has an account; `trailkeeper init` runs once",
                    409,
                )
            key = self._insert_key(None, None)
        return RootCredentials(account_id, region, key.access_key_id, key.secret_access_key)

    def account(self) -> Account:
        account = self._repo.account()
        if account is None:
            raise _not_initialised()
        return account

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
        with self._write():
            if not self._repo.add_user(StoredUser(user.user_id, name, role, created)):
                raise IdentityError(
                    "EntityAlreadyExists", f"User with name {name} already exists.", 409
                )
        return user

    def get_user(self, name: str) -> User:
        account_id = self.account().account_id
        found = self._repo.user(name)
        if found is None:
            raise _no_such_user(name)
        return _user(account_id, found)

    def list_users(self) -> list[User]:
        account_id = self.account().account_id
        return [_user(account_id, found) for found in self._repo.users()]

    def delete_user(self, name: str) -> None:
        """Like IAM, refuse while the user still has (active or inactive) access keys."""
        with self._write():
            found = self._repo.user(name)
            if found is None:
                raise _no_such_user(name)
            if self._repo.access_keys(found.user_id):
                raise IdentityError(
                    "DeleteConflict", "Cannot delete entity, must delete access keys first.", 409
                )
            self._repo.remove_user(found.user_id)

    # --- access keys -----------------------------------------------------------------------

    def create_access_key(self, user_name: str | None) -> AccessKeyWithSecret:
        """A new Active key for `user_name`, or for the root when None."""
        self.account()
        with self._write():
            user_id, name = self._owner(user_name)
            if len(self._repo.access_keys(user_id)) >= MAX_KEYS_PER_USER:
                raise IdentityError(
                    "LimitExceeded",
                    f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}",
                    409,
                )
            return self._insert_key(user_id, name)

    def list_access_keys(self, user_name: str | None) -> list[AccessKey]:
        """Keys that are not deleted, oldest first, without their secrets."""
        user_id, _ = self._owner(user_name)
        keys = sorted(self._repo.access_keys(user_id), key=lambda k: (k.created, k.access_key_id))
        return [AccessKey(k.access_key_id, k.user_name, k.status, k.created) for k in keys]

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
        with self._write():
            user_id, _ = self._owner(owner)
            if user_id is None and status != ACTIVE:
                self._keep_a_root_key(access_key_id)
            if not self._repo.set_key_status(access_key_id, user_id, status, self._clock.now(),
                                             erase_secret=not keep_secret):
                raise _no_such_key(access_key_id)

    def recover_root(self) -> tuple[AccessKeyWithSecret, list[str]]:
        """Break glass (local access only): revoke every root key, issue a fresh one. Returns the
        new key with its secret and the ids of the keys revoked."""
        self.account()
        with self._write():
            revoked = [k.access_key_id for k in self._repo.access_keys(None)]
            now = self._clock.now()
            for key_id in revoked:
                self._repo.set_key_status(key_id, None, DELETED, now, erase_secret=True)
            return self._insert_key(None, None), revoked

    def _insert_key(self, user_id: str | None, user_name: str | None) -> AccessKeyWithSecret:
        key_id, secret = _unique_id("AKIA"), _new_secret()
        created = self._clock.now()
        envelope = self._keyring.encrypt(secret.encode(), _context(key_id))
        if not self._repo.add_access_key(StoredAccessKey(key_id, user_id, user_name, ACTIVE, envelope, created,
                                                         created)):
            raise IdentityError("ServiceFailure", f"access key id {key_id} was drawn twice; retry the request", 500)
        return AccessKeyWithSecret(key_id, user_name, ACTIVE, created, secret)

    def _owner(self, user_name: str | None) -> tuple[str | None, str | None]:
        """(user_id, stored name) of a user, or (None, None) for the root."""
        if user_name is None:
            return None, None
        found = self._repo.user(user_name)
        if found is None:
            raise _no_such_user(user_name)
        return found.user_id, found.name

    def _keep_a_root_key(self, access_key_id: str) -> None:
        """Refuse to delete or deactivate the root's last active key: nothing could restore it
        but `trailkeeper recover-root` on the server's own machine."""
        active = [k.access_key_id for k in self._repo.access_keys(None) if k.status == ACTIVE]
        if active == [access_key_id]:
            raise IdentityError("DeleteConflict", "Cannot delete or deactivate the root's last active access key: "
                                "create another root key first (the root alone may manage its keys).", 409)

    # --- authentication --------------------------------------------------------------------

    def resolve(self, access_key_id: str) -> tuple[Principal, str] | None:
        """The owner and secret of a non-deleted key (Active or Inactive), else None."""
        with self._lock:
            version = self._repo.version()
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
        account = self._repo.account()
        if account is None:
            return {}
        loaded: dict[str, tuple[Principal, str]] = {}
        for key, user in self._repo.live_keys():
            principal = _principal(account.account_id, key.access_key_id, key.status, key.user_id,
                                   user.name if user else None, user.role if user else None)
            if principal is not None and key.secret_envelope is not None:
                secret = self._keyring.decrypt(key.secret_envelope, _context(key.access_key_id)).decode()
                loaded[key.access_key_id] = (principal, secret)
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


def _user(account_id: str, found: StoredUser) -> User:
    return User(found.name, found.user_id, user_arn(account_id, found.name), found.role, found.created)
