"""A real SeaweedFS destination goes away while a real server keeps accepting events.

Stop the store, keep ingesting, start it again: every acknowledged event is delivered exactly
once, status and events show the failure and its end, and `trailkeeper validate` passes.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import Server, run_cli, wait_until
from tests.seaweed import SeaweedS3

BUCKET = "outage-trail"


def _write_config(data_dir: Path, s3: SeaweedS3) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "trailkeeper.toml").write_text(
        "retry_max_backoff = 2\n[s3]\n"
        f'endpoint_url = "{s3.endpoint}"\nregion = "us-east-1"\n'
        f'access_key_id = "{s3.access_key}"\nsecret_access_key = "{s3.secret_key}"\n'
        "connect_timeout = 1\nread_timeout = 5\nmax_attempts = 1\n")


def _delivered_ids(client: Any) -> list[str]:
    ids: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="AWSLogs/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith(".json.gz") and "CloudTrail-Digest" not in key:
                body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                ids += [r["eventID"] for r in json.loads(gzip.decompress(body))["Records"]]
    return ids


def _event(i: int) -> dict[str, object]:
    return {"eventName": "Export", "eventSource": "billing.example.com",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sourceIPAddress": "192.0.2.10",
            "requestParameters": {"n": i}}


def test_store_outage_loses_nothing_duplicates_nothing_and_validates(tmp_path: Path) -> None:
    s3 = SeaweedS3(tmp_path / "seaweed")
    s3.start()
    try:
        s3.client().create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        data_dir = tmp_path / "data"
        _write_config(data_dir, s3)
        server = Server(data_dir)
        server.init()
        server.start()
        client = server.client()
        client.create_trail("s3out", destination=f"s3://{BUCKET}", enable_log_file_validation=True,
                            flush_interval_seconds=1, digest_interval_seconds=60, object_lock_days=1)
        client.start_logging("s3out")
        started = time.gmtime()
        acked = client.put_events([_event(i) for i in range(50)])
        assert wait_until(lambda: set(acked) <= set(_delivered_ids(s3.client())), timeout=20)

        s3.stop()
        for batch in range(5):  # the store is down: events are still acknowledged (durable in the spool)
            acked += client.put_events([_event(100 * batch + i) for i in range(40)])
            time.sleep(0.3)
        assert wait_until(lambda: bool(client.get_trail_status("s3out").get("LatestDeliveryError")), timeout=20)
        assert wait_until(lambda: bool(list(client.iter_lookup_events([("EventName", "TrailDeliveryFailed")]))),
                          timeout=10)

        s3.start()
        assert wait_until(lambda: set(acked) <= set(_delivered_ids(s3.client())), timeout=60)
        delivered = _delivered_ids(s3.client())
        assert len([i for i in delivered if i in set(acked)]) == len(acked), "an event was delivered twice"
        assert len(delivered) == len(set(delivered))
        assert wait_until(lambda: "LatestDeliveryError" not in client.get_trail_status("s3out"), timeout=20)
        assert list(client.iter_lookup_events([("EventName", "TrailDeliveryRecovered")]))

        client.stop_logging("s3out")
        assert wait_until(lambda: not client.get_trail_status("s3out").get("IsLogging"), timeout=10)
        time.sleep(3)  # the final digest
        assert server.terminate() == 0
        result = run_cli("validate", "--data-dir", str(data_dir), "--trail", "s3out",
                         "--start-time", time.strftime("%Y-%m-%dT%H:%M:%SZ", started), check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        logs = re.search(r"(\d+)/(\d+) log files valid", result.stdout)
        assert logs is not None and int(logs[1]) == int(logs[2]) > 0, result.stdout
    finally:
        s3.stop()
