"""Signing keys: AWS known-answer fingerprints, rotation under a frozen clock, python-rsa
verification (what AWS CLI v1 uses), and no private key in clear at rest."""

from __future__ import annotations

import base64
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import awscli
import pytest
import rsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from trailkeeper.clock import FrozenClock
from trailkeeper.errors import ConfigError, SigningKeyError
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.keys.signing import (
    PublicKeyInfo,
    SigningKeys,
    SigningKeyStore,
    fingerprint,
    load_public_keys,
)
from trailkeeper.state.signing_keys import SqliteSigningKeyRepository

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ROTATION = timedelta(days=30)
# AWS-published pair from aws-cli awscli/examples/cloudtrail/list-public-keys.rst.
AWS_VALUE = (
    "MIIBCgKCAQEAlSS3cl92HDycr/MTj0moOhas8habjrraXw+KzlWF0axSI2tcF+3iJ9BKQAVSKxGwxwu3m0wG3J+kUl1xboEcEPHYoIYMbgfSw7KGn"
    "uDKwkLzsQWhUJ0cIbOHASox1vv/5fNXkrHhGbDCHeVXm804c83nvHUEFYThr1PfyP/8HwrCtR3FX5OANtQCP61C1nJtSSkC8JSQUOrIP4CuwJjc"
    "+4WGDk+BGH5m9iuiAKkipEHWmUl8/P7XpfpWQuk4h8g3pXZOrNXr08lbh4d39svj7UqdhvOXoBISp9t/EXYuePGEtBdrKD9Dz+VHwyUPtBQvYr9"
    "BnkF88qBnaPNhS44rzwIDAQAB"
)
AWS_FINGERPRINT = "7f3f401420072e50a65a141430817ab3"
EXAMPLES_RST = Path(awscli.__file__).parent / "examples/cloudtrail/list-public-keys.rst"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def keyring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def keys(tmp_path: Path, keyring: MemoryKeyring, clock: FrozenClock) -> SigningKeys:
    return SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), keyring, clock, ROTATION)


def _verify_with_python_rsa(info: PublicKeyInfo, message: bytes, signature_hex: str) -> None:
    public = rsa.PublicKey.load_pkcs1(info.der_pkcs1, "DER")
    assert rsa.verify(message, bytes.fromhex(signature_hex), public) == "SHA-256"


def test_aws_published_fingerprint_is_md5_of_der() -> None:
    assert AWS_VALUE in EXAMPLES_RST.read_text().replace('"', "")
    der = base64.b64decode(AWS_VALUE)
    assert fingerprint(der) == AWS_FINGERPRINT
    assert rsa.PublicKey.load_pkcs1(der, "DER").n.bit_length() == 2048


def test_first_key_is_created_lazily(keys: SigningKeys, tmp_path: Path) -> None:
    assert keys.all_public_keys() == []
    info = keys.current()
    assert info.valid_from == T0 and info.valid_to is None
    assert info.value_b64.startswith("MIIBCgKCAQEA")
    assert info.fingerprint == fingerprint(info.der_pkcs1)
    assert len(info.fingerprint) == 32 and info.fingerprint == info.fingerprint.lower()
    assert keys.current() == info
    assert keys.all_public_keys() == [info]
    assert load_public_keys(tmp_path / "state.db") == [info]


def test_public_key_is_pkcs1_not_spki(keys: SigningKeys) -> None:
    der = keys.current().der_pkcs1
    public = serialization.load_der_public_key(der)
    assert public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1) == der
    assert (
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        != der
    )
    loaded = rsa.PublicKey.load_pkcs1(der, "DER")
    assert loaded.n.bit_length() == 2048 and loaded.e == 65537


def test_signature_verifies_with_python_rsa(keys: SigningKeys) -> None:
    info = keys.current()
    message = b"2024-01-01T01:00:00Z\nbucket/key\n" + b"0" * 64 + b"\nnull"
    signature = keys.sign(info.fingerprint, message)
    assert signature == signature.lower() and len(signature) == 512
    _verify_with_python_rsa(info, message, signature)
    with pytest.raises(rsa.VerificationError):
        _verify_with_python_rsa(info, message + b"x", signature)


def test_signing_is_deterministic_and_survives_restart(
    keys: SigningKeys, tmp_path: Path, keyring: MemoryKeyring, clock: FrozenClock
) -> None:
    info = keys.current()
    first = keys.sign(info.fingerprint, b"hello")
    reopened = SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), keyring, clock, ROTATION)
    assert reopened.current() == info
    # PKCS#1 v1.5 is deterministic, so the reloaded private key must give the same bytes.
    assert reopened.sign(info.fingerprint, b"hello") == first


def test_rotation_keeps_history(keys: SigningKeys, clock: FrozenClock, tmp_path: Path) -> None:
    first = keys.current()
    clock.advance(ROTATION)
    assert keys.current() == first, "a key exactly as old as the rotation period is still current"
    clock.advance(timedelta(seconds=1))
    rotated_at = clock.now()
    second = keys.current()
    assert second.fingerprint != first.fingerprint
    assert second.valid_from == rotated_at and second.valid_to is None
    history = keys.all_public_keys()
    assert [k.fingerprint for k in history] == [first.fingerprint, second.fingerprint]
    assert history[0].valid_to == rotated_at
    assert load_public_keys(tmp_path / "state.db") == history
    # Old keys still sign (final digests written around a rotation).
    _verify_with_python_rsa(first, b"m", keys.sign(first.fingerprint, b"m"))


def fps(keys: list[PublicKeyInfo]) -> list[str]:
    return [k.fingerprint for k in keys]


def test_public_keys_overlap_windows(keys: SigningKeys, clock: FrozenClock) -> None:
    first = keys.current()
    clock.advance(ROTATION + timedelta(hours=1))
    boundary = clock.now()
    second = keys.current()
    hour = timedelta(hours=1)
    assert fps(keys.public_keys(T0, T0 + hour)) == [first.fingerprint]
    assert fps(keys.public_keys(boundary - hour, boundary + hour)) == [
        first.fingerprint,
        second.fingerprint,
    ]
    # Inclusive at the rotation instant: a digest signed right at the seam finds both keys.
    assert fps(keys.public_keys(boundary, boundary)) == [first.fingerprint, second.fingerprint]
    assert fps(keys.public_keys(boundary + hour, boundary + 2 * hour)) == [second.fingerprint]


def test_public_keys_never_empty(keys: SigningKeys) -> None:
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    found = keys.public_keys(long_ago, long_ago + timedelta(hours=2))
    assert len(found) == 1 and found == [keys.current()]


def test_unknown_fingerprint(keys: SigningKeys) -> None:
    keys.current()
    with pytest.raises(SigningKeyError, match="no signing key"):
        keys.sign("0" * 32, b"m")


def test_other_keyring_cannot_sign(keys: SigningKeys, tmp_path: Path, clock: FrozenClock) -> None:
    info = keys.current()
    stranger = SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), MemoryKeyring("memory"), clock, ROTATION)
    with pytest.raises(SigningKeyError):
        stranger.sign(info.fingerprint, b"m")


def test_envelope_is_bound_to_its_fingerprint(
    keys: SigningKeys, tmp_path: Path, keyring: MemoryKeyring
) -> None:
    info = keys.current()
    with sqlite3.connect(tmp_path / "state.db") as db:
        (envelope,) = db.execute("SELECT private_envelope FROM signing_keys").fetchone()
    with pytest.raises(SigningKeyError):
        keyring.decrypt(envelope, b"signing-key:" + b"f" * 32)
    assert keyring.decrypt(envelope, b"signing-key:" + info.fingerprint.encode())


def test_private_key_never_in_clear_at_rest(
    keys: SigningKeys, tmp_path: Path, keyring: MemoryKeyring
) -> None:
    info = keys.current()
    keys.sign(info.fingerprint, b"m")
    db_path = tmp_path / "state.db"
    with sqlite3.connect(db_path) as db:
        (envelope,) = db.execute("SELECT private_envelope FROM signing_keys").fetchone()
    private = serialization.load_der_private_key(
        keyring.decrypt(envelope, b"signing-key:" + info.fingerprint.encode()), password=None
    )
    assert isinstance(private, crsa.RSAPrivateKey)
    assert (
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        )
        == info.der_pkcs1
    )
    numbers = private.private_numbers()
    forms = [
        private.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        for fmt in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        )
    ] + [
        private.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        for fmt in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        )
    ]
    # The secret exponent and primes in big-endian form too: a different encoding must not leak them either.
    forms += [
        n.to_bytes((n.bit_length() + 7) // 8, "big") for n in (numbers.d, numbers.p, numbers.q)
    ]
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert info.der_pkcs1 in on_disk, "the scan must be able to find key material that is stored"
    for form in forms:
        assert form not in on_disk


def test_rotation_period_must_be_positive(
    tmp_path: Path, keyring: MemoryKeyring, clock: FrozenClock
) -> None:
    with pytest.raises(ConfigError):
        SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), keyring, clock, timedelta(0))


def test_load_public_keys_missing_db(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="does not exist"):
        load_public_keys(tmp_path / "absent.db")


def test_load_public_keys_never_writes(keys: SigningKeys, tmp_path: Path) -> None:
    keys.current()
    db_path = tmp_path / "state.db"
    before = db_path.read_bytes()
    assert len(load_public_keys(db_path)) == 1
    assert db_path.read_bytes() == before
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    other.write_bytes(b"")
    with pytest.raises(SigningKeyError, match="cannot read signing keys"):
        load_public_keys(other)
    assert other.read_bytes() == b"", "a read-only load must not create the table"


def test_concurrent_current_creates_one_key(keys: SigningKeys) -> None:
    results: list[PublicKeyInfo] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        info = keys.current()
        results.append(info)
        keys.sign(info.fingerprint, b"m")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.fingerprint for r in results}) == 1
    assert len(keys.all_public_keys()) == 1


def test_two_instances_on_one_db_rotate_once(
    tmp_path: Path, keyring: MemoryKeyring, clock: FrozenClock
) -> None:
    a = SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), keyring, clock, ROTATION)
    b = SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), keyring, clock, ROTATION)
    first = a.current()
    clock.advance(ROTATION * 2)
    assert a.current() == b.current() != first
    assert len(b.all_public_keys()) == 2


def test_reads_do_not_rotate_twice_when_another_instance_rotated(
    tmp_path: Path, keyring: MemoryKeyring, clock: FrozenClock
) -> None:
    a = SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), keyring, clock, ROTATION)
    b = SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), keyring, clock, ROTATION)
    a.current()
    clock.advance(ROTATION + timedelta(seconds=1))
    rotated = b.current()
    # `a` sees b's fresh key instead of rotating again.
    assert a.current() == rotated
    assert len(a.all_public_keys()) == 2


def test_satisfies_protocol(keys: SigningKeys) -> None:
    store: SigningKeyStore = keys
    assert store.current().fingerprint == keys.current().fingerprint
