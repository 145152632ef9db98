"""Filter patterns (spec monitoring.md §1): every construct, decision and refusal by name.

AWS examples come from the CloudWatch Logs guide (FilterAndPatternSyntax, regex-expressions)
and the CDK pattern builder; each case id says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from trailkeeper.errors import TrailkeeperError
from trailkeeper.monitoring.filterpattern import (
    MAX_PATTERN_LENGTH,
    MAX_REGEX_PATTERNS_PER_LOG_GROUP,
    NO_DIMENSIONS_MESSAGE,
    Event,
    FilterPatternError,
    check_dimensions,
    check_metric_selector,
    parse,
)


def js(value: Any) -> str:
    return orjson.dumps(value).decode()


def matches(pattern: str, message: str) -> bool:
    return parse(pattern).match(message) is not None


# -- 1.1 kind detection and limits -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind",
    [
        pytest.param("", "all", id="empty"),
        pytest.param("   \t ", "all", id="only-whitespace"),
        pytest.param('" "', "all", id="quoted-space"),
        pytest.param('  " "  ', "all", id="quoted-space-padded"),
        pytest.param("{ $.a = 1 }", "json", id="json"),
        pytest.param("  { $.a = 1 }  ", "json", id="json-padded"),
        pytest.param("[a, b]", "space", id="space-delimited"),
        pytest.param("%ab+c%", "regex", id="standalone-regex"),
        pytest.param("ERROR", "terms", id="term"),
        pytest.param('"INTERNAL SERVER ERROR"', "terms", id="quoted-phrase"),
    ],
)
def test_kind_detection(text: str, kind: str) -> None:
    assert parse(text).kind == kind


@pytest.mark.parametrize("text", ["", '" "'], ids=["empty", "quoted-space"])
def test_match_all_patterns_match_every_event(text: str) -> None:
    pattern = parse(text)
    assert pattern.match("") is not None
    assert pattern.match("anything at all {}") is not None


def test_length_limit_counts_characters_not_bytes() -> None:
    at_limit = "é" * MAX_PATTERN_LENGTH  # 2 bytes each in UTF-8, still 1,024 characters
    with pytest.raises(FilterPatternError):  # refused for being unquoted, not for its length
        parse(at_limit)
    assert parse('"' + "é" * (MAX_PATTERN_LENGTH - 2) + '"').kind == "terms"
    with pytest.raises(FilterPatternError, match="at most 1024 characters") as err:
        parse('"' + "x" * (MAX_PATTERN_LENGTH - 1) + '"')
    assert err.value.position == MAX_PATTERN_LENGTH


def test_error_is_a_trailkeeper_error_with_a_caret() -> None:
    with pytest.raises(FilterPatternError) as err:
        parse("{ $.a = 1 & $.b = 2 }")
    assert isinstance(err.value, TrailkeeperError)
    assert err.value.position == 10
    assert err.value.diagnostics().splitlines()[-1] == "  " + " " * 10 + "^"


def test_positions_count_from_the_untrimmed_text() -> None:
    with pytest.raises(FilterPatternError) as err:
        parse("   { $.a[*] = 1 }")
    assert err.value.position == 8


# -- 1.2 term patterns ---------------------------------------------------------------------------

OR_EVENTS = ["ERROR WARN message", "ERROR message", "WARN message"]  # AWS guide, OR matching


@pytest.mark.parametrize(
    "pattern, message, expected",
    [
        pytest.param("ERROR", "[ERROR] A fatal exception has occurred", True, id="aws-single-term"),
        pytest.param("ERROR", "Exiting with ERRORCODE: -1", True, id="aws-single-term-in-word"),
        pytest.param('"ERROR"', "[ERROR] x", True, id="quoted-single-word"),
        pytest.param(
            '"ERROR" - "Exiting"', "Exiting with ERRORCODE: -1", False, id="aws-exclude-spaced"
        ),
        pytest.param('"ERROR" - "Exiting"', "[ERROR] x", True, id="aws-exclude-spaced-kept"),
        pytest.param(
            "ERROR Exception", "[ERROR] Caught IllegalArgumentException", True, id="aws-and-terms"
        ),
        pytest.param("ERROR Exception", "[ERROR] Unhandled Exception", True, id="aws-and-terms-2"),
        pytest.param("ERROR Exception", "[ERROR] Unhandled", False, id="and-needs-every-term"),
        pytest.param(
            "Failed to process the request",
            "[WARN] Failed to process the request",
            True,
            id="aws-four-terms",
        ),
        pytest.param(
            '"INTERNAL SERVER ERROR"', "500 INTERNAL SERVER ERROR", True, id="phrase-matches"
        ),
        pytest.param(
            '"INTERNAL SERVER ERROR"', "INTERNAL ERROR SERVER", False, id="phrase-is-contiguous"
        ),
        pytest.param('"say \\"hi\\""', 'they say "hi"', True, id="escaped-quote-in-phrase"),
        pytest.param('"a\\\\b"', "a\\b", True, id="escaped-backslash-in-phrase"),
        pytest.param("-ERROR", "all good", True, id="exclusion-only"),
        pytest.param("-ERROR", "an ERROR", False, id="exclusion-only-refuses"),
        pytest.param("ERROR", "error", False, id="case-sensitive"),
    ],
)
def test_terms(pattern: str, message: str, expected: bool) -> None:
    assert matches(pattern, message) is expected


@pytest.mark.parametrize(
    "pattern, expected",
    [
        pytest.param("ERROR", [True, True, False], id="aws-or-ERROR"),
        pytest.param("?ERROR ?WARN", [True, True, True], id="aws-or-any"),
        pytest.param("ERROR WARN", [True, False, False], id="aws-or-both"),
        pytest.param("ERROR -WARN", [False, True, False], id="aws-or-exclude"),
        pytest.param("?WARN", [True, False, True], id="single-or-term"),
    ],
)
def test_terms_aws_or_examples(pattern: str, expected: list[bool]) -> None:
    assert [matches(pattern, event) for event in OR_EVENTS] == expected


def test_d1_unquoted_term_matches_as_a_substring() -> None:
    assert matches("ERROR", "MYERRORS")
    assert not matches("ERROR", "MyErrors")  # ... and case-sensitively


def test_provisional_mixing_or_terms_with_plain_terms_is_refused() -> None:
    for text, position in [("?ERROR WARN", 7), ("ERROR ?WARN", 6), ("-ERROR ?WARN", 7)]:
        with pytest.raises(FilterPatternError, match="cannot be mixed") as err:
            parse(text)
        assert err.value.position == position, text


# -- 1.3 JSON patterns ---------------------------------------------------------------------------

DOC_EVENT = js(
    {
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": None,
        "ThisFlag": True,
    }
)
USERS_EVENT = js(
    {
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [
            {"id": 2, "email": "John.Doe@example.com"},
            {"id": 3, "email": "Jane.Doe@example.com"},
        ],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
    }
)


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param('{ $.eventType = "UpdateTrail" }', id="aws-string"),
        pytest.param("{ $.sourceIPAddress != 123.123.* }", id="aws-not-prefix-glob"),
        pytest.param('{ $.arrayKey[0] = "value" }', id="aws-array-index"),
        pytest.param("{ $.objectList[1].id = 2 }", id="aws-index-then-name"),
        pytest.param("{ $.SomeObject IS NULL }", id="aws-is-null"),
        pytest.param("{ $.SomeOtherObject NOT EXISTS }", id="aws-not-exists"),
        pytest.param("{ $.ThisFlag IS TRUE }", id="aws-is-true"),
        pytest.param("{ $.eventType = UpdateTrail }", id="unquoted-word"),
        pytest.param("{ $.sourceIPAddress = 111.111.111.111 }", id="unquoted-dotted"),
        pytest.param('{ $.eventType = "Update*" }', id="glob-suffix"),
        pytest.param('{ $.eventType = "*Trail" }', id="glob-prefix"),
        pytest.param("{ $.eventType = * }", id="exists-star"),
        pytest.param('{ $.eventType = "*" }', id="exists-quoted-star-as-cdk-writes-it"),
        pytest.param("{ $.eventType = %^Upd% }", id="regex-value"),
        pytest.param("{ $.eventType != %Delete% }", id="regex-value-negated"),
        pytest.param("{$.eventType=UpdateTrail}", id="no-spaces"),
        pytest.param("{\n  $.eventType = UpdateTrail\n}", id="newlines"),
    ],
)
def test_json_matches_the_aws_example_event(pattern: str) -> None:
    assert matches(pattern, DOC_EVENT)


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param('{ $.eventType = "updatetrail" }', id="values-case-sensitive"),
        pytest.param('{ $.eventtype = "UpdateTrail" }', id="field-names-case-sensitive"),
        pytest.param("{ $.sourceIPAddress = 123.123.* }", id="glob-miss"),
        pytest.param('{ $.arrayKey[2] = "value" }', id="index-out-of-range"),
        pytest.param('{ $.eventType[0] = "U" }', id="index-into-string"),
        pytest.param("{ $.ThisFlag IS FALSE }", id="is-false-on-true"),
        pytest.param("{ $.SomeObject NOT EXISTS }", id="not-exists-on-null"),
        pytest.param("{ $.eventType IS NULL }", id="is-null-on-string"),
        pytest.param("{ $.Missing IS NULL }", id="is-null-on-missing"),
        pytest.param("{ $.eventType = %^Trail% }", id="regex-anchored-miss"),
    ],
)
def test_json_does_not_match_the_aws_example_event(pattern: str) -> None:
    assert not matches(pattern, DOC_EVENT)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        pytest.param(
            '{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }',
            True,
            id="aws-compound-1",
        ),
        pytest.param(
            '{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }',
            False,
            id="aws-compound-2",
        ),
        pytest.param(
            '{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch '
            "&& $.actions[2] = nomatch }",
            True,
            id="aws-precedence-and-binds-tighter",
        ),
        pytest.param(
            '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) '
            "&& $.actions[2] = nomatch }",
            False,
            id="aws-parentheses-override",
        ),
        pytest.param("{ $.coordinates[0][1] = 1 }", True, id="aws-double-index"),
        pytest.param("{ $.users[1].id >= 3 && $.users[1].id < 4 }", True, id="numeric-range"),
    ],
)
def test_json_aws_compound_examples(pattern: str, expected: bool) -> None:
    assert matches(pattern, USERS_EVENT) is expected


def test_precedence_a_or_b_and_c_is_a_or_b_and_c() -> None:
    pattern = parse("{ $.a = 1 || $.b = 1 && $.c = 1 }")
    assert pattern == parse("{ $.a = 1 || ($.b = 1 && $.c = 1) }")
    assert pattern != parse("{ ($.a = 1 || $.b = 1) && $.c = 1 }")
    assert pattern.match(js({"a": 1, "b": 0, "c": 0})) is not None  # A alone suffices
    assert pattern.match(js({"a": 0, "b": 1, "c": 0})) is None  # B needs C


@pytest.mark.parametrize(
    "pattern, value, expected",
    [
        pytest.param("{ $.latency >= 500 }", {"latency": 500}, True, id="aws-ge"),
        pytest.param("{ $.numbers[0] < 10e3 }", {"numbers": [9999]}, True, id="aws-exponent"),
        pytest.param("{ $.numbers[0] < 10e-3 }", {"numbers": [0.009]}, True, id="aws-neg-exp"),
        pytest.param("{ $.numbers[0] < 10e-3 }", {"numbers": [0.01]}, False, id="aws-neg-exp-2"),
        pytest.param(
            "{ $.processes[4].averageRuntime <= 55.5 }",
            {"processes": [{}, {}, {}, {}, {"averageRuntime": 55.5}]},
            True,
            id="aws-decimal",
        ),
        pytest.param("{ $.errorCode = 400 }", {"errorCode": 400}, True, id="aws-eq"),
        pytest.param("{ $.errorCode = 400 }", {"errorCode": 400.0}, True, id="eq-float"),
        pytest.param("{ $.errorCode != 500 }", {"errorCode": 400}, True, id="aws-ne"),
        pytest.param("{ $.latency > +1000 }", {"latency": 1001}, True, id="aws-plus-sign"),
        pytest.param("{ $.latency > -1 }", {"latency": 0}, True, id="minus-sign"),
        pytest.param("{ $.latency < 1E+2 }", {"latency": 99}, True, id="capital-exponent"),
        pytest.param("{ $.latency > 1000 }", {"latency": True}, False, id="bool-is-not-number"),
        pytest.param("{ $.latency = 1 }", {"latency": True}, False, id="true-is-not-1"),
    ],
)
def test_json_numeric_comparisons(pattern: str, value: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, js(value)) is expected


def test_aws_selector_on_array_matches_neither_eq_nor_ne() -> None:
    event = js({"users": [1, 2, 3]})
    assert not matches("{ $.users = 1 }", event)
    assert not matches("{ $.users != 1 }", event)
    assert not matches("{ $.user = * }", js({"user": {"id": 1}}))  # an object is not a value


def test_d2_ne_on_a_missing_field_does_not_match() -> None:
    assert not matches('{ $.x != "v" }', js({}))
    assert matches('{ $.x != "v" }', js({"x": "w"}))
    assert matches('{ ($.x != "v") || ($.x NOT EXISTS) }', js({}))


def test_d2_numeric_ne_on_a_missing_field_does_not_match() -> None:
    assert not matches("{ $.x != 5 }", js({}))


def test_provisional_numeric_literal_against_a_string_value_does_not_match() -> None:
    assert not matches(
        "{ $.recipientAccountId = 123456789012 }", js({"recipientAccountId": "123456789012"})
    )
    assert not matches("{ $.a != 1 }", js({"a": "2"}))  # not even !=
    assert matches(
        '{ $.recipientAccountId = "123456789012" }', js({"recipientAccountId": "123456789012"})
    )


def test_string_literal_against_a_number_value_does_not_match() -> None:
    assert not matches('{ $.a = "1" }', js({"a": 1}))
    assert not matches('{ $.a != "2" }', js({"a": 1}))


def test_provisional_star_in_the_middle_is_a_glob() -> None:
    pattern = parse('{ $.a = "Ev*ent" }')
    assert pattern.match(js({"a": "EvXYZent"})) is not None
    assert pattern.match(js({"a": "Event"})) is not None
    assert pattern.match(js({"a": "EvXYZ"})) is None
    assert matches("{ $.ip = 10.*.0.1 }", js({"ip": "10.20.0.1"}))


def test_glob_special_characters_are_literal() -> None:
    assert matches('{ $.a = "a.c*" }', js({"a": "a.cde"}))
    assert not matches('{ $.a = "a.c*" }', js({"a": "abcde"}))
    assert matches('{ $.a = "x*" }', js({"a": "x\nline two"}))


@pytest.mark.parametrize(
    "glob, value, expected",
    [
        pytest.param("a*b*c", "abc", True, id="empty-stars"),
        pytest.param("a*b*c", "aXbYc", True, id="filled-stars"),
        pytest.param("a*b*c", "acb", False, id="order-matters"),
        pytest.param("a*a", "a", False, id="prefix-and-suffix-do-not-overlap"),
        pytest.param("a*a", "aa", True, id="prefix-and-suffix-adjacent"),
        pytest.param("**", "", True, id="double-star"),
        pytest.param("*ab*ab*", "xabyab", True, id="repeated-segment"),
        pytest.param("*ab*ab*", "xaby", False, id="repeated-segment-once"),
    ],
)
def test_glob_semantics(glob: str, value: str, expected: bool) -> None:
    assert matches(f'{{ $.a = "{glob}" }}', js({"a": value})) is expected


def test_glob_with_many_stars_is_linear_not_backtracking() -> None:
    pattern = parse('{ $.a = "' + "*a" * 40 + '*b" }')
    assert pattern.match(js({"a": "a" * 20_000})) is None  # a backtracking regex would hang


def test_exists_star_matches_scalars_but_not_null() -> None:
    for value in ("", "s", 0, 1.5, False):
        assert matches("{ $.f = * }", js({"f": value})), value
    assert not matches("{ $.f = * }", js({"f": None}))
    assert not matches("{ $.f = * }", js({}))


def test_is_true_and_is_false_need_json_booleans() -> None:
    assert matches("{ $.f IS FALSE }", js({"f": False}))
    assert not matches("{ $.f IS FALSE }", js({"f": 0}))
    assert not matches("{ $.f IS TRUE }", js({"f": "true"}))


def test_non_json_messages_never_match_a_json_pattern() -> None:
    for message in ("not json", "", "{", '{"a": 1'):
        assert not matches("{ $.a NOT EXISTS }", message)


def test_one_event_is_shared_by_every_kind_of_pattern() -> None:
    event = Event(js({"a": 1, "b": "x y"}))
    texts = ["{ $.a = 1 }", "{ $.b NOT EXISTS }", "[f, g]", '"x y"', "%a.:1%", ""]
    assert [parse(t).match(event) is not None for t in texts] == [
        matches(t, event.message) for t in texts
    ]
    assert [matches(t, event.message) for t in texts] == [True, False, True, True, True, True]
    assert parse("{ $.a = * }").value_of("$.a", event) == 1.0
    assert Event("not json").document is Event("{").document  # both "no document"


def test_json_array_root_and_scalar_root() -> None:
    assert matches("{ $.a NOT EXISTS }", "[1, 2]")
    assert not matches("{ $.a = 1 }", "1")


def test_aws_or_examples_in_json() -> None:
    bar, baz = js({"foo": "bar"}), js({"foo": "baz"})
    assert [matches("{$.foo = bar}", e) for e in (bar, baz)] == [True, False]
    assert [matches("{$.foo = baz }", e) for e in (bar, baz)] == [False, True]
    assert [matches("{$.foo = bar || $.foo = baz }", e) for e in (bar, baz)] == [True, True]


def test_selector_names_take_dashes_and_underscores() -> None:
    assert matches("{ $.a-b.c_d = 1 }", js({"a-b": {"c_d": 1}}))


def test_json_extracted_values_are_empty_like_test_metric_filter() -> None:
    found = parse("{ $.a = 1 }").match(js({"a": 1}))
    assert found is not None
    assert found.extracted_values == {}


def test_cdk_regex_value_example_with_spaces() -> None:
    pattern = parse("{ $.message = %bind: address already in use% }")
    assert pattern.match(js({"message": "listen: bind: address already in use"})) is not None


def test_regex_value_needs_a_string() -> None:
    assert not matches("{ $.a = %1% }", js({"a": 1}))
    assert not matches("{ $.a != %x% }", js({"a": 1}))


# -- 1.4 space-delimited patterns ----------------------------------------------------------------

APACHE = [
    '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534',
    '127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 500 5324',
    '127.0.0.1 - frank [10/Oct/2000:13:50:35 -0700] "GET /apache_pb.gif HTTP/1.0" 200 4355',
]


@pytest.mark.parametrize(
    "pattern, expected",
    [
        pytest.param(
            "[ip, user, username, timestamp, request, status_code, bytes]",
            [True, True, True],
            id="aws-all-named",
        ),
        pytest.param("[..., status_code, bytes]", [True, True, True], id="aws-ellipsis-first"),
        pytest.param(
            "[ip, user, ..., status_code, bytes]", [True, True, True], id="aws-ellipsis-mid"
        ),
        pytest.param("[ip, user, ...]", [True, True, True], id="aws-ellipsis-last"),
        pytest.param(
            "[ip, user, username, timestamp, request, status_code, bytes > 1000]",
            [True, True, True],
            id="aws-numeric-gt",
        ),
        pytest.param(
            "[ip, user, username, timestamp, request, status_code = 200, bytes]",
            [True, False, True],
            id="aws-numeric-eq",
        ),
        pytest.param(
            "[ip, user, username, timestamp, request, status_code = 4*, bytes]",
            [False, False, False],
            id="aws-glob",
        ),
        pytest.param(
            "[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]",
            [False, False, False],
            id="aws-two-globs",
        ),
        pytest.param(
            "[ip, user, username, timestamp, request, status_code = 4* && status_code != 403, bytes]",
            [False, False, False],
            id="aws-and-same-field",
        ),
        pytest.param(
            "[..., status_code = 5* || status_code = 2*, bytes < 5000]",
            [True, False, True],
            id="or-same-field",
        ),
        pytest.param(
            "[..., request = *.gif*, status_code, bytes]", [True, True, True], id="glob-dot"
        ),
        pytest.param(
            '[ip, ..., request = "GET /apache_pb.gif HTTP/1.0", status_code, bytes]',
            [True, True, True],
            id="quoted-value",
        ),
        pytest.param("[ip, user, username, timestamp]", [False, False, False], id="too-few-fields"),
        pytest.param("[..., bytes = %^5\\d+$%]", [False, True, False], id="regex-field"),
        pytest.param("[..., status_code != 200, bytes]", [False, True, False], id="ne-number"),
        pytest.param("[..., status_code >= 500, bytes]", [False, True, False], id="ge"),
        pytest.param("[..., status_code, bytes <= 1534]", [True, False, False], id="le"),
        pytest.param("[..., status_code = *, bytes]", [True, True, True], id="any-value"),
    ],
)
def test_space_delimited_aws_examples(pattern: str, expected: list[bool]) -> None:
    assert [matches(pattern, line) for line in APACHE] == expected


@pytest.mark.parametrize(
    "pattern, expected",
    [
        pytest.param("[w1=ERROR, w2]", [False, True, False], id="aws-positional"),
        pytest.param("[w1=ERROR || w1=WARN, w2]", [False, True, True], id="aws-positional-or"),
        pytest.param("[w1=ERROR, w2, w3]", [True, False, False], id="three-fields"),
    ],
)
def test_space_delimited_aws_or_examples(pattern: str, expected: list[bool]) -> None:
    assert [matches(pattern, event) for event in OR_EVENTS] == expected


def test_space_delimited_extracted_values_follow_the_aws_example() -> None:
    event = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'
    found = parse("[..., request=*.html*, status_code=4*, bytes]").match(event)
    assert found is not None
    assert found.extracted_values == {
        "$1": "127.0.0.1",
        "$2": "-",
        "$3": "frank",
        "$4": "10/Oct/2000:13:25:15 -0700",
        "$request": "GET /index.html HTTP/1.0",
        "$status_code": "404",
        "$bytes": "1534",
    }


@pytest.mark.parametrize(
    "message, fields",
    [
        pytest.param("a  b\tc", ["a", "b", "c"], id="runs-of-whitespace"),
        pytest.param("[x y] z", ["x y", "z"], id="brackets-one-field"),
        pytest.param('"x y" z', ["x y", "z"], id="quotes-one-field"),
        pytest.param("[x y z", ["[x", "y", "z"], id="unterminated-bracket-is-text"),
        pytest.param('"x y z', ['"x', "y", "z"], id="unterminated-quote-is-text"),
        pytest.param("[] z", ["", "z"], id="empty-brackets"),
    ],
)
def test_space_delimited_event_splitting(message: str, fields: list[str]) -> None:
    names = [f"f{i}" for i in range(len(fields))]
    found = parse("[" + ", ".join(names) + "]").match(message)
    assert found is not None
    assert found.extracted_values == {f"${n}": v for n, v in zip(names, fields, strict=True)}


def test_space_delimited_needs_the_exact_field_count_without_ellipsis() -> None:
    assert not matches("[a, b]", "x y z")
    assert not matches("[a, b]", "x")
    assert matches("[a, ..., b]", "x y")  # ... may stand for no field at all


def test_space_delimited_numeric_condition_on_text_does_not_match() -> None:
    assert not matches("[a > 1]", "abc")
    assert not matches("[a != 1]", "abc")


# -- 1.5 regex -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, message, expected",
    [
        pytest.param(
            "%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST", True, id="aws-unauthorized"
        ),
        pytest.param("%AUTHORIZED%", "[SUCCESS 200] AUTHORIZED REQUEST", True, id="aws-authorized"),
        pytest.param(
            r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%", "from 10.0.0.1 port 22", True, id="aws-ip"
        ),
        pytest.param("%[Ee]rror|[Ff]ail%", "login fail", True, id="aws-alternation"),
        pytest.param("%[Ee]rror|[Ff]ail%", "all good", False, id="aws-alternation-miss"),
        pytest.param("%^ERROR%", "x ERROR", False, id="caret-anchors"),
        pytest.param("%ERROR$%", "ERROR x", False, id="dollar-anchors"),
        pytest.param(r"%a\-b%", "a-b", True, id="escaped-symbol"),
        pytest.param(r"%\d%", "٣", False, id="ascii-digits-only"),
        pytest.param("%key: val_ue#1=@/;,-%", "key: val_ue#1=@/;,-", True, id="every-symbol"),
    ],
)
def test_standalone_regex(pattern: str, message: str, expected: bool) -> None:
    assert matches(pattern, message) is expected


def test_provisional_regex_is_searched_unanchored() -> None:
    assert matches("%RROR%", "ERRORS here")


def test_regex_count() -> None:
    assert parse("%a%").regex_count == 1
    assert parse("ERROR").regex_count == 0
    assert parse("{ $.a = %x% || $.b != %y% }").regex_count == 2
    assert parse("[a = %x%, b = %y%]").regex_count == 2
    assert MAX_REGEX_PATTERNS_PER_LOG_GROUP == 5  # enforced by the caller over a log group


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, position, fragment",
    [
        # terms
        pytest.param("ERROR:", 0, 'write "ERROR:"', id="term-needs-quotes"),
        pytest.param("%abc", 0, 'write "%abc"', id="percent-without-closing-is-a-term"),
        pytest.param('"abc', 0, "unterminated quoted string", id="term-unterminated-quote"),
        pytest.param('""', 0, "empty term", id="term-empty-quotes"),
        pytest.param('"a""b"', 3, "separate terms", id="terms-glued"),
        pytest.param("ERROR -", 7, "expected a term after '-'", id="dangling-minus"),
        # JSON structure
        pytest.param("{}", 1, "empty JSON pattern", id="json-empty"),
        pytest.param("{ $.a = 1", 9, "expected &&, || or }", id="json-unclosed"),
        pytest.param("{ $.a = 1 } x", 12, "text after the closing }", id="json-trailing-text"),
        pytest.param("{ ($.a = 1 }", 11, "expected ) to close", id="json-unclosed-paren"),
        pytest.param("{ () }", 3, "empty parentheses", id="json-empty-parens"),
        pytest.param("{ $.a = 1 & $.b = 2 }", 10, "write &&", id="json-single-ampersand"),
        pytest.param("{ $.a = 1 | $.b = 2 }", 10, "write ||", id="json-single-bar"),
        pytest.param("{ $.a = 1 AND $.b = 2 }", 10, "expected &&, || or }", id="json-word-and"),
        pytest.param(
            "{ " + "(" * 40 + "$.a = 1" + ")" * 40 + " }", 34, "nest deeper", id="json-too-deep"
        ),
        # selectors
        pytest.param("{ eventName = x }", 2, "write $.eventName", id="selector-without-dollar"),
        pytest.param("{ $eventName = x }", 2, "starts with '$.'", id="selector-without-dot"),
        pytest.param("{ $.a[*] = 1 }", 5, "[*] wildcards", id="selector-wildcard-index"),
        pytest.param("{ $.a[] = 1 }", 5, "array index is a number", id="selector-empty-index"),
        pytest.param("{ $.a[-1] = 1 }", 5, "array index is a number", id="selector-negative-index"),
        pytest.param("{ $.a[0 = 1 }", 7, "close the array index", id="selector-unclosed-index"),
        pytest.param("{ $. = 1 }", 4, "expected a field name", id="selector-empty-name"),
        pytest.param("{ $.a..b = 1 }", 6, "expected a field name", id="selector-double-dot"),
        # operators and values
        pytest.param("{ $.a == 1 }", 6, "write =", id="double-equals"),
        pytest.param("{ $.a => 1 }", 7, "expected a value", id="arrow"),
        pytest.param("{ $.a 1 }", 6, "expected a comparison operator", id="missing-operator"),
        pytest.param("{ $.a = }", 8, "expected a value", id="missing-value"),
        pytest.param("{ $.a = a@b }", 9, "double quotes", id="unquoted-at-sign"),
        pytest.param("{ $.a = ab/c }", 10, "double quotes", id="unquoted-slash"),
        pytest.param('{ $.a = "x"y }', 11, "double quotes", id="quoted-then-text"),
        pytest.param("{ $.a < abc }", 8, "compares numbers", id="lt-string"),
        pytest.param("{ $.a >= * }", 9, "compares numbers", id="ge-star"),
        pytest.param("{ $.a > %x% }", 8, "compares numbers", id="gt-regex"),
        pytest.param("{ $.a != * }", 9, "NOT EXISTS", id="ne-star"),
        pytest.param("{ $.a = 1e999 }", 8, "out of range", id="number-overflow"),
        # predicates
        pytest.param("{ $.a IS NOT NULL }", 6, "IS NOT is not supported", id="is-not"),
        pytest.param("{ $.a EXISTS }", 6, "EXISTS is not supported", id="exists"),
        pytest.param(
            "{ $.a IS MISSING }", 9, "expected IS NULL or IS TRUE or IS FALSE", id="is-other"
        ),
        pytest.param("{ $.a NOT NULL }", 10, "expected NOT EXISTS", id="not-null"),
        pytest.param("{ $.a is null }", 6, "upper-case", id="lower-case-keyword"),
        # regex
        pytest.param("%a(b)%", 2, "grouping", id="regex-group"),
        pytest.param("%something!%", 10, "'!' is not allowed", id="regex-bang-aws-example"),
        pytest.param("%caf\u00e9%", 4, "multi-byte", id="regex-multibyte"),
        pytest.param("%\\Qx%", 1, "unsupported regex escape", id="regex-bad-escape"),
        pytest.param("%\\1%", 1, "unsupported regex escape", id="regex-backreference"),
        pytest.param("%a**%", 3, "multiple repeat", id="regex-multiple-repeat"),
        pytest.param("%[ab%", 1, "invalid regex", id="regex-unclosed-class"),
        pytest.param("%[[a]%", 1, "ambiguous regex", id="regex-nested-set"),
        pytest.param("%a%b%", 3, "text after the closing %", id="regex-trailing"),
        pytest.param("%%", 0, "empty regex", id="regex-empty"),
        pytest.param("{ $.a = %x }", 8, "unterminated regex", id="regex-unterminated"),
        pytest.param(
            "{ $.a = %x% && $.b = %y% && $.c = %z% }", 34, "at most 2 regexes", id="regex-third"
        ),
        pytest.param(
            "[a = %x%, b = %y%, c = %z%]", 23, "at most 2 regexes", id="regex-third-space"
        ),
        # space-delimited
        pytest.param("[]", 1, "empty pattern []", id="space-empty"),
        pytest.param("[..., ...]", 6, "at most once", id="space-two-ellipses"),
        pytest.param("[a, a]", 4, "used twice", id="space-duplicate-name"),
        pytest.param("[a, b,]", 6, "trailing comma", id="space-trailing-comma-aws-example"),
        pytest.param(
            "[..., status_code = 4* && bytes > 1000]",
            26,
            "same field",
            id="space-and-across-fields-aws-doc",
        ),
        pytest.param("[a = 1 || b = 2]", 10, "same field", id="space-or-across-fields"),
        pytest.param(
            "[w1=!ERROR&&w1=!WARN, w2]", 4, "expected a value", id="space-bang-value-aws-doc"
        ),
        pytest.param("[a b]", 3, "expected a comparison operator", id="space-missing-comma"),
        pytest.param("[a, b", 5, "expected ',' or ']'", id="space-unclosed"),
        pytest.param("[a] x", 4, "text after the closing ]", id="space-trailing-text"),
        pytest.param("[a.b]", 2, "expected a comparison operator", id="space-dotted-name"),
        pytest.param("[(a = 1)]", 1, "expected a field name", id="space-parentheses"),
    ],
)
def test_refusals(text: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterPatternError) as err:
        parse(text)
    assert fragment in str(err.value)
    assert err.value.position == position


# -- metric values, selectors and dimensions -----------------------------------------------------


def test_json_metric_value_from_a_selector() -> None:
    pattern = parse("{ $.latency = * }")  # the AWS guide's "publish latency" example
    assert pattern.value_of("$.latency", js({"latency": 42})) == 42.0
    assert pattern.value_of("$.latency", js({"latency": "42"})) is None  # matches, not a number
    assert pattern.value_of("$.latency", js({"other": 1})) is None  # no match
    assert pattern.value_of("$.stats[1].ms", js({"latency": 1, "stats": [0, {"ms": 7.5}]})) == 7.5


def test_space_metric_value_from_an_extracted_field() -> None:
    pattern = parse("[..., status_code, bytes]")
    assert pattern.value_of("$bytes", APACHE[0]) == 1534.0
    assert pattern.value_of("$bytes", "just-one-field") is None


def test_match_text_for_dimensions() -> None:
    found = parse("{ $.a = * }").match(js({"a": "x", "n": 3, "b": True}))
    assert found is not None
    assert (found.text("$.a"), found.text("$.n"), found.text("$.b")) == ("x", "3", None)
    found = parse("[ip, ...]").match("1.2.3.4 x")
    assert found is not None
    assert found.text("$ip") == "1.2.3.4"


@pytest.mark.parametrize(
    "pattern, selector, fragment",
    [
        pytest.param("{ $.a = 1 }", "latency", "starts with '$.'", id="json-without-dollar"),
        pytest.param("{ $.a = 1 }", "$.a[*]", "[*] wildcards", id="json-wildcard"),
        pytest.param("{ $.a = 1 }", "$.a b", "after the selector", id="json-trailing"),
        pytest.param("{ $.a = 1 }", "$a", "starts with '$.'", id="json-space-style"),
        pytest.param("[a, b]", "$c", "use one of $a, $b", id="space-unknown-field"),
        pytest.param("[a, b]", "$.a", "use one of $a, $b", id="space-json-style"),
        pytest.param("[a, ...]", "$2", "use one of $a", id="space-positional"),
        pytest.param("ERROR", "$.a", "term pattern extracts no values", id="terms"),
        pytest.param("%x%", "$.a", "regex pattern extracts no values", id="regex"),
        pytest.param("", "$.a", "match-all pattern extracts no values", id="all"),
    ],
)
def test_metric_selector_refusals(pattern: str, selector: str, fragment: str) -> None:
    parsed = parse(pattern)
    with pytest.raises(FilterPatternError) as err:
        check_metric_selector(parsed, selector)
    assert fragment in str(err.value)
    with pytest.raises(FilterPatternError):
        parsed.value_of(selector, "{}")


def test_metric_selectors_accepted() -> None:
    check_metric_selector(parse("{ $.a = 1 }"), "$.b.c[0]")
    check_metric_selector(parse("[a, ..., b]"), "$b")


@pytest.mark.parametrize(
    "pattern, supported",
    [
        pytest.param("{ $.a = 1 }", True, id="json"),
        pytest.param("[a, b]", True, id="space"),
        pytest.param("ERROR", False, id="terms"),
        pytest.param("%x%", False, id="regex"),
        pytest.param("", False, id="all"),
    ],
)
def test_dimensions_support(pattern: str, supported: bool) -> None:
    parsed = parse(pattern)
    assert parsed.supports_dimensions is supported
    if supported:
        check_dimensions(parsed)
        return
    with pytest.raises(FilterPatternError) as err:
        check_dimensions(parsed)
    assert str(err.value) == NO_DIMENSIONS_MESSAGE  # AWS's exact text (terraform-aws #28881)
    assert "JSON" in err.value.hint


# -- canonical text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('ERROR -"x y" "a\\"b"', id="terms"),
        pytest.param("?a ?b", id="or-terms"),
        pytest.param("{ ($.a = 1 || $.b != x*) && $.c IS NULL && $.d[0].e NOT EXISTS }", id="json"),
        pytest.param("{ $.a = %x|y% || $.b = 1.5e-3 }", id="json-regex-number"),
        pytest.param("[a = 1 || a = 2 && a != 3, ..., b = %z%]", id="space"),
        pytest.param("%x+%", id="regex"),
        pytest.param("", id="all"),
    ],
)
def test_canonical_text_parses_back_to_an_equal_pattern(text: str) -> None:
    pattern = parse(text)
    again = parse(pattern.canonical)
    assert again == pattern
    assert again.canonical == pattern.canonical


def test_equality_ignores_whitespace_parentheses_and_quoting() -> None:
    assert parse("{$.a=x&&($.b=1)}") == parse('{ $.a = "x" && $.b = 1 }')
    assert parse("{ $.a = 1 }").text != parse("{$.a=1}").text
    assert parse("{ $.a = 1 }") != parse("{ $.a = 2 }")


def test_normalized_ignores_operand_order() -> None:
    one = parse("{ ($.a = 1 || $.b = 2) && $.c = 3 }")
    two = parse("{ $.c = 3 && ($.b = 2 || $.a = 1) }")
    assert one != two
    assert one.normalized() == two.normalized()


def test_the_example_in_the_docs_runs() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "filter-patterns.md").read_text()
    example = doc.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "docs/filter-patterns.md", "exec"), {})
