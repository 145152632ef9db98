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
