"""EventBridge event patterns: every example and operator of spec §8 and the AWS docs.

Each case is (pattern, event, expected); ids name the rule being shown.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.errors import TrailkeeperError
from trailkeeper.rules.eventpattern import (
    MAX_PATTERN_LENGTH,
    EventPattern,
    EventPatternError,
    parse,
)

STOP_LOGGING_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6f3c1c2e-0000-4000-8000-000000000001",
    "detail-type": "AWS API Call via CloudTrail",
    "source": "aws.cloudtrail",
    "account": "123456789012",
    "time": "2026-01-02T03:04:05Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "eventVersion": "1.08",
        "eventTime": "2026-01-02T03:04:05Z",
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "requestParameters": {"name": "management-trail"},
        "userIdentity": {"type": "IAMUser", "userName": "mallory"},
    },
}
STOP_LOGGING_PATTERN = {
    "source": ["aws.cloudtrail"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {"eventName": ["StopLogging"]},
}


def p(obj: Any) -> EventPattern:
    return parse(json.dumps(obj))


def case(pattern: Any, event: dict[str, Any], expected: bool, id: str) -> Any:
    return pytest.param(pattern, event, expected, id=id)


MATCH_CASES = [
    # literals
    case({"source": ["aws.ec2"]}, {"source": "aws.ec2"}, True, "literal-string"),
    case({"source": ["aws.ec2"]}, {"source": "AWS.EC2"}, False, "literal-case-sensitive"),
    case({"source": ["aws.ec2", "aws.s3"]}, {"source": "aws.s3"}, True, "leaf-alternatives-or"),
    case({"source": ["aws.ec2"], "region": ["eu-west-1"]},
         {"source": "aws.ec2", "region": "us-east-1"}, False, "siblings-and"),
    case({"detail": {"state": ["running"]}}, {"detail": {"state": "running"}}, True, "nested"),
    case({"detail": {"state": ["running"]}}, {"detail": "running"}, False, "nested-wrong-shape"),
    case({"flag": [True]}, {"flag": True}, True, "literal-true"),
    case({"flag": [True]}, {"flag": "true"}, False, "true-is-not-string"),
    case({"flag": [False]}, {"flag": 0}, False, "false-is-not-zero"),
    case({"n": [1]}, {"n": True}, False, "one-is-not-true"),
    # arrays in the event
    case({"resources": ["arn:a"]}, {"resources": ["arn:b", "arn:a"]}, True, "event-array-any"),
    case({"resources": ["arn:a"]}, {"resources": ["arn:b"]}, False, "event-array-none"),
    case({"resources": ["arn:a"]}, {"resources": []}, False, "event-empty-array"),
    case({"items": {"name": ["x"]}}, {"items": [{"name": "y"}, {"name": "x"}]}, True,
         "array-of-objects"),
    # null vs missing, empty string
    case({"v": [None]}, {"v": None}, True, "null-matches-null"),
    case({"v": [None]}, {}, False, "null-not-missing"),
    case({"v": [None]}, {"v": ""}, False, "null-not-empty-string"),
    case({"v": [""]}, {"v": ""}, True, "empty-string-matches"),
    case({"v": [""]}, {"v": None}, False, "empty-string-not-null"),
    case({"v": [""]}, {}, False, "empty-string-not-missing"),
    # numbers
    case({"n": [300]}, {"n": 300}, True, "number-int"),
    case({"n": [300]}, {"n": 300.0}, True, "number-300.0"),
    case({"n": [300]}, {"n": 3.0e2}, True, "number-3.0e2"),
    case({"n": [3.0e2]}, {"n": 300}, True, "pattern-3.0e2"),
    case({"n": [300]}, {"n": "300"}, False, "string-300-not-number"),
    case({"n": ["300"]}, {"n": 300}, False, "number-not-string-300"),
    # prefix / suffix
    case({"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-02T12:00:00Z"}, True, "prefix"),
    case({"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-03"}, False, "prefix-miss"),
    case({"time": [{"prefix": "2017"}]}, {"time": 2017}, False, "prefix-number"),
    case({"source": [{"prefix": {"equals-ignore-case": "AWS."}}]}, {"source": "aws.ec2"}, True,
         "prefix-ignore-case"),
    case({"source": [{"prefix": {"equals-ignore-case": "AWS."}}]}, {"source": "gcp.x"}, False,
         "prefix-ignore-case-miss"),
    case({"key": [{"suffix": ".png"}]}, {"key": "a/b.png"}, True, "suffix"),
    case({"key": [{"suffix": ".png"}]}, {"key": "a/b.PNG"}, False, "suffix-case"),
    case({"key": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"key": "a/b.PNG"}, True,
         "suffix-ignore-case"),
    case({"key": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"key": "a.jpg"}, False,
         "suffix-ignore-case-miss"),
    # equals-ignore-case
    case({"name": [{"equals-ignore-case": "alice"}]}, {"name": "ALICE"}, True, "ignore-case"),
    case({"name": [{"equals-ignore-case": "alice"}]}, {"name": "alicia"}, False,
         "ignore-case-miss"),
    case({"city": [{"equals-ignore-case": "STRASSE"}]}, {"city": "straße"}, True,
         "ignore-case-unicode-casefold"),
    # wildcard
    case({"src": [{"wildcard": "Simple*Service"}]}, {"src": "SimpleQueueService"}, True,
         "wildcard"),
    case({"src": [{"wildcard": "Simple*Service"}]}, {"src": "SimpleQueue"}, False,
         "wildcard-miss"),
    case({"src": [{"wildcard": "a*b*c"}]}, {"src": "abc"}, True, "wildcard-empty-runs"),
    case({"src": [{"wildcard": "ab*ba"}]}, {"src": "aba"}, False, "wildcard-no-overlap"),
    case({"src": [{"wildcard": "a\\*b"}]}, {"src": "a*b"}, True, "wildcard-escaped-star"),
    case({"src": [{"wildcard": "a\\*b"}]}, {"src": "axb"}, False, "wildcard-escaped-literal"),
    case({"src": [{"wildcard": "a\\\\b"}]}, {"src": "a\\b"}, True, "wildcard-escaped-backslash"),
    case({"src": [{"wildcard": "*"}]}, {"src": 5}, False, "wildcard-needs-string"),
    # anything-but
    case({"state": [{"anything-but": "initializing"}]}, {"state": "running"}, True,
         "anything-but-string"),
    case({"state": [{"anything-but": "initializing"}]}, {"state": "initializing"}, False,
         "anything-but-string-miss"),
    case({"state": [{"anything-but": "initializing"}]}, {}, False, "anything-but-needs-field"),
    case({"x": [{"anything-but": 100}]}, {"x": 200}, True, "anything-but-number"),
    case({"x": [{"anything-but": 100}]}, {"x": 1.0e2}, False, "anything-but-number-miss"),
    case({"s": [{"anything-but": ["stopped", "overloaded"]}]}, {"s": "running"}, True,
         "anything-but-list"),
    case({"s": [{"anything-but": ["stopped", "overloaded"]}]}, {"s": "stopped"}, False,
         "anything-but-list-miss"),
    case({"x": [{"anything-but": [100, 200]}]}, {"x": 300}, True, "anything-but-number-list"),
    case({"x": [{"anything-but": [100, 200]}]}, {"x": 200}, False,
         "anything-but-number-list-miss"),
    case({"s": [{"anything-but": {"prefix": "init"}}]}, {"s": "running"}, True,
         "anything-but-prefix"),
    case({"s": [{"anything-but": {"prefix": "init"}}]}, {"s": "initializing"}, False,
         "anything-but-prefix-miss"),
    case({"s": [{"anything-but": {"prefix": ["a", "b"]}}]}, {"s": "bee"}, False,
         "anything-but-prefix-list"),
    case({"f": [{"anything-but": {"suffix": ".txt"}}]}, {"f": "a.png"}, True,
         "anything-but-suffix"),
    case({"f": [{"anything-but": {"suffix": ".txt"}}]}, {"f": "a.txt"}, False,
         "anything-but-suffix-miss"),
    case({"f": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"f": "/usr/bin/x"}, True,
         "anything-but-wildcard"),
    case({"f": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"f": "/usr/lib/x"}, False,
         "anything-but-wildcard-miss"),
    case({"n": [{"anything-but": {"equals-ignore-case": "Alice"}}]}, {"n": "bob"}, True,
         "anything-but-ignore-case"),
    case({"n": [{"anything-but": {"equals-ignore-case": "Alice"}}]}, {"n": "ALICE"}, False,
         "anything-but-ignore-case-miss"),
    case({"n": [{"anything-but": "x"}]}, {"n": ["x", "y"]}, True, "anything-but-array-any"),
    case({"n": [{"anything-but": "x"}]}, {"n": 5}, True, "anything-but-other-type"),
    # numeric
    case({"c": [{"numeric": [">", 0, "<=", 5]}]}, {"c": 5}, True, "numeric-range-top"),
    case({"c": [{"numeric": [">", 0, "<=", 5]}]}, {"c": 0}, False, "numeric-range-bottom-open"),
    case({"c": [{"numeric": [">=", 0, "<", 5]}]}, {"c": 0}, True, "numeric-range-bottom-closed"),
    case({"c": [{"numeric": [">=", 0, "<", 5]}]}, {"c": 5}, False, "numeric-range-top-open"),
    case({"d": [{"numeric": ["<", 10]}]}, {"d": 9.99}, True, "numeric-less"),
    case({"d": [{"numeric": ["<", 10]}]}, {"d": 10}, False, "numeric-less-miss"),
    case({"x": [{"numeric": ["=", 3.018e2]}]}, {"x": 301.8}, True, "numeric-equals"),
    case({"x": [{"numeric": ["=", 300]}]}, {"x": 3.0e2}, True, "numeric-equals-forms"),
    case({"x": [{"numeric": [">", 1]}]}, {"x": "5"}, False, "numeric-needs-number"),
    case({"x": [{"numeric": [">", 0]}]}, {"x": True}, False, "numeric-bool-not-number"),
    case({"x": [{"numeric": [">=", -1]}]}, {"x": -1}, True, "numeric-greater-equal"),
    case({"x": [{"numeric": ["<=", 1]}]}, {"x": 2}, False, "numeric-less-equal-miss"),
    # exists
    case({"d": {"c": [{"exists": True}]}}, {"d": {"c": 1}}, True, "exists-true"),
    case({"d": {"c": [{"exists": True}]}}, {"d": {}}, False, "exists-true-missing"),
    case({"d": {"c": [{"exists": True}]}}, {"d": {"c": None}}, True, "exists-true-null"),
    case({"d": {"c": [{"exists": True}]}}, {"d": {"c": {"c1": 1}}}, False,
         "exists-true-object-not-leaf"),
    case({"d": {"c": [{"exists": False}]}}, {"d": {}}, True, "exists-false"),
    case({"d": {"c": [{"exists": False}]}}, {"d": {"c": "x"}}, False, "exists-false-present"),
    case({"d": {"c": [{"exists": False}]}}, {"d": {"c": {"c1": 100}}}, True,
         "exists-false-object-not-leaf"),
    case({"d": {"c": [{"exists": False}]}}, {}, True, "exists-false-parent-missing"),
    case({"d": {"c": [{"exists": False}]}}, {"d": {"c": []}}, True, "exists-false-empty-array"),
    # cidr
    case({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.255"}, True, "cidr-v4"),
    case({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.0"}, False, "cidr-v4-miss"),
    case({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "::ffff:10.0.0.1"}, False, "cidr-v4-v6-addr"),
    case({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "not-an-ip"}, False, "cidr-not-ip"),
    case({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": 167772161}, False, "cidr-number"),
    case({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8:1::5"}, True, "cidr-v6"),
    case({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db9::5"}, False, "cidr-v6-miss"),
    case({"ip": [{"cidr": "10.0.0.7/24"}]}, {"ip": "10.0.0.1"}, True, "cidr-host-bits-ignored"),
    # $or
    case({"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"b": "2"}, True, "or-top"),
    case({"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "2", "b": "1"}, False, "or-top-miss"),
    case({"source": ["aws.ec2"], "$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "1"}, False,
         "or-and-sibling"),
    case({"detail": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"d": [{"exists": False}]}]}},
         {"detail": {"c": -1}}, True, "or-nested"),
    case({"detail": {"$or": [{"c": [{"numeric": [">", 0]}]}, {"d": [{"exists": False}]}]}},
         {"detail": {"c": -1, "d": 1}}, False, "or-nested-miss"),
    case({"$or": [{"a": ["1"]}, {"$or": [{"b": ["2"]}, {"c": ["3"]}]}]}, {"c": "3"}, True,
         "or-inside-or"),
    # the CloudTrail route of spec §8
    case(STOP_LOGGING_PATTERN, STOP_LOGGING_EVENT, True, "cloudtrail-stoplogging"),
    case(STOP_LOGGING_PATTERN,
         {**STOP_LOGGING_EVENT, "detail": {**STOP_LOGGING_EVENT["detail"],
                                           "eventName": "StartLogging"}},
         False, "cloudtrail-startlogging"),
    case({"detail": {"userIdentity": {"type": ["IAMUser"]},
                     "sourceIPAddress": [{"cidr": "198.51.100.0/24"}]}},
         STOP_LOGGING_EVENT, True, "cloudtrail-nested-cidr"),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), MATCH_CASES)
def test_matches(pattern: Any, event: dict[str, Any], expected: bool) -> None:
    assert p(pattern).matches(event) is expected


INVALID_CASES = [
    ("[]", "pattern: must be a JSON object", "top-array"),
    ('"x"', "pattern: must be a JSON object", "top-string"),
    ("{", "pattern: not valid JSON", "bad-json"),
    ("{}", "pattern: empty objects are not allowed", "empty-top"),
    ('{"d": {}}', "d: empty objects are not allowed", "empty-nested"),
    ('{"detail": {"eventName": "x"}}',
     "detail.eventName: a leaf must be an array of values or operators", "leaf-not-array"),
    ('{"a": 1}', "a: a leaf must be an array of values or operators", "leaf-number"),
    ('{"a": []}', "a: empty arrays are not allowed", "leaf-empty"),
    ('{"a": [["x"]]}', "a[0]: arrays inside a leaf are not allowed", "leaf-nested-array"),
    ('{"a": 1, "a": [1]}', "key 'a' appears more than once", "duplicate-key"),
    ('{"a": [NaN]}', "NaN is not a JSON number", "nan"),
    ('{"a": [{}]}', "a[0]: an operator object must have exactly one key", "operator-empty"),
    ('{"a": [{"prefix": "x", "suffix": "y"}]}', "must have exactly one key", "operator-two-keys"),
    ('{"a": [{"regex": "x"}]}', "a[0]: unknown operator 'regex'", "operator-unknown"),
    ('{"a": [{"prefix": 1}]}', "a[0]: prefix must be a string", "prefix-not-string"),
    ('{"a": [{"suffix": null}]}', "a[0]: suffix must be a string", "suffix-null"),
    ('{"a": [{"prefix": {"wildcard": "x"}}]}', "prefix object accepts only equals-ignore-case",
     "prefix-object-other"),
    ('{"a": [{"suffix": {"equals-ignore-case": 1}}]}',
     "suffix equals-ignore-case must be a string", "suffix-ignore-case-number"),
    ('{"a": [{"equals-ignore-case": ["x"]}]}', "equals-ignore-case must be a string",
     "ignore-case-list"),
    ('{"a": [{"wildcard": "a**b"}]}', "consecutive wildcard characters are not allowed",
     "wildcard-consecutive"),
    ('{"a": [{"wildcard": "a\\\\qb"}]}', "a backslash may only escape", "wildcard-bad-escape"),
    ('{"a": [{"wildcard": 5}]}', "wildcard must be a string", "wildcard-number"),
    ('{"a": [{"anything-but": []}]}', "anything-but list must not be empty", "ab-empty"),
    ('{"a": [{"anything-but": ["x", 1]}]}', "only strings or only numbers", "ab-mixed"),
    ('{"a": [{"anything-but": null}]}', "not true, false or null", "ab-null"),
    ('{"a": [{"anything-but": true}]}', "not true, false or null", "ab-bool"),
    ('{"a": [{"anything-but": {"numeric": [">", 1]}}]}', "anything-but object accepts",
     "ab-object-numeric"),
    ('{"a": [{"anything-but": {"prefix": 1}}]}', "takes a string or a non-empty list of strings",
     "ab-prefix-number"),
    ('{"a": [{"anything-but": {"prefix": "x", "suffix": "y"}}]}', "exactly one key",
     "ab-object-two-keys"),
    ('{"a": [{"numeric": 5}]}', "numeric takes one or two comparisons", "numeric-not-array"),
    ('{"a": [{"numeric": [">", 1, "<"]}]}', "numeric takes one or two comparisons",
     "numeric-odd"),
    ('{"a": [{"numeric": ["!=", 1]}]}', "numeric operator must be one of", "numeric-bad-op"),
    ('{"a": [{"numeric": [">", "1"]}]}', "numeric operand of > must be a finite number",
     "numeric-string-operand"),
    ('{"a": [{"numeric": [">", 1e400]}]}', "must be a finite number", "numeric-infinite"),
    ('{"a": [{"numeric": ["<", 5, ">", 1]}]}', "lower bound (> or >=) then an upper bound",
     "numeric-range-reversed"),
    ('{"a": [{"numeric": ["=", 5, "<", 9]}]}', "lower bound (> or >=) then an upper bound",
     "numeric-range-equals"),
    ('{"a": [{"numeric": [">", 5, "<", 5]}]}', "lower bound must be less than its upper bound",
     "numeric-range-empty"),
    ('{"a": [{"exists": "yes"}]}', "a[0]: exists must be true or false", "exists-not-bool"),
    ('{"a": [{"cidr": "10.0.0.1"}]}', "cidr must be an IPv4 or IPv6 network", "cidr-no-prefix"),
    ('{"a": [{"cidr": "10.0.0.0/255.0.0.0"}]}', "cidr must be an IPv4 or IPv6 network",
     "cidr-netmask"),
    ('{"a": [{"cidr": "10.0.0.0/33"}]}', "cidr is not a valid", "cidr-prefix-too-long"),
    ('{"a": [{"cidr": "10.0.0.256/8"}]}', "cidr is not a valid", "cidr-bad-address"),
    ('{"a": [{"cidr": 10}]}', "cidr must be a string", "cidr-number"),
    ('{"$or": [{"a": ["1"]}]}', "$or: must be an array of at least 2 pattern objects",
     "or-one-branch"),
    ('{"$or": {"a": ["1"]}}', "$or: must be an array of at least 2", "or-not-array"),
    ('{"d": {"$or": [{"a": ["1"]}, "b"]}}', "d.$or[1]: must be a pattern object",
     "or-branch-not-object"),
    ('{"$or": [{"a": ["1"]}, {}]}', "$or[1]: empty objects are not allowed", "or-branch-empty"),
    ('{"$or": [{"a": ["1"]}, {"b": "x"}]}', "$or[1].b: a leaf must be an array",
     "or-branch-bad-leaf"),
    ('{"a":' * 101 + '["x"]' + "}" * 101, "nested deeper than 100 objects", "too-deep"),
    ("[" * 2000 + "]" * 2000, "pattern: nested too deeply", "json-too-deep"),
    ('{"a": ["' + "x" * MAX_PATTERN_LENGTH + '"]}', "exceeds the limit of 4096", "too-long"),
]


@pytest.mark.parametrize(("text", "message"), [pytest.param(t, m, id=i) for t, m, i in INVALID_CASES])
def test_invalid_patterns_are_refused(text: str, message: str) -> None:
    with pytest.raises(EventPatternError) as info:
        parse(text)
    assert message in str(info.value)
    assert info.value.code == "InvalidEventPatternException"
    assert isinstance(info.value, TrailkeeperError)


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(EventPatternError) as info:
        parse('{"a": "x", "b": {"c": [{"numeric": [">"]}]}, "d": []}')
    assert [msg.split(":")[0] for msg in info.value.problems] == ["a", "b.c[0]", "d"]


def test_pattern_at_the_length_limit_is_accepted() -> None:
    filler = "x" * (MAX_PATTERN_LENGTH - len('{"a": [""]}'))
    text = '{"a": ["' + filler + '"]}'
    assert len(text) == MAX_PATTERN_LENGTH
    assert parse(text).matches({"a": filler})


# --- property tests -------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
OPERATOR_KEYS = st.sampled_from(
    ["prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists",
     "cidr", "$or", "a", "b"]
)
NUMERIC_OPS = st.sampled_from(["<", "<=", "=", ">", ">=", "!"])
JSON_VALUES = st.recursive(
    JSON_SCALARS | NUMERIC_OPS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(OPERATOR_KEYS, children, max_size=3),
    max_leaves=20,
)
EVENTS = st.dictionaries(st.sampled_from(["a", "b", "detail"]), JSON_VALUES, max_size=3)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_parse_raises_only_event_pattern_error(document: Any) -> None:
    with contextlib.suppress(EventPatternError):
        parse(json.dumps(document))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parse_of_arbitrary_text_raises_only_event_pattern_error(text: str) -> None:
    with contextlib.suppress(EventPatternError):
        parse(text)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, EVENTS)
def test_matches_never_raises(document: Any, event: dict[str, Any]) -> None:
    try:
        pattern = parse(json.dumps(document))
    except EventPatternError:
        return
    assert pattern.matches(event) in (True, False)


VALID_PATTERNS = [
    STOP_LOGGING_PATTERN,
    {"a": [{"cidr": "10.0.0.0/8"}, {"numeric": [">", 0, "<", 10]}, {"wildcard": "*x*"}]},
    {"$or": [{"a": [{"anything-but": {"prefix": "x"}}]}, {"detail": {"b": [{"exists": False}]}}]},
    {"detail": {"a": [None, "", 0, True, {"equals-ignore-case": "X"}]}},
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID_PATTERNS), EVENTS)
def test_known_patterns_never_raise_on_random_events(document: Any, event: dict[str, Any]) -> None:
    assert p(document).matches(event) in (True, False)
