"""Durable ingest through the in-process API: `Service.record(records, caller)`.

Several threads hand batches of record objects to the service, which validates them and
appends them to the spool with group commit, returning only once they are fsynced. This is
the path an application embedding trailkeeper uses (no HTTP, no JSON parsing of a request
body); the consumers (history indexer, trail workers) are not running, so the figure is the
acknowledgement path alone. Target (issue #2): >= 100,000 events/s.
Usage: python bench/bench_ingest_inprocess.py [--seconds 15] [--threads 8] [--batch 100]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from trailkeeper.api.app import caller_of
from trailkeeper.bootstrap import init_with_config
from trailkeeper.config import load_config
from trailkeeper.service import Service


def _records(batch: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"eventName": f"Op{i % 40}", "eventSource": "bench.example.com", "eventTime": now,
             "sourceIPAddress": "192.0.2.1", "requestParameters": {"i": i, "pad": "x" * 600},
             "resources": [{"ARN": f"arn:aws:s3:::bucket-{i % 50}", "type": "AWS::S3::Bucket"}]} for i in range(batch)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        config = load_config(Path(tmp) / "data")
        creds = init_with_config(config)
        service = Service(config, background=False)
        resolved = service.identity.resolve(creds.access_key_id)
        assert resolved is not None
        caller = caller_of(resolved[0])
        batch = _records(args.batch)
        stop = threading.Event()
        counts = [0] * args.threads
        latencies: list[float] = []

        def work(n: int) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                service.record(batch, caller)
                latencies.append(time.perf_counter() - t0)
                counts[n] += args.batch

        threads = [threading.Thread(target=work, args=(n,)) for n in range(args.threads)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        stats = service.spool.stats()
        service.close(flush_timeout=1)
    lat = sorted(latencies)
    print(orjson.dumps({
        "events_per_s": round(sum(counts) / elapsed), "threads": args.threads, "batch": args.batch,
        "ack_ms_p50": round(lat[len(lat) // 2] * 1000, 2), "ack_ms_p99": round(lat[int(len(lat) * 0.99)] * 1000, 2),
        "fsyncs": stats.fsyncs, "frames": stats.frames,
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
