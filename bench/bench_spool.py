"""Spool group-commit throughput: N threads appending batches of ~1 KB records, fsync on.

Usage: python bench/bench_spool.py [--threads 8] [--batch 100] [--seconds 10] [--dir PATH]
The spool directory must be on the disk under test (not tmpfs) for fsync to mean anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from trailkeeper.spool import Spool

RECORD_BYTES = 1024


def worker(spool: Spool, batch: int, deadline: float, latencies: list[float]) -> None:
    payload = [os.urandom(RECORD_BYTES // 2).hex().encode() for _ in range(batch)]
    while time.monotonic() < deadline:
        start = time.perf_counter()
        spool.append(payload)
        latencies.append(time.perf_counter() - start)


def run(directory: Path, threads: int, batch: int, seconds: float) -> None:
    spool = Spool(directory, fsync=True)
    per_thread: list[list[float]] = [[] for _ in range(threads)]
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    workers = [
        threading.Thread(target=worker, args=(spool, batch, deadline, per_thread[i]))
        for i in range(threads)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.monotonic() - started
    stats = spool.stats()
    spool.close()
    latencies = sorted(x for lat in per_thread for x in lat)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"threads={threads} batch={batch} record_bytes={RECORD_BYTES} seconds={elapsed:.1f}")
    print(f"appended events/s: {stats.records / elapsed:,.0f}")
    print(f"appends/s:         {len(latencies) / elapsed:,.0f}")
    print(f"fsyncs/s:          {stats.fsyncs / elapsed:,.0f}")
    print(f"frames per fsync:  {stats.frames / max(stats.fsyncs, 1):.1f}")
    print(f"append latency p50: {quantiles[49] * 1000:.2f} ms  p99: {quantiles[98] * 1000:.2f} ms")
    print(f"bytes on disk:     {stats.bytes_on_disk:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if args.dir is not None:
        run(args.dir, args.threads, args.batch, args.seconds)
        return
    with tempfile.TemporaryDirectory(prefix="tk-bench-spool-", dir=Path.cwd()) as tmp:
        run(Path(tmp), args.threads, args.batch, args.seconds)


if __name__ == "__main__":
    main()
