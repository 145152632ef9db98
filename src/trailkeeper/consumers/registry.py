"""One registry of the spool's consumers: foreground pumping, flushing, background threads, trimming."""

from __future__ import annotations

import logging
import threading
import time

from trailkeeper.consumers.base import OUTAGES, Consumer, FlushableConsumer
from trailkeeper.spool import Spool

log = logging.getLogger(__name__)
IDLE_WAIT_S = 0.5  # a background consumer with nothing to do waits this long for a new record
MAX_BACKOFF_S = 30.0
FLUSH_POLL_S = 0.02  # how often a flush looks whether every consumer has got there


class ConsumerRegistry:
    """Every consumer of one spool, by name. Consumers that run a thread of their own (the
    history indexer, trail workers) are registered for pumping and trimming only; the others
    get a supervised thread here (`start`)."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._consumers: dict[str, Consumer] = {}
        self._threaded: dict[str, threading.Thread] = {}
        self._own: set[str] = set()  # consumers that run a thread of their own
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._running = False

    def add(self, consumer: Consumer, *, own_thread: bool = False) -> None:
        """Register; `own_thread`: the consumer runs itself in the background."""
        with self._lock:
            if consumer.consumer_name in self._consumers:
                raise ValueError(f"a consumer named {consumer.consumer_name!r} is already registered")
            self._consumers[consumer.consumer_name] = consumer
            if own_thread:
                self._own.add(consumer.consumer_name)
            elif self._running:
                self._start_thread(consumer)

    def remove(self, name: str) -> None:
        with self._lock:
            self._consumers.pop(name, None)
            self._own.discard(name)

    def get(self, name: str) -> Consumer | None:
        with self._lock:
            return self._consumers.get(name)

    def all(self) -> list[Consumer]:
        with self._lock:
            return list(self._consumers.values())

    # ---- foreground ----
    def pump(self, rounds: int = 1000) -> None:
        """Step every consumer until none has work left (tests, tools)."""
        for _ in range(rounds):
            progressed = False
            for consumer in self.all():
                try:
                    progressed = consumer.step() or progressed
                except OUTAGES as e:  # as in the background: waited out, retried next round
                    log.warning("consumer %s: %s", consumer.consumer_name, e)
            if not progressed:
                return

    # ---- flushing ----
    def flush(self, until_seq: int, timeout: float, *, foreground: bool = False) -> list[str]:
        """Have every consumer consume the records below `until_seq` now: each flushable one is
        asked to stop holding them back, then this waits (at most `timeout` seconds) until every
        consumer has passed `until_seq` or needs nothing more. `foreground`: nothing runs in the
        background, so the consumers are pumped here instead, once, and nothing is waited for.
        Returns the names of the consumers still short of `until_seq` (none: all got there)."""
        for consumer in self.all():
            if isinstance(consumer, FlushableConsumer):
                consumer.flush_until(until_seq)
        if foreground:
            self.pump()
            return self._behind(until_seq)
        deadline = time.monotonic() + timeout
        while (behind := self._behind(until_seq)) and time.monotonic() < deadline:
            time.sleep(min(FLUSH_POLL_S, max(0.0, deadline - time.monotonic())))
        return behind

    def _behind(self, until_seq: int) -> list[str]:
        behind = []
        for consumer in self.all():
            needed = consumer.needed()
            if needed is not None and needed < until_seq:
                behind.append(consumer.consumer_name)
        return behind

    # ---- trimming ----
    def trim_floor(self) -> int:
        """The first seq some consumer still needs (the spool's end when none needs any)."""
        floor = self._spool.next_seq()
        for consumer in self.all():
            needed = consumer.needed()
            if needed is not None:
                floor = min(floor, needed)
        return floor

    def trim(self) -> None:
        self._spool.trim(self.trim_floor())

    # ---- background ----
    def start(self) -> None:
        """Run every consumer without a thread of its own in the background (and those added later)."""
        with self._lock:
            self._running = True
            for name, consumer in self._consumers.items():
                if name not in self._own:
                    self._start_thread(consumer)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in list(self._threaded.values()):
            thread.join(timeout)

    def _start_thread(self, consumer: Consumer) -> None:
        thread = threading.Thread(target=self._run, args=(consumer,), name=f"consumer-{consumer.consumer_name}",
                                  daemon=True)
        self._threaded[consumer.consumer_name] = thread
        thread.start()

    def _run(self, consumer: Consumer) -> None:
        """Supervised: an error is logged and the step retried with backoff; never dies of it."""
        backoff = 1.0
        while not self._stop.is_set() and self.get(consumer.consumer_name) is consumer:
            try:
                progressed = consumer.step()
                backoff = 1.0
            except Exception:
                log.exception("consumer %s failed; retrying in %.0fs", consumer.consumer_name, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if not progressed:
                needed = consumer.needed()
                self._spool.wait_for(needed if needed is not None else self._spool.next_seq(), IDLE_WAIT_S)
