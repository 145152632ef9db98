"""Alert latency end to end on a real server (issue #11): from the acknowledgement of the event
that breaches an alarm to an HTTP subscriber on 127.0.0.1 receiving the signed SNS notification,
under a steady background load of 5,000 events/s.

    .venv/bin/python -m bench.bench_alert_latency --alerts 200

The path is the whole chain: PutEvents → spool → the trail's forwarder → its log group → a
metric filter (with a dimension per probe) → the alarm → the alarm sender → SNS delivery.

- CIS-style alarms (Sum over 300 s >= 1, one period, one alarm per probe so that each probe is
  a transition): the open period counts, so the goal is p99 <= 1 s after the acknowledgement.
- Closed-period alarms (Average over 10 s >= 5, fed by PutMetricData): Average is not
  monotone, so the alarm waits for the period's end; the goal is p99 <= 1 s after that end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench._server import BenchServer, free_port
from bench.bench_forwarding import GROUP, _client, throughput
from bench.bench_ingest_http import _records

NAMESPACE = "Bench"
PERIOD_END_S = 10


def alarm_of(message: Any) -> str | None:
    """The alarm an ALARM notification is about (None for any other message)."""
    if isinstance(message, dict) and message.get("NewStateValue") == "ALARM":
        return str(message["AlarmName"])
    return None


class Subscriber:
    """Confirms its subscription and notes when the first notification about each thing
    (`key_of` its parsed Message: an alarm's name by default) arrives."""

    def __init__(self, key_of: Callable[[Any], str | None] = alarm_of) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                document = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                at = time.time()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if document["Type"] == "SubscriptionConfirmation":
                    urllib.request.urlopen(document["SubscribeURL"], timeout=10).read()
                elif document["Type"] == "Notification":
                    key = key_of(json.loads(document["Message"]))
                    if key is not None:
                        arrived.setdefault(key, at)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sns"


def set_up(server: BenchServer, subscriber: Subscriber, alerts: int) -> str:
    client = _client(server)
    server.cli("trail", "update", "bench", "--log-group", GROUP, "--json")
    topic = client.call("CreateTopic", Name="bench-alerts")["TopicArn"]
    client.call("Subscribe", TopicArn=topic, Protocol="http", Endpoint=subscriber.url)
    deadline = time.time() + 10
    while not any(s["SubscriptionArn"] != "PendingConfirmation"
                  for s in client.call("ListSubscriptionsByTopic", TopicArn=topic)["Subscriptions"]):
        if time.time() > deadline:
            raise SystemExit("the subscriber never confirmed its subscription")
        time.sleep(0.1)
    client.call("PutMetricFilter", logGroupName=GROUP, filterName="alert-probes",
                filterPattern='{ $.eventName = "AlertProbe" }',
                metricTransformations=[{"metricName": "AlertProbe", "metricNamespace": NAMESPACE, "metricValue": "1",
                                        "dimensions": {"Probe": "$.requestParameters.probe"}}])
    for i in range(alerts):
        common = {"Period": 300, "EvaluationPeriods": 1, "Threshold": 1.0, "Statistic": "Sum",
                  "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching",
                  "AlarmActions": [topic]}
        client.call("PutMetricAlarm", AlarmName=f"cis-style-{i}", Namespace=NAMESPACE, MetricName="AlertProbe",
                    Dimensions=[{"Name": "Probe", "Value": str(i)}], **common)
        client.call("PutMetricAlarm", AlarmName=f"closed-period-{i}", Namespace=NAMESPACE, MetricName="Latency",
                    Dimensions=[{"Name": "Probe", "Value": str(i)}],
                    **{**common, "Period": PERIOD_END_S, "Statistic": "Average", "Threshold": 5.0})
    client.close()
    return str(topic)


def cis_style(server: BenchServer, subscriber: Subscriber, alerts: int, spacing: float) -> list[float]:
    client = _client(server)
    acked: dict[str, float] = {}
    for i in range(alerts):
        record = {**_records(0, 1, 997)[0], "eventName": "AlertProbe", "requestParameters": {"probe": str(i)}}
        client.put_events([record])
        acked[f"cis-style-{i}"] = time.time()
        time.sleep(spacing)
    client.close()
    return _latencies(subscriber, acked)


def closed_period(server: BenchServer, subscriber: Subscriber, alerts: int, spacing: float) -> list[float]:
    client = _client(server)
    period_ends: dict[str, float] = {}
    for i in range(alerts):
        now = time.time()
        client.call("PutMetricData", Namespace=NAMESPACE, MetricData=[
            {"MetricName": "Latency", "Dimensions": [{"Name": "Probe", "Value": str(i)}], "Value": 10.0,
             "Timestamp": datetime.fromtimestamp(now, UTC).isoformat()}])
        period_ends[f"closed-period-{i}"] = (now // PERIOD_END_S + 1) * PERIOD_END_S
        time.sleep(spacing)
    client.close()
    return _latencies(subscriber, period_ends)


def _latencies(subscriber: Subscriber, since: dict[str, float], wait: float = 30) -> list[float]:
    deadline = time.time() + wait
    while time.time() < deadline and not all(name in subscriber.arrived for name in since):
        time.sleep(0.1)
    return sorted(subscriber.arrived.get(name, float("inf")) - at for name, at in since.items())


def report(label: str, values: list[float], goal: str) -> None:
    p50, p99 = values[len(values) // 2], values[min(len(values) - 1, int(0.99 * len(values)))]
    missing = sum(v == float("inf") for v in values)
    print(f"{label}: {len(values)} alerts, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"max {values[-1] * 1000:.0f} ms, never arrived {missing} ({goal})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.25, help="seconds between probes")
    parser.add_argument("--load", type=int, default=5000, help="background events/s")
    args = parser.parse_args()
    subscriber = Subscriber()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        server = BenchServer(Path(tmp) / "data")
        try:
            server.cli("trail", "create", "bench", "--destination", str(Path(tmp) / "dest"), "--validation",
                       "--flush-interval", "5s", "--json")
            server.cli("trail", "start", "bench")
            set_up(server, subscriber, args.alerts)
            seconds = 2 * args.alerts * args.spacing + 40
            load = threading.Thread(target=lambda: print(
                f"background load: {throughput(server, seconds, rate=args.load):,.0f} events/s", flush=True))
            load.start()
            time.sleep(3)  # the load settles first
            report("CIS-style (Sum >= 1, open period counts), from acknowledgement",
                   cis_style(server, subscriber, args.alerts, args.spacing), "goal p99 <= 1000 ms")
            report(f"closed period ({PERIOD_END_S} s Average), from the period's end",
                   closed_period(server, subscriber, args.alerts, args.spacing), "goal p99 <= 1000 ms")
            load.join()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
