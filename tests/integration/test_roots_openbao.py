"""TransitRoot against a real OpenBao 2.7.2 dev server (tests/openbao.py): sealing, context
binding, rotation, every kind of outage or refusal, and the digest signing keys on top."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tests.openbao import (
    TRANSIT_KEY,
    TRANSIT_MOUNT,
    OpenBaoDev,
    app_policy,
    free_port_pair,
    openbao,
)

from trailkeeper.clock import FrozenClock
from trailkeeper.errors import KeyProviderUnavailableError, SigningKeyError
from trailkeeper.keys.roots import (
    RootOfTrustConfig,
    TransitRoot,
    open_root_of_trust,
    pack_transit,
    unpack_transit,
)
from trailkeeper.keys.signing import SigningKeys
from trailkeeper.state.signing_keys import SqliteSigningKeyRepository

__all__ = ["openbao"]

SECRET = b"key material \x00\xff" * 3
CONTEXT = b"kms-key:1234abcd:1"
KEY_ID = f"{TRANSIT_MOUNT}/{TRANSIT_KEY}"
SHORT_TIMEOUT_S = 0.5


def test_round_trip_names_key_and_version(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    envelope = root.encrypt(SECRET, CONTEXT)
    sealed = unpack_transit(envelope)
    assert root.key_id == KEY_ID
    assert (sealed.key_id, sealed.version) == (KEY_ID, 1)
    assert sealed.ciphertext.startswith("vault:v1:")
    assert root.decrypt(envelope, CONTEXT) == SECRET
    assert root.key_version() == 1


def test_empty_plaintext_and_context_round_trip(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    assert root.decrypt(root.encrypt(b"", b""), b"") == b""


def test_server_itself_enforces_the_associated_data(openbao: OpenBaoDev) -> None:
    # Not only TransitRoot: OpenBao refuses the ciphertext under other associated data.
    ciphertext = unpack_transit(openbao.transit_root().encrypt(SECRET, CONTEXT)).ciphertext
    assert openbao.decrypt_raw(ciphertext, CONTEXT) == SECRET
    with pytest.raises(Exception, match="message authentication failed"):
        openbao.decrypt_raw(ciphertext, b"kms-key:1234abcd:2")


def test_other_context_is_refused_as_tampering(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    envelope = root.encrypt(SECRET, CONTEXT)
    with pytest.raises(SigningKeyError, match="failed authentication"):
        root.decrypt(envelope, b"kms-key:1234abcd:2")
    assert root.self_test() == 1


def test_flipped_ciphertext_is_refused_as_tampering(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    sealed = unpack_transit(root.encrypt(SECRET, CONTEXT))
    raw = bytearray(base64.b64decode(sealed.ciphertext.split(":", 2)[2]))
    raw[-1] ^= 0x01
    flipped = "vault:v1:" + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SigningKeyError, match="failed authentication"):
        root.decrypt(pack_transit(KEY_ID, flipped), CONTEXT)


def test_envelope_of_another_transit_key_is_refused_before_asking(openbao: OpenBaoDev) -> None:
    openbao.create_key("other")
    other = openbao.transit_root("other", token=openbao.root_token)
    with pytest.raises(SigningKeyError, match=f"sealed by Transit key {TRANSIT_MOUNT}/other"):
        openbao.transit_root().decrypt(other.encrypt(SECRET, CONTEXT), CONTEXT)


def test_rotation_keeps_old_envelopes_and_seals_new_ones_with_v2(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    old = root.encrypt(SECRET, CONTEXT)
    openbao.rotate_key()
    assert root.key_version() == 2
    new = root.encrypt(SECRET, CONTEXT)
    assert (unpack_transit(old).version, unpack_transit(new).version) == (1, 2)
    assert root.decrypt(old, CONTEXT) == SECRET
    assert root.decrypt(new, CONTEXT) == SECRET


def test_rotate_through_the_root_needs_permission(openbao: OpenBaoDev) -> None:
    with pytest.raises(KeyProviderUnavailableError, match="denied permission"):
        openbao.transit_root().rotate()  # the app policy has no rotate
    assert openbao.transit_root(token=openbao.root_token).rotate() == 2


def test_derived_key_binds_the_context_by_derivation(openbao: OpenBaoDev) -> None:
    openbao.create_key("derived", derived=True)
    root = openbao.transit_root("derived", token=openbao.root_token, derived=True)
    envelope = root.encrypt(SECRET, CONTEXT)
    assert root.decrypt(envelope, CONTEXT) == SECRET
    with pytest.raises(SigningKeyError, match="failed authentication"):
        root.decrypt(envelope, b"kms-key:1234abcd:2")
    with pytest.raises(SigningKeyError, match="non-empty context"):
        root.encrypt(SECRET, b"")


def test_paused_server_is_unavailable_then_back(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root(timeout=SHORT_TIMEOUT_S)
    envelope = root.encrypt(SECRET, CONTEXT)
    openbao.pause()
    try:
        started = time.perf_counter()
        with pytest.raises(KeyProviderUnavailableError, match=f"{openbao.address} \\(Transit key {KEY_ID}\\) is unreachable during decrypt: ReadTimeout") as caught:
            root.decrypt(envelope, CONTEXT)
        assert time.perf_counter() - started < 5 * SHORT_TIMEOUT_S
        assert "retries" in caught.value.hint
    finally:
        openbao.resume()
    assert root.decrypt(envelope, CONTEXT) == SECRET


def test_stopped_server_is_unavailable(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root(timeout=SHORT_TIMEOUT_S)
    openbao.stop()
    with pytest.raises(KeyProviderUnavailableError, match="unreachable"):
        root.encrypt(SECRET, CONTEXT)


def test_sealed_server_is_unavailable_then_back(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    envelope = root.encrypt(SECRET, CONTEXT)
    openbao.seal()
    with pytest.raises(KeyProviderUnavailableError, match="is sealed") as caught:
        root.decrypt(envelope, CONTEXT)
    assert "unseal" in caught.value.hint
    openbao.unseal()
    assert root.decrypt(envelope, CONTEXT) == SECRET


def test_revoked_permission_is_unavailable_then_back(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    envelope = root.encrypt(SECRET, CONTEXT)
    openbao.revoke_access()
    with pytest.raises(KeyProviderUnavailableError, match="denied permission during encrypt"):
        root.encrypt(SECRET, CONTEXT)
    with pytest.raises(KeyProviderUnavailableError, match="denied permission during decrypt"):
        root.decrypt(envelope, CONTEXT)
    openbao.restore_access()
    assert root.decrypt(envelope, CONTEXT) == SECRET


def test_token_without_permission_or_unknown_token_is_unavailable(openbao: OpenBaoDev) -> None:
    powerless = openbao.token_with_policy(app_policy(TRANSIT_MOUNT, "some-other-key"))
    for token in (powerless, "not-a-token"):
        with pytest.raises(KeyProviderUnavailableError, match="denied permission"):
            openbao.transit_root(token=token).encrypt(SECRET, CONTEXT)


def test_disabled_key_is_unavailable_then_back(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    envelope = root.encrypt(SECRET, CONTEXT)
    openbao.disable_key()
    with pytest.raises(KeyProviderUnavailableError, match="soft-deleted") as caught:
        root.decrypt(envelope, CONTEXT)
    assert "soft-delete-restore" in caught.value.hint
    with pytest.raises(KeyProviderUnavailableError, match="soft-deleted"):
        root.encrypt(SECRET, CONTEXT)
    openbao.enable_key()
    assert root.decrypt(envelope, CONTEXT) == SECRET


def test_hard_deleted_key_is_not_recreated_by_the_app_token(openbao: OpenBaoDev) -> None:
    root = openbao.transit_root()
    envelope = root.encrypt(SECRET, CONTEXT)
    admin = openbao.admin()
    admin.secrets.transit.update_key_configuration(TRANSIT_KEY, deletion_allowed=True, mount_point=TRANSIT_MOUNT)
    admin.secrets.transit.delete_key(TRANSIT_KEY, mount_point=TRANSIT_MOUNT)
    with pytest.raises(KeyProviderUnavailableError, match="key not found"):
        root.decrypt(envelope, CONTEXT)
    with pytest.raises(KeyProviderUnavailableError, match="denied permission"):
        root.encrypt(SECRET, CONTEXT)  # no `create`: no silent new key


def test_open_root_of_trust_with_token_file(openbao: OpenBaoDev, tmp_path: Path) -> None:
    token_file = tmp_path / "bao-token"
    token_file.write_text(openbao.app_token + "\n")
    token_file.chmod(0o600)
    config = RootOfTrustConfig(kind="openbao", address=openbao.address, token_file=token_file,
                               transit_key=TRANSIT_KEY, timeout_s=2)
    root = open_root_of_trust(config, tmp_path / "keyring", env={})
    assert isinstance(root, TransitRoot)
    assert root.decrypt(root.encrypt(SECRET, CONTEXT), CONTEXT) == SECRET
    assert not (tmp_path / "keyring").exists()  # no local master key made for a remote root


def test_open_root_of_trust_with_token_from_environment(openbao: OpenBaoDev, tmp_path: Path) -> None:
    config = RootOfTrustConfig.from_toml({"kind": "vault", "address": openbao.address, "transit_key": TRANSIT_KEY},
                                         env={"VAULT_TOKEN": openbao.app_token})
    root = open_root_of_trust(config, tmp_path / "keyring", env={"VAULT_TOKEN": openbao.app_token})
    assert root.decrypt(root.encrypt(SECRET, CONTEXT), CONTEXT) == SECRET


def test_nothing_listening_is_unavailable(tmp_path: Path) -> None:
    config = RootOfTrustConfig(kind="openbao", address=f"http://127.0.0.1:{free_port_pair()}",
                               token="t", transit_key="k", timeout_s=SHORT_TIMEOUT_S)
    with pytest.raises(KeyProviderUnavailableError, match="unreachable during encrypt: ConnectionError"):
        open_root_of_trust(config, tmp_path).encrypt(SECRET, CONTEXT)


def test_signing_keys_work_unchanged_on_a_transit_root(openbao: OpenBaoDev, tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    db = tmp_path / "state.db"
    info = SigningKeys(SqliteSigningKeyRepository(db), openbao.transit_root(), clock, timedelta(days=30)).current()
    # A second instance has no cached private key: it must unseal through OpenBao.
    reopened = SigningKeys(SqliteSigningKeyRepository(db), openbao.transit_root(), clock, timedelta(days=30))
    signature = bytes.fromhex(reopened.sign(info.fingerprint, b"digest bytes"))
    public = _load_pkcs1_public(info.der_pkcs1)
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"digest bytes", padding.PKCS1v15(), hashes.SHA256())
    openbao.disable_key()
    fresh = SigningKeys(SqliteSigningKeyRepository(db), openbao.transit_root(), clock, timedelta(days=30))
    with pytest.raises(KeyProviderUnavailableError):
        fresh.sign(info.fingerprint, b"digest bytes")


def _load_pkcs1_public(der_pkcs1: bytes) -> object:
    # PKCS#1 RSAPublicKey DER loads through its PEM form ("RSA PUBLIC KEY").
    pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der_pkcs1) + b"-----END RSA PUBLIC KEY-----\n"
    return serialization.load_pem_public_key(pem)


def test_fixture_starts_quickly_and_writes_no_token_file(tmp_path: Path) -> None:
    with OpenBaoDev(tmp_path / "bao") as bao:
        assert bao.unseal_key  # parsed from the banner, needed by unseal()
        assert bao.startup_s < 10
    # HOME pointed here: without -dev-no-store-token the dev server writes ~/.vault-token.
    assert not (tmp_path / "bao" / ".vault-token").exists()
