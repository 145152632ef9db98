"""kill -9 at random moments loses no acknowledged event and duplicates none (issue #2)."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.e2e.harness import Server, delivered_records, run_cli, wait_until

KILLS = 20


@pytest.mark.slow
def test_sigkill_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    creds = server.init()
    server.start()
    dest = tmp_path / "dest"
    server.cli("trail", "create", "crash", "--destination", str(dest), "--validation",
               "--flush-interval", "1s", "--digest-interval", "1m", "--json")
    server.cli("trail", "start", "crash")
    started = datetime.now(UTC) - timedelta(minutes=1)
    acks = tmp_path / "acks.txt"
    writer = subprocess.Popen([sys.executable, str(Path(__file__).parent / "load_writer.py"), server.endpoint,
                               creds["rootAccessKeyId"], creds["rootSecretAccessKey"], creds["region"], str(acks)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rng = random.Random(20261127)
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.2))
            server.kill9()
            server.start()
    finally:
        writer.kill()
        writer.wait()
    server.cli("trail", "stop", "crash")
    client = server.client()
    assert wait_until(lambda: not client.get_trail_status("crash").get("IsLogging", True)
                      and _final_digest_written(server, "crash"), timeout=30)
    assert server.terminate() == 0

    acked = [i for line in acks.read_text().splitlines() for i in line.split()]
    assert len(acked) > 1000, "the writer got too few acknowledgements to mean anything"
    delivered = [str(r["eventID"]) for r in delivered_records(dest)]
    assert len(delivered) == len(set(delivered)), "a record was delivered twice"
    missing = set(acked) - set(delivered)
    assert not missing, f"{len(missing)} acknowledged events were never delivered"
    result = run_cli("validate", "--data-dir", str(server.data_dir), "--trail", "crash",
                     "--start-time", started.strftime("%Y-%m-%dT%H:%M:%SZ"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _final_digest_written(server: Server, trail: str) -> bool:
    from trailkeeper._internal.sqlite import Database
    from trailkeeper.trails import TrailStore

    db = Database(server.data_dir / "state.db")
    try:
        periods = TrailStore(db).periods(trail)
        return bool(periods) and periods[-1].final_digest_end is not None
    finally:
        db.close()
