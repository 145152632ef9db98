"""Durable ingest over HTTP: 8 concurrent clients, batches of 100, sustained.

Prints events/s, acknowledgement latency percentiles and the server's resident memory
over time (it must stay flat). Target (issue #2): >= 20,000 events/s for 60 s, p99 <= 100 ms,
RSS <= 300 MB. Client and server share this machine's cores, as they would here in CI.
Usage: python bench/bench_ingest_http.py [--seconds 60] [--clients 8] [--batch 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil

from bench._server import BenchServer
from trailkeeper.client import Client


def _records(batch: int, n: int, client_no: int) -> list[dict[str, object]]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"eventName": f"Op{i % 40}", "eventSource": "bench.example.com", "eventTime": now,
             "sourceIPAddress": "192.0.2.1", "userAgent": "bench/1.0",
             "requestParameters": {"client": client_no, "batch": batch, "i": i, "pad": "x" * 600},
             "resources": [{"ARN": f"arn:aws:s3:::bucket-{i % 50}", "type": "AWS::S3::Bucket"}]} for i in range(n)]


def _client_loop(server: BenchServer, client_no: int, batch: int, stop: threading.Event,
                 latencies: list[float], counts: list[int], interval: float = 0.0) -> None:
    client = Client(server.endpoint, server.creds["rootAccessKeyId"], server.creds["rootSecretAccessKey"],
                    region=server.creds["region"], timeout=30)
    n = 0
    next_at = time.perf_counter()
    while not stop.is_set():
        records = _records(n, batch, client_no)
        t0 = time.perf_counter()
        client.put_events(records)
        latencies.append(time.perf_counter() - t0)
        counts[client_no] += batch
        n += 1
        if interval:  # a fixed schedule: a slow answer is caught up, not lost
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    client.close()


def _probe_loop(server: BenchServer, stop: threading.Event, lags: list[float]) -> None:
    """Every second: one marker event, then how long until LookupEvents finds it."""
    client = Client(server.endpoint, server.creds["rootAccessKeyId"], server.creds["rootSecretAccessKey"],
                    region=server.creds["region"], timeout=30)
    while not stop.wait(1.0):
        [event_id] = client.put_events(_records(0, 1, 999))
        acked = time.perf_counter()
        while not client.lookup_events([("EventId", event_id)]).get("Events"):
            time.sleep(0.01)
        lags.append(time.perf_counter() - acked)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=int, default=0, help="total events/s to offer (0 = as fast as possible)")
    args = parser.parse_args()
    interval = args.clients * args.batch / args.rate if args.rate else 0.0
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        server = BenchServer(Path(tmp) / "data")
        server.cli("trail", "create", "bench", "--destination", str(Path(tmp) / "dest"), "--validation",
                   "--flush-interval", "5s", "--json")
        server.cli("trail", "start", "bench")
        proc = psutil.Process(server.proc.pid)
        stop = threading.Event()
        latencies: list[float] = []
        counts = [0] * args.clients
        threads = [threading.Thread(target=_client_loop, args=(server, i, args.batch, stop, latencies, counts, interval))
                   for i in range(args.clients)]
        rss: list[float] = []
        lags: list[float] = []
        threads.append(threading.Thread(target=_probe_loop, args=(server, stop, lags)))
        started = time.perf_counter()
        for t in threads:
            t.start()
        while time.perf_counter() - started < args.seconds:
            time.sleep(5)
            # The server and its indexer child together.
            rss.append(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20)
            print(f"  t={time.perf_counter() - started:5.1f}s events={sum(counts):>9,} rss={rss[-1]:.0f} MB", flush=True)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        total = sum(counts)
        lat = sorted(latencies)
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
        result = {
            "events_per_s": round(total / elapsed), "events": total, "seconds": round(elapsed, 1),
            "clients": args.clients, "batch": args.batch, "offered_rate": args.rate or "max",
            "ack_ms_p50": round(pct(0.50), 1), "ack_ms_p99": round(pct(0.99), 1), "ack_ms_max": round(lat[-1] * 1000, 1),
            "rss_mb_first": round(rss[0]), "rss_mb_last": round(rss[-1]), "rss_mb_max": round(max(rss)),
            "rss_mb_stdev": round(statistics.pstdev(rss), 1),
            "lookup_visible_s_p50": round(sorted(lags)[len(lags) // 2], 3),
            "lookup_visible_s_max": round(max(lags), 3), "lookup_probes": len(lags),
        }
        exit_code = server.stop()
        result["server_exit"] = exit_code
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
