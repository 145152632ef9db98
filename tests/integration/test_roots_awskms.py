"""AwsKmsRoot: a contract test against moto, because AWS KMS itself cannot be reached here.

moto 5.2.5 checks the encryption context and the ciphertext (InvalidCiphertextException), so
round trips and tampering run against it. It does not refuse Encrypt or Decrypt for a
disabled or pending-deletion key (checked: both still succeed), so the refusals AWS sends
then (DisabledException, KMSInvalidStateException, AccessDeniedException, IncorrectKeyException)
are replayed through botocore's Stubber, which parses them exactly as from the real service.
An unreachable endpoint is real: nothing listens on the port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws
from tests.openbao import free_port_pair

from trailkeeper.errors import ConfigError, KeyProviderUnavailableError, SigningKeyError
from trailkeeper.keys.roots import (
    AwsKmsRoot,
    RootOfTrustConfig,
    aws_encryption_context,
    open_root_of_trust,
    pack_aws_kms,
    unpack_aws_kms,
)

REGION = "us-east-1"
SECRET = b"kms key material v1 \x00\xff"
CONTEXT = b"kms-key:5b1c:1"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def kms(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("kms", region_name=REGION)


def test_round_trip_names_the_key_arn(kms: Any) -> None:
    metadata = kms.create_key()["KeyMetadata"]
    root = AwsKmsRoot(kms, metadata["KeyId"])
    envelope = root.encrypt(SECRET, CONTEXT)
    assert unpack_aws_kms(envelope)[0] == metadata["Arn"]
    assert root.key_id == metadata["KeyId"]
    assert root.decrypt(envelope, CONTEXT) == SECRET


def test_alias_seals_under_the_key_it_names(kms: Any) -> None:
    metadata = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/trailkeeper", TargetKeyId=metadata["KeyId"])
    root = AwsKmsRoot(kms, "alias/trailkeeper")
    envelope = root.encrypt(SECRET, CONTEXT)
    assert unpack_aws_kms(envelope)[0] == metadata["Arn"]
    assert AwsKmsRoot(kms, metadata["Arn"]).decrypt(envelope, CONTEXT) == SECRET


def test_other_context_is_refused_as_tampering(kms: Any) -> None:
    root = AwsKmsRoot(kms, kms.create_key()["KeyMetadata"]["KeyId"])
    envelope = root.encrypt(SECRET, CONTEXT)
    with pytest.raises(SigningKeyError, match=r"failed authentication.*InvalidCiphertextException"):
        root.decrypt(envelope, b"kms-key:5b1c:2")


def test_context_reaches_kms_as_the_encryption_context(kms: Any) -> None:
    root = AwsKmsRoot(kms, kms.create_key()["KeyMetadata"]["KeyId"])
    _, blob = unpack_aws_kms(root.encrypt(SECRET, CONTEXT))
    answer = kms.decrypt(CiphertextBlob=blob, EncryptionContext=aws_encryption_context(CONTEXT))
    assert answer["Plaintext"] == SECRET


def test_flipped_blob_is_refused_as_tampering(kms: Any) -> None:
    root = AwsKmsRoot(kms, kms.create_key()["KeyMetadata"]["KeyId"])
    arn, blob = unpack_aws_kms(root.encrypt(SECRET, CONTEXT))
    flipped = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SigningKeyError, match="failed authentication"):
        root.decrypt(pack_aws_kms(arn, flipped), CONTEXT)


def test_open_root_of_trust_builds_a_kms_root(kms: Any, tmp_path: Path) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    config = RootOfTrustConfig.from_toml({"kind": "aws-kms", "key_id": key_id, "region": REGION}, env={})
    root = open_root_of_trust(config, tmp_path / "keyring", env={})
    assert isinstance(root, AwsKmsRoot)
    assert root.decrypt(root.encrypt(SECRET, CONTEXT), CONTEXT) == SECRET
    assert not (tmp_path / "keyring").exists()


def test_missing_region_is_a_config_error(aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    config = RootOfTrustConfig(kind="aws-kms", aws_key_id="k")
    with pytest.raises(ConfigError, match="AWS KMS client"):
        open_root_of_trust(config, tmp_path, env={})


def test_unreachable_endpoint_is_unavailable(aws_env: None) -> None:
    client = boto3.client("kms", region_name=REGION, endpoint_url=f"http://127.0.0.1:{free_port_pair()}",
                          config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1}))
    with pytest.raises(KeyProviderUnavailableError, match=r"AWS KMS unreachable.*EndpointConnectionError") as caught:
        AwsKmsRoot(client, KEY_ARN).encrypt(SECRET, CONTEXT)
    assert "retries" in caught.value.hint


# --- refusals moto does not produce, replayed as AWS sends them ----------------------------


def _stubbed(aws_env: None) -> tuple[Any, Stubber]:
    client = boto3.client("kms", region_name=REGION)
    return client, Stubber(client)


@pytest.mark.parametrize(("code", "hint"), [
    ("DisabledException", "aws kms enable-key"),
    ("KMSInvalidStateException", "cancel-key-deletion"),
    ("AccessDeniedException", "grant kms:Encrypt and kms:Decrypt"),
    ("NotFoundException", "root_of_trust.key_id"),
    ("KMSInternalException", "AWS KMS status"),
])
def test_refused_encrypt_is_unavailable(aws_env: None, code: str, hint: str) -> None:
    client, stub = _stubbed(aws_env)
    stub.add_client_error("encrypt", service_error_code=code, http_status_code=400)
    with stub, pytest.raises(KeyProviderUnavailableError, match=f"refused Encrypt with key {KEY_ARN}: {code}") as caught:
        AwsKmsRoot(client, KEY_ARN).encrypt(SECRET, CONTEXT)
    assert hint in caught.value.hint


@pytest.mark.parametrize("code", ["DisabledException", "KMSInvalidStateException", "AccessDeniedException"])
def test_refused_decrypt_is_unavailable(aws_env: None, code: str) -> None:
    client, stub = _stubbed(aws_env)
    stub.add_client_error("decrypt", service_error_code=code, http_status_code=400,
                          expected_params={"CiphertextBlob": b"blob", "KeyId": KEY_ARN,
                                           "EncryptionContext": aws_encryption_context(CONTEXT)})
    with stub, pytest.raises(KeyProviderUnavailableError, match=code):
        AwsKmsRoot(client, "alias/any").decrypt(pack_aws_kms(KEY_ARN, b"blob"), CONTEXT)


def test_blob_of_another_key_is_tampering(aws_env: None) -> None:
    client, stub = _stubbed(aws_env)
    stub.add_client_error("decrypt", service_error_code="IncorrectKeyException", http_status_code=400)
    with stub, pytest.raises(SigningKeyError, match="IncorrectKeyException"):
        AwsKmsRoot(client, KEY_ARN).decrypt(pack_aws_kms(KEY_ARN, b"blob"), CONTEXT)


def test_answer_from_another_key_is_tampering(aws_env: None) -> None:
    client, stub = _stubbed(aws_env)
    stub.add_response("decrypt", {"KeyId": KEY_ARN.replace("1234abcd", "99999999"), "Plaintext": SECRET})
    with stub, pytest.raises(SigningKeyError, match="the envelope names"):
        AwsKmsRoot(client, KEY_ARN).decrypt(pack_aws_kms(KEY_ARN, b"blob"), CONTEXT)
