"""Which rules can match an event, without trying each one (issue #12 item 2: matching cost must
not grow with the number of rules for the common case).

A leaf of string literals that the pattern requires (reached through plain keys, not inside a
`$or`) is a necessary condition: the event's value there (or, for an array, one of its
elements) must be one of them, whatever the rest of the pattern says (sibling keys are ANDed
with it). `RuleIndex` files each rule under the values of one such leaf — `detail.eventName`
when the rule pins it, else `source`, else any other required string leaf (`detail-type`, which
has few values, last); a rule with none whose `$or` branches each have one is filed under each
branch's — so an event is tried against the rules its values select, plus the rules that pin
no string literal at all. The candidates are a superset of the rules that match
(tests/unit/test_rule_index.py checks this differentially against trying every rule).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from trailkeeper.rules.eventpattern import EventPattern

# The fields rules pin most, in the order an index key is taken from; then any other.
INDEXED_FIELDS: Final[tuple[tuple[str, ...], ...]] = (("detail", "eventName"), ("source",))
LAST_RESORT: Final[tuple[tuple[str, ...], ...]] = (("detail-type",),)
Path = tuple[str, ...]


def _required_string_leaves(node: Mapping[str, Any], path: Path = ()) -> Iterator[tuple[Path, list[str]]]:
    for key, value in node.items():
        if key == "$or":
            continue  # an alternative is not required
        if isinstance(value, dict):
            yield from _required_string_leaves(value, (*path, key))
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            yield (*path, key), value


def index_key(pattern: EventPattern) -> tuple[Path, frozenset[str]] | None:
    """The required leaf of string literals `pattern` is filed under, with its values."""
    return _key_of(json.loads(pattern.text))  # already validated by parse


def index_keys(pattern: EventPattern) -> list[tuple[Path, frozenset[str]]] | None:
    """Where `pattern` is filed: its one required leaf; or, when it has none, one per branch of
    a `$or` whose every branch has one (an event that matches meets at least one of them)."""
    document = json.loads(pattern.text)
    key = _key_of(document)
    if key is not None:
        return [key]
    return _or_branches(document, ())


def _or_branches(node: Mapping[str, Any], path: Path) -> list[tuple[Path, frozenset[str]]] | None:
    """Keys of the first `$or` (reached through plain keys) whose branches all have one."""
    for key, value in node.items():
        if key == "$or" and isinstance(value, list):
            keys = [_key_of(branch, path) for branch in value if isinstance(branch, dict)]
            if keys and len(keys) == len(value) and all(k is not None for k in keys):
                return [k for k in keys if k is not None]
        elif isinstance(value, dict):
            found = _or_branches(value, (*path, key))
            if found is not None:
                return found
    return None


def _key_of(document: Mapping[str, Any], prefix: Path = ()) -> tuple[Path, frozenset[str]] | None:
    leaves = dict(_required_string_leaves(document, prefix))
    for path in INDEXED_FIELDS:
        if path in leaves:
            return path, frozenset(leaves[path])
    for path, values in leaves.items():
        if path not in LAST_RESORT:
            return path, frozenset(values)
    for path in LAST_RESORT:
        if path in leaves:
            return path, frozenset(leaves[path])
    return None


def _values_at(event: Mapping[str, Any], path: Path) -> list[str]:
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
        self._by_field: dict[Path, dict[str, list[int]]] = {}
        for position, pattern in enumerate(patterns):
            keys = index_keys(pattern)
            if keys is None:
                self._always.append(position)
                continue
            for path, values in keys:
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
