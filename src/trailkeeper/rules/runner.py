"""The rules subsystem as the service runs it: the `event-rules` spool consumer (event rules,
then detections) and the retrier of failed target invocations."""

from __future__ import annotations

from typing import Any

from trailkeeper._internal.loop import WakeableLoop
from trailkeeper.clock import Clock
from trailkeeper.consumers.base import OffsetStore
from trailkeeper.consumers.spool_consumer import SetAside, SpoolConsumer
from trailkeeper.rules.bus import EventBus
from trailkeeper.rules.detections import Detections
from trailkeeper.rules.router import (
    CONSUMER_NAME,
    RETRY_POLL_S,
    Emit,
    EventRouter,
    Publish,
    TargetRetrier,
)
from trailkeeper.spool import Spool


class RulesRunner:
    def __init__(self, bus: EventBus, publish: Publish, clock: Clock, emit: Emit,
                 detections: Detections | None = None) -> None:
        self.bus = bus
        self.detections = detections
        self.router = EventRouter(bus, bus.repo, publish, clock, emit, detections)
        self.retrier = TargetRetrier(bus, bus.repo, publish, clock, emit)
        self._loop = WakeableLoop("event-target-retrier", self.retrier.retry_due, RETRY_POLL_S)

    def consumer(self, spool: Spool, offsets: OffsetStore, set_aside: SetAside) -> SpoolConsumer:
        """The consumer; never run before, it starts at the next record (rules see events from
        the moment they exist, as on AWS)."""
        return SpoolConsumer(CONSUMER_NAME, spool, offsets, self.router, set_aside)

    def status(self) -> dict[str, Any]:
        counts = self.bus.repo.counts()
        return {"EventRules": len(self.bus.routing().rules), "RetryingInvocations": counts.retrying,
                "FailedInvocations": counts.failed, **(self.detections.status() if self.detections else {})}

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
