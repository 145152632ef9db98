"""Event-history benchmark: indexing rate and LookupEvents latency over a large history.

    .venv/bin/python bench/bench_lookup.py --events 2000000

Builds (or reuses) bench/out/history-<N>.db from deterministic synthetic CloudTrail records
with realistic cardinalities, then times 100 lookups per attribute (half with values drawn
from random stored events, so frequent values dominate; half drawn uniformly from the
value pools, so rare values show up) and time-range-only lookups.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from trailkeeper.clock import iso_seconds
from trailkeeper.history.base import LOOKUP_ATTRIBUTES, LookupQuery
from trailkeeper.history.sqlite import SqliteHistory
from trailkeeper.records import lookup_values

OUT = Path(__file__).parent / "out"
ACCOUNT = "123456789012"
END = datetime(2025, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=90)
READ_PREFIXES = ("Get", "List", "Describe", "Lookup", "Head")
VERBS = ("Get", "List", "Describe", "Create", "Delete", "Update", "Put", "Start", "Stop", "Attach")


@dataclass(frozen=True)
class Pools:
    users: list[str]
    keys: list[list[str]]
    names: list[str]
    sources: list[str]
    types: list[str]
    resources: list[str]


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return list(itertools.accumulate(1 / (i + 1) ** s for i in range(n)))


def make_pools(rng: random.Random) -> Pools:
    users = [f"user-{i:03d}" for i in range(200)]
    keys = [[f"AKIA{rng.getrandbits(64):016X}" for _ in range(2)] for _ in users]
    sources = [f"svc{i:02d}.amazonaws.com" for i in range(30)]
    names = [f"{VERBS[i % len(VERBS)]}Thing{i:03d}" for i in range(300)]
    types = [f"AWS::Svc{i % 30:02d}::Type{i:02d}" for i in range(40)]
    resources = [f"arn:aws:svc:eu-west-1:{ACCOUNT}:thing/res-{i:06d}" for i in range(200_000)]
    return Pools(users, keys, names, sources, types, resources)


def records(n: int, seed: int = 7) -> Iterator[bytes]:
    """n synthetic records, eventTime increasing over SPAN with two minutes of jitter."""
    rng = random.Random(seed)
    pools = make_pools(rng)
    cum = {k: zipf_weights(len(v)) for k, v in vars(pools).items()}
    step = SPAN.total_seconds() / max(n, 1)
    start = (END - SPAN).timestamp()
    for i in range(n):
        when = datetime.fromtimestamp(start + i * step + rng.uniform(-120, 120), UTC)
        yield orjson.dumps(one_record(rng, pools, cum, when))


def one_record(
    rng: random.Random, pools: Pools, cum: dict[str, list[float]], when: datetime
) -> dict[str, Any]:
    def pick(name: str) -> int:
        return rng.choices(range(len(getattr(pools, name))), cum_weights=cum[name])[0]

    user = pick("users")
    name = pools.names[pick("names")]
    record: dict[str, Any] = {
        "eventVersion": "1.11",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": f"AIDA{user:016d}",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{pools.users[user]}",
            "accountId": ACCOUNT,
            "accessKeyId": pools.keys[user][rng.getrandbits(1)],
            "userName": pools.users[user],
        },
        "eventTime": iso_seconds(when),
        "eventSource": pools.sources[pick("sources")],
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": f"198.51.{rng.getrandbits(8)}.{rng.getrandbits(8)}",
        "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.5 exe/x86_64.ubuntu.22",
        "requestParameters": {"thingName": f"thing-{rng.getrandbits(20)}", "maxItems": 100},
        "responseElements": None,
        "requestID": f"{rng.getrandbits(128):032x}",
        "eventID": _uuid(rng, int(when.timestamp() * 1000)),
        "readOnly": name.startswith(READ_PREFIXES),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": "svc.eu-west-1.amazonaws.com",
        },
    }
    if rng.random() < 0.4:
        record["resources"] = [
            {"ARN": pools.resources[pick("resources")], "accountId": ACCOUNT,
             "type": pools.types[pick("types")]}
            for _ in range(rng.choice((1, 1, 2)))
        ]  # fmt: skip
    return record


def _uuid(rng: random.Random, ms: int) -> str:
    """A time-ordered ID shaped like the server's (UUID version 7: milliseconds, then random)."""
    t = f"{ms:012x}"
    h = f"{rng.getrandbits(80):020x}"
    return f"{t[:8]}-{t[8:]}-7{h[:3]}-a{h[3:6]}-{h[6:18]}"


def build(history: SqliteHistory, n: int, batch: int) -> None:
    done = history.count()
    if done >= n:
        print(f"reusing {done:,} indexed events")
        return
    source = itertools.islice(records(n), done, None)
    spent = 0.0
    window_start, window_done = time.perf_counter(), done
    seq = history.last_indexed_seq() + 1
    while chunk := list(itertools.islice(source, batch)):
        entries = [(seq + i, body) for i, body in enumerate(chunk)]
        seq += len(chunk)
        began = time.perf_counter()
        history.index(entries)
        spent += time.perf_counter() - began
        done += len(chunk)
        if done % 500_000 < batch:
            now = time.perf_counter()
            rate = (done - window_done) / (now - window_start)
            print(f"  {done:>11,} events  index() {done / max(spent, 1e-9):,.0f}/s cumulative"
                  f"  (incl. generation {rate:,.0f}/s)", flush=True)  # fmt: skip
    print(f"indexing: {n:,} events, index() time {spent:.1f} s -> {n / spent:,.0f} events/s")


def sample_values(history: SqliteHistory, n: int, rng: random.Random) -> dict[str, list[str]]:
    """Per attribute: 50 values of random stored events and 50 uniform from the pools."""
    pools = make_pools(random.Random(7))
    seqs = [rng.randrange(n) for _ in range(50)]
    conn = history._reader()  # bench only: read a few records by seq
    bodies = [conn.execute("SELECT body FROM events WHERE seq=?", (s,)).fetchone()[0] for s in seqs]
    picked: dict[str, list[str]] = {a: [] for a in LOOKUP_ATTRIBUTES}
    for body in bodies:
        values = lookup_values(orjson.loads(body))
        for attribute in LOOKUP_ATTRIBUTES:
            if attribute in values:
                picked[attribute].append(rng.choice(values[attribute]))
    uniform: dict[str, Callable[[], str]] = {
        "EventId": lambda: rng.choice(picked["EventId"]),
        "EventName": lambda: rng.choice(pools.names),
        "ReadOnly": lambda: rng.choice(("true", "false")),
        "Username": lambda: rng.choice(pools.users),
        "ResourceType": lambda: rng.choice(pools.types),
        "ResourceName": lambda: rng.choice(pools.resources),
        "EventSource": lambda: rng.choice(pools.sources),
        "AccessKeyId": lambda: rng.choice(rng.choice(pools.keys)),
    }
    for attribute, draw in uniform.items():
        while len(picked[attribute]) < 100:
            picked[attribute].append(draw())
    return picked


def timed(history: SqliteHistory, queries: list[LookupQuery]) -> tuple[float, float, float]:
    times, hits = [], []
    for query in queries:
        began = time.perf_counter()
        page = history.lookup(query)
        times.append((time.perf_counter() - began) * 1000)
        hits.append(len(page.events))
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * len(times)) - 1)]
    return statistics.median(times), p99, statistics.mean(hits)


def bench_lookups(history: SqliteHistory, n: int) -> None:
    rng = random.Random(11)
    values = sample_values(history, n, rng)
    start, end = END - SPAN - timedelta(days=1), END + timedelta(days=1)
    began = time.perf_counter()
    history.lookup(LookupQuery(None, None, start, end, 1))
    print(
        f"first lookup (opens the reader connection): {(time.perf_counter() - began) * 1000:.1f} ms"
    )
    print(f"{'lookup':<22}{'p50 ms':>9}{'p99 ms':>9}{'avg hits':>10}")
    for attribute in LOOKUP_ATTRIBUTES:
        queries = [LookupQuery(attribute, v, start, end) for v in values[attribute]]
        p50, p99, hits = timed(history, queries)
        print(f"{attribute:<22}{p50:>9.2f}{p99:>9.2f}{hits:>10.1f}")
    windows = []
    for _ in range(100):
        lo = END - SPAN + timedelta(seconds=rng.uniform(0, SPAN.total_seconds()))
        windows.append(
            LookupQuery(None, None, lo, lo + timedelta(hours=rng.choice((1, 24, 24 * 7))))
        )
    p50, p99, hits = timed(history, windows)
    print(f"{'(time range only)':<22}{p50:>9.2f}{p99:>9.2f}{hits:>10.1f}")
    pages = [LookupQuery("EventSource", values["EventSource"][0], start, end)]
    for _ in range(20):
        page = history.lookup(pages[-1])
        q = pages[-1]
        pages.append(
            LookupQuery(q.attribute_key, q.attribute_value, q.start, q.end, 50, page.next_token)
        )
    p50, p99, hits = timed(history, pages[1:])
    print(f"{'(EventSource paging)':<22}{p50:>9.2f}{p99:>9.2f}{hits:>10.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rebuild", action="store_true", help="delete and rebuild the history")
    args = parser.parse_args(argv)
    path = args.out / f"history-{args.events}.db"
    if args.rebuild:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    history = SqliteHistory(path)
    try:
        build(history, args.events, args.batch)
        size = sum(
            Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()
        )
        print(f"database: {path} {size / 2**20:,.0f} MiB")
        bench_lookups(history, args.events)
    finally:
        history.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
