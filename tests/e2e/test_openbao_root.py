"""A real OpenBao Transit key as the server's root of trust, end to end.

Encrypted trail logs under a KMS key whose material OpenBao seals; the KMS key and the Transit
key both rotate and old files still decrypt (validator, S3 gateway); the Transit key is then
disabled in OpenBao: delivery waits, status shows it, the failure is recorded; enabling the key
delivers everything.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

import boto3
from tests.e2e.harness import Server, run_cli, wait_until
from tests.openbao import TRANSIT_KEY, TRANSIT_MOUNT, OpenBaoDev

from trailkeeper import envelope

TRAIL = "bao-trail"
BUCKET = "bao-logs"


def _config(data_dir: Path, bao: OpenBaoDev) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "trailkeeper.toml").write_text(
        "retry_max_backoff = 2\nkms_material_ttl = 1\n"
        "[root_of_trust]\n"
        f'kind = "openbao"\naddress = "{bao.address}"\ntoken = "{bao.app_token}"\n'
        f'transit_mount = "{TRANSIT_MOUNT}"\ntransit_key = "{TRANSIT_KEY}"\ntimeout = 2\n')


def _aws(server: Server, service: str) -> Any:
    return boto3.client(service, endpoint_url=server.endpoint, region_name=server.creds["region"],
                        aws_access_key_id=server.creds["rootAccessKeyId"],
                        aws_secret_access_key=server.creds["rootSecretAccessKey"])


def _event(i: int) -> dict[str, object]:
    return {"eventName": "Sign", "eventSource": "docs.example.com",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sourceIPAddress": "192.0.2.20",
            "requestParameters": {"n": i}}


def _log_files(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*.json.gz") if "CloudTrail-Digest" not in str(p))


def _ids_via_gateway(s3: Any, dest: Path) -> list[str]:
    ids: list[str] = []
    for path in _log_files(dest):
        body = s3.get_object(Bucket=BUCKET, Key=str(path.relative_to(dest)))["Body"].read()
        ids += [r["eventID"] for r in json.loads(gzip.decompress(body))["Records"]]
    return ids


def test_openbao_root_of_trust_rotation_and_outage(tmp_path: Path) -> None:
    with OpenBaoDev(tmp_path / "bao") as bao:
        data_dir, dest = tmp_path / "data", tmp_path / BUCKET  # the folder name is the bucket name
        _config(data_dir, bao)
        server = Server(data_dir)
        server.init()
        server.start()
        kms, s3 = _aws(server, "kms"), _aws(server, "s3")
        key_arn = kms.create_key(Description="trail logs")["KeyMetadata"]["Arn"]
        client = server.client()
        client.create_trail(TRAIL, destination=str(dest), enable_log_file_validation=True,
                            flush_interval_seconds=1, digest_interval_seconds=60, kms_key_id=key_arn)
        client.start_logging(TRAIL)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        acked = client.put_events([_event(i) for i in range(20)])
        assert wait_until(lambda: len(_log_files(dest)) >= 1, timeout=15)

        # Rotation at both levels: the KMS key gets new material, the OpenBao key a new version.
        kms.rotate_key_on_demand(KeyId=key_arn)
        bao.rotate_key()
        time.sleep(1.2)  # past kms_material_ttl: material is unsealed again through OpenBao
        acked += client.put_events([_event(100 + i) for i in range(20)])
        assert wait_until(lambda: {envelope.read_header(p.read_bytes()).key_version
                                   for p in _log_files(dest)} == {1, 2}, timeout=15)
        assert wait_until(lambda: set(acked) <= set(_ids_via_gateway(s3, dest)), timeout=15)

        # The root key is disabled in OpenBao: events are still accepted and wait.
        bao.disable_key()
        time.sleep(1.2)
        files_before = len(_log_files(dest))
        waiting = client.put_events([_event(200 + i) for i in range(20)])
        assert wait_until(lambda: bool(client.get_trail_status(TRAIL).get("LatestDeliveryError")), timeout=20)
        error = client.get_trail_status(TRAIL)["LatestDeliveryError"]
        assert "soft-deleted" in error or "OpenBao" in error or "transit" in error.lower(), error
        failed = list(client.iter_lookup_events([("EventName", "TrailDeliveryFailed")]))
        assert failed, "the failure start must be an event (the alarm)"
        assert len(_log_files(dest)) == files_before, "nothing can be written while the key is off"
        # Reading encrypted logs needs the key too (two permissions: the store and the key).
        try:
            _ids_via_gateway(s3, dest)
            raise AssertionError("an encrypted log was served while its root key was disabled")
        except s3.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDenied"

        bao.enable_key()
        acked += waiting
        assert wait_until(lambda: set(acked) <= set(_ids_via_gateway(s3, dest)), timeout=40)
        assert wait_until(lambda: "LatestDeliveryError" not in client.get_trail_status(TRAIL), timeout=20)
        assert list(client.iter_lookup_events([("EventName", "TrailDeliveryRecovered")]))
        delivered = _ids_via_gateway(s3, dest)
        assert len(delivered) == len(set(delivered))

        client.stop_logging(TRAIL)
        time.sleep(3)
        assert server.terminate() == 0
        # Offline full validation decrypts files of both key versions through OpenBao.
        result = run_cli("validate", "--data-dir", str(data_dir), "--trail", TRAIL, "--start-time", started,
                         check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        logs = re.search(r"(\d+)/(\d+) log files valid", result.stdout)
        assert logs is not None and int(logs[1]) == int(logs[2]) >= 3
