"""LookupEvents through the AWS JSON 1.1 API (boto3 clients), sustained requests per second.

Target (issue #3): >= 500 requests/s on this machine (CloudTrail itself allows 2 per second).
Every lookup is also recorded as an audit event, as in production. Clients share the cores:
`--client boto3` parses every answer with botocore (heavy: it competes with the server for
the two cores), `--client raw` sends the same signed JSON 1.1 requests with httpx + botocore's
signer and decodes the answer with orjson.
Usage: python bench/bench_lookup_api.py [--seconds 20] [--clients 4] [--events 20000] [--client raw|boto3]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench._server import BenchServer
from trailkeeper.client import Client


def _boto3_lookup(server: BenchServer) -> Callable[[str], dict[str, Any]]:
    client = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name=server.creds["region"],
                          aws_access_key_id=server.creds["rootAccessKeyId"],
                          aws_secret_access_key=server.creds["rootSecretAccessKey"])
    return lambda name: dict(client.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}], MaxResults=50))


def _raw_lookup(server: BenchServer) -> Callable[[str], dict[str, Any]]:
    http = httpx.Client()
    signer = SigV4Auth(Credentials(server.creds["rootAccessKeyId"], server.creds["rootSecretAccessKey"]),
                       "cloudtrail", server.creds["region"])

    def lookup(name: str) -> dict[str, Any]:
        body = orjson.dumps({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}],
                             "MaxResults": 50})
        request = AWSRequest("POST", server.endpoint + "/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"})
        signer.add_auth(request)
        answer = http.post(server.endpoint + "/", content=body, headers=dict(request.headers.items()))
        answer.raise_for_status()
        page: dict[str, Any] = orjson.loads(answer.content)
        return page

    return lookup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--client", choices=("boto3", "raw"), default="boto3")
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
            lookup = _raw_lookup(server) if args.client == "raw" else _boto3_lookup(server)
            while not stop.is_set():
                t0 = time.perf_counter()
                page = lookup(f"Op{counts[n] % 20}")
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
        "history_events": args.events, "client": args.client, "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1), "target_requests_per_s": 500,
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
