"""The KMS domain: blob format (known answers, fuzz), keys, aliases, states, rotation, crypto."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper.clock import FrozenClock
from trailkeeper.errors import KeyProviderUnavailableError, KmsError, SigningKeyError, StorageError
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.kms import (
    DISABLED,
    ENABLED,
    PENDING_DELETION,
    Ciphertext,
    Kms,
    KmsUnavailableError,
    SqliteKmsRepository,
    canonical_context,
    material_id,
    open_blob,
    pack_blob,
    seal,
    unpack_blob,
)

ACCOUNT, REGION = "123456789012", "eu-west-1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CTX = {"aws:cloudtrail:arn": "arn:aws:cloudtrail:eu-west-1:123456789012:trail/t", "objectKey": "a/b.json.gz"}
KAT_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KAT_BLOB = bytes.fromhex(
    "544b4b3124" + KAT_KEY_ID.encode().hex() + "00000001" + "00" * 12
    + "66d9d9b2dabeb42773f09bdb9e442f6d9445ecda7e")


@dataclass
class Root:
    """A MemoryKeyring whose unsealing can be made to fail, as a remote root of trust can."""

    inner: MemoryKeyring = field(default_factory=MemoryKeyring)
    fail: Exception | None = None

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        if self.fail:
            raise self.fail
        return self.inner.encrypt(plaintext, context)

    def decrypt(self, envelope: bytes, context: bytes) -> bytes:
        if self.fail:
            raise self.fail
        return self.inner.decrypt(envelope, context)


@dataclass
class Users:
    """KeyUsers: which logging trails use each key ARN (the tests set them)."""

    trails: dict[str, list[str]]

    def trails_using_key(self, key_arn: str) -> list[str]:
        return self.trails.get(key_arn, [])


@dataclass
class Env:
    kms: Kms
    clock: FrozenClock
    root: Root
    db: Path
    trails: dict[str, list[str]]

    def reopen(self, root: Root | None = None) -> Kms:
        return Kms(SqliteKmsRepository(self.db), root or self.root, self.clock, ACCOUNT, REGION, Users(self.trails))


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    clock, root = FrozenClock(T0), Root()
    trails: dict[str, list[str]] = {}
    db = tmp_path / "state.db"
    e = Env(Kms(SqliteKmsRepository(db), root, clock, ACCOUNT, REGION, Users(trails)), clock, root, db, trails)
    yield e
    e.kms.close()


def expect(code: str, fn: object, *args: object, **kwargs: object) -> KmsError:
    assert callable(fn)
    with pytest.raises(KmsError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"{info.value.code}: {info.value}"
    return info.value


# ---- the blob format: known answers ---------------------------------------------------------------
def test_pack_blob_known_answer() -> None:
    ct = Ciphertext("k", 2, b"\x00" * 12, b"\x11" * 16)
    expected = bytes.fromhex("544b4b31016b00000002" + "00" * 12 + "11" * 16)
    assert pack_blob(ct) == expected
    assert unpack_blob(expected) == ct


def test_seal_known_answer_and_its_associated_data() -> None:
    material = bytes(range(32))
    blob = seal(material, KAT_KEY_ID, 1, bytes(12), b"hello", {"b": "2", "a": "1"})
    assert blob == KAT_BLOB
    ct = unpack_blob(KAT_BLOB)
    assert (ct.key_id, ct.key_version, ct.nonce) == (KAT_KEY_ID, 1, bytes(12))
    # Independently of open_blob: the AAD is the header followed by the sorted-key JSON context.
    aad = b"TKK1\x24" + KAT_KEY_ID.encode() + b"\x00\x00\x00\x01" + b'{"a":"1","b":"2"}'
    assert AESGCM(material).decrypt(bytes(12), ct.sealed, aad) == b"hello"
    assert open_blob(material, ct, {"a": "1", "b": "2"}) == b"hello"


def test_canonical_context_sorts_keys_and_requires_strings() -> None:
    assert canonical_context({"z": "1", "a": "2"}) == b'{"a":"2","z":"1"}'
    assert canonical_context(None) == canonical_context({}) == b"{}"
    expect("ValidationException", canonical_context, {"a": 1})


def test_material_id_is_64_hex_and_differs_per_version() -> None:
    first, second = material_id(KAT_KEY_ID, 1), material_id(KAT_KEY_ID, 2)
    assert re.fullmatch("[0-9a-f]{64}", first) and re.fullmatch("[0-9a-f]{64}", second) and first != second


@pytest.mark.parametrize("blob", [
    b"", b"TKK", b"XKK1" + KAT_BLOB[4:], KAT_BLOB[:40], KAT_BLOB[:-1][:60],
    b"TKK1\x00" + b"\x00" * 40,                                 # empty key id
    b"TKK1\x02\xff\xfe" + b"\x00" * 40,                         # key id not ASCII
    b"TKK1\x01k\x00\x00\x00\x00" + b"\x00" * 28,                # version 0
    b"TKK1\x41" + b"k" * 65 + b"\x00" * 40,                     # key id too long
])
def test_unpack_rejects_malformed_blobs(blob: bytes) -> None:
    expect("InvalidCiphertextException", unpack_blob, blob)


@given(st.binary(max_size=200))
def test_unpack_never_raises_anything_else(data: bytes) -> None:
    try:
        ct = unpack_blob(data)
    except KmsError as e:
        assert e.code == "InvalidCiphertextException"
    else:
        assert pack_blob(ct) == data


# ---- keys --------------------------------------------------------------------------------------
def test_create_and_describe_key(env: Env) -> None:
    meta = env.kms.create_key("log files")
    assert meta.arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{meta.key_id}"
    assert (meta.state, meta.enabled, meta.current_version, meta.description) == (ENABLED, True, 1, "log files")
    assert meta.created == T0 and meta.deletion_date is None
    assert env.kms.describe_key(meta.arn) == meta


def test_key_material_is_sealed_by_the_root_with_its_context(env: Env) -> None:
    key_id = env.kms.create_key().key_id
    with sqlite3.connect(env.db) as conn:
        [(sealed,)] = conn.execute("SELECT sealed FROM kms_key_material WHERE key_id = ?", (key_id,))
    material = env.root.inner.decrypt(sealed, f"kms-key:{key_id}:1".encode())
    assert len(material) == 32 and material not in sealed
    with pytest.raises(SigningKeyError):
        env.root.inner.decrypt(sealed, f"kms-key:{key_id}:2".encode())


def test_another_process_decrypts_from_the_database(env: Env) -> None:
    blob = env.kms.encrypt(env.kms.create_key().key_id, b"secret", CTX).blob
    other = env.reopen()
    assert other.decrypt(blob, CTX).plaintext == b"secret"
    other.close()


def test_tags(env: Env) -> None:
    key = env.kms.create_key(tags={"team": "audit", "env": ""})
    assert env.kms.list_resource_tags(key.key_id) == {"env": "", "team": "audit"}
    expect("TagException", env.kms.create_key, tags={"aws:x": "1"})
    expect("TagException", env.kms.create_key, tags={"": "1"})
    expect("TagException", env.kms.create_key, tags={f"k{i}": "" for i in range(51)})


def test_resolve_every_kind_of_reference(env: Env) -> None:
    key = env.kms.create_key()
    env.kms.create_alias("alias/logs", key.key_id)
    for ref in (key.key_id, key.arn, "alias/logs", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/logs"):
        assert env.kms.resolve(ref) == key.arn


@pytest.mark.parametrize(("ref", "code"), [
    ("not-a-key", "NotFoundException"),
    ("00000000-0000-4000-8000-000000000000", "NotFoundException"),
    ("alias/missing", "NotFoundException"),
    (f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-4000-8000-000000000000", "NotFoundException"),
    ("arn:aws:kms:eu-west-1", "InvalidArnException"),
    (f"arn:aws:kms:{REGION}:{ACCOUNT}:grant/x", "InvalidArnException"),
    ("", "ValidationException"),
])
def test_resolve_errors(env: Env, ref: str, code: str) -> None:
    expect(code, env.kms.resolve, ref)


def test_list_keys_pages_with_markers(env: Env) -> None:
    created = sorted(env.kms.create_key().key_id for _ in range(5))
    seen, marker, pages = [], None, 0
    while True:
        page = env.kms.list_keys(limit=2, marker=marker)
        seen += [k.key_id for k in page.items]
        pages += 1
        if page.next_marker is None:
            break
        marker = page.next_marker
    assert seen == created and pages == 3
    expect("InvalidMarkerException", env.kms.list_keys, marker="garbage")
    expect("ValidationException", env.kms.list_keys, limit=0)
    expect("ValidationException", env.kms.list_keys, limit=1001)


# ---- aliases -----------------------------------------------------------------------------------
def test_alias_life_cycle(env: Env) -> None:
    a, b = env.kms.create_key(), env.kms.create_key()
    entry = env.kms.create_alias("alias/one", a.key_id)
    assert entry.arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/one" and entry.target_key_id == a.key_id
    env.kms.create_alias("alias/two", b.arn)
    env.kms.create_alias("alias/three", a.arn)
    assert [x.name for x in env.kms.list_aliases().items] == ["alias/one", "alias/three", "alias/two"]
    assert [x.name for x in env.kms.list_aliases(a.key_id).items] == ["alias/one", "alias/three"]
    first = env.kms.list_aliases(limit=2)
    assert first.next_marker == "alias/three"
    assert [x.name for x in env.kms.list_aliases(marker=first.next_marker).items] == ["alias/two"]
    env.kms.delete_alias("alias/one")
    expect("NotFoundException", env.kms.resolve, "alias/one")
    expect("NotFoundException", env.kms.delete_alias, "alias/one")


@pytest.mark.parametrize(("name", "code"), [
    ("alias/aws/s3", "NotAuthorizedException"),
    ("alias/has space", "InvalidAliasNameException"),
    ("alias/", "InvalidAliasNameException"),
    ("alias/" + "x" * 251, "InvalidAliasNameException"),
    ("logs", "ValidationException"),
])
def test_alias_name_rules(env: Env, name: str, code: str) -> None:
    expect(code, env.kms.create_alias, name, env.kms.create_key().key_id)


def test_alias_errors(env: Env) -> None:
    key = env.kms.create_key()
    env.kms.create_alias("alias/x", key.key_id)
    expect("AlreadyExistsException", env.kms.create_alias, "alias/x", key.key_id)
    expect("ValidationException", env.kms.create_alias, "alias/y", "alias/x")
    expect("NotFoundException", env.kms.create_alias, "alias/y", "00000000-0000-4000-8000-000000000000")
    env.kms.schedule_key_deletion(key.key_id)
    expect("KMSInvalidStateException", env.kms.create_alias, "alias/z", key.key_id)
    expect("InvalidMarkerException", env.kms.list_aliases, marker="nope")


# ---- states ------------------------------------------------------------------------------------
def test_disabled_key_refuses_crypto_then_enable_restores(env: Env) -> None:
    key = env.kms.create_key().key_id
    blob = env.kms.encrypt(key, b"x", CTX).blob
    assert env.kms.disable_key(key).state == DISABLED
    expect("DisabledException", env.kms.encrypt, key, b"x", CTX)
    expect("DisabledException", env.kms.generate_data_key, key, CTX)
    expect("DisabledException", env.kms.decrypt, blob, CTX)
    expect("DisabledException", env.kms.rotate_key_on_demand, key)
    expect("DisabledException", env.kms.enable_key_rotation, key)
    assert env.kms.enable_key(key).state == ENABLED
    assert env.kms.decrypt(blob, CTX).plaintext == b"x"


@pytest.mark.parametrize("days", [6, 31, 0, -1])
def test_pending_window_must_be_7_to_30_days(env: Env, days: int) -> None:
    expect("ValidationException", env.kms.schedule_key_deletion, env.kms.create_key().key_id, days)


@pytest.mark.parametrize("days", [7, 30])
def test_pending_window_bounds_accepted(env: Env, days: int) -> None:
    meta = env.kms.schedule_key_deletion(env.kms.create_key().key_id, days)
    assert meta.deletion_date == T0 + timedelta(days=days) and meta.pending_window_days == days


def test_schedule_deletion_defaults_to_30_days_and_blocks_use(env: Env) -> None:
    key = env.kms.create_key().key_id
    blob = env.kms.encrypt(key, b"x").blob
    meta = env.kms.schedule_key_deletion(key)
    assert (meta.state, meta.deletion_date, meta.pending_window_days) == (PENDING_DELETION, T0 + timedelta(days=30), 30)
    for call, args in [(env.kms.encrypt, (key, b"x")), (env.kms.decrypt, (blob,)), (env.kms.enable_key, (key,)),
                       (env.kms.disable_key, (key,)), (env.kms.schedule_key_deletion, (key,)),
                       (env.kms.generate_data_key, (key,)), (env.kms.enable_key_rotation, (key,))]:
        expect("KMSInvalidStateException", call, *args)


def test_schedule_deletion_refused_while_a_logging_trail_uses_the_key(env: Env) -> None:
    key = env.kms.create_key()
    env.trails[key.arn] = ["prod", "audit"]
    error = expect("KMSInvalidStateException", env.kms.schedule_key_deletion, key.key_id)
    assert "audit, prod" in str(error) and "UpdateTrail" in str(error)
    assert env.kms.describe_key(key.key_id).state == ENABLED
    env.trails.clear()
    assert env.kms.schedule_key_deletion(key.key_id).state == PENDING_DELETION


def test_cancel_deletion_leaves_the_key_disabled(env: Env) -> None:
    key = env.kms.create_key().key_id
    expect("KMSInvalidStateException", env.kms.cancel_key_deletion, key)
    env.kms.schedule_key_deletion(key, 7)
    meta = env.kms.cancel_key_deletion(key)
    assert (meta.state, meta.deletion_date, meta.pending_window_days) == (DISABLED, None, None)


def test_due_deletion_destroys_material_and_leaves_a_tombstone(env: Env) -> None:
    key = env.kms.create_key()
    keep = env.kms.create_key()
    env.kms.create_alias("alias/doomed", key.key_id)
    blob = env.kms.encrypt(key.key_id, b"x").blob
    env.kms.schedule_key_deletion(key.key_id, 7)
    assert env.kms.maintain(T0 + timedelta(days=7) - timedelta(seconds=1)).deleted == []
    done = env.kms.maintain(T0 + timedelta(days=7))
    assert done.deleted == [key.arn] and done.blocked == []
    error = expect("NotFoundException", env.kms.describe_key, key.key_id)
    assert "was deleted" in str(error)
    assert "was deleted" in str(expect("NotFoundException", env.kms.decrypt, blob))
    expect("NotFoundException", env.kms.resolve, "alias/doomed")
    with sqlite3.connect(env.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM kms_key_material WHERE key_id = ?", (key.key_id,)).fetchone() == (0,)
    assert [k.key_id for k in env.kms.list_keys().items] == [keep.key_id]


def test_due_deletion_waits_while_a_trail_uses_the_key(env: Env) -> None:
    key = env.kms.create_key()
    env.kms.schedule_key_deletion(key.key_id, 7)
    env.trails[key.arn] = ["late"]
    done = env.kms.maintain(T0 + timedelta(days=8))
    assert (done.deleted, done.blocked) == ([], [key.arn])
    assert env.kms.describe_key(key.key_id).state == PENDING_DELETION


# ---- rotation ----------------------------------------------------------------------------------
def test_rotation_status_and_automatic_rotation(env: Env) -> None:
    key = env.kms.create_key()
    status = env.kms.get_key_rotation_status(key.key_id)
    assert (status.enabled, status.period_days, status.next_rotation) == (False, None, None)
    status = env.kms.enable_key_rotation(key.key_id)
    assert (status.enabled, status.period_days, status.next_rotation) == (True, 365, T0 + timedelta(days=365))
    old = env.kms.encrypt(key.key_id, b"old", CTX).blob
    assert env.kms.rotate_due(T0 + timedelta(days=364)) == []
    later = T0 + timedelta(days=365)
    env.clock.set(later)
    assert env.kms.rotate_due(later) == [key.arn]
    assert env.kms.describe_key(key.key_id).current_version == 2
    assert env.kms.get_key_rotation_status(key.key_id).next_rotation == later + timedelta(days=365)
    assert env.kms.rotate_due(later) == []
    assert env.kms.decrypt(old, CTX).key_version == 1
    assert unpack_blob(env.kms.encrypt(key.key_id, b"new", CTX).blob).key_version == 2


def test_rotation_period_bounds_and_change_keeps_anchor(env: Env) -> None:
    key = env.kms.create_key().key_id
    expect("ValidationException", env.kms.enable_key_rotation, key, 89)
    expect("ValidationException", env.kms.enable_key_rotation, key, 2561)
    env.kms.enable_key_rotation(key, 90)
    env.clock.advance(timedelta(days=10))
    assert env.kms.enable_key_rotation(key, 2560).next_rotation == T0 + timedelta(days=2560)
    assert env.kms.disable_key_rotation(key).enabled is False
    assert env.kms.rotate_due(T0 + timedelta(days=3000)) == []


def test_disabled_key_does_not_rotate_until_enabled(env: Env) -> None:
    key = env.kms.create_key()
    env.kms.enable_key_rotation(key.key_id, 90)
    env.kms.disable_key(key.key_id)
    assert env.kms.rotate_due(T0 + timedelta(days=100)) == []
    env.kms.enable_key(key.key_id)
    assert env.kms.rotate_due(T0 + timedelta(days=100)) == [key.arn]


def test_on_demand_rotation_new_material_old_versions_still_decrypt(env: Env) -> None:
    key = env.kms.create_key().key_id
    v1 = env.kms.generate_data_key(key, CTX)
    assert v1.key_version == 1
    assert env.kms.rotate_key_on_demand(key) == 2
    v2 = env.kms.generate_data_key(key, CTX)
    assert v2.key_version == 2 and unpack_blob(v2.blob).key_version == 2
    assert env.kms.decrypt(v1.blob, CTX).plaintext == v1.plaintext
    assert env.kms.decrypt(v2.blob, CTX).plaintext == v2.plaintext
    # Real new material: the v1 blob relabelled as version 2 does not open.
    relabelled = pack_blob(Ciphertext(key, 2, unpack_blob(v1.blob).nonce, unpack_blob(v1.blob).sealed))
    expect("InvalidCiphertextException", env.kms.decrypt, relabelled, CTX)
    assert env.kms.get_key_rotation_status(key).enabled is False  # on demand leaves the schedule alone


# ---- cryptographic operations ------------------------------------------------------------------
def test_encrypt_decrypt_round_trip_and_sizes(env: Env) -> None:
    key = env.kms.create_alias("alias/k", env.kms.create_key().key_id).target_key_id
    out = env.kms.encrypt("alias/k", b"\x00" * 4096, CTX)
    assert out.key_version == 1 and out.key_arn.endswith(key)
    back = env.kms.decrypt(out.blob, CTX, key_ref="alias/k")
    assert (back.plaintext, back.key_arn, back.key_version) == (b"\x00" * 4096, out.key_arn, 1)
    expect("ValidationException", env.kms.encrypt, key, b"")
    expect("ValidationException", env.kms.encrypt, key, b"\x00" * 4097)


def test_generate_data_key_sizes(env: Env) -> None:
    key = env.kms.create_key().key_id
    for n in (1, 16, 32, 1024):
        dk = env.kms.generate_data_key(key, CTX, n)
        assert len(dk.plaintext) == n and env.kms.decrypt(dk.blob, CTX).plaintext == dk.plaintext
    expect("ValidationException", env.kms.generate_data_key, key, CTX, 0)
    expect("ValidationException", env.kms.generate_data_key, key, CTX, 1025)


def _flip(blob: bytes, index: int) -> bytes:
    return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1:]


def test_tampering_is_invalid_ciphertext(env: Env) -> None:
    a, b = env.kms.create_key().key_id, env.kms.create_key().key_id
    blob = env.kms.encrypt(a, b"payload", CTX).blob
    ct = unpack_blob(blob)
    cases = {
        "flipped ciphertext byte": (_flip(blob, len(blob) - 20), CTX),
        "flipped tag byte": (_flip(blob, len(blob) - 1), CTX),
        "flipped nonce byte": (_flip(blob, len(blob) - len(ct.sealed) - 1), CTX),
        "wrong context value": (blob, {**CTX, "objectKey": "elsewhere.json.gz"}),
        "missing context": (blob, None),
        "extra context": (blob, {**CTX, "x": "y"}),
        "moved to another key": (pack_blob(Ciphertext(b, 1, ct.nonce, ct.sealed)), CTX),
        "unknown key": (pack_blob(Ciphertext("00000000-0000-4000-8000-000000000000", 1, ct.nonce, ct.sealed)), CTX),
        "version that does not exist": (pack_blob(Ciphertext(a, 9, ct.nonce, ct.sealed)), CTX),
        "truncated": (blob[:-5], CTX),
    }
    for name, (data, context) in cases.items():
        with pytest.raises(KmsError) as info:
            env.kms.decrypt(data, context)
        assert info.value.code == "InvalidCiphertextException", name


def test_decrypt_with_another_key_id_is_incorrect_key(env: Env) -> None:
    a, b = env.kms.create_key().key_id, env.kms.create_key().key_id
    blob = env.kms.encrypt(a, b"x").blob
    expect("IncorrectKeyException", env.kms.decrypt, blob, None, b)
    expect("NotFoundException", env.kms.decrypt, blob, None, "alias/none")


def test_re_encrypt_moves_ciphertext_to_another_key_and_context(env: Env) -> None:
    a, b = env.kms.create_key().key_id, env.kms.create_key()
    env.kms.rotate_key_on_demand(a)
    blob = env.kms.encrypt(a, b"moving", CTX).blob
    out = env.kms.re_encrypt(blob, b.arn, CTX, {"new": "ctx"}, source_key_ref=a)
    assert (out.key_arn, out.key_version, out.source_key_version) == (b.arn, 1, 2)
    assert out.source_key_arn.endswith(a)
    assert env.kms.decrypt(out.blob, {"new": "ctx"}).plaintext == b"moving"
    env.kms.disable_key(b.key_id)
    expect("DisabledException", env.kms.re_encrypt, blob, b.key_id, CTX)
    expect("InvalidCiphertextException", env.kms.re_encrypt, blob, a, {"wrong": "ctx"})


# ---- the root of trust -------------------------------------------------------------------------
def test_unreachable_root_is_dependency_timeout_and_retryable(env: Env) -> None:
    key = env.kms.create_key().key_id
    blob = env.kms.encrypt(key, b"x").blob
    root = Root(env.root.inner, KeyProviderUnavailableError("openbao at 127.0.0.1:8200 refused"))
    cold = env.reopen(root)  # empty material cache: must unseal
    with pytest.raises(KmsUnavailableError) as info:
        cold.decrypt(blob)
    error = info.value
    assert error.code == "DependencyTimeoutException" and error.status == 503
    assert isinstance(error, KeyProviderUnavailableError) and isinstance(error, StorageError)
    assert "openbao" in str(error)
    expect("DependencyTimeoutException", cold.create_key)
    expect("DependencyTimeoutException", cold.rotate_key_on_demand, key)
    assert cold.describe_key(key).current_version == 1  # the failed rotation left nothing behind
    root.fail = None
    assert cold.decrypt(blob).plaintext == b"x"
    cold.close()


def test_wrong_root_is_internal_error(env: Env) -> None:
    blob = env.kms.encrypt(env.kms.create_key().key_id, b"x").blob
    cold = env.reopen(Root(MemoryKeyring("other")))
    error = expect("KMSInternalException", cold.decrypt, blob)
    assert error.status == 500 and not isinstance(error, KeyProviderUnavailableError)
    cold.close()


# ---- fuzz: decrypting anything is InvalidCiphertextException or a plaintext ---------------------
@pytest.fixture(scope="module")
def fuzz_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kms, bytes]]:
    kms = Kms(SqliteKmsRepository(tmp_path_factory.mktemp("fuzz") / "state.db"), MemoryKeyring(), FrozenClock(T0), ACCOUNT, REGION)
    blob = kms.encrypt(kms.create_key().key_id, b"fuzz", CTX).blob
    yield kms, blob
    kms.close()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_decrypt_fuzz_only_invalid_ciphertext(fuzz_kms: tuple[Kms, bytes], data: st.DataObject) -> None:
    kms, blob = fuzz_kms
    mutated = bytearray(blob)
    for index in data.draw(st.lists(st.integers(0, len(blob) - 1), min_size=1, max_size=4, unique=True)):
        mutated[index] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(blob)))
    candidates = [bytes(mutated), bytes(mutated[:cut]), data.draw(st.binary(max_size=120)), blob[:4] + data.draw(st.binary(max_size=120))]
    for candidate in candidates:
        with pytest.raises(KmsError) as info:
            kms.decrypt(candidate, CTX)
        assert info.value.code == "InvalidCiphertextException"
