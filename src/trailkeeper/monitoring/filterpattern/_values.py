"""Values on the right of a comparison: strings with `*` globs, numbers, `%regex%`, and `*`.

Shared by JSON and space-delimited patterns. Everything is compiled once, at parse time.
"""

from __future__ import annotations

import math
import operator
import re
import string
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from trailkeeper._internal.glob import segments_match
from trailkeeper.monitoring.filterpattern._cursor import WHITESPACE, Cursor

NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Unquoted values: the documented alphanumerics and '_', plus '.', '-', '+' and '*' because AWS
# itself publishes unquoted `kms.amazonaws.com`, `123.123.*` and signed numbers.
UNQUOTED_CHARS = frozenset(string.ascii_letters + string.digits + "_.-+*")
STRING_OPERATORS = ("=", "!=")
OPERATORS = ("!=", "<=", ">=", "=", "<", ">")  # longest first, so '<=' is not read as '<'

_REGEX_SYMBOLS = ":_#=@/;,-" + "^$?[]{}|\\*+."
# AWS lists no space, but its own CDK example regex is 'bind: address already in use'.
_REGEX_CHARS = frozenset(string.ascii_letters + string.digits + _REGEX_SYMBOLS + " ")
_REGEX_ESCAPES = frozenset("dDwWsStnr" + _REGEX_SYMBOLS.replace("\\", "") + "\\")

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def quote(text: str) -> str:
    """Quote a string the way CDK's quoteTerm does: backslash and double quote escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Glob:
    """A string literal, quoted or not; each `*` in it matches any run of characters."""

    text: str
    _parts: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parts", tuple(self.text.split("*")))

    def matches(self, value: str) -> bool:
        return segments_match(self._parts, value)

    def render(self) -> str:
        return quote(self.text)


@dataclass(frozen=True)
class Number:
    """A numeric literal (sign, decimals and exponent allowed); always finite."""

    value: float

    def render(self) -> str:
        # Whole numbers print without ".0" (2, not 2.0); both spellings parse to the same value.
        if self.value.is_integer() and abs(self.value) < 1e15:
            return str(int(self.value))
        return repr(self.value)


@dataclass(frozen=True)
class Regex:
    """A `%regex%` value: searched unanchored, like AWS's examples that anchor with ^ and $."""

    source: str
    compiled: re.Pattern[str] = field(compare=False, repr=False)

    def matches(self, value: str) -> bool:
        return self.compiled.search(value) is not None

    def render(self) -> str:
        return f"%{self.source}%"


@dataclass(frozen=True)
class AnyValue:
    """`= *`: the field is there (with a string, number or boolean value)."""

    def render(self) -> str:
        return "*"


Value = Glob | Number | Regex | AnyValue


class RegexBudget:
    """Counts the regexes of one pattern and refuses the one past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, cur: Cursor, at: int) -> None:
        self.used += 1
        if self.used > self.limit:
            raise cur.error(
                f"a JSON or space-delimited pattern may hold at most {self.limit} regexes; "
                "replace this one with a string or * glob, or split the pattern",
                at,
            )


def parse_number(text: str) -> float | None:
    """The number `text` spells (same grammar as pattern literals), or None."""
    if NUMBER_RE.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def read_quoted(cur: Cursor) -> str:
    """Read a "..." string at the cursor; `\\"` and `\\\\` are escapes, as CDK writes them."""
    start = cur.pos
    cur.pos += 1
    out: list[str] = []
    while cur.pos < cur.end:
        char = cur.text[cur.pos]
        if char == "\\" and cur.pos + 1 < cur.end and cur.text[cur.pos + 1] in '"\\':
            out.append(cur.text[cur.pos + 1])
            cur.pos += 2
            continue
        cur.pos += 1
        if char == '"':
            return "".join(out)
        out.append(char)
    raise cur.error('unterminated quoted string: close it with a double quote (")', start)


def read_regex(cur: Cursor, budget: RegexBudget) -> Regex:
    """Read a %regex% at the cursor, check AWS's character rules, and compile it."""
    start = cur.pos
    close = cur.text.find("%", start + 1, cur.end)
    if close == -1:
        raise cur.error("unterminated regex: close it with %", start)
    source = cur.text[start + 1 : close]
    if not source:
        raise cur.error("empty regex %%: write a regex between the % signs", start)
    _check_regex_chars(cur, source, start + 1)
    budget.spend(cur, start)
    cur.pos = close + 1
    return Regex(source, _compile_regex(cur, source, start + 1))


def _check_regex_chars(cur: Cursor, source: str, offset: int) -> None:
    index = 0
    while index < len(source):
        char = source[index]
        at = offset + index
        if char == "\\":
            follower = source[index + 1 : index + 2]
            if follower not in _REGEX_ESCAPES:
                raise cur.error(
                    f"unsupported regex escape \\{follower}: use \\d, \\w, \\s (or their "
                    "capitals), \\t, \\n, \\r, or a backslash before a supported symbol",
                    at,
                )
            index += 2
            continue
        if char in "()":
            raise cur.error(
                "regex grouping with ( ) is not supported: use [...] classes or | "
                "alternatives without parentheses",
                at,
            )
        if ord(char) > 127:
            raise cur.error("multi-byte characters are not supported in a regex", at)
        if char not in _REGEX_CHARS:
            raise cur.error(
                f"the symbol '{char}' is not allowed in a regex: use letters, digits, "
                f"the symbols {_REGEX_SYMBOLS[:9]} and the operators {_REGEX_SYMBOLS[9:]}",
                at,
            )
        index += 1


def _compile_regex(cur: Cursor, source: str, offset: int) -> re.Pattern[str]:
    # Python warns (FutureWarning) about constructs it may read differently one day, such
    # as nested sets; refuse those instead of guessing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return re.compile(source, re.ASCII)
        except re.error as exc:
            at = offset + (exc.pos if exc.pos is not None else 0)
            raise cur.error(f"invalid regex: {exc.msg}", at) from exc
        except Warning as exc:
            raise cur.error(f"ambiguous regex ({exc}); escape the character", offset) from exc


def read_value(cur: Cursor, terminators: frozenset[str], budget: RegexBudget) -> Value:
    """Read the value after an operator, up to one of `terminators`."""
    start = cur.pos
    char = cur.peek()
    value: Value
    if char == '"':
        text = read_quoted(cur)
        value = AnyValue() if text == "*" else Glob(text)
    elif char == "%":
        value = read_regex(cur, budget)
    else:
        value = _unquoted(cur, start)
    if not cur.at_end() and cur.peek() not in terminators:
        raise cur.error(
            f"unexpected {cur.shown()} in a value: put values with characters other than "
            "letters, digits, '_', '.', '-', '+' and '*' in double quotes",
        )
    return value


def _unquoted(cur: Cursor, start: int) -> Value:
    token = cur.take_while(UNQUOTED_CHARS)
    if not token:
        raise cur.error(
            f"expected a value at {cur.shown()}: write a number, a word, "
            'a "quoted string", * or a %regex%'
        )
    if token == "*":
        return AnyValue()
    if NUMBER_RE.fullmatch(token):
        number = parse_number(token)
        if number is None:
            raise cur.error(f"the number {token} is out of range", start)
        return Number(number)
    return Glob(token)


def read_operator(cur: Cursor) -> str:
    """Read a comparison operator; '==' and the like are refused, not guessed at."""
    at = cur.pos
    for op in OPERATORS:
        if cur.take(op):
            if cur.startswith("="):
                raise cur.error(f"'{op}=' is not an operator: write {op}", at)
            return op
    raise cur.error(f"expected a comparison operator (=, !=, <, >, <=, >=) at {cur.shown()}", at)


def check_operator(cur: Cursor, op: str, value: Value, at: int) -> None:
    """Refuse operator/value pairs that have no meaning (they would never match)."""
    if op not in STRING_OPERATORS and not isinstance(value, Number):
        raise cur.error(
            f"{op} compares numbers: write a number such as 500 (strings, * and %regex% "
            "take only = or !=)",
            at,
        )
    if op == "!=" and isinstance(value, AnyValue):
        raise cur.error(
            "!= * never matches: to select events without the field write NOT EXISTS "
            "(JSON), or drop the condition",
            at,
        )


def compare_json(op: str, literal: Value, actual: object) -> bool:
    """Compare a present JSON scalar; a value of the wrong type never matches (D2)."""
    if isinstance(literal, AnyValue):
        return actual is not None
    if isinstance(literal, Number):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        return _COMPARE[op](float(actual), literal.value)
    if not isinstance(actual, str):
        return False
    hit = literal.matches(actual)
    return hit if op == "=" else not hit


def compare_text(op: str, literal: Value, text: str) -> bool:
    """Compare one field of a space-delimited event; numbers compare numerically."""
    if isinstance(literal, AnyValue):
        return True
    if isinstance(literal, Number):
        number = parse_number(text)
        return number is not None and _COMPARE[op](number, literal.value)
    hit = literal.matches(text)
    return hit if op == "=" else not hit


def reject_single_boolean(cur: Cursor) -> None:
    """A lone '&' or '|' is a typo for '&&' / '||'; say so instead of 'unexpected'."""
    char = cur.peek()
    if char in ("&", "|") and not cur.startswith(char * 2):
        raise cur.error(f"write {char * 2} (a single {char} is not an operator)")


VALUE_END_JSON = frozenset(WHITESPACE + ")}&|")
VALUE_END_SPACE = frozenset(WHITESPACE + ",]&|")
