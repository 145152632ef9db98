"""Which rules can match an event, without trying each one (issue #12 item 2: matching cost must
not grow with the number of rules for the common case).

Most rules pin `detail.eventName` or `source` to literal strings. A leaf of string literals is a
necessary condition: the event's value there (or, for an array, one of its elements) must be one
of them, whatever the rest of the pattern says (sibling keys and `$or` groups are ANDed with it).
`RuleIndex` files each rule under its values for the first such field it has, so an event is
tried against the rules its `detail.eventName` and `source` select, plus the rules that pin
neither. The candidates are a superset of the rules that match (tests/unit/test_rule_index.py
checks this differentially against trying every rule).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from trailkeeper.rules.eventpattern import EventPattern

# The fields rules pin most, in the order an index key is taken from.
INDEXED_FIELDS: Final[tuple[tuple[str, ...], ...]] = (("detail", "eventName"), ("source",))


def index_key(pattern: EventPattern) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """The first INDEXED_FIELDS leaf of `pattern` made only of string literals, with its values."""
    document = json.loads(pattern.text)  # already validated by parse
    for path in INDEXED_FIELDS:
        node: Any = document
        for step in path:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, list) and node and all(isinstance(value, str) for value in node):
            return path, frozenset(node)
    return None


def _values_at(event: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    node: Any = event
    for step in path:
        node = node.get(step) if isinstance(node, Mapping) else None
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [value for value in node if isinstance(value, str)]
    return []


class RuleIndex:
    """Positions of `patterns` worth trying for an event, in ascending order."""

    def __init__(self, patterns: Sequence[EventPattern]) -> None:
        self._always: list[int] = []
        self._by_field: dict[tuple[str, ...], dict[str, list[int]]] = {}
        for position, pattern in enumerate(patterns):
            key = index_key(pattern)
            if key is None:
                self._always.append(position)
                continue
            path, values = key
            for value in values:
                self._by_field.setdefault(path, {}).setdefault(value, []).append(position)

    @property
    def indexed(self) -> int:
        return len({p for table in self._by_field.values() for ps in table.values() for p in ps})

    def candidates(self, event: Mapping[str, Any]) -> list[int]:
        found = set(self._always)
        for path, table in self._by_field.items():
            for value in _values_at(event, path):
                found.update(table.get(value, ()))
        return sorted(found)
