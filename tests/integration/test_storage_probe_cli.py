"""`trailkeeper storage probe` against a real SeaweedFS, configured through the [s3] section."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.harness import run_cli
from tests.seaweed import SeaweedS3


def _config(tmp_path: Path, s3: SeaweedS3) -> Path:
    path = tmp_path / "trailkeeper.toml"
    path.write_text(
        "[s3]\n"
        f'endpoint_url = "{s3.endpoint}"\nregion = "us-east-1"\n'
        f'access_key_id = "{s3.access_key}"\nsecret_access_key = "{s3.secret_key}"\n'
    )
    return path


def test_probe_verifies_a_lock_bucket_and_refuses_a_plain_one(tmp_path: Path) -> None:
    with SeaweedS3(tmp_path / "seaweed") as s3:
        client = s3.client()
        client.create_bucket(Bucket="worm-logs", ObjectLockEnabledForBucket=True)
        client.create_bucket(Bucket="plain-logs")
        config = str(_config(tmp_path, s3))
        data_dir = str(tmp_path / "data")

        worm = run_cli("storage", "probe", "--data-dir", data_dir, "--config", config, "--bucket", "worm-logs", "--json")
        answer = json.loads(worm.stdout)
        assert answer["Worm"] is True
        assert {row["Result"] for row in answer["Steps"] if not row["Result"].endswith("(info)")} == {"PASS"}

        plain = run_cli("storage", "probe", "--data-dir", data_dir, "--config", config, "--bucket", "plain-logs",
                        check=False)
        assert plain.returncode == 1
        assert "NOT WORM" in plain.stdout and "FAIL" in plain.stdout
