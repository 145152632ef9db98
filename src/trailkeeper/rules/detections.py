"""The Sigma detections trailkeeper evaluates on every acknowledged event (issue #12 item 3),
and the hand-over of their matches to the alerts (item 4).

Rules come from the shipped folder (SigmaHQ's CloudTrail rules and trailkeeper's own) and the
installation's folder (`rules_dir`, default `<data-dir>/rules`). The installation's folder is
hot-reloaded: at most every `RELOAD_CHECK_S` its fingerprint (names, sizes, mtimes) is compared,
and on a change it is loaded again. A rule there with the id of a shipped rule replaces it (to
tune a shipped rule, copy and edit it). Each load is recorded as a `DetectionRulesLoaded`
event and each refusal as a `DetectionRuleRefused` event with its reason.

`Detections` is the `detect` hook of the event-rules consumer: one batch of spooled records in,
one `Alerts.on_matches` call (one transaction) out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from trailkeeper.alerts import AlertPolicy, Detection
from trailkeeper.consumers.spool_consumer import Spooled
from trailkeeper.rules.sigma import (
    SigmaLoadError,
    SigmaRule,
    SigmaSet,
    fingerprint,
    load_directory,
    shipped_directory,
)

log = logging.getLogger(__name__)

RELOAD_CHECK_S: Final = 1.0
LOADED_EVENT: Final = "DetectionRulesLoaded"
REFUSED_EVENT: Final = "DetectionRuleRefused"

Emit = Callable[[str, dict[str, Any]], None]
OnMatches = Callable[[Sequence[Detection]], object]


def policy_of(rule: SigmaRule) -> AlertPolicy:
    return AlertPolicy(rule.dedup_fields, rule.dedup_window_s, rule.threshold, rule.threshold_window_s)


class Detections:
    def __init__(self, folder: Path, placeholders: Mapping[str, Sequence[str]], on_matches: OnMatches, emit: Emit,
                 *, shipped: Path | None = None) -> None:
        self.folder = folder
        self.placeholders = placeholders
        self.on_matches = on_matches
        self.emit = emit
        self._shipped_dir = shipped or shipped_directory()
        self._lock = threading.Lock()
        self._shipped: SigmaSet | None = None
        self._local = SigmaSet([])
        self._local_print: str | None = None
        self._checked = float("-inf")
        self._current = SigmaSet([])

    # ---- the hook ----
    def __call__(self, batch: Sequence[Spooled]) -> None:
        rules = self.current()
        if not rules.rules:
            return
        found = [Detection(rule.id, rule.title, rule.level, item.record, policy_of(rule))
                 for item in batch for rule in rules.matching(item.record)]
        if found:
            self.on_matches(found)

    # ---- loading ----
    def current(self) -> SigmaSet:
        """The rules in force, reloading the installation's folder if it changed."""
        if time.monotonic() - self._checked < RELOAD_CHECK_S:
            return self._current
        with self._lock:
            self._checked = time.monotonic()
            if self._shipped is None:
                self._shipped = self._load(self._shipped_dir)
                self._current = self._merged()
            printed = self._fingerprint()
            if printed != self._local_print:
                self._local_print = printed
                self._local = self._load(self.folder) if printed is not None else SigmaSet([])
                self._current = self._merged()
        return self._current

    def _fingerprint(self) -> str | None:
        if not self.folder.is_dir():
            return None
        try:
            return fingerprint(self.folder)
        except SigmaLoadError as e:
            return f"unreadable: {e}"

    def _load(self, directory: Path) -> SigmaSet:
        try:
            loaded = load_directory(directory, self.placeholders)
        except SigmaLoadError as e:
            log.error("detection rules in %s could not be read: %s", directory, e)
            self.emit(LOADED_EVENT, {"directory": str(directory), "loaded": 0, "refused": 0, "error": str(e)})
            return SigmaSet([])
        self.emit(LOADED_EVENT, {"directory": str(directory), "loaded": len(loaded.rules),
                                 "refused": len(loaded.refusals), "ruleIds": [r.id for r in loaded.rules]})
        for refusal in loaded.refusals:
            log.warning("detection rule refused: %s", refusal)
            self.emit(REFUSED_EVENT, {"directory": str(directory), "source": refusal.source, "rule": refusal.rule,
                                      "reason": refusal.reason})
        return loaded

    def _merged(self) -> SigmaSet:
        shipped = self._shipped or SigmaSet([])
        replaced = {rule.id for rule in self._local.rules}
        kept = [rule for rule in shipped.rules if rule.id not in replaced]
        return SigmaSet([*kept, *self._local.rules], [*shipped.refusals, *self._local.refusals])

    def status(self) -> dict[str, Any]:
        rules = self.current()
        return {"DetectionRules": len(rules.rules), "RefusedDetectionRules": len(rules.refusals),
                "RulesDirectory": str(self.folder)}
