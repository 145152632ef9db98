"""Which of many JSON patterns can match an event, found with a few dictionary lookups.

Most audit filters pin a field to exact strings (`$.eventName = StopLogging`, `$.eventSource =
kms.amazonaws.com`, `$.userIdentity.type = Root`). `FilterPattern.index_key` finds such a
necessary condition; the index files each pattern under its selector and values, so an event
is tried only against the patterns whose condition it meets plus those that pin nothing. The
candidates are a superset of the patterns that match: the index never changes a result, only
how many patterns are evaluated (tests/unit/test_filter_index.py checks this differentially).
"""

from __future__ import annotations

from collections.abc import Sequence

from trailkeeper.monitoring.filterpattern._match import MISSING, Event, Path, resolve
from trailkeeper.monitoring.filterpattern._pattern import FilterPattern


class PatternIndex:
    """Positions of `patterns` worth evaluating for an event, in ascending order."""

    def __init__(self, patterns: Sequence[FilterPattern]) -> None:
        self._always: list[int] = []
        self._by_selector: dict[Path, dict[str, list[int]]] = {}
        for position, pattern in enumerate(patterns):
            key = pattern.index_key()
            if key is None:
                self._always.append(position)
                continue
            selector, values = key
            table = self._by_selector.setdefault(selector, {})
            for value in values:
                table.setdefault(value, []).append(position)

    @property
    def indexed(self) -> int:
        """How many patterns are filed under a selector (the rest are always evaluated)."""
        return len({p for table in self._by_selector.values() for ps in table.values() for p in ps})

    def candidates(self, event: Event) -> list[int]:
        found = list(self._always)
        if not self._by_selector:
            return found  # no JSON parse for an index of text patterns only
        document = event.document
        if document is MISSING:
            return found
        lists = 1 if self._always else 0
        for selector, table in self._by_selector.items():
            value = resolve(document, selector)
            hits = table.get(value) if isinstance(value, str) else None
            if hits:
                found.extend(hits)
                lists += 1
        if lists > 1:
            found.sort()  # merged from several lists: back to filter order
        return found
