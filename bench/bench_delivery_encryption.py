"""Delivery throughput with envelope encryption on versus off, local folder versus SeaweedFS.

Issue #4: "delivery throughput with encryption on versus off, and local folder versus
SeaweedFS, in the same run; goal: encryption costs <= 10 % of delivery throughput."

Builds once (cached under bench/out/delivery-encryption/) a data directory whose spool holds
N records of ~1 KB (CloudTrail-like text, so gzip shrinks them about as much as real logs)
ingested through `Service.record`, already indexed into the history, plus a KMS key. No trail
exists yet, so nothing of it is delivered.

Each run clones that data directory (full spool segments hard-linked: they are never written
again; everything else copied), opens a foreground `Service` on it, creates one trail
(validation on, as in real use) for its configuration and points the trail's offset at the
first bench record, as if the trail had been logging while they arrived. Then it times
`Service.flush`: the real TrailWorker delivering the whole backlog (spool read, event
selection, log build, gzip, seal for encrypted trails, create-exclusive put, state commit),
with the default batch limits (10,000 events / 5 MiB). After the clock stops, the run reads
every delivered log back through the trail's store and checks that each bench event ID is in
exactly one file and that encrypted trails wrote envelopes (opened with the KMS) and plain
trails wrote gzip.

Configurations: folder/plain, folder/encrypted, seaweedfs/plain, seaweedfs/encrypted, the
SeaweedFS ones into a fresh Object Lock bucket each run (COMPLIANCE retention, as the WORM
destination is meant to be used). Runs are interleaved, in forward then reverse order.

Usage: python -m bench.bench_delivery_encryption [--events 300000] [--repeat 3]
       [--configs folder/plain,folder/encrypted,...] [--object-lock-days 1] [--rebuild]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from tests.pipeline import open_pipeline  # noqa: E402
from tests.seaweed import SeaweedS3  # noqa: E402

from trailkeeper import envelope  # noqa: E402
from trailkeeper._internal.gzipio import gunzip_strict, gzip_fast  # noqa: E402
from trailkeeper.clock import FrozenClock  # noqa: E402
from trailkeeper.config import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_EVENTS, load_config  # noqa: E402
from trailkeeper.delivery import build_log_file  # noqa: E402
from trailkeeper.layout import log_prefix  # noqa: E402
from trailkeeper.service import Service  # noqa: E402
from trailkeeper.storage.base import ObjectStore  # noqa: E402
from trailkeeper.storage.s3 import S3Settings  # noqa: E402
from trailkeeper.trails import TrailConfig  # noqa: E402

TRAIL = "bench"
INGEST_BATCH = 100  # the API's largest batch
META = "meta.json"
IDS = "ids.txt"
GOAL_COST = 0.10
CONFIGS = ("folder/plain", "folder/encrypted", "seaweedfs/plain", "seaweedfs/encrypted")
SEGMENT_SUFFIX = ".seg"
# Management events and every S3 object data event (the bench records include both kinds).
SELECTORS: tuple[dict[str, Any], ...] = (
    {"ReadWriteType": "All", "IncludeManagementEvents": True, "ExcludeManagementEventSources": [],
     "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]},
)
GZIP_MAGIC = b"\x1f\x8b"

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
          "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
          "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "reports", "invoices", "backup",
          "staging", "prod", "eu-west-1", "build", "artifact", "tmp", "logs", "2026", "q3", "final")
_CALLS = (("s3.amazonaws.com", "GetObject", "Data"), ("s3.amazonaws.com", "PutObject", "Data"),
          ("ec2.amazonaws.com", "DescribeInstances", "Management"), ("sts.amazonaws.com", "AssumeRole", "Management"),
          ("kms.amazonaws.com", "Decrypt", "Management"), ("iam.amazonaws.com", "CreateUser", "Management"),
          ("app.example.com", "Login", "Management"))
_AGENTS = ("aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.ubuntu.22 prompt/off command/s3.cp",
           "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.8",
           "aws-sdk-java/2.25.16 Linux/5.10.213 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10",
           "console.amazonaws.com")


@dataclass(frozen=True)
class Spooled:
    """The cached, not yet delivered backlog."""

    data_dir: Path
    first_seq: int  # first bench record
    end_seq: int  # one past the last bench record
    key_arn: str
    ids: frozenset[str]
    spooled_bytes: int


@dataclass(frozen=True)
class RunResult:
    config: str
    seconds: float
    events: int  # records delivered (bench records plus the service's own few)
    files: int
    inflated_bytes: int
    stored_bytes: int
    clone_seconds: float
    check_seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.inflated_bytes / 1e6 / self.seconds


# ---- the backlog ----------------------------------------------------------------------------
def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def bench_event(rng: random.Random, i: int, when: datetime) -> dict[str, Any]:
    """One CloudTrail-like record; the server adds identity, IDs and origin (~1 KB in all).
    Text from a small vocabulary with random ids mixed in compresses about like real logs."""
    source, name, category = rng.choice(_CALLS)
    bucket = f"{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{rng.randrange(100)}"
    key = "/".join(rng.choice(_WORDS) for _ in range(3)) + f"/{rng.getrandbits(40):010x}.json"
    return {
        "eventName": name,
        "eventSource": source,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventCategory": category,
        "sourceIPAddress": f"198.51.{rng.randrange(256)}.{rng.randrange(256)}",
        "userAgent": rng.choice(_AGENTS),
        "requestParameters": {"bucketName": bucket, "key": key, "attempt": i,
                              "x-amz-acl": rng.choice(("private", "bucket-owner-full-control")),
                              "note": _words(rng, 40)},
        "responseElements": {"x-amz-version-id": f"{rng.getrandbits(128):032x}",
                             "requestId": f"{rng.getrandbits(64):016X}",
                             "status": rng.choice(("ok", "ok", "ok", "throttled"))},
        "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"}],
        "readOnly": name.startswith(("Get", "Describe", "Decrypt")),
    }


def build(out: Path, events: int) -> Spooled:
    """Ingest `events` records into a fresh data directory and index them; deliver nothing."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = random.Random(4)
    ids: list[str] = []
    with open_pipeline(out) as p:
        key = p.service.kms.create_key("bench: delivered log files")
        first = p.service.spool.next_seq()
        for start in range(0, events, INGEST_BATCH):
            count = min(INGEST_BATCH, events - start)
            ids += p.ingest([bench_event(rng, start + j, p.clock.now()) for j in range(count)])
            p.clock.advance(timedelta(milliseconds=10))  # event times spread over the files
        end = p.service.spool.next_seq()
        # The history indexes in its own consumer; done here, so a run's pump has none to do.
        p.service.index_pending()
        spooled = _spool_bytes(p.service, first, end)
    if end - first != events:
        raise SystemExit(f"spooled {end - first} records for {events} events: another writer used the spool")
    (out / IDS).write_text("\n".join(ids))
    meta = {"first_seq": first, "end_seq": end, "key_arn": key.arn, "spooled_bytes": spooled}
    (out / META).write_text(json.dumps(meta))
    return load(out)


def _spool_bytes(service: Service, first: int, end: int) -> int:
    total, seq = 0, first
    while seq < end:
        chunk = service.spool.read(seq, min(10_000, end - seq), 1 << 62)
        total += sum(len(body) for s, body in chunk if s < end)
        seq = chunk[-1][0] + 1
    return total


def load(out: Path) -> Spooled:
    meta = json.loads((out / META).read_text())
    ids = frozenset((out / IDS).read_text().split("\n"))
    return Spooled(out / "data", int(meta["first_seq"]), int(meta["end_seq"]), str(meta["key_arn"]),
                   ids, int(meta["spooled_bytes"]))


def clone(src: Path, dst: Path) -> None:
    """Copy a data directory; spool segments other than the newest are hard-linked, since
    the spool only ever appends to its newest segment (trimming needs the maintenance
    thread, which a foreground service does not run)."""
    segments = sorted((src / "spool").glob("*" + SEGMENT_SUFFIX))
    newest = segments[-1] if segments else None

    def copy(s: str, d: str) -> object:
        path = Path(s)
        if path.suffix == SEGMENT_SUFFIX and path != newest:
            os.link(s, d)
            return d
        return shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=copy)


# ---- one run --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where a configuration delivers."""

    config: str
    scratch: Path
    s3: SeaweedS3 | None
    object_lock_days: int
    bucket: str

    @property
    def encrypted(self) -> bool:
        return self.config.endswith("/encrypted")

    def settings(self) -> S3Settings | None:
        if self.s3 is None:
            return None
        return S3Settings(endpoint_url=self.s3.endpoint, region="us-east-1", access_key_id=self.s3.access_key,
                          secret_access_key=self.s3.secret_key)

    def prepare(self, key_arn: str) -> TrailConfig:
        """The trail of this configuration (and its bucket, on SeaweedFS)."""
        kms = key_arn if self.encrypted else ""
        if self.s3 is None:
            return TrailConfig(name=TRAIL, bucket=self.bucket, destination=str(self.scratch / "dest"),
                               validation=True, selectors=SELECTORS, kms_key_id=kms)
        self.s3.client().create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=self.object_lock_days > 0)
        return TrailConfig(name=TRAIL, bucket=self.bucket, destination=f"s3://{self.bucket}", validation=True,
                           selectors=SELECTORS, kms_key_id=kms, object_lock_days=self.object_lock_days)


def run_once(spooled: Spooled, target: Target, batch_events: int, batch_bytes: int) -> RunResult:
    data_dir = target.scratch / "data"
    t0 = time.perf_counter()
    clone(spooled.data_dir, data_dir)
    os.sync()  # the clone's writeback must not land inside the timed part
    clone_s = time.perf_counter() - t0
    config = load_config(data_dir, default_bucket_root=target.scratch / "buckets", s3=target.settings(),
                         max_batch_events=batch_events, max_batch_bytes=batch_bytes)
    # Real time: Object Lock retention dates must lie in the future for SeaweedFS.
    service = Service(config, clock=FrozenClock(datetime.now(UTC)), background=False)
    service.start()
    try:
        trail = service.create_trail(target.prepare(spooled.key_arn))
        service.start_logging(TRAIL)
        # StartLogging begins at the spool's end; the bench backlog lies before it.
        state = service.trails.get(TRAIL).state
        service.trails.save_state(TRAIL, replace(state, offset_seq=spooled.first_seq))
        t0 = time.perf_counter()
        service.flush(0)
        seconds = time.perf_counter() - t0
        _check_caught_up(service)
        t0 = time.perf_counter()
        key_arn = spooled.key_arn if target.encrypted else None
        events, files, inflated, stored = check_delivered(service, service.open_store(trail), key_arn, spooled.ids)
        check_s = time.perf_counter() - t0
    finally:
        service.close(flush_timeout=1)
    return RunResult(target.config, seconds, events, files, inflated, stored, clone_s, check_s)


def _check_caught_up(service: Service) -> None:
    state = service.trails.get(TRAIL).state
    if state.offset_seq < service.spool.next_seq() or state.intent is not None:
        raise SystemExit(f"delivery stopped at seq {state.offset_seq} of {service.spool.next_seq()} "
                         f"(intent {state.intent}); last error: {state.latest_delivery_error or 'none'}")


def check_delivered(service: Service, store: ObjectStore, key_arn: str | None,
                    expected: frozenset[str]) -> tuple[int, int, int, int]:
    """Every expected event ID in exactly one log file; envelopes under `key_arn` if given,
    else gzip. Returns (records, files, inflated bytes, stored bytes)."""
    arn = service.trail_arn(TRAIL)
    seen: Counter[str] = Counter()
    files = inflated = stored = 0
    for key, data in _logs(service, store):
        files += 1
        stored += len(data)
        if key_arn is not None:
            if not envelope.is_envelope(data) or envelope.read_header(data).key_arn != key_arn:
                raise SystemExit(f"{key}: an encrypted trail wrote a file that is not an envelope under {key_arn}")
            data = envelope.open_(service.kms, data, envelope.log_context(arn, store.bucket, key))
        elif not data.startswith(GZIP_MAGIC):
            raise SystemExit(f"{key}: a plain trail wrote a file that is not gzip")
        body = gunzip_strict(data)
        inflated += len(body)
        seen.update(str(r["eventID"]) for r in orjson.loads(body)["Records"])
    twice = [i for i, n in seen.items() if n > 1]
    missing = expected - seen.keys()
    if twice or missing:
        raise SystemExit(f"{len(missing)} bench events undelivered, {len(twice)} delivered more than once "
                         f"(e.g. {sorted(missing)[:2]} {twice[:2]})")
    return seen.total(), files, inflated, stored


def _logs(service: Service, store: ObjectStore) -> Iterator[tuple[str, bytes]]:
    prefix = log_prefix("", service.account.account_id, service.account.region)
    for info in store.list(prefix):
        yield info.key, store.get(info.key).data


# ---- the sealing step alone ----------------------------------------------------------------
def _best_ms(action: Callable[[], object], reps: int = 7) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def measure_components(spooled: Spooled, scratch: Path, batch_events: int, batch_bytes: int) -> float:
    """Per log file, the step encryption adds next to steps every file pays, on one full
    batch of the backlog; returns the seal time (ms): what the throughput difference should
    be made of."""
    data_dir = scratch / "components"
    clone(spooled.data_dir, data_dir)
    config = load_config(data_dir, default_bucket_root=scratch / "buckets")
    service = Service(config, clock=FrozenClock(datetime.now(UTC)), background=False)
    service.start()
    try:
        batch = service.spool.read(spooled.first_seq, batch_events, batch_bytes)
        inflated = build_log_file([body for _, body in batch])
        gz = gzip_fast(inflated)
        context = envelope.log_context(service.trail_arn(TRAIL), "bench-bucket", "AWSLogs/bench.json.gz")
        aes = AESGCM(AESGCM.generate_key(256))
        ms = {
            "gzip": _best_ms(lambda: gzip_fast(inflated)),
            "sha256 inflated": _best_ms(lambda: hashlib.sha256(inflated).digest()),
            "seal": _best_ms(lambda: envelope.seal(service.kms, spooled.key_arn, gz, context)),
            "data key": _best_ms(lambda: service.kms.generate_data_key(spooled.key_arn, context, 32)),
            "AES-GCM": _best_ms(lambda: aes.encrypt(b"\0" * 12, gz, b"")),
            "sha256 stored": _best_ms(lambda: hashlib.sha256(gz).digest()),
        }
    finally:
        service.close(flush_timeout=1)
    print(f"one log file: {len(batch):,} records, {len(inflated) / 1e6:.2f} MB inflated, {len(gz) / 1e6:.2f} MB gzip; "
          "best of 7, ms: " + ", ".join(f"{name} {value:.2f}" for name, value in ms.items()))
    print(f"  seal = data key {ms['data key']:.2f} ms + AES-GCM {ms['AES-GCM']:.2f} ms "
          f"({len(gz) / 1e6 / ms['AES-GCM']:.2f} GB/s) + header and copies "
          f"{ms['seal'] - ms['data key'] - ms['AES-GCM']:.2f} ms")
    return ms["seal"]


# ---- rounds and report ----------------------------------------------------------------------
def run_rounds(spooled: Spooled, configs: list[str], repeat: int, scratch_root: Path, s3: SeaweedS3 | None,
               lock_days: int, batch_events: int, batch_bytes: int) -> dict[str, list[RunResult]]:
    results: dict[str, list[RunResult]] = {c: [] for c in configs}
    for round_ in range(repeat):
        # Forward, then backward (ABBA): a drift during the bench (SeaweedFS filling up, page
        # cache) favours neither side of a pair.
        order = configs if round_ % 2 == 0 else configs[::-1]
        for config in order:
            store = config.split("/")[0]
            bucket = f"bench-r{round_ + 1}-{config.replace('/', '-')}"
            with tempfile.TemporaryDirectory(prefix="run-", dir=scratch_root) as tmp:
                target = Target(config, Path(tmp), s3 if store == "seaweedfs" else None, lock_days, bucket)
                result = run_once(spooled, target, batch_events, batch_bytes)
            results[config].append(result)
            print(f"  round {round_ + 1} {config:<20} {result.seconds:6.2f} s  {result.events_per_s:9,.0f} events/s "
                  f"{result.mb_per_s:7.1f} MB/s  ({result.files} files, {result.stored_bytes / 1e6:.1f} MB stored; "
                  f"clone {result.clone_seconds:.1f} s, check {result.check_seconds:.1f} s)", flush=True)
    return results


def report(results: dict[str, list[RunResult]], seal_ms: float) -> None:
    print()
    print(f"{'configuration':<20} {'best s':>7} {'median s':>9} {'best events/s':>14} {'median events/s':>16} "
          f"{'best MB/s':>10} {'stored/inflated':>16}")
    for config, runs in results.items():
        best = min(runs, key=lambda r: r.seconds)
        median = statistics.median(r.seconds for r in runs)
        print(f"{config:<20} {best.seconds:7.2f} {median:9.2f} {best.events_per_s:14,.0f} "
              f"{best.events / median:16,.0f} {best.mb_per_s:10.1f} {best.stored_bytes / best.inflated_bytes:16.3f}")
    for store in ("folder", "seaweedfs"):
        plain, enc = results.get(f"{store}/plain"), results.get(f"{store}/encrypted")
        if not plain or not enc:
            continue
        best_cost = 1 - min(r.seconds for r in plain) / min(r.seconds for r in enc)
        median_cost = 1 - statistics.median(r.seconds for r in plain) / statistics.median(r.seconds for r in enc)
        met = "met" if best_cost <= GOAL_COST else "NOT met"
        print(f"encryption cost, {store:<9}: {best_cost:+6.1%} of throughput (best vs best), "
              f"{median_cost:+6.1%} (median vs median)  (goal <= {GOAL_COST:.0%}: {met})")
        fastest = min(plain, key=lambda r: r.seconds)
        sealing = seal_ms / 1e3 * fastest.files
        print(f"  seal alone: {fastest.files} files x {seal_ms:.2f} ms = {sealing:.3f} s "
              f"= {sealing / (fastest.seconds + sealing):.1%} of an encrypted run's time")


def parse_configs(text: str) -> list[str]:
    configs = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or not configs:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
    return configs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300_000, help="records in the backlog")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    ap.add_argument("--object-lock-days", type=int, default=1, help="SeaweedFS retention; 0: a plain bucket")
    ap.add_argument("--max-batch-events", type=int, default=DEFAULT_MAX_BATCH_EVENTS)
    ap.add_argument("--max-batch-bytes", type=int, default=DEFAULT_MAX_BATCH_BYTES)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "delivery-encryption")
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    configs = parse_configs(args.configs)
    started = time.perf_counter()

    spooled = load(args.out) if (args.out / META).exists() and not args.rebuild else None
    if spooled is None or spooled.end_seq - spooled.first_seq != args.events:
        print(f"building backlog: {args.events:,} records under {args.out}", flush=True)
        t0 = time.perf_counter()
        spooled = build(args.out, args.events)
        print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"backlog: {len(spooled.ids):,} records, {spooled.spooled_bytes / 1e6:.1f} MB spooled "
          f"({spooled.spooled_bytes / len(spooled.ids):.0f} B/record); batches of <= {args.max_batch_events:,} "
          f"events / {args.max_batch_bytes / 2**20:.0f} MiB; validation on; "
          f"SeaweedFS Object Lock {args.object_lock_days} day(s)", flush=True)

    with tempfile.TemporaryDirectory(prefix="runs-", dir=args.out) as scratch:
        s3 = None
        if any(c.startswith("seaweedfs/") for c in configs):
            s3 = SeaweedS3(Path(scratch) / "seaweed")
            s3.start()
            print(f"SeaweedFS {s3.endpoint} started in {s3.startup_s:.2f} s", flush=True)
        try:
            results = run_rounds(spooled, configs, args.repeat, Path(scratch), s3, args.object_lock_days,
                                 args.max_batch_events, args.max_batch_bytes)
        finally:
            if s3 is not None:
                s3.stop()
        print()
        seal_ms = measure_components(spooled, Path(scratch), args.max_batch_events, args.max_batch_bytes)
    report(results, seal_ms)
    print(f"bench wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
