"""Event traversal and JSON value kinds shared by the compiler and the matchers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

# Python's bool is an int; JSON true/false are not numbers, so every number test excludes it.


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    if not is_number(value):
        return False
    # ints are always finite; only floats can be inf/nan.
    return not isinstance(value, float) or math.isfinite(value)


def is_literal(value: object) -> bool:
    return value is None or isinstance(value, (str, bool)) or is_number(value)


def flatten(values: Iterable[Any]) -> list[Any]:
    """Expand arrays at any depth (iteratively: event depth is not under our control)."""
    out: list[Any] = []
    stack: list[Any] = list(reversed(list(values)))
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def step(nodes: list[Mapping[str, Any]], key: str) -> list[Any]:
    """Every value reachable under `key` from the given objects, arrays flattened."""
    if len(nodes) == 1:  # the common case (no arrays of objects on the way): no generator, no copy
        node = nodes[0]
        if key not in node:
            return []
        value = node[key]
        return flatten(value) if isinstance(value, (list, tuple)) else [value]
    return flatten(node[key] for node in nodes if key in node)


# Events are parsed JSON: their objects are dicts, and `dict` is a much cheaper check than the
# abstract Mapping on the matching path.
def objects(items: list[Any]) -> list[Mapping[str, Any]]:
    return [item for item in items if isinstance(item, dict)]


def leaves(items: list[Any]) -> list[Any]:
    # An object is not a leaf: event-ruler's `exists` and value matches see leaf values only.
    return [item for item in items if not isinstance(item, dict)]
