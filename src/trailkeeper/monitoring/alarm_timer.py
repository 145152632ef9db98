"""Alarm evaluation when time passes: the periods that close, the data that does not come.

Datapoints evaluate their alarms as they arrive (`CloudWatch.put_metric_data`); what no
datapoint triggers is a period closing — an alarm that needs a closed period, a breach that
ages out, missing data under TreatMissingData — so this thread evaluates every alarm just after
each whole second. Every CloudWatch period (10, 20, 30 s or a multiple of 60) ends on a whole
second, so a period's end is seen within `LATENESS_S` of it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol

log = logging.getLogger(__name__)
LATENESS_S: Final = 0.05  # after the boundary, so a datapoint stamped at its last instant is in


class Evaluates(Protocol):
    def tick(self) -> int:
        """Evaluate every alarm now; how many changed state."""
        ...


class AlarmTimer:
    """Runs `alarms().tick()` after each whole second until `stop` is set. `alarms` is called
    on each round, so a server whose state has no alarms builds nothing until one exists."""

    def __init__(self, alarms: Callable[[], Evaluates], stop: threading.Event,
                 wall: Callable[[], float] = time.time) -> None:
        self._alarms = alarms
        self._stop = stop
        self._wall = wall
        self.rounds = 0
        self.failures = 0

    def delay(self) -> float:
        """Seconds until just after the next whole second of wall time."""
        now = self._wall()
        return math.floor(now) + 1 + LATENESS_S - now

    def run(self) -> None:
        while not self._stop.wait(self.delay()):
            self.round()

    def round(self) -> None:
        try:
            self._alarms().tick()
            self.rounds += 1
        except Exception:  # a failed round is retried a second later; the thread must not die
            self.failures += 1
            log.exception("alarm evaluation failed; retrying in a second")
