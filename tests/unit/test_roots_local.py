"""The `local` root of trust (master key file or TRAILKEEPER_MASTER_KEY), `[root_of_trust]`
validation, and the pure envelope formats of the remote roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trailkeeper.errors import ConfigError, SigningKeyError
from trailkeeper.keys.keyring import MASTER_KEY_FILE, LocalKeyring
from trailkeeper.keys.roots import (
    ENV_MASTER_KEY,
    RootOfTrustConfig,
    TransitEnvelope,
    aws_encryption_context,
    open_local_root,
    open_root_of_trust,
    pack_aws_kms,
    pack_transit,
    parse_master_key,
    read_token,
    transit_version,
    unpack_aws_kms,
    unpack_transit,
)

KEY = bytes(range(32))
KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
KEY_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY_ID_FROM_KEY = "local-env-87ceae8f05b0da7e"  # "local-env-" + sha256(b"trailkeeper master key id\0" + KEY)[:16]
OTHER_HEX = "ff" * 32
CONTEXT = b"signing-key:0123abcd"


# --- TRAILKEEPER_MASTER_KEY ----------------------------------------------------------------


@pytest.mark.parametrize("value", [KEY_HEX, KEY_HEX.upper(), KEY_B64, f"  {KEY_HEX}\n"])
def test_master_key_forms_without_key_id(value: str) -> None:
    assert parse_master_key(value) == (KEY_ID_FROM_KEY, KEY)


@pytest.mark.parametrize("value", [f"prod-2026:{KEY_HEX}", f"prod-2026:{KEY_B64}"])
def test_master_key_forms_with_key_id(value: str) -> None:
    assert parse_master_key(value) == ("prod-2026", KEY)


@pytest.mark.parametrize("value", [
    KEY_HEX[:-2],  # 31 bytes of hex
    KEY_HEX + "00",  # 33 bytes of hex
    "00 01 " + KEY_HEX[4:-2],  # 64 characters that bytes.fromhex() would read as 31 bytes
    "zz" + KEY_HEX[2:],  # 64 characters, not hex, not base64 of 32 bytes
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",  # base64 of 31 bytes
    KEY_B64.rstrip("="),  # unpadded base64
    "",
])
def test_malformed_master_key_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError, match=ENV_MASTER_KEY) as caught:
        parse_master_key(value)
    if value:
        assert value not in str(caught.value)
    assert "token_hex(32)" in caught.value.hint


@pytest.mark.parametrize("value", [f":{KEY_HEX}", f"my key:{KEY_HEX}", f"\tid:{KEY_HEX}x"])
def test_malformed_key_id_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=ENV_MASTER_KEY):
        parse_master_key(value)


def test_env_master_key_seals_without_touching_the_keyring_dir(tmp_path: Path) -> None:
    root = open_local_root(tmp_path / "keyring", {ENV_MASTER_KEY: KEY_B64})
    assert root.key_id == KEY_ID_FROM_KEY
    assert root.decrypt(root.encrypt(b"private key", CONTEXT), CONTEXT) == b"private key"
    assert not (tmp_path / "keyring").exists()


def test_env_master_key_reads_what_the_key_file_sealed(tmp_path: Path) -> None:
    from_file = LocalKeyring.open_or_create(tmp_path)
    envelope = from_file.encrypt(b"private key", CONTEXT)
    key_id, version, hexkey = (tmp_path / MASTER_KEY_FILE).read_text().split()
    assert version == "1"
    from_env = open_local_root(tmp_path / "elsewhere", {ENV_MASTER_KEY: f"{key_id}:{hexkey}"})
    assert from_env.decrypt(envelope, CONTEXT) == b"private key"


def test_env_master_key_wins_over_the_file(tmp_path: Path) -> None:
    LocalKeyring.open_or_create(tmp_path)
    assert open_local_root(tmp_path, {ENV_MASTER_KEY: KEY_HEX}).key_id == KEY_ID_FROM_KEY


def test_wrong_secret_under_the_same_key_id_fails_authentication(tmp_path: Path) -> None:
    envelope = open_local_root(tmp_path, {ENV_MASTER_KEY: f"k1:{KEY_HEX}"}).encrypt(b"s", CONTEXT)
    with pytest.raises(SigningKeyError, match="failed authentication"):
        open_local_root(tmp_path, {ENV_MASTER_KEY: f"k1:{OTHER_HEX}"}).decrypt(envelope, CONTEXT)


def test_wrong_secret_without_key_id_names_the_sealing_key(tmp_path: Path) -> None:
    envelope = open_local_root(tmp_path, {ENV_MASTER_KEY: KEY_HEX}).encrypt(b"s", CONTEXT)
    with pytest.raises(SigningKeyError, match=f"sealed by key {KEY_ID_FROM_KEY}"):
        open_local_root(tmp_path, {ENV_MASTER_KEY: OTHER_HEX}).decrypt(envelope, CONTEXT)


def test_wrong_context_fails_authentication(tmp_path: Path) -> None:
    root = open_local_root(tmp_path, {ENV_MASTER_KEY: KEY_HEX})
    with pytest.raises(SigningKeyError, match="failed authentication"):
        root.decrypt(root.encrypt(b"s", CONTEXT), b"signing-key:other")


def test_blank_env_value_falls_back_to_the_file(tmp_path: Path) -> None:
    root = open_local_root(tmp_path, {ENV_MASTER_KEY: "  "})
    assert root.key_id.startswith("local-")
    assert (tmp_path / MASTER_KEY_FILE).exists()


# --- master key file -----------------------------------------------------------------------


def test_master_key_file_is_created_private_and_reopened(tmp_path: Path) -> None:
    first = open_root_of_trust(RootOfTrustConfig(), tmp_path / "keyring", env={})
    path = tmp_path / "keyring" / MASTER_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    envelope = first.encrypt(b"s", CONTEXT)
    again = open_root_of_trust(RootOfTrustConfig(), tmp_path / "keyring", env={})
    assert (again.key_id, again.decrypt(envelope, CONTEXT)) == (first.key_id, b"s")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644, 0o700 | 0o004])
def test_master_key_file_open_to_group_or_other_is_refused(tmp_path: Path, mode: int) -> None:
    open_local_root(tmp_path, {})
    path = tmp_path / MASTER_KEY_FILE
    path.chmod(mode)
    with pytest.raises(SigningKeyError, match=f"mode {mode:04o}") as caught:
        open_local_root(tmp_path, {})
    assert f"chmod 600 {path}" in caught.value.hint


def test_owner_read_only_master_key_file_is_accepted(tmp_path: Path) -> None:
    key_id = open_local_root(tmp_path, {}).key_id
    (tmp_path / MASTER_KEY_FILE).chmod(0o400)
    assert open_local_root(tmp_path, {}).key_id == key_id


# --- [root_of_trust] settings ------------------------------------------------------------


TRANSIT = {"kind": "openbao", "address": "http://127.0.0.1:8200", "transit_key": "tk", "token": "t"}


def test_default_is_local() -> None:
    config = RootOfTrustConfig.from_toml({}, env={})
    assert (config.kind, config.transit_mount, config.timeout_s) == ("local", "transit", 10.0)


def test_full_transit_and_aws_tables_parse(tmp_path: Path) -> None:
    transit = RootOfTrustConfig.from_toml({**TRANSIT, "transit_mount": "kms/transit", "timeout": 3,
                                           "transit_derived": True, "ca_cert": "/etc/ca.pem"}, env={})
    assert (transit.transit_mount, transit.timeout_s, transit.transit_derived, transit.ca_cert) == (
        "kms/transit", 3.0, True, Path("/etc/ca.pem"))
    aws = RootOfTrustConfig.from_toml({"kind": "aws-kms", "key_id": "alias/tk", "region": "eu-west-1",
                                       "endpoint_url": "http://127.0.0.1:4566"}, env={})
    assert (aws.aws_key_id, aws.aws_region, aws.aws_endpoint_url) == ("alias/tk", "eu-west-1", "http://127.0.0.1:4566")


@pytest.mark.parametrize(("table", "env", "field"), [
    ({"kind": "hsm"}, {}, "root_of_trust.kind"),
    ({"kind": "local", "address": "http://x"}, {}, "root_of_trust.address"),
    ({"kind": "local", "key_id": "k"}, {}, "root_of_trust.key_id"),
    ({"kind": "local", "transit_mount": "other"}, {}, "root_of_trust.transit_mount"),
    ({k: v for k, v in TRANSIT.items() if k != "address"}, {}, "root_of_trust.address"),
    ({k: v for k, v in TRANSIT.items() if k != "transit_key"}, {}, "root_of_trust.transit_key"),
    ({k: v for k, v in TRANSIT.items() if k != "token"}, {}, "root_of_trust.token"),
    ({**TRANSIT, "token_file": "/run/token"}, {}, "root_of_trust.token and root_of_trust.token_file"),
    ({**TRANSIT, "address": "127.0.0.1:8200"}, {}, "root_of_trust.address"),
    ({**TRANSIT, "transit_mount": "/transit"}, {}, "root_of_trust.transit_mount"),
    ({**TRANSIT, "region": "us-east-1"}, {}, "root_of_trust.region"),
    ({**TRANSIT, "timeout": 0}, {}, "root_of_trust.timeout"),
    ({**TRANSIT, "timeout": "10s"}, {}, "root_of_trust.timeout"),
    ({**TRANSIT, "transit_derived": "yes"}, {}, "root_of_trust.transit_derived"),
    ({**TRANSIT, "address": ""}, {}, "root_of_trust.address"),
    ({**TRANSIT, "port": 8200}, {}, "root_of_trust.port"),
    ({"kind": "aws-kms"}, {}, "root_of_trust.key_id"),
    ({"kind": "aws-kms", "key_id": "k", "transit_key": "tk"}, {}, "root_of_trust.transit_key"),
    ({"kind": "aws-kms", "key_id": "k", "token": "t"}, {}, "root_of_trust.token"),
])
def test_inconsistent_settings_are_rejected_naming_the_field(table: dict[str, Any], env: dict[str, str],
                                                              field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}"):
        RootOfTrustConfig.from_toml(table, env=env)


@pytest.mark.parametrize("name", ["BAO_TOKEN", "VAULT_TOKEN"])
def test_token_may_come_from_the_environment(name: str) -> None:
    table = {k: v for k, v in TRANSIT.items() if k != "token"}
    config = RootOfTrustConfig.from_toml(table, env={name: "s.env"})
    assert read_token(config, {name: "s.env"}) == "s.env"


def test_bao_token_is_preferred_to_vault_token() -> None:
    config = RootOfTrustConfig(kind="vault", address="https://v", transit_key="k")
    assert read_token(config, {"VAULT_TOKEN": "v", "BAO_TOKEN": "b"}) == "b"


def test_token_file_is_read_stripped_and_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("s.file\n")
    path.chmod(0o600)
    config = RootOfTrustConfig(kind="openbao", address="http://b", transit_key="k", token_file=path).check({})
    assert read_token(config, {"BAO_TOKEN": "ignored"}) == "s.file"
    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="token file"):
        read_token(config, {})


def test_empty_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    path.chmod(0o600)
    config = RootOfTrustConfig(kind="openbao", address="http://b", transit_key="k", token_file=path)
    with pytest.raises(ConfigError, match=r"root_of_trust\.token_file.*empty"):
        read_token(config, {})


def test_token_stays_out_of_repr() -> None:
    config = RootOfTrustConfig(kind="openbao", address="http://b", transit_key="k", token="s.very-secret")
    assert "s.very-secret" not in repr(config)


# --- envelope formats (pure) -------------------------------------------------------------


def test_transit_envelope_known_answer() -> None:
    envelope = pack_transit("transit/k", "vault:v12:AAAA")
    assert envelope == b"TKT1\x00\x09transit/kvault:v12:AAAA"
    assert unpack_transit(envelope) == TransitEnvelope("transit/k", "vault:v12:AAAA")
    assert unpack_transit(envelope).version == 12


@pytest.mark.parametrize("ciphertext", ["vault:v0:AAAA", "vault:vx:AAAA", "vault:v1:", "vault:v1", "x:v1:AAAA",
                                        "vault:1:AAAA", "vault:v1:AA AA", "vault:v٣:AAAA"])
def test_malformed_transit_ciphertext_is_refused(ciphertext: str) -> None:
    with pytest.raises(SigningKeyError, match="vault:v<N>:<data>"):
        transit_version(ciphertext)


@pytest.mark.parametrize("envelope", [b"", b"TKT1", b"TKE1\x00\x01kvault:v1:AA", b"TKT1\x00\x09transit/",
                                      b"TKT1\x00\x09transit/k", b"TKT1\x00\x01kvault:v1:\xff"])
def test_malformed_transit_envelope_is_refused(envelope: bytes) -> None:
    with pytest.raises(SigningKeyError):
        unpack_transit(envelope)


def test_aws_envelope_and_context_known_answers() -> None:
    envelope = pack_aws_kms("arn:k", b"\x01\x02")
    assert envelope == b"TKK1\x00\x05arn:k\x01\x02"
    assert unpack_aws_kms(envelope) == ("arn:k", b"\x01\x02")
    assert aws_encryption_context(b"signing-key:ab") == {"trailkeeper-context": "c2lnbmluZy1rZXk6YWI="}
    with pytest.raises(SigningKeyError, match="not a trailkeeper AWS KMS envelope"):
        unpack_aws_kms(pack_transit("transit/k", "vault:v1:AAAA"))
