"""`trailkeeper validate` (full and stored mode) against the unmodified `aws cloudtrail validate-logs`.

Builds (once, cached under bench/out/validate-vs-awscli/) a trail written by the real delivery
pipeline in-process with a frozen clock about two hours in the past: >= 26 one-minute digest
periods, ~12,000 records of ~1 KB each per period (>= 300 MB of uncompressed logs). Then it
serves that data directory with a real server process, copies the trail's destination objects
(same bucket, keys, bytes and metadata) into a real SeaweedFS S3 server, and measures, in the
same run and interleaved, the best wall time of:

  aws     `aws cloudtrail validate-logs` (awscli 1.x) through the server's S3/CloudTrail gateway;
  plain   the same AWS CLI command with CloudTrail calls (DescribeTrails, ListPublicKeys) still
          answered by the server but S3 reads served by SeaweedFS ("plain files served
          statically"), so aws/plain is the cost of the gateway (SigV4, audit record per read);
  full    `trailkeeper validate --mode full` straight from the data directory;
  stored  `trailkeeper validate --mode stored`.

Before timing, `python -m compileall -q` runs over src/: this environment sets
PYTHONDONTWRITEBYTECODE=1, so without it every trailkeeper process (server and CLI) would
compile its modules from source on each start, which an installed wheel would not do (pip
compiled awscli's modules when it installed them).

Issue #3 goals: aws/full >= 3x, aws/stored >= 20x, aws/plain <= 1.2 (gateway slowdown <= 20 %).
Usage: python -m bench.bench_validate_vs_awscli [--periods 26] [--events 12000] [--repeat 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.harness import BIN, Server  # noqa: E402
from tests.pipeline import open_pipeline  # noqa: E402
from tests.seaweed import IDENTITY_NAME, SeaweedS3  # noqa: E402

from trailkeeper.layout import trail_arn  # noqa: E402
from trailkeeper.storage.folder import FolderStore  # noqa: E402
from trailkeeper.trails import TrailConfig  # noqa: E402

AWS = str(BIN / "aws")
TRAILKEEPER = str(BIN / "trailkeeper")
TRAIL = "bench"
BUCKET = "bench-logs"
BATCH = 100
CHUNKS_PER_PERIOD = 6
META = "bench-meta.json"
GOAL_FULL = 3.0
GOAL_STORED = 20.0
GOAL_GATEWAY_SLOWDOWN = 0.20
UPLOAD_THREADS = 4

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
          "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
          "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "bucket", "object", "policy", "role",
          "user", "session", "token", "instance", "volume", "snapshot", "subnet", "vpc", "gateway", "route",
          "table", "key", "grant", "alias")
_NAMES = ("GetObject", "PutObject", "AssumeRole", "DescribeInstances", "Decrypt", "ListBuckets", "CreateUser")


@dataclass(frozen=True)
class Built:
    data_dir: Path
    dest: Path
    arn: str
    start: str
    end: str
    creds: dict[str, str]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(rng: random.Random, i: int, when: datetime) -> dict[str, Any]:
    # ~1 KB per record once the server adds identity, IDs and origin; the padding is words, not
    # random bytes, so the logs compress about as well as real ones do.
    padding = " ".join(rng.choice(_WORDS) for _ in range(120))[:500]
    return {
        "eventName": rng.choice(_NAMES),
        "eventSource": "app.example.com",
        "eventTime": _iso(when),
        "sourceIPAddress": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
        "requestParameters": {"attempt": i, "key": f"obj/{rng.getrandbits(48):012x}", "note": padding},
    }


def build(out: Path, periods: int, events: int) -> Built:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = random.Random(3)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=periods + 90)
    dest = out / "dest"
    per_chunk = events // CHUNKS_PER_PERIOD
    with open_pipeline(out, start=start) as p:
        p.service.create_trail(TrailConfig(name=TRAIL, bucket=BUCKET, destination=str(dest), validation=True,
                                           flush_interval_s=1, digest_interval_s=60))
        p.service.start_logging(TRAIL)
        for period in range(periods):
            t0 = time.perf_counter()
            for _ in range(CHUNKS_PER_PERIOD):
                for first in range(0, per_chunk, BATCH):
                    p.ingest([_event(rng, first + j, p.clock.now()) for j in range(min(BATCH, per_chunk - first))])
                p.advance(2)
            p.advance(60 - 2 * CHUNKS_PER_PERIOD)
            print(f"  period {period + 1}/{periods} built in {time.perf_counter() - t0:.1f} s", flush=True)
        p.service.stop_logging(TRAIL)
        p.advance(3)
        p.advance(60)
        end = p.clock.now() + timedelta(minutes=1)
        creds = {"accountId": p.creds.account_id, "region": p.creds.region,
                 "rootAccessKeyId": p.creds.access_key_id, "rootSecretAccessKey": p.creds.secret_access_key}
        arn = trail_arn(p.service.account.region, p.service.account.account_id, TRAIL)
    meta = {"arn": arn, "start": _iso(start - timedelta(minutes=1)), "end": _iso(end), "creds": creds}
    (out / META).write_text(json.dumps(meta))
    return load(out)


def load(out: Path) -> Built:
    meta = json.loads((out / META).read_text())
    return Built(out / "data", out / "dest", meta["arn"], meta["start"], meta["end"], meta["creds"])


def trail_facts(dest: Path) -> dict[str, float]:
    """Counts and sizes, reading every file once (which also warms the page cache)."""
    digests = logs = 0
    stored = raw = 0
    for path in sorted(dest.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        stored += len(data)
        if path.name.endswith(".json.gz"):
            if "CloudTrail-Digest" in path.parts:
                digests += 1
            else:
                logs += 1
                raw += len(zlib.decompress(data, 31))
    return {"digests": digests, "logs": logs, "raw_mb": raw / 1e6, "stored_mb": stored / 1e6}


def warm(data_dir: Path) -> None:
    for path in data_dir.rglob("*"):
        if path.is_file():
            path.read_bytes()


def compile_sources() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)


def upload_plain(dest: Path, bucket: str, s3: SeaweedS3) -> int:
    """Copy every object of the trail's folder store (bytes and metadata) into SeaweedFS."""
    store = FolderStore(dest, bucket)
    client = s3.client()
    client.create_bucket(Bucket=bucket)

    def put(key: str) -> int:
        obj = store.get(key)
        client.put_object(Bucket=bucket, Key=key, Body=obj.data, Metadata=dict(obj.metadata))
        return len(obj.data)

    keys = [info.key for info in store.list()]
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        sizes = list(pool.map(put, keys))
    listed = sum(page.get("KeyCount", 0) for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    if listed != len(keys):
        raise SystemExit(f"SeaweedFS lists {listed} objects in {bucket}, {len(keys)} were uploaded")
    return sum(sizes)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=3600)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc


def check_s3_endpoint(name: str, env: dict[str, str], owner: str) -> None:
    """The AWS CLI's S3 calls reach the intended server (each reports its own bucket owner)."""
    _, proc = timed([AWS, "s3api", "list-buckets", "--query", "Owner.ID", "--output", "text"], env)
    if proc.stdout.strip() != owner:
        raise SystemExit(f"{name}: the AWS CLI's S3 endpoint reports owner {proc.stdout.strip()!r}, expected {owner!r}")


def check_aws(stdout: str, facts: dict[str, float]) -> str:
    found = re.search(r"(\d+)/(\d+) digest files valid", stdout)
    logs = re.search(r"(\d+)/(\d+) log files valid", stdout)
    if not found or not logs or found[1] != found[2] or logs[1] != logs[2]:
        raise SystemExit(f"unexpected AWS CLI summary:\n{stdout[-2000:]}")
    if int(found[1]) != facts["digests"] or int(logs[1]) != facts["logs"]:
        raise SystemExit(f"AWS CLI saw {found[0]}, {logs[0]}; the trail has {facts['digests']:.0f} digests, "
                         f"{facts['logs']:.0f} logs")
    return f"{found[0]}, {logs[0]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--periods", type=int, default=26)
    ap.add_argument("--events", type=int, default=12_000, help="records per one-minute period")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "validate-vs-awscli")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()

    if args.rebuild or not (args.out / META).exists():
        print(f"building trail: {args.periods} periods x {args.events} records under {args.out}", flush=True)
        t0 = time.perf_counter()
        built = build(args.out, args.periods, args.events)
        print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)
    else:
        built = load(args.out)
    facts = trail_facts(built.dest)
    warm(built.data_dir)
    compile_sources()
    print(f"trail: {facts['digests']:.0f} digest files, {facts['logs']:.0f} log files, "
          f"{facts['raw_mb']:.1f} MB uncompressed logs, {facts['stored_mb']:.1f} MB stored; "
          f"window {built.start} .. {built.end}")

    with tempfile.TemporaryDirectory(prefix="bench-seaweed-") as scratch:
        plain = SeaweedS3(Path(scratch), built.creds["rootAccessKeyId"], built.creds["rootSecretAccessKey"])
        plain.start()
        try:
            t0 = time.perf_counter()
            uploaded = upload_plain(built.dest, BUCKET, plain)
            print(f"SeaweedFS {plain.endpoint}: started in {plain.startup_s:.2f} s, "
                  f"{uploaded / 1e6:.1f} MB uploaded in {time.perf_counter() - t0:.1f} s", flush=True)
            best, summaries, code = run_rounds(built, facts, plain, args.repeat)
        finally:
            plain.stop()
    report(best, facts, summaries, code)


def aws_env(built: Built, cloudtrail: str, s3: str) -> dict[str, str]:
    return {**os.environ, "AWS_ENDPOINT_URL_CLOUDTRAIL": cloudtrail, "AWS_ENDPOINT_URL_S3": s3,
            "AWS_DEFAULT_REGION": built.creds["region"], "AWS_ACCESS_KEY_ID": built.creds["rootAccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": built.creds["rootSecretAccessKey"],
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def run_rounds(built: Built, facts: dict[str, float], plain: SeaweedS3,
               repeat: int) -> tuple[dict[str, float], dict[str, str], int]:
    server = Server(built.data_dir)
    server.creds = built.creds
    server.start()
    try:
        window = ["--start-time", built.start, "--end-time", built.end]
        validate_logs = [AWS, "cloudtrail", "validate-logs", "--trail-arn", built.arn, *window]
        local = [TRAILKEEPER, "validate", "--data-dir", str(built.data_dir), "--trail", TRAIL, *window]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "aws": (validate_logs, aws_env(built, server.endpoint, server.endpoint)),
            "plain": (validate_logs, aws_env(built, server.endpoint, plain.endpoint)),
            "full": ([*local, "--mode", "full"], dict(os.environ)),
            "stored": ([*local, "--mode", "stored"], dict(os.environ)),
        }
        check_s3_endpoint("aws", commands["aws"][1], built.creds["accountId"])
        check_s3_endpoint("plain", commands["plain"][1], IDENTITY_NAME)
        best = {name: float("inf") for name in commands}
        summaries: dict[str, str] = {}
        for round_ in range(repeat):
            for name, (argv, env) in commands.items():
                elapsed, proc = timed(argv, env)
                if argv[0] == AWS:
                    summaries[name] = check_aws(proc.stdout, facts)
                best[name] = min(best[name], elapsed)
                print(f"  round {round_ + 1} {name:<6} {elapsed:8.2f} s", flush=True)
    finally:
        code = server.terminate()
    return best, summaries, code


def report(best: dict[str, float], facts: dict[str, float], summaries: dict[str, str], server_exit: int) -> None:
    rate: Callable[[str], float] = lambda name: facts["raw_mb"] / best[name]  # noqa: E731
    for name, summary in summaries.items():
        print(f"AWS CLI ({name}): {summary}")
    print(f"server exited {server_exit}")
    for name in best:
        print(f"{name:<6} best {best[name]:8.2f} s  {rate(name):9.1f} MB/s uncompressed")
    full, stored = best["aws"] / best["full"], best["aws"] / best["stored"]
    slowdown = best["aws"] / best["plain"] - 1
    print(f"aws/full   = {full:6.1f}x  (goal >= {GOAL_FULL:.0f}x: {'met' if full >= GOAL_FULL else 'NOT met'})")
    print(f"aws/stored = {stored:6.1f}x  (goal >= {GOAL_STORED:.0f}x: {'met' if stored >= GOAL_STORED else 'NOT met'})")
    met = "met" if slowdown <= GOAL_GATEWAY_SLOWDOWN else "NOT met"
    print(f"aws via gateway / aws via plain S3 = {best['aws'] / best['plain']:.3f}: gateway slowdown {slowdown:+.1%} "
          f"(goal <= {GOAL_GATEWAY_SLOWDOWN:.0%}: {met})")


if __name__ == "__main__":
    main()
