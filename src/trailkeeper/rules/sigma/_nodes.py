"""The compiled matcher: a tree of small nodes over one record, built once per rule.

Every node is pure (no state, no exception escapes for any JSON-like record), so AND and OR
may try their children in any order: the cheapest go first. `need()` reports, per field path,
lowercased texts one of which the field must hold for the node to match; the rule index files
rules under them (see _set.py).
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trailkeeper.rules.sigma._record import (
    FieldPath,
    is_absent,
    numbers,
    record_texts,
    scalar_strings,
)
from trailkeeper.rules.sigma._strings import StringTest, TextTest

Record = Mapping[str, Any]
Need = dict[str, frozenset[str]]
Matcher = Callable[[Record], bool]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Children up to this many are chained closures; more are looped over (see every()).
MAX_CHAIN = 8

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}


class Node:
    """`match` is a closure built once (no per-call dispatch over children); `cost` orders
    siblings, cheapest first."""

    __slots__ = ("cost", "match")

    match: Matcher

    def __init__(self, cost: int, match: Matcher) -> None:
        self.cost = cost
        self.match = match

    def need(self) -> Need:
        return {}


class AllOf(Node):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(sorted(children, key=lambda child: child.cost))
        super().__init__(sum(child.cost for child in children), every([child.match for child in self.children]))

    def need(self) -> Need:
        # Each child's need holds; per field keep the smallest set (one of them suffices).
        merged: Need = {}
        for child in self.children:
            for path, texts in child.need().items():
                if path not in merged or len(texts) < len(merged[path]):
                    merged[path] = texts
        return merged


class AnyOf(Node):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(sorted(children, key=lambda child: child.cost))
        super().__init__(sum(child.cost for child in children), some([child.match for child in self.children]))

    def need(self) -> Need:
        # Only a field every alternative needs is needed, with the union of their texts.
        needs = [child.need() for child in self.children]
        common = set(needs[0]).intersection(*needs[1:]) if needs else set()
        return {path: frozenset().union(*(need[path] for need in needs)) for path in common}


class NotOf(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child
        inner = child.match
        super().__init__(child.cost, lambda record: not inner(record))


def every(tests: Sequence[Matcher]) -> Matcher:
    """One closure for `a and b and ...`: a chain of closures is faster than all() over a
    generator for the few children rules have; long lists (whose chain would nest deeply) loop."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) > MAX_CHAIN:
        tests = tuple(tests)
        return lambda record: all(test(record) for test in tests)
    first, rest = tests[0], every(tests[1:])
    return lambda record: first(record) and rest(record)


def some(tests: Sequence[Matcher]) -> Matcher:
    """`a or b or ...`, built as `every` is."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) > MAX_CHAIN:
        tests = tuple(tests)
        return lambda record: any(test(record) for test in tests)
    first, rest = tests[0], some(tests[1:])
    return lambda record: first(record) or rest(record)


class TextLeaf(Node):
    """String tests on one field, ORed: true if any text of the field passes any test."""

    __slots__ = ("fold", "path", "tests")

    def __init__(self, path: FieldPath, fold: bool, tests: Sequence[TextTest]) -> None:
        self.path = path
        self.fold = fold
        self.tests = tuple(tests)
        others = sorted((test for test in self.tests if test.exact is None), key=lambda test: test.cost)
        check = text_check(self.exact, [test.test for test in others])
        super().__init__(max([1, *(test.cost for test in others)]), _field_matcher(path, fold, check))

    @property
    def exact(self) -> frozenset[str]:
        return frozenset(test.exact for test in self.tests if test.exact is not None)

    def need(self) -> Need:
        if any(test.exact is None for test in self.tests):
            return {}
        return {self.path.text: frozenset(text.lower() for text in self.exact)}


def text_check(exact: frozenset[str], tests: Sequence[StringTest]) -> StringTest:
    """One string test: in the set of exact values, or passing one of `tests`."""
    if not tests:
        return exact.__contains__
    passes = _some_test(tests)
    if not exact:
        return passes
    return lambda text: text in exact or passes(text)


def _some_test(tests: Sequence[StringTest]) -> StringTest:
    if len(tests) == 1:
        return tests[0]
    if len(tests) > MAX_CHAIN:
        tests = tuple(tests)
        return lambda text: any(test(text) for test in tests)
    first, rest = tests[0], _some_test(tests[1:])
    return lambda text: first(text) or rest(text)


def _field_matcher(path: FieldPath, fold: bool, check: StringTest) -> Matcher:
    key = path.key
    if key is None:
        return lambda record: any(map(check, path.texts(record, fold)))

    def match(record: Record) -> bool:
        value = record.get(key)
        if type(value) is str:  # inline fast path: a top-level string field
            return check(value.lower() if fold else value)
        return any(map(check, path.texts(record, fold)))

    return match


class KeywordLeaf(Node):
    """A field-less detection: the whole record searched as if it were one field."""

    __slots__ = ()

    def __init__(self, fold: bool, tests: Sequence[TextTest]) -> None:
        check = text_check(frozenset(), [test.test for test in tests])
        # Stringifies the whole record: tried after everything else.
        super().__init__(50, lambda record: any(map(check, record_texts(record, fold))))


class AbsentLeaf(Node):
    """`field: null` and `field|exists: false` (want_absent), `field|exists: true` (not)."""

    __slots__ = ()

    def __init__(self, path: FieldPath, want_absent: bool) -> None:
        super().__init__(1, lambda record: is_absent(path.values(record)) == want_absent)


class CompareLeaf(Node):
    __slots__ = ()

    def __init__(self, path: FieldPath, op: str, limit: int | float) -> None:
        compare = COMPARISONS[op]
        super().__init__(3, lambda record: any(compare(number, limit) for number in numbers(path.values(record))))


class CidrLeaf(Node):
    __slots__ = ()

    def __init__(self, path: FieldPath, network: Network) -> None:
        super().__init__(4, lambda record: any(_in_network(text, network) for text in scalar_strings(path.values(record))))


def _in_network(text: str, network: Network) -> bool:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return address.version == network.version and address in network


FIELDREF_TESTS: dict[tuple[bool, bool], Callable[[str, str], bool]] = {
    (False, False): str.__eq__,
    (True, False): str.startswith,
    (False, True): str.endswith,
    (True, True): str.__contains__,
}


class FieldRefLeaf(Node):
    """`fieldref`: this field's text equals (or starts with, ends with, contains) another's."""

    __slots__ = ()

    def __init__(self, path: FieldPath, other: FieldPath, starts: bool, ends: bool) -> None:
        relation = FIELDREF_TESTS[(starts, ends)]

        def match(record: Record) -> bool:
            mine = path.texts(record, True)
            theirs = other.texts(record, True) if mine else []
            return any(relation(text, ref) for text in mine for ref in theirs)

        super().__init__(4, match)


def all_of(children: Sequence[Node]) -> Node:
    flat = _flatten(children, AllOf)
    return flat[0] if len(flat) == 1 else AllOf(flat)


def any_of(children: Sequence[Node]) -> Node:
    flat = _merge_text_leaves(_flatten(children, AnyOf))
    return flat[0] if len(flat) == 1 else AnyOf(flat)


def _flatten(children: Sequence[Node], kind: type[AllOf] | type[AnyOf]) -> list[Node]:
    flat: list[Node] = []
    for child in children:
        if isinstance(child, kind):
            flat.extend(child.children)
        else:
            flat.append(child)
    return flat


def _merge_text_leaves(children: list[Node]) -> list[Node]:
    """`eventName: [A, B, C]` arrives as three ORed leaves; read the field once, test a set."""
    groups: dict[tuple[str, bool], list[TextLeaf]] = {}
    others: list[Node] = []
    for child in children:
        if isinstance(child, TextLeaf):
            groups.setdefault((child.path.text, child.fold), []).append(child)
        else:
            others.append(child)
    merged: list[Node] = [_merged(leaves) for leaves in groups.values()]
    return merged + others


def _merged(leaves: list[TextLeaf]) -> TextLeaf:
    if len(leaves) == 1:
        return leaves[0]
    return TextLeaf(leaves[0].path, leaves[0].fold, [test for leaf in leaves for test in leaf.tests])
