"""The destination becomes unwritable for a while: nothing is lost, status and events show it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.harness import Server, delivered_records, wait_until


def _events(client, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return list(client.iter_lookup_events([("EventName", name)]))


def test_destination_outage_is_reported_and_recovered(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    server.init()
    server.start()
    dest = tmp_path / "dest"
    server.cli("trail", "create", "ops", "--destination", str(dest), "--flush-interval", "1s", "--json")
    server.cli("trail", "start", "ops")
    client = server.client()
    before = client.put_events([_event(i) for i in range(10)])
    assert wait_until(lambda: len(delivered_records(dest)) >= 10, timeout=10)

    # As root, permissions do not stop writes: put a file where the folder was instead.
    parked = tmp_path / "dest-parked"
    dest.rename(parked)
    dest.write_text("not a folder")
    during = client.put_events([_event(i) for i in range(10, 30)])  # acknowledged: durable in the spool
    assert wait_until(lambda: bool(client.get_trail_status("ops").get("LatestDeliveryError")), timeout=15)
    status = client.get_trail_status("ops")
    assert "dest" in status["LatestDeliveryError"]
    assert wait_until(lambda: bool(_events(client, "TrailDeliveryFailed")), timeout=5)

    time.sleep(2)  # a few failed retries
    dest.unlink()
    parked.rename(dest)
    assert wait_until(lambda: {str(r["eventID"]) for r in delivered_records(dest)} >= set(before + during), timeout=40)
    assert wait_until(lambda: "LatestDeliveryError" not in client.get_trail_status("ops"), timeout=10)
    recovered = _events(client, "TrailDeliveryRecovered")
    assert recovered, "the end of the failure was not recorded"
    details = __import__("json").loads(recovered[0]["CloudTrailEvent"])["serviceEventDetails"]
    assert details["failureStart"] <= details["failureEnd"]
    # The failure and recovery records themselves reach the trail once it is writable again.
    names = {r["eventName"] for r in delivered_records(dest)}
    assert {"TrailDeliveryFailed", "TrailDeliveryRecovered"} <= names
    assert server.terminate() == 0


def _event(i: int) -> dict[str, object]:
    return {"eventName": "Export", "eventSource": "billing.example.com",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sourceIPAddress": "192.0.2.10",
            "requestParameters": {"n": i}}
