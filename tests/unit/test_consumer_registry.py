"""The consumer registry: trimming below every consumer's offset, pumping, background threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trailkeeper.consumers.base import MemoryOffsets
from trailkeeper.consumers.registry import ConsumerRegistry
from trailkeeper.consumers.spool_consumer import SpoolConsumer, Spooled
from trailkeeper.spool import Spool


class Fixed:
    def __init__(self, name: str, needed: int | None) -> None:
        self.consumer_name, self._needed, self.steps = name, needed, 0

    def needed(self) -> int | None:
        return self._needed

    def step(self) -> bool:
        self.steps += 1
        return False


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool") as s:
        s.append([b'{"n":%d}' % i for i in range(10)])
        yield s


def test_the_floor_is_the_least_offset_and_ignores_consumers_that_need_nothing(spool: Spool) -> None:
    registry = ConsumerRegistry(spool)
    assert registry.trim_floor() == spool.next_seq() == 11
    registry.add(Fixed("a", 7))
    registry.add(Fixed("b", None))
    registry.add(Fixed("c", 4))
    assert registry.trim_floor() == 4
    registry.remove("c")
    assert registry.trim_floor() == 7
    with pytest.raises(ValueError, match="already registered"):
        registry.add(Fixed("a", 1))


def test_pump_steps_every_consumer_until_none_progresses(spool: Spool) -> None:
    registry = ConsumerRegistry(spool)
    seen: list[int] = []
    registry.add(SpoolConsumer("reader", spool, MemoryOffsets(), lambda batch: seen.extend(i.seq for i in batch),
                               lambda *a: None, start_at=1, batch_records=3))
    idle = Fixed("idle", None)
    registry.add(idle)
    registry.pump()
    assert seen == list(range(1, 11)) and idle.steps == 5  # 4 batches of <= 3, then a round with none


def test_a_background_consumer_survives_errors_and_follows_new_records(spool: Spool) -> None:
    registry = ConsumerRegistry(spool)
    seen: list[int] = []
    failures = [2]

    def handle(batch: list[Spooled]) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError("network down")  # an outage: waited out (with backoff), nothing set aside
        seen.extend(i.seq for i in batch)

    offsets = MemoryOffsets()
    registry.add(SpoolConsumer("follower", spool, offsets, handle, lambda *a: None, start_at=1))
    registry.start()
    try:
        spool.append([b'{"n":"late"}'])
        deadline = time.monotonic() + 10
        while offsets.get("follower") != spool.next_seq() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert offsets.get("follower") == spool.next_seq() == 12
        assert seen == list(range(1, 12))
        assert any(t.name == "consumer-follower" for t in threading.enumerate())
    finally:
        registry.stop()


class Holding:
    """A flushable consumer that, like a trail worker waiting for its flush interval, consumes
    only what it has been asked to flush."""

    def __init__(self, name: str, spool: Spool) -> None:
        self.consumer_name, self._spool = name, spool
        self.offset, self.asked = 1, 0

    def needed(self) -> int | None:
        return self.offset

    def step(self) -> bool:
        target = min(self.asked, self._spool.next_seq())
        if self.offset >= target:
            return False
        self.offset = target
        return True

    def flush_until(self, seq: int) -> None:
        self.asked = max(self.asked, seq)


def test_flush_asks_every_flushable_consumer_and_waits_for_its_threads(spool: Spool) -> None:
    registry = ConsumerRegistry(spool)
    holding = Holding("holding", spool)
    seen: list[int] = []
    registry.add(holding)
    registry.add(SpoolConsumer("reader", spool, MemoryOffsets(), lambda batch: seen.extend(i.seq for i in batch),
                               lambda *a: None, start_at=1))
    registry.add(Fixed("stopped", None))  # needs nothing: never waited for
    registry.start()
    try:
        time.sleep(0.1)
        assert holding.offset == 1  # nothing is consumed before it is asked for
        assert registry.flush(spool.next_seq(), timeout=10) == []
        assert holding.offset == spool.next_seq() == 11 and seen == list(range(1, 11))
    finally:
        registry.stop()


def test_flush_in_the_foreground_pumps_instead_of_waiting(spool: Spool) -> None:
    registry = ConsumerRegistry(spool)
    holding = Holding("holding", spool)
    registry.add(holding, own_thread=True)  # its thread is not running: nothing in the background
    registry.pump()
    assert holding.offset == 1
    assert registry.flush(8, timeout=0, foreground=True) == []
    assert holding.offset == 8 and holding.asked == 8


def test_flush_gives_up_at_its_timeout_and_names_who_is_behind(spool: Spool) -> None:
    registry = ConsumerRegistry(spool)
    registry.add(Fixed("stuck", 3))  # e.g. a destination that is down
    registry.add(Fixed("done", 11))
    started = time.monotonic()
    assert registry.flush(11, timeout=0.3) == ["stuck"]
    assert 0.3 <= time.monotonic() - started < 2.0
    assert registry.flush(3, timeout=5) == []  # already passed: returns at once
