"""Compile one element of a leaf array (a literal or an operator object) into a predicate.

A predicate takes one leaf value of the event (never an object or array) and answers
whether it matches. Operators are validated here; problems raise Invalid with a message
that the caller prefixes with the path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

from trailkeeper._internal.glob import segments_match
from trailkeeper.rules.eventpattern._errors import Invalid
from trailkeeper.rules.eventpattern._values import is_finite_number, is_literal, is_number

Predicate = Callable[[Any], bool]

OPERATORS = (
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
)
_STRING_PATTERN_OPS = ("prefix", "suffix", "wildcard", "equals-ignore-case")
_LOWER_BOUNDS = (">", ">=")
_UPPER_BOUNDS = ("<", "<=")
_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda v, n: bool(v < n),
    "<=": lambda v, n: bool(v <= n),
    "=": lambda v, n: bool(v == n),
    ">": lambda v, n: bool(v > n),
    ">=": lambda v, n: bool(v >= n),
}
_CIDR_PREFIX = re.compile(r"[0-9]{1,3}")


def literal(value: Any) -> Predicate:
    """Exact equality by JSON type: "300" is not 300, but 300 equals 3.0e2."""
    if value is None:
        return lambda v: v is None
    if isinstance(value, bool):
        return lambda v: isinstance(v, bool) and v is value
    if isinstance(value, str):
        return lambda v: isinstance(v, str) and v == value
    return lambda v: is_number(v) and bool(v == value)


def single_key(obj: Mapping[str, Any], what: str) -> tuple[str, Any]:
    if len(obj) != 1:
        raise Invalid(f"{what} must have exactly one key, found {len(obj)}")
    ((key, value),) = obj.items()
    return key, value


def operator(key: str, value: Any) -> Predicate:
    """A predicate for every operator except `exists`, which the leaf handles itself."""
    if key == "prefix":
        return _affix(value, "prefix", _starts)
    if key == "suffix":
        return _affix(value, "suffix", _ends)
    if key == "equals-ignore-case":
        return _ignore_case(_string(value, key))
    if key == "wildcard":
        return wildcard(_string(value, key))
    if key == "anything-but":
        return _anything_but(value)
    if key == "numeric":
        return numeric(value)
    if key == "cidr":
        return cidr(value)
    raise Invalid(f"unknown operator {key!r}; expected one of {', '.join(OPERATORS)}")


def exists_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("exists must be true or false")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string")
    return value


def _starts(text: str, affix: str) -> bool:
    return text.startswith(affix)


def _ends(text: str, affix: str) -> bool:
    return text.endswith(affix)


def _affix(value: Any, key: str, test: Callable[[str, str], bool]) -> Predicate:
    if isinstance(value, Mapping):
        inner, text = single_key(value, f"{key} object")
        if inner != "equals-ignore-case":
            raise Invalid(f"{key} object accepts only equals-ignore-case, found {inner!r}")
        folded = _string(text, f"{key} equals-ignore-case").casefold()
        return lambda v: isinstance(v, str) and test(v.casefold(), folded)
    affix = _string(value, key)
    return lambda v: isinstance(v, str) and test(v, affix)


def _ignore_case(text: str) -> Predicate:
    # casefold, not lower: Unicode case-folding ("Straße" equals "STRASSE").
    folded = text.casefold()
    return lambda v: isinstance(v, str) and v.casefold() == folded


def wildcard(text: str) -> Predicate:
    segments = _wildcard_segments(text)
    if len(segments) == 1:
        only = segments[0]
        return lambda v: isinstance(v, str) and v == only
    return lambda v: isinstance(v, str) and segments_match(segments, v)


def _wildcard_segments(text: str) -> list[str]:
    """Split on unescaped `*`; `\\*` is a star and `\\\\` a backslash, as in event-ruler."""
    segments = [""]
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            following = text[i + 1 : i + 2]
            if following not in ("*", "\\"):
                raise Invalid("wildcard: a backslash may only escape '*' or '\\'")
            segments[-1] += following
            i += 2
            continue
        if char == "*":
            if text[i + 1 : i + 2] == "*":
                raise Invalid("wildcard: consecutive wildcard characters are not allowed")
            segments.append("")
        else:
            segments[-1] += char
        i += 1
    return segments


def _anything_but(value: Any) -> Predicate:
    if isinstance(value, Mapping):
        key, inner = single_key(value, "anything-but object")
        if key not in _STRING_PATTERN_OPS:
            allowed = ", ".join(_STRING_PATTERN_OPS)
            raise Invalid(f"anything-but object accepts {allowed}, found {key!r}")
        texts = inner if isinstance(inner, list) else [inner]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise Invalid(f"anything-but {key} takes a string or a non-empty list of strings")
        excluded = [_string_op(key, t) for t in texts]
    else:
        excluded = [literal(v) for v in _anything_but_values(value)]
    # A non-string value is "anything but" a string pattern, so it matches; presence is still
    # required because the leaf only calls predicates on values that exist.
    return lambda v: not any(p(v) for p in excluded)


def _string_op(key: str, text: str) -> Predicate:
    if key == "prefix":
        return lambda v: isinstance(v, str) and v.startswith(text)
    if key == "suffix":
        return lambda v: isinstance(v, str) and v.endswith(text)
    if key == "wildcard":
        return wildcard(text)
    return _ignore_case(text)


def _anything_but_values(value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise Invalid("anything-but list must not be empty")
    if all(isinstance(v, str) for v in values):
        return values
    if all(is_finite_number(v) for v in values):
        return values
    if len(values) == 1 and is_literal(values[0]):
        raise Invalid("anything-but takes a string or a number, not true, false or null")
    raise Invalid("anything-but list must hold only strings or only numbers")


def numeric(value: Any) -> Predicate:
    if not isinstance(value, list) or len(value) not in (2, 4):
        raise Invalid("numeric takes one or two comparisons, e.g. [\">\", 0, \"<=\", 5]")
    pairs = [_comparison(value[i], value[i + 1]) for i in range(0, len(value), 2)]
    if len(pairs) == 2:
        _check_range(pairs[0], pairs[1])
    tests = [(_COMPARATORS[op], bound) for op, bound in pairs]
    return lambda v: is_number(v) and all(test(v, bound) for test, bound in tests)


def _comparison(op: Any, bound: Any) -> tuple[str, Any]:
    if not isinstance(op, str) or op not in _COMPARATORS:
        raise Invalid(f"numeric operator must be one of <, <=, =, >, >=; found {op!r}")
    if not is_finite_number(bound):
        raise Invalid(f"numeric operand of {op} must be a finite number")
    return op, bound


def _check_range(low: tuple[str, Any], high: tuple[str, Any]) -> None:
    if low[0] not in _LOWER_BOUNDS or high[0] not in _UPPER_BOUNDS:
        raise Invalid("numeric range must be a lower bound (> or >=) then an upper bound (< or <=)")
    if not low[1] < high[1]:
        raise Invalid("numeric range lower bound must be less than its upper bound")


def cidr(value: Any) -> Predicate:
    text = _string(value, "cidr")
    address, slash, prefix = text.partition("/")
    # ip_network also takes "a.b.c.d/255.0.0.0" and bare addresses; AWS wants address/length.
    if not slash or not _CIDR_PREFIX.fullmatch(prefix):
        raise Invalid("cidr must be an IPv4 or IPv6 network such as 10.0.0.0/24")
    try:
        network = ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError as e:
        raise Invalid(f"cidr is not a valid IPv4 or IPv6 network: {e}") from e
    return lambda v: isinstance(v, str) and _in_network(v, network)


def _in_network(text: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    # IPv4Network.__contains__ does not check the version of a bare address, so check here.
    return address.version == network.version and address in network
