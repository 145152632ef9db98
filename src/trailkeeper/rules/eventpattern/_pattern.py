"""Parse and compile a whole pattern: object structure, leaf arrays and `$or`.

Compilation happens once: the result is a tree of closures, so matching an event never
re-reads the pattern. Problems are collected across the whole pattern and raised together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trailkeeper.rules.eventpattern._errors import EventPatternError, Invalid
from trailkeeper.rules.eventpattern._operators import (
    Predicate,
    exists_flag,
    literal,
    operator,
    single_key,
)
from trailkeeper.rules.eventpattern._values import leaves, objects, step

MAX_PATTERN_LENGTH = 4096  # PutRule's EventPattern limit, in characters
# AWS documents no depth limit; ours keeps compile and match recursion far from Python's.
MAX_NESTING_DEPTH = 100
OR_KEY = "$or"

NodeMatcher = Callable[[list[Mapping[str, Any]]], bool]
LeafMatcher = Callable[[list[Any]], bool]


@dataclass(frozen=True)
class EventPattern:
    """A validated, compiled event pattern. Build it with `parse`."""

    text: str
    _root: NodeMatcher = field(repr=False, compare=False)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when the event satisfies every key of the pattern."""
        return self._root([event])


def parse(text: str) -> EventPattern:
    """Validate and compile pattern text; raise EventPatternError listing every problem."""
    if len(text) > MAX_PATTERN_LENGTH:
        raise EventPatternError(
            [f"pattern: {len(text)} characters exceeds the limit of {MAX_PATTERN_LENGTH}"]
        )
    document = _load(text)
    if not isinstance(document, dict):
        raise EventPatternError(["pattern: must be a JSON object"])
    problems: list[str] = []
    root = _compile_object(document, "", 1, problems)
    if problems or root is None:
        raise EventPatternError(problems or ["pattern: invalid"])
    return EventPattern(text, root)


def _load(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise EventPatternError([f"pattern: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"]) from e
    except RecursionError as e:
        raise EventPatternError(["pattern: nested too deeply"]) from e


def _refuse_constant(name: str) -> Any:
    raise EventPatternError([f"pattern: {name} is not a JSON number"])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python's json keeps the last duplicate silently; a pattern must not hide a key.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EventPatternError([f"pattern: key {key!r} appears more than once in an object"])
        result[key] = value
    return result


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _compile_object(obj: dict[str, Any], path: str, depth: int, problems: list[str]) -> NodeMatcher | None:
    where = path or "pattern"
    if depth > MAX_NESTING_DEPTH:
        problems.append(f"{where}: nested deeper than {MAX_NESTING_DEPTH} objects")
        return None
    if not obj:
        problems.append(f"{where}: empty objects are not allowed")
        return None
    parts: list[NodeMatcher] = []
    for key, value in obj.items():
        part = _compile_member(key, value, path, depth, problems)
        if part is not None:
            parts.append(part)
    if len(parts) != len(obj):
        return None
    return _all_of(parts)


def _all_of(parts: list[NodeMatcher]) -> NodeMatcher:
    # One or two members are most patterns: closures without a generator each.
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda nodes: first(nodes) and second(nodes)
    return lambda nodes: all(part(nodes) for part in parts)


def _compile_member(key: str, value: Any, path: str, depth: int, problems: list[str]) -> NodeMatcher | None:
    here = _join(path, key)
    if key == OR_KEY:
        return _compile_or(value, here, depth, problems)
    if isinstance(value, dict):
        child = _compile_object(value, here, depth + 1, problems)
        return None if child is None else _descend(key, child)
    if isinstance(value, list):
        leaf = _compile_leaf(value, here, problems)
        return None if leaf is None else _at_leaf(key, leaf)
    problems.append(f"{here}: a leaf must be an array of values or operators")
    return None


def _descend(key: str, child: NodeMatcher) -> NodeMatcher:
    # A missing object is an empty node list; the child then sees only absent fields,
    # so `exists: false` below it can still match, as in event-ruler.
    return lambda nodes: child(objects(step(nodes, key)))


def _at_leaf(key: str, leaf: LeafMatcher) -> NodeMatcher:
    return lambda nodes: leaf(leaves(step(nodes, key)))


def _compile_or(value: Any, here: str, depth: int, problems: list[str]) -> NodeMatcher | None:
    if not isinstance(value, list) or len(value) < 2:
        problems.append(f"{here}: must be an array of at least 2 pattern objects")
        return None
    branches: list[NodeMatcher] = []
    for index, branch in enumerate(value):
        if not isinstance(branch, dict):
            problems.append(f"{here}[{index}]: must be a pattern object")
            continue
        compiled = _compile_object(branch, f"{here}[{index}]", depth + 1, problems)
        if compiled is not None:
            branches.append(compiled)
    if len(branches) != len(value):
        return None
    return lambda nodes: any(branch(nodes) for branch in branches)


def _compile_leaf(values: list[Any], here: str, problems: list[str]) -> LeafMatcher | None:
    if not values:
        problems.append(f"{here}: empty arrays are not allowed")
        return None
    predicates: list[Predicate] = []
    strings: set[str] = set()
    exists: set[bool] = set()
    before = len(problems)
    for index, value in enumerate(values):
        try:
            if isinstance(value, str):
                strings.add(value)  # the common case: one set lookup instead of N closures
            elif isinstance(value, list):
                raise Invalid("arrays inside a leaf are not allowed")
            elif isinstance(value, dict):
                key, argument = single_key(value, "an operator object")
                if key == "exists":
                    exists.add(exists_flag(argument))
                else:
                    predicates.append(operator(key, argument))
            else:
                predicates.append(literal(value))
        except Invalid as e:
            problems.append(f"{here}[{index}]: {e}")
    if len(problems) != before:
        return None
    return _leaf(frozenset(strings), predicates, exists)


def _leaf(strings: frozenset[str], predicates: list[Predicate], exists: set[bool]) -> LeafMatcher:
    when_absent = False in exists
    when_present = True in exists

    def match(values: list[Any]) -> bool:
        # Every operator but `exists: false` needs the field, so an absent field stops here.
        if not values:
            return when_absent
        if when_present:
            return True
        for value in values:
            if isinstance(value, str) and value in strings:
                return True
            if any(predicate(value) for predicate in predicates):
                return True
        return False

    return match
