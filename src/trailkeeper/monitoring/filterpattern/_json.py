"""JSON patterns `{ expr }`: recursive-descent parser, compiled evaluator, canonical text.

Grammar (precedence `()` > `&&` > `||`, as AWS documents):
    pattern    := '{' or '}'
    or         := and ('||' and)*
    and        := primary ('&&' primary)*
    primary    := '(' or ')' | selector condition
    condition  := op value | 'IS NULL' | 'IS TRUE' | 'IS FALSE' | 'NOT EXISTS'

D2: a comparison needs a present scalar of the literal's type: `!=` on a missing field, any
comparison on an object or array, and a number against a string (or the reverse) do not match.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field

from trailkeeper.monitoring.filterpattern._cursor import Cursor
from trailkeeper.monitoring.filterpattern._match import (
    MISSING,
    Event,
    Match,
    Path,
    read_selector,
    render_path,
    resolve,
)
from trailkeeper.monitoring.filterpattern._values import (
    VALUE_END_JSON,
    Glob,
    RegexBudget,
    Value,
    check_operator,
    compare_json,
    read_operator,
    read_value,
    reject_single_boolean,
)

MAX_DEPTH = 32
_LETTERS = frozenset(string.ascii_letters)
_PREDICATES = {"IS": ("NULL", "TRUE", "FALSE"), "NOT": ("EXISTS",)}

Check = Callable[[object], bool]


@dataclass(frozen=True)
class Compare:
    path: Path
    op: str
    value: Value


@dataclass(frozen=True)
class Predicate:
    path: Path
    name: str  # "IS NULL", "IS TRUE", "IS FALSE" or "NOT EXISTS"


@dataclass(frozen=True)
class And:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Expr, ...]


Expr = Compare | Predicate | And | Or


@dataclass(frozen=True)
class JsonBody:
    expr: Expr
    _check: Check = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_check", compile_expr(self.expr))

    def match(self, event: Event) -> Match | None:
        document = event.document
        if document is MISSING:
            return None  # a non-JSON event never matches a JSON pattern
        return Match({}, document) if self._check(document) else None

    def render(self) -> str:
        return "{ " + render(self.expr) + " }"


# -- parsing ------------------------------------------------------------------------------


def parse_json(cur: Cursor, budget: RegexBudget) -> JsonBody:
    cur.take("{")
    cur.skip_ws()
    if cur.startswith("}"):
        raise cur.error(
            "empty JSON pattern: write a condition, e.g. { $.eventName = ConsoleLogin }"
        )
    expr = _parse_or(cur, budget, 0)
    cur.skip_ws()
    if not cur.take("}"):
        raise cur.error(f"expected &&, || or }} at {cur.shown()}")
    cur.skip_ws()
    if not cur.at_end():
        raise cur.error("text after the closing }: remove it, or move it inside the braces")
    return JsonBody(expr)


def _parse_or(cur: Cursor, budget: RegexBudget, depth: int) -> Expr:
    parts = [_parse_and(cur, budget, depth)]
    while True:
        cur.skip_ws()
        reject_single_boolean(cur)
        if not cur.take("||"):
            return parts[0] if len(parts) == 1 else Or(tuple(parts))
        parts.append(_parse_and(cur, budget, depth))


def _parse_and(cur: Cursor, budget: RegexBudget, depth: int) -> Expr:
    parts = [_parse_primary(cur, budget, depth)]
    while True:
        cur.skip_ws()
        reject_single_boolean(cur)
        if not cur.take("&&"):
            return parts[0] if len(parts) == 1 else And(tuple(parts))
        parts.append(_parse_primary(cur, budget, depth))


def _parse_primary(cur: Cursor, budget: RegexBudget, depth: int) -> Expr:
    cur.skip_ws()
    if not cur.startswith("("):
        return _parse_condition(cur, budget)
    open_at = cur.pos
    if depth >= MAX_DEPTH:
        raise cur.error(f"parentheses nest deeper than {MAX_DEPTH} levels: flatten them")
    cur.pos += 1
    cur.skip_ws()
    if cur.startswith(")"):
        raise cur.error("empty parentheses: put a condition inside them")
    expr = _parse_or(cur, budget, depth + 1)
    cur.skip_ws()
    if not cur.take(")"):
        raise cur.error(f"expected ) to close the ( at character {open_at}, found {cur.shown()}")
    return expr


def _parse_condition(cur: Cursor, budget: RegexBudget) -> Expr:
    path = read_selector(cur)
    cur.skip_ws()
    keyword_at = cur.pos
    keyword = cur.take_while(_LETTERS)
    if keyword:
        return Predicate(path, _parse_predicate(cur, keyword, keyword_at))
    op = read_operator(cur)
    cur.skip_ws()
    value_at = cur.pos
    value = read_value(cur, VALUE_END_JSON, budget)
    check_operator(cur, op, value, value_at)
    return Compare(path, op, value)


def _parse_predicate(cur: Cursor, keyword: str, at: int) -> str:
    if keyword == "EXISTS":
        raise cur.error(
            "EXISTS is not supported: write `= *` for 'the field exists', or NOT EXISTS", at
        )
    if keyword not in _PREDICATES:
        raise cur.error(
            f"expected an operator or IS NULL / IS TRUE / IS FALSE / NOT EXISTS, found "
            f"'{keyword}' (keywords are upper-case)",
            at,
        )
    cur.skip_ws()
    word_at = cur.pos
    word = cur.take_while(_LETTERS)
    if keyword == "IS" and word == "NOT":
        raise cur.error(
            'IS NOT is not supported: write != "value" for another value, or NOT EXISTS '
            "for a missing field",
            at,
        )
    if word not in _PREDICATES[keyword]:
        wanted = " or ".join(f"{keyword} {w}" for w in _PREDICATES[keyword])
        raise cur.error(f"expected {wanted}", word_at)
    return f"{keyword} {word}"


# -- evaluation ---------------------------------------------------------------------------


def compile_expr(expr: Expr) -> Check:
    """Turn the tree into nested closures once, so matching does no dispatch on node types."""
    if isinstance(expr, And):
        checks = [compile_expr(part) for part in expr.parts]
        return lambda document: all(check(document) for check in checks)
    if isinstance(expr, Or):
        checks = [compile_expr(part) for part in expr.parts]
        return lambda document: any(check(document) for check in checks)
    if isinstance(expr, Predicate):
        return _compile_predicate(expr)
    return _compile_compare(expr)


def _compile_compare(expr: Compare) -> Check:
    path, op, literal = expr.path, expr.op, expr.value
    if isinstance(literal, Glob):
        return _compile_string_compare(path, op == "=", literal)

    def check(document: object) -> bool:
        actual = resolve(document, path)
        if actual is MISSING or isinstance(actual, dict | list):
            return False  # D2, and AWS: a selector on an object or array does not match
        return compare_json(op, literal, actual)

    return check


def _compile_string_compare(path: Path, equal: bool, literal: Glob) -> Check:
    # The hot path of audit filters (`$.eventName = X`): the same decision as compare_json for a
    # string literal (only a JSON string can match, `=` or `!=` alike), without its dispatch.
    exact = literal.text if "*" not in literal.text else None
    if exact is not None and equal and len(path) == 1 and isinstance(path[0], str):
        key = path[0]
        return lambda document: isinstance(document, dict) and document.get(key) == exact
    matches = literal.matches

    def check(document: object) -> bool:
        actual = resolve(document, path)
        return isinstance(actual, str) and matches(actual) == equal

    return check


def _compile_predicate(expr: Predicate) -> Check:
    path = expr.path
    if expr.name == "NOT EXISTS":
        return lambda document: resolve(document, path) is MISSING
    wanted = {"IS NULL": None, "IS TRUE": True, "IS FALSE": False}[expr.name]
    # `is`, not ==: 1 == True in Python, but a JSON number is not a JSON boolean.
    return lambda document: resolve(document, path) is wanted


Alternatives = frozenset[tuple[Path, str]]
_EVENT_NAME: Path = ("eventName",)


def alternatives(expr: Expr) -> Alternatives | None:
    """(selector, exact string) pairs at least one of which an event must have for `expr` to
    match: a necessary condition an index can test with a few lookups instead of evaluating
    `expr`; None when `expr` has none.

    Sound by construction: `$.x = "v"` (no `*`) matches only the string "v" (D2: no other type
    matches a string literal); an `&&` needs each operand's condition, so any one of them will
    do (the most selective is kept); an `||` needs one of its alternatives, so it has a
    condition only when every alternative has one (their union)."""
    if isinstance(expr, Compare):
        literal = expr.value
        if expr.op == "=" and isinstance(literal, Glob) and "*" not in literal.text:
            return frozenset(((expr.path, literal.text),))
        return None
    if isinstance(expr, Predicate):
        return None
    parts = [alternatives(part) for part in expr.parts]
    if isinstance(expr, Or):
        if any(part is None for part in parts):
            return None
        return frozenset().union(*(part for part in parts if part is not None))
    known = [part for part in parts if part is not None]
    return min(known, key=_selectivity) if known else None


def _selectivity(pairs: Alternatives) -> tuple[bool, int, str]:
    # eventName first (the most selective field of CloudTrail records, and the one FilterLogEvents'
    # store indexes), then fewer alternatives; the text last, so the choice is deterministic.
    return (any(path != _EVENT_NAME for path, _ in pairs), len(pairs), repr(sorted(pairs, key=repr)))


# -- text ---------------------------------------------------------------------------------


def render(expr: Expr) -> str:
    """Canonical text; compound operands are parenthesised so re-parsing gives the same tree."""
    if isinstance(expr, Compare):
        return f"{render_path(expr.path)} {expr.op} {expr.value.render()}"
    if isinstance(expr, Predicate):
        return f"{render_path(expr.path)} {expr.name}"
    joiner = " && " if isinstance(expr, And) else " || "
    return joiner.join(_operand(part) for part in expr.parts)


def _operand(expr: Expr) -> str:
    return f"({render(expr)})" if isinstance(expr, And | Or) else render(expr)


def normalize(expr: Expr) -> Expr:
    """Flatten nested same-operator nodes and sort operands by their canonical text."""
    if isinstance(expr, Compare | Predicate):
        return expr
    flat: list[Expr] = []
    for part in map(normalize, expr.parts):
        same = isinstance(part, And) if isinstance(expr, And) else isinstance(part, Or)
        flat.extend(part.parts if same and isinstance(part, And | Or) else (part,))
    ordered = tuple(sorted(flat, key=render))
    return And(ordered) if isinstance(expr, And) else Or(ordered)
