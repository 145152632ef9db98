"""The unmodified AWS CLI drives trailkeeper's KMS, and every call lands in the audit trail
with eventSource kms.amazonaws.com, so the CIS "disabling or scheduled deletion of CMKs"
pattern matches."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Server, running_server, wait_until

KMS_SOURCE = "kms.amazonaws.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("kms-awscli") / "data")


def aws(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return server.aws(*args)


def aws_json(server: Server, *args: str) -> Any:
    return server.aws_json(*args)


def kms_events(server: Server) -> list[dict[str, Any]]:
    found = aws_json(server, "cloudtrail", "lookup-events", "--lookup-attributes",
                     f"AttributeKey=EventSource,AttributeValue={KMS_SOURCE}")
    return [json.loads(e["CloudTrailEvent"]) for e in found["Events"]]


def test_key_life_cycle_through_the_aws_cli_is_audited(server: Server, tmp_path: Path) -> None:
    meta = aws_json(server, "kms", "create-key", "--description", "trail logs")["KeyMetadata"]
    arn, key_id = meta["Arn"], meta["KeyId"]
    assert meta["KeyState"] == "Enabled" and arn.endswith(f":key/{key_id}")

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"very secret bytes")
    blob = aws_json(server, "kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{secret}",
                    "--encryption-context", "purpose=e2e")["CiphertextBlob"]
    ciphertext = tmp_path / "blob.bin"
    ciphertext.write_bytes(base64.b64decode(blob))
    opened = aws_json(server, "kms", "decrypt", "--ciphertext-blob", f"fileb://{ciphertext}",
                      "--encryption-context", "purpose=e2e")
    assert base64.b64decode(opened["Plaintext"]) == b"very secret bytes"

    aws_json(server, "kms", "enable-key-rotation", "--key-id", key_id)
    assert aws_json(server, "kms", "get-key-rotation-status", "--key-id", key_id)["KeyRotationEnabled"] is True
    aws_json(server, "kms", "disable-key", "--key-id", key_id)
    refused = aws(server, "kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{secret}")
    assert refused.returncode != 0 and "DisabledException" in refused.stderr
    scheduled = aws_json(server, "kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7")
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    too_short = aws(server, "kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "3")
    assert too_short.returncode != 0

    wanted = {"CreateKey", "Encrypt", "Decrypt", "EnableKeyRotation", "DisableKey", "ScheduleKeyDeletion"}
    assert wait_until(lambda: wanted <= {e["eventName"] for e in kms_events(server)}, timeout=30, interval=0.5)
    events = {e["eventName"]: e for e in kms_events(server) if "errorCode" not in e}
    for name in wanted:
        event = events[name]
        assert event["eventSource"] == KMS_SOURCE and event["eventType"] == "AwsApiCall"
        assert {"ARN": arn, "type": "AWS::KMS::Key"}.items() <= event["resources"][0].items(), name
    # The CIS 4.7 metric filter: ($.eventSource = kms.amazonaws.com) && (DisableKey || ScheduleKeyDeletion)
    cis = [e for e in kms_events(server)
           if e["eventSource"] == KMS_SOURCE and e["eventName"] in ("DisableKey", "ScheduleKeyDeletion")]
    assert {e["eventName"] for e in cis} == {"DisableKey", "ScheduleKeyDeletion"}
    assert events["Encrypt"]["readOnly"] is True and events["DisableKey"]["readOnly"] is False
    recorded = json.dumps(kms_events(server))
    assert blob not in recorded and opened["Plaintext"] not in recorded
    failed = [e for e in kms_events(server) if e.get("errorCode") == "DisabledException"]
    assert failed and failed[0]["eventName"] == "Encrypt"
