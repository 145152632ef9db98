"""Encrypted trails through the real server and boto3: KmsKeyId by alias, reads through the S3
gateway decrypted only for callers who may use the key, refusals recorded, and the unmodified
`aws cloudtrail validate-logs` still accepting an encrypted trail."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from tests.e2e.harness import BIN, Server, wait_until

from trailkeeper import envelope

TRAIL = "sealed-trail"
BUCKET = "sealed-logs"


def _aws(server: Server, service: str, key_id: str | None = None, secret: str | None = None) -> Any:
    return boto3.client(service, endpoint_url=server.endpoint, region_name=server.creds["region"],
                        aws_access_key_id=key_id or server.creds["rootAccessKeyId"],
                        aws_secret_access_key=secret or server.creds["rootSecretAccessKey"])


def _user(server: Server, name: str, role: str) -> tuple[str, str]:
    iam = _aws(server, "iam")
    iam.create_user(UserName=name, Tags=[{"Key": "trailkeeper:role", "Value": role}])
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _records(server: Server, user: str) -> list[dict[str, Any]]:
    pages = _aws(server, "cloudtrail").get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": user}])
    return [json.loads(e["CloudTrailEvent"]) for page in pages for e in page["Events"]]


def test_encrypted_trail_end_to_end(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    server.init()
    server.start()
    try:
        kms, cloudtrail = _aws(server, "kms"), _aws(server, "cloudtrail")
        key = kms.create_key(Description="audit logs")["KeyMetadata"]
        kms.create_alias(AliasName="alias/audit-logs", TargetKeyId=key["KeyId"])
        dest = tmp_path / BUCKET
        start = datetime.now(UTC) - timedelta(minutes=1)
        created = cloudtrail.create_trail(Name=TRAIL, S3BucketName=BUCKET, KmsKeyId="alias/audit-logs",
                                          EnableLogFileValidation=True)
        assert created["KmsKeyId"] == key["Arn"], "CloudTrail stores the key's ARN"
        server.client().update_trail(TRAIL, destination=str(dest), flush_interval_seconds=1, digest_interval_seconds=60)
        cloudtrail.start_logging(Name=TRAIL)
        server.client().put_events([{"eventName": "Approve", "eventSource": "pay.example.com",
                                     "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     "sourceIPAddress": "192.0.2.30", "requestParameters": {"invoice": 7}}])
        logs = lambda: sorted(p for p in dest.rglob("*.json.gz") if "CloudTrail-Digest" not in str(p))  # noqa: E731
        assert wait_until(lambda: len(logs()) >= 1, timeout=15)
        log_key = logs()[0].relative_to(dest).as_posix()
        assert envelope.read_header(logs()[0].read_bytes()).key_arn == key["Arn"]

        # An auditor holds logs:read and kms:decrypt: the gateway serves the plaintext, as S3 does SSE-KMS.
        auditor = _aws(server, "s3", *_user(server, "ada", "auditor"))
        got = auditor.get_object(Bucket=BUCKET, Key=log_key)
        assert got["ServerSideEncryption"] == "aws:kms" and got["SSEKMSKeyId"] == key["Arn"]
        assert json.loads(gzip.decompress(got["Body"].read()))["Records"]

        # A log-reader may read the store but not use the key: refused, and the refusal is an event.
        reader = _aws(server, "s3", *_user(server, "rex", "log-reader"))
        with pytest.raises(reader.exceptions.ClientError) as refused:
            reader.get_object(Bucket=BUCKET, Key=log_key)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
        assert wait_until(lambda: any(r["eventName"] == "GetObject" for r in _records(server, "rex")), timeout=5)
        denied = [r for r in _records(server, "rex") if r["eventName"] == "GetObject"]
        assert denied and denied[0]["errorCode"] == "AccessDenied" and denied[0]["eventSource"] == "s3.amazonaws.com"

        # The unmodified AWS CLI validator reads the encrypted trail through the gateway (as root).
        cloudtrail.stop_logging(Name=TRAIL)
        time.sleep(3)
        env = {**os.environ, "AWS_ENDPOINT_URL": server.endpoint, "AWS_DEFAULT_REGION": server.creds["region"],
               "AWS_ACCESS_KEY_ID": server.creds["rootAccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": server.creds["rootSecretAccessKey"],
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        result = subprocess.run([str(BIN / "aws"), "cloudtrail", "validate-logs", "--trail-arn", created["TrailARN"],
                                 "--start-time", start.strftime("%Y-%m-%dT%H:%M:%SZ")],
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "log files valid" in result.stdout and "INVALID" not in result.stdout
    finally:
        server.terminate()

