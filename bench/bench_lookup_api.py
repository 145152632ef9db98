"""LookupEvents through the AWS JSON 1.1 API (boto3 clients), sustained requests per second.

Target (issue #3): >= 500 requests/s on this machine (CloudTrail itself allows 2 per second).
Every lookup is also recorded as an audit event, as in production. Clients share the cores.
Usage: python bench/bench_lookup_api.py [--seconds 20] [--clients 4] [--events 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import orjson

from bench._server import BenchServer
from trailkeeper.client import Client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        server = BenchServer(Path(tmp) / "data")
        loader = Client(server.endpoint, server.creds["rootAccessKeyId"], server.creds["rootSecretAccessKey"],
                        region=server.creds["region"])
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for start in range(0, args.events, 100):
            loader.put_events([{"eventName": f"Op{i % 20}", "eventSource": "bench.example.com", "eventTime": now,
                                "sourceIPAddress": "192.0.2.1", "requestParameters": {"n": start + i}}
                               for i in range(100)])
        time.sleep(2)  # let the indexer catch up before measuring reads
        stop = threading.Event()
        counts = [0] * args.clients
        latencies: list[float] = []

        def work(n: int) -> None:
            client = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name=server.creds["region"],
                                  aws_access_key_id=server.creds["rootAccessKeyId"],
                                  aws_secret_access_key=server.creds["rootSecretAccessKey"])
            while not stop.is_set():
                t0 = time.perf_counter()
                page = client.lookup_events(LookupAttributes=[{"AttributeKey": "EventName",
                                                               "AttributeValue": f"Op{counts[n] % 20}"}],
                                            MaxResults=50)
                latencies.append(time.perf_counter() - t0)
                assert len(page["Events"]) == 50
                counts[n] += 1

        threads = [threading.Thread(target=work, args=(n,)) for n in range(args.clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        server.stop()
    lat = sorted(latencies)
    print(orjson.dumps({
        "requests_per_s": round(sum(counts) / elapsed), "clients": args.clients, "events_per_page": 50,
        "history_events": args.events, "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1), "target_requests_per_s": 500,
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
