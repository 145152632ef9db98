"""FilterLogEvents over a large log group: time to the first page (issue #11: ≤ 1 s over
1,000,000 stored events with a JSON pattern).

    .venv/bin/python -m bench.bench_filter_log_events --events 1000000

Builds (or reuses) bench/out/loggroup-<N>.db: one group, 10 streams, the public CloudTrail
samples cycled to N events one second apart, each with its own eventID. Then asks, through
`LogGroups.filter_events` (what the API handler calls), for the first page of:

- a rare event pinned by name (`$.eventName = StopLogging`: the pattern index narrows the scan
  in SQL), a common one (`$.eventSource = ec2.amazonaws.com`), a glob no index can use
  (`$.errorCode = "*UnauthorizedOperation"`), a CIS filter, a name that never occurs, and a
  glob that never matches (the search budget answers with an empty page and a token);

and prints, per pattern, the first page's time, how many events it holds, and whether a token
follows. The reference measured in the same run is a plain scan: the same pattern evaluated
over every row read back in SQLite order, as the handler would do with no index and no budget.
"""

from __future__ import annotations

import argparse
import statistics
import time
from itertools import cycle, islice
from pathlib import Path

import orjson

from bench.bench_filter_eval import records
from trailkeeper._internal.sqlite import Database
from trailkeeper.clock import FrozenClock
from trailkeeper.monitoring.cis import find_control
from trailkeeper.monitoring.filterpattern import parse
from trailkeeper.monitoring.loggroups import LogGroups
from trailkeeper.monitoring.loggroups_store import NewEvent, SqliteLogGroupRepository

OUT = Path(__file__).parent / "out"
GROUP = "bench/trail"
START_MS = 1_760_000_000_000
PATTERNS = {
    "rare, by name": '{ $.eventName = "StopLogging" }',
    "common source": '{ $.eventSource = "ec2.amazonaws.com" }',
    "glob, no index": '{ $.errorCode = "*UnauthorizedOperation" }',
    "CIS 4.5": find_control("4.5").pattern,
    "never matches": '{ $.eventName = "NoSuchEventName" }',
    "none, no index": '{ $.errorCode = "*NeverSeen*" }',
}


def build(path: Path, count: int) -> None:
    from datetime import UTC, datetime

    path.parent.mkdir(parents=True, exist_ok=True)
    repo = SqliteLogGroupRepository(Database(path))
    logs = LogGroups(repo, FrozenClock(datetime.fromtimestamp(START_MS / 1000, UTC)), "123456789012", "eu-west-1")
    logs.create_group(GROUP)
    for stream in range(10):
        logs.create_stream(GROUP, f"s{stream}")
    base = records()
    batch: list[NewEvent] = []
    for i, record in enumerate(islice(cycle(base), count)):
        message = orjson.dumps({**record, "eventID": f"bench-{i}"}).decode()
        batch.append(NewEvent(START_MS + i * 1000, message))
        if len(batch) == 10_000:
            repo.append_events(GROUP, f"s{(i // 10_000) % 10}", batch, START_MS)
            batch = []
    if batch:
        repo.append_events(GROUP, "s0", batch, START_MS)


def first_page(logs: LogGroups, pattern: str) -> tuple[float, int, bool]:
    started = time.perf_counter()
    page = logs.filter_events(GROUP, pattern)
    return time.perf_counter() - started, len(page.events), page.next_token is not None


def plain_scan(db: Database, pattern: str, limit: int = 10_000) -> tuple[float, int]:
    compiled = parse(pattern)
    started = time.perf_counter()
    found = 0
    for (message,) in db.query("SELECT message FROM log_events WHERE group_name = ? ORDER BY timestamp_ms, seq",
                               (GROUP,)):
        if compiled.match(message) is not None:
            found += 1
            if found == limit:
                break
    return time.perf_counter() - started, found


def main() -> None:
    from datetime import UTC, datetime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = OUT / f"loggroup-{args.events}.db"
    if not path.exists():
        started = time.perf_counter()
        build(path, args.events)
        print(f"built {path.name}: {args.events:,} events in {time.perf_counter() - started:.0f} s")
    db = Database(path)
    logs = LogGroups(SqliteLogGroupRepository(db), FrozenClock(datetime.now(UTC)), "123456789012", "eu-west-1")
    print(f"{'pattern':<16} {'first page p50':>15} {'max':>8} {'events':>8} {'token':>6} {'plain scan':>11} "
          f"{'ratio':>6}")
    for label, pattern in PATTERNS.items():
        times, size, more = [], 0, False
        for _ in range(args.rounds):
            took, size, more = first_page(logs, pattern)
            times.append(took)
        plain, _ = plain_scan(db, pattern)
        p50 = statistics.median(times)
        print(f"{label:<16} {p50:>14.3f}s {max(times):>7.3f}s {size:>8,} {'yes' if more else 'no':>6} "
              f"{plain:>10.2f}s {plain / p50:>5.1f}x")


if __name__ == "__main__":
    main()
