"""Durable ingest through the in-process API (no HTTP): validate + spool append + fsync.

Several threads call the same path the HTTP handler runs after authentication
(records.normalize_batch, then Spool.append with group commit). Target (issue #2): >= 100,000
events/s. The history indexer and trail workers are not running here: this measures the
acknowledgement path alone.
Usage: python bench/bench_ingest_inprocess.py [--seconds 15] [--threads 8] [--batch 100]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from trailkeeper.records import Caller, IngestContext, normalize_batch, parse_batch
from trailkeeper.spool import Spool

CALLER = Caller("123456789012", "IAMUser", "alice", "AIDAEXAMPLEEXAMPLE01", "arn:aws:iam::123456789012:user/alice",
                "AKIAEXAMPLEEXAMPLE01", "writer")


def _body(batch: int) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return orjson.dumps({"Records": [
        {"eventName": f"Op{i % 40}", "eventSource": "bench.example.com", "eventTime": now,
         "sourceIPAddress": "192.0.2.1", "requestParameters": {"i": i, "pad": "x" * 600},
         "resources": [{"ARN": f"arn:aws:s3:::bucket-{i % 50}", "type": "AWS::S3::Bucket"}]} for i in range(batch)]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    body = _body(args.batch)
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        spool = Spool(Path(tmp) / "spool")
        stop = threading.Event()
        counts = [0] * args.threads
        latencies: list[float] = []

        def work(n: int) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                ctx = IngestContext(CALLER, "us-east-1", "127.0.0.1", "bench", datetime.now(UTC))
                spool.append(normalize_batch(list(parse_batch(body)), ctx))
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
        stats = spool.stats()
        spool.close()
    lat = sorted(latencies)
    print(orjson.dumps({
        "events_per_s": round(sum(counts) / elapsed), "threads": args.threads, "batch": args.batch,
        "ack_ms_p50": round(lat[len(lat) // 2] * 1000, 2), "ack_ms_p99": round(lat[int(len(lat) * 0.99)] * 1000, 2),
        "fsyncs": stats.fsyncs, "frames": stats.frames,
    }, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
