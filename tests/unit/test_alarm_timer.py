"""The alarm timer: when it wakes, that a failing round does not stop it, and that it stops."""

from __future__ import annotations

import threading

import pytest

from trailkeeper.monitoring.alarm_timer import LATENESS_S, AlarmTimer


class Counting:
    def __init__(self, fail_first: int = 0) -> None:
        self.ticks = 0
        self.fail_first = fail_first

    def tick(self) -> int:
        self.ticks += 1
        if self.ticks <= self.fail_first:
            raise OSError("state database busy")
        return 0


@pytest.mark.parametrize(("wall", "expected"), [
    pytest.param(1000.0, 1.0 + LATENESS_S, id="on-a-second"),
    pytest.param(1000.25, 0.75 + LATENESS_S, id="a-quarter-in"),
    pytest.param(1009.99, 0.01 + LATENESS_S, id="just-before-a-ten-second-boundary"),
])
def test_it_wakes_just_after_the_next_whole_second(wall: float, expected: float) -> None:
    timer = AlarmTimer(Counting, threading.Event(), wall=lambda: wall)
    assert timer.delay() == pytest.approx(expected)


def test_a_failing_round_is_counted_and_the_next_one_runs() -> None:
    alarms = Counting(fail_first=1)
    timer = AlarmTimer(lambda: alarms, threading.Event())
    timer.round()
    timer.round()
    assert (alarms.ticks, timer.failures, timer.rounds) == (2, 1, 1)


def test_it_runs_each_second_until_stopped() -> None:
    alarms, stop = Counting(), threading.Event()
    timer = AlarmTimer(lambda: alarms, stop)
    thread = threading.Thread(target=timer.run)
    thread.start()
    stop.wait(2.2)
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert 1 <= alarms.ticks <= 3
