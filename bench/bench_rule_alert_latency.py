"""Alert latency of rules end to end on a real server (issue #12): from the acknowledgement of an
event to an HTTP subscriber on 127.0.0.1 receiving the signed SNS notification, under a steady
background load of 5,000 events/s.

    .venv/bin/python -m bench.bench_rule_alert_latency --alerts 200

- EventBridge rule: `{"detail": {"eventName": ["RuleProbe"]}}` with the topic as its target; the
  path is PutEvents → spool → the `event-rules` consumer → SNS publish → delivery.
- Sigma rule: a rule in the data directory's rules folder on `eventName: SigmaProbe`, deduplicated
  per probe (so each probe opens an alert), its severity routed to the topic; the path adds the
  alert's life cycle and outbox → the alert sender → SNS.

A probe's latency is the arrival at the subscriber minus the moment its PutEvents call returned
(the acknowledgement came just before). Goal: p99 <= 1 s for each kind.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._server import BenchServer
from bench.bench_alert_latency import Subscriber, report
from bench.bench_forwarding import _client, throughput
from bench.bench_ingest_http import _records

PROBE_RULE_ID = "7d1f2b7e-4b7c-4d0c-9a55-2f1f0c9a1b01"
SIGMA_RULE = f"""title: Sigma latency probe
id: {PROBE_RULE_ID}
status: test
description: Fires on the benchmark's probe events.
author: trailkeeper benchmark
logsource:
  product: aws
  service: cloudtrail
detection:
  selection:
    eventName: SigmaProbe
  condition: selection
level: high
trailkeeper:
  dedup: [requestParameters.probe]
"""


def _probe_of(message: Any) -> str | None:
    """The probe a notification is about: an EventBridge event carries the record in `detail`,
    an alert its dedup key (the probe's value)."""
    if not isinstance(message, dict):
        return None
    if "detail" in message:
        return f"rule-{message['detail'].get('requestParameters', {}).get('probe')}"
    if message.get("ruleId") == PROBE_RULE_ID:  # its dedup key is [rule id, the probe's value]
        return f"sigma-{json.loads(message['dedupKey'])[1]}"
    return None


def set_up(server: BenchServer, subscriber: Subscriber) -> None:
    client = _client(server)
    topic = client.call("CreateTopic", Name="bench-rules")["TopicArn"]
    client.call("Subscribe", TopicArn=topic, Protocol="http", Endpoint=subscriber.url)
    deadline = time.time() + 10
    while not any(s["SubscriptionArn"] != "PendingConfirmation"
                  for s in client.call("ListSubscriptionsByTopic", TopicArn=topic)["Subscriptions"]):
        if time.time() > deadline:
            raise SystemExit("the subscriber never confirmed its subscription")
        time.sleep(0.1)
    client.call("PutRule", Name="probe", EventPattern=json.dumps({"detail": {"eventName": ["RuleProbe"]}}))
    client.call("PutTargets", Rule="probe", Targets=[{"Id": "t", "Arn": topic}])
    client.call("UpdateAlertSettings", Changes={"topics": {"high": topic}})
    client.close()
    (server.data_dir / "rules").mkdir(exist_ok=True)
    (server.data_dir / "rules" / "probe.yml").write_text(SIGMA_RULE)


def probes(server: BenchServer, kind: str, name: str, alerts: int, spacing: float) -> dict[str, float]:
    client = _client(server)
    acked: dict[str, float] = {}
    for i in range(alerts):
        record = {**_records(0, 1, 997)[0], "eventName": name, "requestParameters": {"probe": str(i)}}
        client.put_events([record])
        acked[f"{kind}-{i}"] = time.time()
        time.sleep(spacing)
    client.close()
    return acked


def latencies(subscriber: Subscriber, since: dict[str, float], wait: float = 30) -> list[float]:
    deadline = time.time() + wait
    while time.time() < deadline and not all(name in subscriber.arrived for name in since):
        time.sleep(0.1)
    return sorted(subscriber.arrived.get(name, float("inf")) - at for name, at in since.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--load", type=int, default=5000, help="background events/s")
    args = parser.parse_args()
    subscriber = Subscriber(_probe_of)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        server = BenchServer(Path(tmp) / "data")
        try:
            server.cli("trail", "create", "bench", "--destination", str(Path(tmp) / "dest"), "--flush-interval",
                       "5s", "--json")
            server.cli("trail", "start", "bench")
            set_up(server, subscriber)
            time.sleep(3)  # the rules folder is looked at every second or two
            seconds = 2 * args.alerts * args.spacing + 30
            load = threading.Thread(target=lambda: print(
                f"background load: {throughput(server, seconds, rate=args.load):,.0f} events/s", flush=True))
            load.start()
            time.sleep(3)  # the load settles first
            report("EventBridge rule, from acknowledgement",
                   latencies(subscriber, probes(server, "rule", "RuleProbe", args.alerts, args.spacing)),
                   "goal p99 <= 1000 ms")
            report("Sigma rule (alert life cycle), from acknowledgement",
                   latencies(subscriber, probes(server, "sigma", "SigmaProbe", args.alerts, args.spacing)),
                   "goal p99 <= 1000 ms")
            load.join()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
