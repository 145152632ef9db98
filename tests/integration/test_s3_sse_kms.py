"""Server-side mode for AWS S3: SSE-KMS with an AWS KMS key, for buckets queried with Athena.

AWS itself cannot be reached from here, so this is a contract test against moto (an AWS
double); SeaweedFS does not implement SSE-KMS with AWS KMS keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from trailkeeper.clock import SystemClock
from trailkeeper.config import load_config
from trailkeeper.storage.destinations import open_destination
from trailkeeper.storage.s3 import S3Settings

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    with mock_aws():
        key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="athena-logs")
        yield s3, key


def test_every_put_asks_s3_to_encrypt_with_the_aws_kms_key(aws: tuple[Any, str]) -> None:
    s3, key = aws
    store = open_destination("s3://athena-logs", "athena-logs", 0, S3Settings(region=REGION, sse_kms_key_id=key),
                             SystemClock())
    store.put_exclusive("AWSLogs/1/CloudTrail/x.json.gz", b"\x1f\x8bdata", {})
    head = s3.head_object(Bucket="athena-logs", Key="AWSLogs/1/CloudTrail/x.json.gz")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key
    assert store.get("AWSLogs/1/CloudTrail/x.json.gz").data == b"\x1f\x8bdata"


def test_without_the_setting_no_server_side_kms_is_requested(aws: tuple[Any, str]) -> None:
    s3, _ = aws
    store = open_destination("s3://athena-logs", "athena-logs", 0, S3Settings(region=REGION), SystemClock())
    store.put_exclusive("k.json.gz", b"x", {})
    assert s3.head_object(Bucket="athena-logs", Key="k.json.gz").get("ServerSideEncryption") != "aws:kms"


def test_config_section_reads_the_key(tmp_path: Path) -> None:
    (tmp_path / "trailkeeper.toml").write_text('[s3]\nregion = "eu-west-1"\nsse_kms_key_id = "alias/athena"\n')
    config = load_config(tmp_path)
    assert config.s3 is not None and config.s3.sse_kms_key_id == "alias/athena"
