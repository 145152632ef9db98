"""The destination fails for a while (the real server, its stores wrapped in the fault-injecting
store: tests/e2e/faulty_server.py), and the server is killed with -9 during the outage: nothing
is lost or doubled, status and events show the failure and its end."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from tests.e2e.harness import Server, delivered_records, wait_until

# A put fails before anything lands; or the object lands and the answer is lost.
MODES = ("before", "after")


def _events(client, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return list(client.iter_lookup_events([("EventName", name)]))


@pytest.mark.parametrize("mode", MODES)
def test_destination_outage_is_reported_and_recovered(tmp_path: Path, mode: str) -> None:
    switch = tmp_path / "faults"
    server = Server(tmp_path / "data", command=(sys.executable, "-m", "tests.e2e.faulty_server", "--faults", str(switch)))
    server.init()
    server.start()
    dest = tmp_path / "dest"
    server.cli("trail", "create", "ops", "--destination", str(dest), "--flush-interval", "1s", "--json")
    server.cli("trail", "start", "ops")
    client = server.client()
    before = client.put_events([_event(i) for i in range(10)])
    assert wait_until(lambda: len(delivered_records(dest)) >= 10, timeout=10)

    switch.write_text(mode)
    during = client.put_events([_event(i) for i in range(10, 30)])  # acknowledged: durable in the spool
    assert wait_until(lambda: bool(client.get_trail_status("ops").get("LatestDeliveryError")), timeout=15)
    status = client.get_trail_status("ops")
    assert "dest" in status["LatestDeliveryError"]
    assert wait_until(lambda: bool(_events(client, "TrailDeliveryFailed")), timeout=5)

    time.sleep(2)  # a few failed retries
    server.kill9()  # mid-outage: what waits in the spool must survive it
    server.start()
    client = server.client()
    assert wait_until(lambda: bool(client.get_trail_status("ops").get("LatestDeliveryError")), timeout=15)
    switch.unlink()
    assert wait_until(lambda: {str(r["eventID"]) for r in delivered_records(dest)} >= set(before + during), timeout=40)
    assert wait_until(lambda: "LatestDeliveryError" not in client.get_trail_status("ops"), timeout=10)
    delivered = [str(r["eventID"]) for r in delivered_records(dest)]
    assert len(delivered) == len(set(delivered)), "an event was delivered twice"
    recovered = _events(client, "TrailDeliveryRecovered")
    assert recovered, "the end of the failure was not recorded"
    details = __import__("json").loads(recovered[0]["CloudTrailEvent"])["serviceEventDetails"]
    assert details["failureStart"] <= details["failureEnd"]
    # The failure and recovery records themselves reach the trail once it is writable again
    # (the recovery is recorded after the first delivery that succeeded: the next flush).
    assert wait_until(lambda: {"TrailDeliveryFailed", "TrailDeliveryRecovered"}
                      <= {r["eventName"] for r in delivered_records(dest)}, timeout=10)
    names = {r["eventName"] for r in delivered_records(dest)}
    assert {"TrailDeliveryFailed", "TrailDeliveryRecovered"} <= names
    assert server.terminate() == 0


def _event(i: int) -> dict[str, object]:
    return {"eventName": "Export", "eventSource": "billing.example.com",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sourceIPAddress": "192.0.2.10",
            "requestParameters": {"n": i}}
