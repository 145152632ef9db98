"""Reading a CloudTrail record the way a rule sees it: dotted paths and values as text.

Two functions decide what every comparison sees, and the rule index uses the same ones, so an
indexed lookup can never disagree with a rule's own test:

- `FieldPath.values`: the values a dotted path reaches. At each object the path may continue
  through a nested key (`a` then `b`) or a literal key holding dots (`"a.b"`); through an array
  it continues in every element. A path that reaches nothing yields no values.
- `texts`: those values as strings. Strings are themselves; booleans `true`/`false`; numbers
  their JSON text; null nothing; an array its elements; an object its compact JSON text plus
  every scalar nested in it (a policy document stored as a JSON string inside
  `requestParameters` is found by `requestParameters|contains` only that way).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

MISSING: Final = object()
# Arrays nested in arrays deeper than this along a path are not searched (bounds recursion).
MAX_ARRAY_NESTING: Final = 32


class FieldPath:
    """A compiled dotted path such as `userIdentity.sessionContext.sessionIssuer.type`."""

    __slots__ = ("_joined", "_last", "_parts", "_steps", "key", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parts = text.split(".")
        self._last = len(self._parts)
        # _joined[i][j]: the literal key made of parts i..j-1, tried at depth i.
        n = self._last
        self._joined = [[".".join(self._parts[i:j]) for j in range(n + 1)] for i in range(n)]
        self.key = text if n == 1 else None
        # (key, literal dotted keys that would branch here) per depth, for the fast path.
        self._steps = tuple((self._parts[i], tuple(self._joined[i][i + 2:])) for i in range(n))

    def values(self, record: Mapping[str, Any]) -> list[Any]:
        """Every value the path reaches (null included); empty when it reaches none."""
        if self.key is not None:  # the common case: one top-level key
            value = record.get(self.key, MISSING)
            return [] if value is MISSING else [value]
        node: Any = record
        for key, branches in self._steps:  # plain nested objects: a few lookups, no recursion
            if type(node) is not dict:
                return self._branching(record)
            for branch in branches:
                if branch in node:
                    return self._branching(record)
            node = node.get(key, MISSING)
            if node is MISSING:
                return []
        return [node]

    def _branching(self, record: Mapping[str, Any]) -> list[Any]:
        found: list[Any] = []
        self._collect(record, 0, found, 0)
        return found

    def texts(self, record: Mapping[str, Any], fold: bool) -> list[str]:
        """The reached values as text (see the module docstring), lowercased when `fold`."""
        if self.key is not None:
            value = record.get(self.key, MISSING)
            if type(value) is str:  # fast path: most compared fields are plain strings
                return [value.lower() if fold else value]
            if value is MISSING:
                return []
            found = [value]
        else:
            found = self.values(record)
            if len(found) == 1 and type(found[0]) is str:
                return [found[0].lower() if fold else found[0]]
        out: list[str] = []
        for value in found:
            add_texts(value, out)
        return [text.lower() for text in out] if fold else out

    def _collect(self, node: Any, depth: int, found: list[Any], nesting: int) -> None:
        # Straight down the nested keys in a loop; recursion only where the path branches
        # (a literal dotted key, an array), so the common case costs a few dict lookups.
        parts, last, joined = self._parts, self._last, self._joined
        while True:
            if type(node) is not dict:
                if isinstance(node, list):
                    if nesting < MAX_ARRAY_NESTING:
                        for item in node:
                            self._collect(item, depth, found, nesting + 1)
                    return
                if not isinstance(node, Mapping):
                    return
            keys = joined[depth]
            for end in range(depth + 2, last + 1):  # literal keys holding dots: rare
                child = node.get(keys[end], MISSING)
                if child is not MISSING:
                    if end == last:
                        found.append(child)
                    else:
                        self._collect(child, end, found, nesting)
            node = node.get(parts[depth], MISSING)
            if node is MISSING:
                return
            depth += 1
            if depth == last:
                found.append(node)
                return


def add_texts(value: Any, out: list[str]) -> None:
    """Append the text forms of `value` to `out` (null adds nothing)."""
    # (node, whole): whole objects contribute their JSON text; objects nested in one do not,
    # the enclosing text already holds them, but their scalars do.
    stack: list[tuple[Any, bool]] = [(value, True)]
    while stack:
        node, whole = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, bool):
            out.append("true" if node else "false")
        elif isinstance(node, int | float):
            out.append(number_text(node))
        elif isinstance(node, list | tuple):
            stack.extend((item, whole) for item in reversed(node))
        elif isinstance(node, Mapping):
            if whole:
                out.append(json_text(node))
            stack.extend((child, False) for child in reversed(list(node.values())))


def number_text(value: int | float) -> str:
    """A number as JSON writes it (Python's float repr is JSON's shortest round-trip form)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    try:
        return str(value)
    except ValueError:  # over Python's int-to-text digit limit; no JSON decoder makes one
        return ""


def json_text(value: Mapping[str, Any]) -> str:
    """Compact JSON, keys in record order, non-ASCII kept as is. Empty for an object nested too
    deeply for the encoder: its scalars are still searched (see add_texts)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_jsonable, skipkeys=True)
    except (RecursionError, ValueError):
        return ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _leaves(values: list[Any]) -> list[Any]:
    """The values with arrays (at any depth) replaced by their elements."""
    out: list[Any] = []
    stack = list(reversed(values))
    while stack:
        value = stack.pop()
        if isinstance(value, list | tuple):
            stack.extend(reversed(value))
        else:
            out.append(value)
    return out


def record_texts(record: Mapping[str, Any], fold: bool) -> list[str]:
    """What a keyword (field-less) detection searches: the whole record as a field."""
    out: list[str] = []
    add_texts(record, out)
    return [text.lower() for text in out] if fold else out


def numbers(values: list[Any]) -> list[int | float]:
    """Numeric readings of reached values for gt/gte/lt/lte: numbers, and strings that are
    numbers; booleans are not numbers here, arrays contribute their elements."""
    out: list[int | float] = []
    for value in _leaves(values):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            number: int | float | None = value
        elif isinstance(value, str):
            number = _parse_number(value)
        else:
            continue
        if number is not None and not (isinstance(number, float) and not math.isfinite(number)):
            out.append(number)
    return out


def _parse_number(text: str) -> int | float | None:
    if "_" in text:  # Python's literal grouping, not a number in a log
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def scalar_strings(values: list[Any]) -> list[str]:
    """String values only (arrays contribute their elements): what `cidr` reads."""
    return [value for value in _leaves(values) if isinstance(value, str)]


def is_absent(values: list[Any]) -> bool:
    """Missing or null: what `field: null` matches and `exists: true` refuses."""
    return all(value is None for value in values)
