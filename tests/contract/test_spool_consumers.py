"""The contract every consumer of the spool passes, run over the history indexer, a trail worker
and the generic SpoolConsumer:
- a crash between a step's effect and its offset commit: the records are offered again, none
  is lost, and the re-delivery has no duplicate effect;
- re-delivery of what was consumed long ago has no duplicate effect;
- a record the consumer cannot process is quarantined by the mechanism and the consumer goes on.
"""

from __future__ import annotations

import contextlib
import gzip
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper.consumers.base import Consumer, SqliteOffsets
from trailkeeper.consumers.spool_consumer import SpoolConsumer, Spooled, Yield
from trailkeeper.delivery import TrailWorker
from trailkeeper.errors import StorageError
from trailkeeper.storage.faults import FaultyStore
from trailkeeper.trails import TrailConfig


@dataclass
class Harness:
    pipeline: Pipeline
    restart: Callable[[], Consumer]  # the consumer again, from its durable state only (a new process)
    effects: Callable[[], list[str]]  # the eventIDs its effect holds, repetitions included
    crash_next_commit: Callable[[], None]  # the next step dies after its effect, before its commit
    name: str
    crashed: Callable[[], bool]  # whether the crash prepared by crash_next_commit has happened


class _CrashingOffsets(SqliteOffsets):
    crash = False

    def commit(self, name: str, next_seq: int) -> None:
        if self.crash:
            self.crash = False
            raise RuntimeError("killed between the effect and the offset commit")
        super().commit(name, next_seq)


def _generic(p: Pipeline, tmp_path: Path) -> Harness:
    effects = sqlite3.connect(tmp_path / "effects.db", isolation_level=None, check_same_thread=False)
    effects.execute("CREATE TABLE seen (seq INTEGER PRIMARY KEY, event_id TEXT)")

    def handle(batch: list[Spooled]) -> None:  # idempotent: keyed by the spool seq
        for item in batch:
            if item.record.get("eventName") == "Unprocessable":
                raise ValueError("this handler cannot take it")
            effects.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (item.seq, item.record.get("eventID")))

    offsets = _CrashingOffsets(p.service.state_db)

    def make() -> Consumer:
        return SpoolConsumer("contract-generic", p.service.spool, offsets, handle, p.service.set_aside, start_at=1)

    def crash() -> None:
        offsets.crash = True

    return Harness(p, make, lambda: [row[0] for row in effects.execute("SELECT event_id FROM seen")], crash,
                   "contract-generic", lambda: not offsets.crash)


def _history(p: Pipeline, tmp_path: Path) -> Harness:
    consumer = p.service.consumers.get("history-indexer")
    assert consumer is not None

    def effects() -> list[str]:
        return [orjson.loads(body)["eventID"] for body, in p.service.history._conn.execute("SELECT body FROM events")]

    def crash() -> None:
        # Its effect and its offset are one transaction: a crash cannot fall between them. The
        # nearest case: a restart that believes itself behind (offered everything again).
        p.service._indexed_seq = 0

    return Harness(p, lambda: consumer, effects, crash, "history-indexer", lambda: True)


def _trail(p: Pipeline, tmp_path: Path) -> Harness:
    dest = tmp_path / "dest"
    p.service.create_trail(TrailConfig(name="contract", bucket="contract-logs", destination=str(dest),
                                       flush_interval_s=1, digest_interval_s=60))
    p.service.start_logging("contract")
    store = p.service.open_store(p.service.get_trail("contract"))
    assert isinstance(store, FaultyStore)

    def effects() -> list[str]:
        ids: list[str] = []
        for path in sorted(dest.rglob("*.json.gz")):
            ids += [r["eventID"] for r in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]]
        return ids

    def restart() -> Consumer:
        worker = p.service._workers["contract"]
        fresh = TrailWorker("contract", worker.ctx)  # state from the database only
        p.service.consumers.remove(worker.consumer_name)
        p.service._workers["contract"] = fresh
        p.service.consumers.add(fresh, own_thread=True)
        return fresh

    def crash() -> None:  # the log file lands; the state commit never happens
        store.fail("put", after=True, key_contains="/CloudTrail/", times=1)

    return Harness(p, restart, effects, crash, "trail-contract", lambda: store.struck == 1)


KINDS = {"generic": _generic, "history-indexer": _history, "trail-worker": _trail}


@pytest.fixture(params=list(KINDS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with open_pipeline(tmp_path, wrap_store=FaultyStore) as p:
        yield KINDS[request.param](p, tmp_path)


def _drain(h: Harness, consumer: Consumer) -> None:
    for _ in range(20):
        h.pipeline.clock.advance(timedelta(seconds=2))  # a trail's flush interval passes
        progressed = False
        try:
            progressed = consumer.step()
        except (StorageError, RuntimeError):
            progressed = True
        if not progressed and consumer.needed() in (None, h.pipeline.service.spool.next_seq()):
            return


def _ingest(h: Harness, n: int, name: str = "Contract") -> list[str]:
    return h.pipeline.ingest([app_event(i, h.pipeline.clock.now(), name) for i in range(n)])


def test_a_crash_between_effect_and_commit_redelivers_without_loss_or_duplicate(harness: Harness) -> None:
    consumer = harness.restart()
    first = _ingest(harness, 5)
    harness.crash_next_commit()
    for _ in range(5):  # until the batch is due: its effect lands, its commit fails
        harness.pipeline.clock.advance(timedelta(seconds=2))
        with contextlib.suppress(StorageError, RuntimeError):
            consumer.step()
        if harness.crashed():
            break
    assert harness.crashed()
    consumer = harness.restart()  # the process died: only durable state is left
    second = _ingest(harness, 5)
    _drain(harness, consumer)
    effects = harness.effects()
    assert set(first + second) <= set(effects)
    assert len(effects) == len(set(effects)), "a re-delivered record had its effect twice"
    assert consumer.needed() in (None, harness.pipeline.service.spool.next_seq())


def test_redelivery_of_old_records_has_no_duplicate_effect(harness: Harness) -> None:
    consumer = harness.restart()
    ids = _ingest(harness, 8)
    _drain(harness, consumer)
    harness.crash_next_commit()  # for the history: it now believes itself at the start
    consumer = harness.restart()
    _drain(harness, consumer)
    effects = harness.effects()
    assert set(ids) <= set(effects) and len(effects) == len(set(effects))


def test_a_record_it_cannot_process_is_quarantined_and_the_consumer_goes_on(harness: Harness) -> None:
    consumer = harness.restart()
    before = _ingest(harness, 3)
    poison_seq = harness.pipeline.service.spool.next_seq()
    harness.pipeline.service.spool.append([b"\xff not a record"])
    after = _ingest(harness, 3)
    _drain(harness, consumer)
    effects = harness.effects()
    assert set(before + after) <= set(effects)
    entries = harness.pipeline.service.quarantine.entries()
    assert any(e.seq == poison_seq and e.consumer == harness.name for e in entries), entries
    assert consumer.needed() in (None, harness.pipeline.service.spool.next_seq())


def test_the_generic_consumer_sets_aside_what_its_handler_refuses(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as p:
        h = _generic(p, tmp_path)
        consumer = h.restart()
        ids = p.ingest([app_event(0, p.clock.now()), app_event(1, p.clock.now(), "Unprocessable"),
                        app_event(2, p.clock.now())])
        _drain(h, consumer)
        assert [i for i in h.effects() if i in ids] == [ids[0], ids[2]]
        [refused] = [e for e in p.service.quarantine.entries() if e.consumer == "contract-generic"]
        assert "ValueError: this handler cannot take it" in refused.reason


def test_an_outage_is_retried_never_quarantined(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as p:
        failing = [True]

        def handle(batch: list[Spooled]) -> None:
            if failing[0]:
                raise StorageError("the destination is down", "wait")

        consumer = SpoolConsumer("contract-outage", p.service.spool, SqliteOffsets(p.service.state_db), handle,
                                 p.service.set_aside, start_at=p.service.spool.next_seq())
        p.ingest([app_event(0, p.clock.now())])
        offset = consumer.needed()
        with pytest.raises(StorageError):
            consumer.step()
        assert consumer.needed() == offset and not p.service.quarantine.entries()
        failing[0] = False
        assert consumer.step() and consumer.needed() == p.service.spool.next_seq()


@pytest.mark.parametrize(("before", "after", "paused"), [
    pytest.param(30_000, 40_000, True, id="behind-and-falling-further-behind"),
    pytest.param(30_000, 25_000, False, id="behind-but-catching-up"),
    pytest.param(30_000, 30_000, False, id="behind-and-holding"),
    pytest.param(1_000, 15_000, False, id="growing-but-under-the-threshold"),
])
def test_a_consumer_yields_to_ingest_only_while_falling_behind(before: int, after: int, paused: bool) -> None:
    rule = Yield(behind=20_000, duty=0.2)
    assert rule.pause_after(0.1, before, after) == pytest.approx(0.4 if paused else 0.0)


def test_a_yielding_consumer_pauses_while_records_outrun_it_and_never_loses_one(tmp_path: Path) -> None:
    """Its steps pause (never skip) while its backlog grows past the threshold; once arrivals
    stop it consumes everything without pausing."""
    with open_pipeline(tmp_path) as p:
        seen: list[int] = []
        pauses: list[float] = []
        spool = p.service.spool
        more = [app_event(i, p.clock.now()) for i in range(4)]

        def handle(batch: Sequence[Spooled]) -> None:
            seen.extend(item.seq for item in batch)
            if more:
                p.ingest([more.pop()] * 3)  # arrivals outrun the consumer while it works

        consumer = SpoolConsumer("contract-yield", spool, SqliteOffsets(p.service.state_db), handle,
                                 p.service.set_aside, start_at=spool.next_seq(), batch_records=2,
                                 yield_to_ingest=Yield(behind=1, duty=0.5), sleep=pauses.append)
        p.ingest([app_event(9, p.clock.now())] * 3)
        while consumer.step():
            pass
        assert len(pauses) >= 2 and all(pause >= 0 for pause in pauses)
        assert seen == list(range(seen[0], spool.next_seq()))  # every record once, in order
        assert consumer.needed() == spool.next_seq()
