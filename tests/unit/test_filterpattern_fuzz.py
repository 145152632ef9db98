"""Property tests for filter patterns: no crash on any input, canonical text round-trips, and
JSON matching agrees with a small reference evaluator written independently here."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.monitoring.cis import CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE, CONTROLS
from trailkeeper.monitoring.filterpattern import FilterPattern, FilterPatternError, parse

# Characters that steer the parser into every branch, plus a few that must be refused.
GRAMMAR = '{}[]()$.=!<>&|"%*?-+,_ \t\\eE0129abcISNOTULXR@é'
PATTERNS = [
    parse(text)
    for text in (
        *(control.pattern for control in CONTROLS),
        CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE,
        "{ $.a[0].b > 1 || $.c IS NULL || $.d = %x+y% }",
        "[a, ..., b = 4* || b > 10]",
        "ERROR -WARN",
        "?a ?b",
        "%ab?c%",
        "",
    )
]


def _parse_or_refuse(text: str) -> FilterPattern | None:
    try:
        return parse(text)
    except FilterPatternError as exc:
        assert 0 <= exc.position <= len(text)
        return None


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet=GRAMMAR, max_size=60)))
def test_random_text_is_a_pattern_or_a_refusal(text: str) -> None:
    pattern = _parse_or_refuse(text)
    if pattern is not None:  # whatever is accepted must also survive its canonical text
        assert parse(pattern.canonical) == pattern
        found = pattern.match(text)
        assert found is None or isinstance(found.extracted_values, dict)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)  # fmt: skip
cloudtrail_like = st.fixed_dictionaries(
    {},
    optional={
        "eventName": st.sampled_from(["ConsoleLogin", "HeadBucket", "StopLogging", "x"]),
        "errorCode": st.sampled_from(["AccessDenied", "Client.UnauthorizedOperation", "", 5]),
        "userIdentity": json_values,
        "a": json_values,
    },
)


@settings(max_examples=100, deadline=None)
@given(st.one_of(json_values, cloudtrail_like), st.sampled_from(PATTERNS))
def test_random_json_events_never_crash_matching(event: Any, pattern: FilterPattern) -> None:
    message = orjson.dumps(event).decode()
    found = pattern.match(message)
    if found is not None:
        assert isinstance(found.extracted_values, dict)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=40), st.sampled_from(PATTERNS))
def test_random_messages_never_crash_matching(message: str, pattern: FilterPattern) -> None:
    pattern.match(message)


# -- generated valid patterns round-trip ------------------------------------------------------

FIELDS = ("a", "b", "c")
spaces = st.sampled_from(["", " ", "  ", "\t"])
string_values = st.sampled_from(["x", "y1", "x*", "*y", '"a b"', '"q\\"t"', "k.z", '"*"', "*"])
number_values = st.sampled_from(["0", "-1", "+2.5", "1e3", "7E-2"])


@st.composite
def json_conditions(draw: st.DrawFn) -> str:
    selector = "$." + draw(st.sampled_from(FIELDS)) + draw(st.sampled_from(["", "[0]", ".d"]))
    kind = draw(st.sampled_from(["string", "number", "predicate", "regex"]))
    if kind == "predicate":
        return (
            f"{selector} {draw(st.sampled_from(['IS NULL', 'IS TRUE', 'IS FALSE', 'NOT EXISTS']))}"
        )
    if kind == "regex":
        return f"{selector}{draw(spaces)}{draw(st.sampled_from(['=', '!=']))}{draw(spaces)}%x|y%"
    if kind == "number":
        op = draw(st.sampled_from(["=", "!=", "<", ">", "<=", ">="]))
        return f"{selector}{draw(spaces)}{op}{draw(spaces)}{draw(number_values)}"
    value = draw(string_values)
    op = "=" if value in ("*", '"*"') else draw(st.sampled_from(["=", "!="]))
    return f"{selector}{draw(spaces)}{op}{draw(spaces)}{value}"


def json_expressions() -> st.SearchStrategy[str]:
    def combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        joined = st.tuples(inner, st.sampled_from(["&&", "||"]), inner, spaces).map(
            lambda t: f"{t[0]}{t[3]} {t[1]} {t[3]}{t[2]}"
        )
        return joined | inner.map(lambda e: f"({e})")

    return st.recursive(json_conditions(), combine, max_leaves=6)


space_fields = st.sampled_from(
    ["f", "g = 4*", "h > 10", 'i = "a b" || i = %z%', "j != x && j != y"]
)


@st.composite
def valid_patterns(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["json", "space", "terms", "regex"]))
    if kind == "json":
        return "{" + draw(spaces) + draw(json_expressions()) + draw(spaces) + "}"
    if kind == "space":
        fields = draw(st.lists(space_fields, min_size=1, max_size=4, unique=True))
        if draw(st.booleans()):
            fields.insert(draw(st.integers(0, len(fields))), "...")
        return "[" + ", ".join(fields) + "]"
    if kind == "terms":
        words = st.sampled_from(["ERROR", '"x y"', "w_1", '"q\\"t"'])
        prefix = draw(st.sampled_from(["", "-", "?"]))
        terms = draw(st.lists(words, min_size=1, max_size=3))
        if prefix == "?":
            return " ".join("?" + t for t in terms)
        return " ".join(terms + [prefix + t for t in terms if prefix])
    return "%" + draw(st.sampled_from(["a+", "^x$", r"\d{1,3}", "[a-z]|b"])) + "%"


def _limited(text: str) -> bool:
    return text.count("%") <= 4  # at most 2 regexes; the generator may draw more


@settings(max_examples=150, deadline=None)
@given(valid_patterns().filter(_limited))
def test_generated_patterns_round_trip_through_their_canonical_text(text: str) -> None:
    pattern = parse(text)
    again = parse(pattern.canonical)
    assert again == pattern
    assert again.canonical == pattern.canonical
    assert again.normalized() == pattern.normalized()


@settings(max_examples=150, deadline=None)
@given(
    valid_patterns(),
    st.integers(0, 200),
    st.sampled_from(GRAMMAR),
    st.sampled_from(["insert", "delete", "replace"]),
)
def test_mutated_valid_patterns_are_patterns_or_refusals(
    text: str, where: int, char: str, edit: str
) -> None:
    # One-character edits of valid patterns reach the JSON and space-delimited error paths
    # that random text rarely gets past the first character of.
    at = where % (len(text) + 1)
    if edit == "insert":
        text = text[:at] + char + text[at:]
    elif edit == "delete":
        text = text[:at] + text[at + 1 :]
    else:
        text = text[:at] + char + text[at + 1 :]
    pattern = _parse_or_refuse(text)
    if pattern is not None:
        assert parse(pattern.canonical) == pattern


# -- a reference evaluator for a small JSON subset --------------------------------------------
# Expressions are trees of ("cmp", field, op, literal), ("missing", field), ("and"|"or", l, r).

scalars = st.sampled_from(["x", "y", 1, 2, 2.5, True, None])
documents = st.dictionaries(st.sampled_from(FIELDS), scalars | st.just([1]) | st.just({"k": 1}))
leaves = st.one_of(
    st.tuples(st.just("cmp"), st.sampled_from(FIELDS), st.sampled_from(["=", "!="]), st.sampled_from(["x", "y"])),
    st.tuples(st.just("cmp"), st.sampled_from(FIELDS), st.sampled_from(["=", "!=", "<", ">="]), st.sampled_from([1, 2])),
    st.tuples(st.just("missing"), st.sampled_from(FIELDS)),
)  # fmt: skip
trees = st.recursive(
    leaves,
    lambda inner: st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    max_leaves=5,
)

OPS: dict[str, Any] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
}


def reference(tree: Any, document: dict[str, Any]) -> bool:
    tag = tree[0]
    if tag == "and":
        return reference(tree[1], document) and reference(tree[2], document)
    if tag == "or":
        return reference(tree[1], document) or reference(tree[2], document)
    if tag == "missing":
        return tree[1] not in document
    _, name, op, literal = tree
    if name not in document:
        return False  # D2
    value = document[name]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    same_type = isinstance(value, str) if isinstance(literal, str) else numeric
    if same_type:
        return bool(OPS[op](value, literal))
    return False  # type mismatch, null, object or array: no match


def text_of(tree: Any) -> str:
    tag = tree[0]
    if tag in ("and", "or"):
        joiner = " && " if tag == "and" else " || "
        return f"({text_of(tree[1])}){joiner}({text_of(tree[2])})"
    if tag == "missing":
        return f"$.{tree[1]} NOT EXISTS"
    return f"$.{tree[1]} {tree[2]} {tree[3]}"


@settings(max_examples=200, deadline=None)
@given(trees, documents)
def test_json_matching_agrees_with_the_reference_evaluator(
    tree: Any, document: dict[str, Any]
) -> None:
    pattern = parse("{ " + text_of(tree) + " }")
    assert (pattern.match(orjson.dumps(document).decode()) is not None) is reference(tree, document)
