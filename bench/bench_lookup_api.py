"""LookupEvents through the AWS JSON 1.1 API (boto3 clients), sustained requests per second.

Target (issue #3): >= 500 requests/s on this machine (CloudTrail itself allows 2 per second).
Every lookup is also recorded as an audit event, as in production. Clients share the cores:
`--client boto3` parses every answer with botocore (heavy: it competes with the server for
the two cores), `--client raw` sends the same signed JSON 1.1 requests with httpx + botocore's
signer and decodes the answer with orjson.
`--processes N` spreads the client threads over N processes, so that a client library's own
CPU (boto3's is about twice the server's per request) is not capped by one client GIL.
Usage: python -m bench.bench_lookup_api [--seconds 20] [--clients 4] [--events 20000]
       [--client raw|boto3] [--processes 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
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


def _boto3_lookup(server: _Endpoint) -> Callable[[str], dict[str, Any]]:
    client = boto3.client("cloudtrail", endpoint_url=server.endpoint, region_name=server.creds["region"],
                          aws_access_key_id=server.creds["rootAccessKeyId"],
                          aws_secret_access_key=server.creds["rootSecretAccessKey"])
    return lambda name: dict(client.lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}], MaxResults=50))


def _raw_lookup(server: _Endpoint) -> Callable[[str], dict[str, Any]]:
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


def _clients(endpoint: str, creds: dict[str, str], kind: str, threads: int, seconds: float,
             begin: float) -> tuple[int, list[float]]:
    """Run `threads` clients from monotonic time `begin` for `seconds`; return (requests, latencies)."""
    server = _Endpoint(endpoint, creds)
    counts = [0] * threads
    latencies: list[float] = []

    def work(n: int) -> None:
        lookup = _raw_lookup(server) if kind == "raw" else _boto3_lookup(server)
        time.sleep(max(0.0, begin - time.monotonic()))
        while time.monotonic() < begin + seconds:
            t0 = time.perf_counter()
            page = lookup(f"Op{counts[n] % 20}")
            latencies.append(time.perf_counter() - t0)
            assert len(page["Events"]) == 50
            counts[n] += 1

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts), latencies


class _Endpoint:
    """What a client needs of the server (picklable, for client processes)."""

    def __init__(self, endpoint: str, creds: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.creds = creds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--client", choices=("boto3", "raw"), default="boto3")
    args = parser.parse_args()
    if not 1 <= args.processes <= args.clients:
        parser.error("--processes must be between 1 and --clients")
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
        shares = [args.clients // args.processes + (i < args.clients % args.processes) for i in range(args.processes)]
        # Clients start together, after every client process has started and imported.
        begin = time.monotonic() + (8.0 if args.processes > 1 else 2.0)
        if args.processes == 1:
            results = [_clients(server.endpoint, server.creds, args.client, args.clients, args.seconds, begin)]
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(args.processes) as pool:
                results = pool.starmap(_clients, [(server.endpoint, server.creds, args.client, n, args.seconds, begin)
                                                  for n in shares])
        elapsed = time.monotonic() - begin
        server.stop()
    lat = sorted(x for _, latencies in results for x in latencies)
    print(orjson.dumps({
        "requests_per_s": round(sum(n for n, _ in results) / elapsed), "clients": args.clients,
        "client_processes": args.processes, "events_per_page": 50, "history_events": args.events,
        "client": args.client, "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1), "target_requests_per_s": 500,
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
