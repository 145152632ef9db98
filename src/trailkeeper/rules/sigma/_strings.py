"""Sigma string values (wildcards already parsed by pySigma) compiled to string tests.

`*` matches any run of characters, `?` exactly one; everything else is literal. Case-insensitive
matching lowercases both sides once: the pattern here, the record's text in `_record`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sigma.types import SpecialChars

from trailkeeper._internal.glob import segments_match

StringTest = Callable[[str], bool]
Part = str | SpecialChars


@dataclass(frozen=True)
class TextTest:
    """One compiled value: `exact` is set for plain equality (kept apart so that equal tests
    on one field merge into a set lookup, and so that the rule index can use them)."""

    exact: str | None
    test: StringTest
    cost: int


def compile_parts(parts: Sequence[Part], fold: bool) -> TextTest:
    """The test a Sigma string (literal text and wildcards) makes of a whole value."""
    parts = [part.lower() if fold and isinstance(part, str) else part for part in parts]
    if SpecialChars.WILDCARD_SINGLE in parts:
        return _regex_test(parts)
    segments = _segments(parts)
    if len(segments) == 1:
        text = segments[0]
        return TextTest(text, text.__eq__, 1)
    return _glob_test(segments)


def _segments(parts: Sequence[Part]) -> list[str]:
    """The literal runs between `*`s (adjacent stars leave an empty run, which is harmless)."""
    segments = [""]
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            segments.append("")
        else:
            segments[-1] += str(part)
    return segments


def _glob_test(segments: list[str]) -> TextTest:
    first, last = segments[0], segments[-1]
    middle = [segment for segment in segments[1:-1] if segment]
    if not middle and not first and not last:
        return TextTest(None, _anything, 1)
    if not middle and not last:
        return TextTest(None, lambda text: text.startswith(first), 2)
    if not middle and not first:
        return TextTest(None, lambda text: text.endswith(last), 2)
    if len(middle) == 1 and not first and not last:
        needle = middle[0]
        return TextTest(None, lambda text: needle in text, 2)
    return TextTest(None, lambda text: segments_match(segments, text), 3)


def _anything(text: str) -> bool:
    return True


def _regex_test(parts: Sequence[Part]) -> TextTest:
    pieces = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            pieces.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
        else:
            pieces.append(re.escape(str(part)))
    pattern = re.compile("".join(pieces), re.DOTALL)
    return TextTest(None, lambda text: pattern.fullmatch(text) is not None, 4)


def regex_test(pattern: re.Pattern[str]) -> TextTest:
    """`re`: a search anywhere in the value, as most SIEMs run it; anchor with ^ and $."""
    search = re.compile(searchable(pattern.pattern), pattern.flags).search
    return TextTest(None, lambda text: search(text) is not None, 5)


_EDGE_RUN = re.compile(r"\.([*+])\??")


def searchable(pattern: str) -> str:
    """An equivalent pattern for `search` without leading or trailing `.*`/`.+` runs.

    Searching for `.+:assumed-role/aws:.+` tries every start and lets `.+` swallow the rest
    of the value before backing off: quadratic. Whether a search finds a match is unchanged
    when a leading or trailing `.+` becomes one `.` and `.*` disappears (some character, or
    none, is there whenever the rest matches). Patterns with `|` are left alone: the run may
    belong to one alternative only."""
    if "|" in pattern:
        return pattern
    head = _EDGE_RUN.match(pattern)
    if head is not None and pattern[head.end():head.end() + 1] not in ("*", "+", "?", "{"):
        pattern = ("." if head.group(1) == "+" else "") + pattern[head.end():]
    for run, keep in ((".*", ""), (".+", ".")):
        body = pattern[:-len(run)]
        escapes = len(body) - len(body.rstrip("\\"))
        if pattern.endswith(run) and escapes % 2 == 0 and body[-1:] not in ("*", "+", "?", "}"):
            pattern = body + keep
            break
    return pattern
