"""Identity store: accounts, users, access keys, roles and the permission table."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from trailkeeper.api.sigv4 import SignedRequest, verify
from trailkeeper.clock import FrozenClock
from trailkeeper.errors import AuthError, IdentityError, SigningKeyError
from trailkeeper.identity import (
    PERMISSIONS,
    ROLES,
    AccessKeyWithSecret,
    IdentityStore,
    allowed,
)
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.state.identities import SqliteIdentityRepository

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
REGION = "eu-west-1"
KEY_ID_RE = re.compile(r"AKIA[A-Z2-7]{16}")
USER_ID_RE = re.compile(r"AIDA[A-Z2-7]{16}")
SECRET_RE = re.compile(r"[A-Za-z0-9+/]{40}")

# y = allowed. The root (no role) holds every permission.
PERMISSION_MATRIX = """
permission              administrator  auditor  writer  forwarder  log-reader
events:write            y              n        y       y          n
events:write-on-behalf  n              n        n       y          n
events:read             y              y        n       n          n
logs:read               y              y        n       n          y
validate                y              y        n       n          y
trails:read             y              y        n       n          y
trails:write            y              n        n       n          n
identity:read           y              y        n       n          n
identity:write          y              n        n       n          n
kms:read                y              y        n       n          n
kms:write               y              n        n       n          n
kms:encrypt             y              n        n       n          n
kms:decrypt             y              y        n       n          n
loggroups:read          y              y        n       n          y
loggroups:write         y              n        n       n          n
loggroups:put-events    y              n        y       y          n
metrics:read            y              y        n       n          n
metrics:put-data        y              n        y       y          n
alarms:write            y              n        n       n          n
topics:read             y              y        n       n          n
topics:write            y              n        n       n          n
topics:publish          y              n        n       n          n
rules:read              y              y        n       n          n
rules:write             y              n        n       n          n
alerts:read             y              y        n       n          n
alerts:triage           y              y        n       n          n
alerts:write            y              n        n       n          n
"""


def matrix_rows() -> list[tuple[str, str, bool]]:
    header, *lines = PERMISSION_MATRIX.strip().splitlines()
    roles = header.split()[1:]
    rows = []
    for line in lines:
        permission, *marks = line.split()
        rows += [(role, permission, mark == "y") for role, mark in zip(roles, marks, strict=True)]
    return rows


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def keyring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db: Path, keyring: MemoryKeyring, clock: FrozenClock) -> Iterator[IdentityStore]:
    opened = IdentityStore(SqliteIdentityRepository(db), keyring, clock)
    yield opened
    opened.close()


@pytest.fixture
def root(store: IdentityStore) -> AccessKeyWithSecret:
    creds = store.init_account(REGION)
    return AccessKeyWithSecret(creds.access_key_id, None, "Active", START, creds.secret_access_key)


def expect_error(
    code: str, status: int, call: Callable[..., object], *args: object
) -> IdentityError:
    with pytest.raises(IdentityError) as info:
        call(*args)
    assert (info.value.code, info.value.status) == (code, status)
    return info.value


# --- permissions ---------------------------------------------------------------------------


def test_matrix_covers_every_role_and_permission() -> None:
    rows = matrix_rows()
    assert {role for role, _, _ in rows} == set(ROLES)
    assert {permission for _, permission, _ in rows} == set(PERMISSIONS)
    assert len(rows) == len(ROLES) * len(PERMISSIONS)


@pytest.mark.parametrize(("role", "permission", "expected"), matrix_rows())
def test_permission_table(role: str, permission: str, expected: bool) -> None:
    assert allowed(role, permission) is expected


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_root_has_every_permission(permission: str) -> None:
    assert allowed(None, permission)


def test_unknown_permission_or_role_is_an_error_not_a_denial() -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        allowed("administrator", "events:delete")
    with pytest.raises(ValueError, match="unknown permission"):
        allowed(None, "events:delete")
    with pytest.raises(ValueError, match="unknown role"):
        allowed("superuser", "events:read")


# --- account -------------------------------------------------------------------------------


def test_init_account_returns_root_credentials(store: IdentityStore) -> None:
    creds = store.init_account(REGION)
    assert re.fullmatch(r"[1-9]\d{11}", creds.account_id)
    assert creds.region == REGION
    assert KEY_ID_RE.fullmatch(creds.access_key_id)
    assert SECRET_RE.fullmatch(creds.secret_access_key)
    account = store.account()
    assert (account.account_id, account.region, account.created) == (
        creds.account_id,
        REGION,
        START,
    )


def test_account_ids_are_twelve_digits_without_leading_zero(tmp_path: Path) -> None:
    ids = set()
    for n in range(30):
        store = IdentityStore(SqliteIdentityRepository(tmp_path / f"{n}.db"), MemoryKeyring(), FrozenClock(START))
        ids.add(store.init_account(REGION).account_id)
        store.close()
    assert all(re.fullmatch(r"[1-9]\d{11}", account_id) for account_id in ids)
    assert len(ids) == 30


def test_init_twice_fails(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    expect_error("EntityAlreadyExists", 409, store.init_account, REGION)


def test_init_rejects_bad_region(store: IdentityStore) -> None:
    expect_error("ValidationError", 400, store.init_account, "Mars")


def test_account_before_init_says_run_init(store: IdentityStore) -> None:
    error = expect_error("NoSuchEntity", 404, store.account)
    assert "trailkeeper init" in error.diagnostics()
    expect_error("NoSuchEntity", 404, store.create_user, "alice", "writer")
    expect_error("NoSuchEntity", 404, store.create_access_key, None)
    assert store.resolve("AKIAAAAAAAAAAAAAAAAA") is None


# --- users ---------------------------------------------------------------------------------


def test_create_and_get_user(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    user = store.create_user("alice", "auditor")
    account_id = store.account().account_id
    assert USER_ID_RE.fullmatch(user.user_id)
    assert (user.name, user.role, user.created) == ("alice", "auditor", START)
    assert user.arn == f"arn:aws:iam::{account_id}:user/alice"
    assert store.get_user("alice") == user


@pytest.mark.parametrize("name", ["a", "x" * 64, "svc+ci=1,a.b@c_d-e", "UPPER9"])
def test_valid_user_names(store: IdentityStore, root: AccessKeyWithSecret, name: str) -> None:
    assert store.create_user(name, "writer").name == name


@pytest.mark.parametrize("name", ["", "x" * 65, "has space", "a/b", "é", "tab\t", "a:b"])
def test_invalid_user_names(store: IdentityStore, root: AccessKeyWithSecret, name: str) -> None:
    expect_error("ValidationError", 400, store.create_user, name, "writer")


def test_invalid_role(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    error = expect_error("ValidationError", 400, store.create_user, "bob", "root")
    assert "administrator" in str(error)


def test_duplicate_user_names_ignore_case(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    store.create_user("alice", "writer")
    expect_error("EntityAlreadyExists", 409, store.create_user, "alice", "auditor")
    expect_error("EntityAlreadyExists", 409, store.create_user, "ALICE", "auditor")


def test_get_unknown_user(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    expect_error("NoSuchEntity", 404, store.get_user, "nobody")


def test_list_users_sorted(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    for name in ("carol", "alice", "bob"):
        store.create_user(name, "writer")
    assert [u.name for u in store.list_users()] == ["alice", "bob", "carol"]


def test_delete_user_refused_while_keys_exist(
    store: IdentityStore, root: AccessKeyWithSecret, db: Path
) -> None:
    store.create_user("alice", "writer")
    key = store.create_access_key("alice")
    store.update_access_key(key.access_key_id, "Inactive", "alice")
    error = expect_error("DeleteConflict", 409, store.delete_user, "alice")
    assert str(error) == "Cannot delete entity, must delete access keys first."
    store.delete_access_key(key.access_key_id, "alice")
    store.delete_user("alice")
    expect_error("NoSuchEntity", 404, store.get_user, "alice")
    expect_error("NoSuchEntity", 404, store.delete_user, "alice")
    with sqlite3.connect(db) as conn:
        kept = conn.execute(
            "SELECT user_name, status, secret_envelope FROM identity_access_keys"
            " WHERE access_key_id = ?",
            (key.access_key_id,),
        ).fetchone()
    assert kept == ("alice", "Deleted", None)


def test_recreated_user_does_not_inherit_old_keys(
    store: IdentityStore, root: AccessKeyWithSecret
) -> None:
    store.create_user("alice", "writer")
    old = store.create_access_key("alice")
    store.delete_access_key(old.access_key_id, "alice")
    store.delete_user("alice")
    store.create_user("alice", "auditor")
    assert store.list_access_keys("alice") == []
    assert store.resolve(old.access_key_id) is None


# --- access keys ---------------------------------------------------------------------------


def test_create_access_key(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    store.create_user("alice", "writer")
    key = store.create_access_key("alice")
    assert KEY_ID_RE.fullmatch(key.access_key_id)
    assert SECRET_RE.fullmatch(key.secret_access_key)
    assert (key.user_name, key.status, key.created) == ("alice", "Active", START)


def test_access_key_for_unknown_user(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    expect_error("NoSuchEntity", 404, store.create_access_key, "ghost")
    expect_error("NoSuchEntity", 404, store.list_access_keys, "ghost")


def test_at_most_two_keys_per_user(
    store: IdentityStore, root: AccessKeyWithSecret, clock: FrozenClock
) -> None:
    store.create_user("alice", "writer")
    first = store.create_access_key("alice")
    clock.advance(timedelta(seconds=1))
    store.create_access_key("alice")
    store.update_access_key(first.access_key_id, "Inactive", "alice")
    error = expect_error("LimitExceeded", 409, store.create_access_key, "alice")
    assert str(error) == "Cannot exceed quota for AccessKeysPerUser: 2"
    store.delete_access_key(first.access_key_id, "alice")
    assert store.create_access_key("alice").status == "Active"


def test_root_keys_share_the_same_quota(
    store: IdentityStore, root: AccessKeyWithSecret, clock: FrozenClock
) -> None:
    clock.advance(timedelta(seconds=1))
    second = store.create_access_key(None)
    assert second.user_name is None
    expect_error("LimitExceeded", 409, store.create_access_key, None)
    ids = [k.access_key_id for k in store.list_access_keys(None)]
    assert ids == [root.access_key_id, second.access_key_id]


def test_list_access_keys_has_no_secrets(
    store: IdentityStore, root: AccessKeyWithSecret, clock: FrozenClock
) -> None:
    store.create_user("alice", "writer")
    a = store.create_access_key("alice")
    clock.advance(timedelta(seconds=1))
    b = store.create_access_key("alice")
    store.update_access_key(b.access_key_id, "Inactive", "alice")
    listed = store.list_access_keys("alice")
    assert [(k.access_key_id, k.status) for k in listed] == [
        (a.access_key_id, "Active"),
        (b.access_key_id, "Inactive"),
    ]
    assert not any(hasattr(k, "secret_access_key") for k in listed)
    store.delete_access_key(a.access_key_id, "alice")
    assert [k.access_key_id for k in store.list_access_keys("alice")] == [b.access_key_id]


@pytest.mark.parametrize("status", ["Deleted", "active", ""])
def test_update_access_key_rejects_bad_status(
    store: IdentityStore, root: AccessKeyWithSecret, status: str
) -> None:
    expect_error("ValidationError", 400, store.update_access_key, root.access_key_id, status, None)


def test_unknown_or_deleted_key_cannot_be_changed(
    store: IdentityStore, root: AccessKeyWithSecret
) -> None:
    expect_error("NoSuchEntity", 404, store.update_access_key, "AKIAUNKNOWN", "Inactive", None)
    expect_error("NoSuchEntity", 404, store.delete_access_key, "AKIAUNKNOWN", None)
    store.create_access_key(None)  # the root keeps an active key
    store.delete_access_key(root.access_key_id, None)
    expect_error("NoSuchEntity", 404, store.update_access_key, root.access_key_id, "Active", None)
    expect_error("NoSuchEntity", 404, store.delete_access_key, root.access_key_id, None)


# --- resolve / secret_for ------------------------------------------------------------------


def test_resolve_root(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    found = store.resolve(root.access_key_id)
    assert found is not None
    principal, secret = found
    account_id = store.account().account_id
    assert secret == root.secret_access_key
    assert principal.is_root and principal.role is None and principal.user_name is None
    assert principal.arn == f"arn:aws:iam::{account_id}:root"
    assert (principal.account_id, principal.user_id) == (account_id, account_id)
    assert (principal.access_key_id, principal.key_status) == (root.access_key_id, "Active")


def test_resolve_user(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    user = store.create_user("fwd", "forwarder")
    key = store.create_access_key("fwd")
    found = store.resolve(key.access_key_id)
    assert found is not None
    principal, secret = found
    assert secret == key.secret_access_key
    assert not principal.is_root
    assert (principal.user_name, principal.user_id, principal.arn, principal.role) == (
        "fwd",
        user.user_id,
        user.arn,
        "forwarder",
    )


def test_resolve_unknown_key(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    assert store.resolve("AKIAAAAAAAAAAAAAAAAA") is None
    assert store.secret_for("AKIAAAAAAAAAAAAAAAAA") is None


def test_cache_follows_deactivate_reactivate_delete(
    store: IdentityStore, root: AccessKeyWithSecret
) -> None:
    key_id = root.access_key_id
    store.create_access_key(None)  # the root keeps an active key
    assert store.secret_for(key_id) == root.secret_access_key
    store.update_access_key(key_id, "Inactive", None)
    found = store.resolve(key_id)
    assert found is not None and found[0].key_status == "Inactive"
    with pytest.raises(AuthError) as info:
        store.secret_for(key_id)
    assert (info.value.code, str(info.value), info.value.status) == (
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
        403,
    )
    store.update_access_key(key_id, "Active", None)
    assert store.secret_for(key_id) == root.secret_access_key
    store.delete_access_key(key_id, None)
    assert store.resolve(key_id) is None
    assert store.secret_for(key_id) is None


def test_cache_sees_changes_made_by_another_process(
    store: IdentityStore, root: AccessKeyWithSecret, db: Path, keyring: MemoryKeyring
) -> None:
    assert store.secret_for(root.access_key_id) == root.secret_access_key
    other = IdentityStore(SqliteIdentityRepository(db), keyring, FrozenClock(START))
    other.create_access_key(None)  # the root keeps an active key
    other.update_access_key(root.access_key_id, "Inactive", None)
    other.create_user("late", "auditor")
    late_key = other.create_access_key("late")
    other.close()
    with pytest.raises(AuthError):
        store.secret_for(root.access_key_id)
    assert store.secret_for(late_key.access_key_id) == late_key.secret_access_key


def test_state_survives_reopen(
    store: IdentityStore, root: AccessKeyWithSecret, db: Path, keyring: MemoryKeyring
) -> None:
    store.create_user("alice", "administrator")
    key = store.create_access_key("alice")
    store.close()
    reopened = IdentityStore(SqliteIdentityRepository(db), keyring, FrozenClock(START))
    assert reopened.get_user("alice").role == "administrator"
    assert reopened.secret_for(key.access_key_id) == key.secret_access_key
    reopened.close()


def test_concurrent_resolves_during_changes(
    store: IdentityStore, root: AccessKeyWithSecret
) -> None:
    store.create_user("alice", "writer")
    key = store.create_access_key("alice")
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                found = store.resolve(key.access_key_id)
                assert found is not None and found[1] == key.secret_access_key
        except BaseException as e:  # collected so the main thread can fail the test
            failures.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for n in range(20):
        store.update_access_key(key.access_key_id, "Inactive" if n % 2 else "Active", "alice")
    for t in threads:
        t.join()
    assert failures == []


# --- secrets at rest -----------------------------------------------------------------------


def test_database_never_holds_a_secret_in_clear(
    store: IdentityStore, root: AccessKeyWithSecret, db: Path
) -> None:
    store.create_user("alice", "writer")
    issued = [root.secret_access_key, store.create_access_key("alice").secret_access_key]
    issued.append(store.create_access_key(None).secret_access_key)
    store.update_access_key(root.access_key_id, "Inactive", None)
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    assert db in files
    for path in files:
        data = path.read_bytes()
        for secret in issued:
            assert secret.encode() not in data, f"secret found in clear in {path.name}"


def test_secret_is_bound_to_its_key_id(
    store: IdentityStore, root: AccessKeyWithSecret, db: Path
) -> None:
    store.create_user("alice", "writer")
    user_key = store.create_access_key("alice")
    # Copying the root's envelope onto a user's key must not let the user sign as root.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE identity_access_keys SET secret_envelope ="
            " (SELECT secret_envelope FROM identity_access_keys WHERE access_key_id = ?)"
            " WHERE access_key_id = ?",
            (root.access_key_id, user_key.access_key_id),
        )
    with pytest.raises(SigningKeyError):
        store.resolve(user_key.access_key_id)


def test_another_keyring_cannot_read_secrets(
    store: IdentityStore, root: AccessKeyWithSecret, db: Path
) -> None:
    stranger = IdentityStore(SqliteIdentityRepository(db), MemoryKeyring("other"), FrozenClock(START))
    with pytest.raises(SigningKeyError):
        stranger.resolve(root.access_key_id)
    stranger.close()


# --- works as the SigV4 lookup -------------------------------------------------------------


def botocore_signed(key_id: str, secret: str) -> tuple[SignedRequest, datetime]:
    request = AWSRequest(method="POST", url="http://localhost:8080/", data=b"{}")
    SigV4Auth(Credentials(key_id, secret), "cloudtrail", REGION).add_auth(request)
    prepared = request.prepare()
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = "localhost:8080"
    signed_at = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return SignedRequest("POST", "/", "", headers, b"{}"), signed_at


def test_secret_for_plugs_into_sigv4(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    req, at = botocore_signed(root.access_key_id, root.secret_access_key)
    verified = verify(req, store.secret_for, at, REGION, ("cloudtrail",))
    assert verified.access_key_id == root.access_key_id
    store.create_access_key(None)  # the root keeps an active key
    store.update_access_key(root.access_key_id, "Inactive", None)
    with pytest.raises(AuthError) as info:
        verify(req, store.secret_for, at, REGION, ("cloudtrail",))
    assert info.value.code == "InvalidClientTokenId"


# --- the root is protected and recoverable -----------------------------------------------------


def test_the_roots_last_active_key_cannot_be_deleted_or_deactivated(
    store: IdentityStore, root: AccessKeyWithSecret
) -> None:
    for change in (lambda: store.delete_access_key(root.access_key_id, None),
                   lambda: store.update_access_key(root.access_key_id, "Inactive", None)):
        with pytest.raises(IdentityError) as info:
            change()
        assert (info.value.code, info.value.status) == ("DeleteConflict", 409)
        assert "last active access key" in str(info.value)
    assert store.secret_for(root.access_key_id) == root.secret_access_key
    second = store.create_access_key(None)
    store.update_access_key(root.access_key_id, "Inactive", None)  # another active key remains
    expect_error("DeleteConflict", 409, store.delete_access_key, second.access_key_id, None)


def test_the_owner_is_always_checked(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    store.create_user("mallory", "administrator")
    store.create_access_key(None)
    # Naming the root's key as mallory's (or a user's key as the root's) finds no such key.
    expect_error("NoSuchEntity", 404, store.delete_access_key, root.access_key_id, "mallory")
    expect_error("NoSuchEntity", 404, store.update_access_key, root.access_key_id, "Inactive", "mallory")
    key = store.create_access_key("mallory")
    expect_error("NoSuchEntity", 404, store.delete_access_key, key.access_key_id, None)
    assert store.secret_for(root.access_key_id) == root.secret_access_key


def test_no_user_may_be_named_root(store: IdentityStore, root: AccessKeyWithSecret) -> None:
    for name in ("root", "Root", "ROOT"):
        assert "reserved" in str(expect_error("ValidationError", 400, store.create_user, name, "writer"))


def test_recover_root_revokes_every_root_key_and_issues_one(
    store: IdentityStore, root: AccessKeyWithSecret
) -> None:
    second = store.create_access_key(None)
    key, revoked = store.recover_root()
    assert revoked == [root.access_key_id, second.access_key_id]
    assert store.resolve(root.access_key_id) is None and store.resolve(second.access_key_id) is None
    found = store.resolve(key.access_key_id)
    assert found is not None and found[0].is_root and found[1] == key.secret_access_key
