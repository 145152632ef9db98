"""Delivery latency: from an event's acknowledgement to its presence in a delivered log file.

A writer sends batches at a steady rate through the real server; a watcher polls the trail's
folder, reads each new log file once and notes when every eventID first appears there.
Target (issue #2): p99 <= flush interval + 2 s.
Usage: python bench/bench_delivery.py [--seconds 30] [--rate 5000] [--flush 1]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench._server import BenchServer
from trailkeeper.client import Client


def _watch(dest: Path, seen: dict[str, float], stop: threading.Event) -> None:
    done: set[Path] = set()
    while not stop.is_set():
        for path in dest.rglob("*.json.gz"):
            if path in done or "CloudTrail-Digest" in path.parts:
                continue
            done.add(path)
            now = time.time()
            for record in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]:
                seen.setdefault(record["eventID"], now)
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=5000, help="events per second")
    parser.add_argument("--flush", type=int, default=1, help="trail flush interval, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        server = BenchServer(Path(tmp) / "data")
        dest = Path(tmp) / "dest"
        server.cli("trail", "create", "lat", "--destination", str(dest), "--flush-interval", f"{args.flush}s", "--json")
        server.cli("trail", "start", "lat")
        client = Client(server.endpoint, server.creds["rootAccessKeyId"], server.creds["rootSecretAccessKey"],
                        region=server.creds["region"])
        acked: dict[str, float] = {}
        seen: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(dest, seen, stop))
        watcher.start()
        batch = 100
        interval = batch / args.rate
        started = time.perf_counter()
        next_at = started
        while time.perf_counter() - started < args.seconds:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            ids = client.put_events([{"eventName": "Tick", "eventSource": "lat.example.com", "eventTime": now,
                                      "sourceIPAddress": "192.0.2.5", "requestParameters": {"pad": "x" * 500}}
                                     for _ in range(batch)])
            at = time.time()
            acked.update((i, at) for i in ids)
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        deadline = time.time() + args.flush + 30
        while time.time() < deadline and not set(acked) <= set(seen):
            time.sleep(0.1)
        stop.set()
        watcher.join()
        server.stop()
    missing = set(acked) - set(seen)
    lat = sorted(seen[i] - acked[i] for i in acked if i in seen)
    print(orjson.dumps({
        "events": len(acked), "rate_per_s": args.rate, "flush_interval_s": args.flush,
        "p50_s": round(lat[len(lat) // 2], 3), "p99_s": round(lat[int(len(lat) * 0.99)], 3), "max_s": round(lat[-1], 3),
        "target_p99_s": args.flush + 2, "undelivered": len(missing),
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
