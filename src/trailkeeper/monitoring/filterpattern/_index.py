"""Which of many JSON patterns can match an event, found with a few dictionary lookups.

Most audit filters pin fields to exact strings (`$.eventName = StopLogging`, `$.eventSource =
kms.amazonaws.com`, `$.errorCode = "SignatureDoesNotMatch"`). `FilterPattern.index_key` finds
(selector, value) pairs at least one of which a matching event must have; the index files each
pattern under each pair, so an event is tried only against the patterns one of whose pairs it
has, plus those that pin nothing. The
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
            for selector, value in key:
                self._by_selector.setdefault(selector, {}).setdefault(value, []).append(position)

    @property
    def indexed(self) -> int:
        """How many patterns are filed under a selector (the rest are always evaluated)."""
        return len({p for table in self._by_selector.values() for ps in table.values() for p in ps})

    def candidates(self, event: Event) -> list[int]:
        if not self._by_selector:
            return list(self._always)  # no JSON parse for an index of text patterns only
        document = event.document
        if document is MISSING:
            return list(self._always)
        hits: list[list[int]] = []
        for selector, table in self._by_selector.items():
            value = resolve(document, selector)
            found = table.get(value) if isinstance(value, str) else None
            if found:
                hits.append(found)
        if not hits:
            return list(self._always)
        if len(hits) == 1 and not self._always:
            return list(hits[0])
        # Merged from several lists (a pattern filed under two of the event's values appears
        # twice): once each, back in filter order.
        return sorted(set(self._always).union(*hits))
