"""`*` wildcards matched without regular expressions (filter patterns, event patterns)."""

from __future__ import annotations

from collections.abc import Sequence


def segments_match(segments: Sequence[str], value: str) -> bool:
    """Whether `value` is the `segments` joined by runs of any characters (a `*` glob split at
    its stars; one segment: equality). Leftmost-first segment search is exact for `*`-only globs
    and linear, where a regex of many `.*` backtracks polynomially on hostile input."""
    if len(segments) == 1:
        return value == segments[0]
    first, last = segments[0], segments[-1]
    end = len(value) - len(last)
    if end < len(first) or not value.startswith(first) or not value.endswith(last):
        return False
    pos = len(first)
    for middle in segments[1:-1]:
        found = value.find(middle, pos, end)
        if found < 0:
            return False
        pos = found + len(middle)
    return True
