"""A background thread that runs rounds of work, sleeping between them until woken."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class WakeableLoop:
    """Runs `round()` (which returns the seconds until the next one is due) until stopped;
    `wake()` starts the next round at once. A failing round is logged and retried after
    `retry_s`: the thread never dies of it."""

    def __init__(self, name: str, round: Callable[[], float], retry_s: float) -> None:
        self._name = name
        self._round = round
        self._retry_s = retry_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                wait = self._round()
            except Exception:  # the state database briefly busy, say: the work waits for the next round
                log.exception("%s: round failed; retrying in %.1fs", self._name, self._retry_s)
                wait = self._retry_s
            self._wake.wait(wait)
