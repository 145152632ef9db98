"""What a rule's target receives: Input, InputPath and InputTransformer, by known answers, and the
shapes EventBridge refuses (one named case each)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trailkeeper.rules.targets import (
    InputTransformer,
    RetryPolicy,
    Target,
    TargetError,
    check_target,
    parse_path,
    shape_input,
)

EVENT: dict[str, Any] = {
    "version": "0", "id": "e-1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail",
    "account": "123456789012", "time": "2026-12-06T05:00:00Z", "region": "eu-west-1", "resources": [],
    "detail": {"eventName": "StopLogging", "userIdentity": {"arn": "arn:aws:iam::123456789012:user/mallory",
                                                            "type": "IAMUser"},
               "requestParameters": {"name": "main"}, "readOnly": False, "count": 3,
               "tags": ["a", "b"], "quote": 'say "hi"\n'},
}
ARN, RULE = "arn:aws:events:eu-west-1:123456789012:rule/stop", "stop"


def _shape(target: Target) -> str:
    check_target(target)
    return shape_input(target, EVENT, ARN, RULE, "2026-12-06T05:00:01Z")


TRANSFORMS = [
    ("whole event without shaping", Target("t", "a"), EVENT),
    ("constant Input", Target("t", "a", input='{"alert": "trail stopped"}'), {"alert": "trail stopped"}),
    ("InputPath to an object", Target("t", "a", input_path="$.detail.userIdentity"), EVENT["detail"]["userIdentity"]),
    ("InputPath to a string", Target("t", "a", input_path="$.detail.eventName"), "StopLogging"),
    ("InputPath to an array element", Target("t", "a", input_path="$.detail.tags[1]"), "b"),
    ("InputPath with a quoted key", Target("t", "a", input_path="$['detail']['eventName']"), "StopLogging"),
    ("InputPath missing", Target("t", "a", input_path="$.detail.nothing"), None),
    ("InputPath root", Target("t", "a", input_path="$"), EVENT),
    ("template string sentence", Target("t", "a", transformer=InputTransformer(
        '"<who> called <name> on <trail>"', {"who": "$.detail.userIdentity.arn", "name": "$.detail.eventName",
                                              "trail": "$.detail.requestParameters.name"})),
     "arn:aws:iam::123456789012:user/mallory called StopLogging on main"),
    ("template JSON with raw values", Target("t", "a", transformer=InputTransformer(
        '{"n": <count>, "ro": <ro>, "tags": <tags>, "name": "<name>"}',
        {"count": "$.detail.count", "ro": "$.detail.readOnly", "tags": "$.detail.tags",
         "name": "$.detail.eventName"})),
     {"n": 3, "ro": False, "tags": ["a", "b"], "name": "StopLogging"}),
    ("template escapes quotes inside a string", Target("t", "a", transformer=InputTransformer(
        '{"q": "<q>"}', {"q": "$.detail.quote"})), {"q": 'say "hi"\n'}),
    ("template object inside a string is its JSON text", Target("t", "a", transformer=InputTransformer(
        '"who: <who>"', {"who": "$.detail.userIdentity.type"})), "who: IAMUser"),
    ("template missing value", Target("t", "a", transformer=InputTransformer(
        '{"a": "<x>", "b": <x>}', {"x": "$.detail.absent"})), {"a": "", "b": None}),
    ("predefined rule name and arn", Target("t", "a", transformer=InputTransformer(
        '{"rule": "<aws.events.rule-name>", "arn": "<aws.events.rule-arn>", '
        '"at": "<aws.events.event.ingestion-time>"}')),
     {"rule": RULE, "arn": ARN, "at": "2026-12-06T05:00:01Z"}),
    ("predefined whole event", Target("t", "a", transformer=InputTransformer('{"e": <aws.events.event>}')),
     {"e": EVENT}),
    ("a '<' that is no placeholder stays", Target("t", "a", transformer=InputTransformer('"a < b"')), "a < b"),
]


@pytest.mark.parametrize(("target", "expected"), [(t, e) for _, t, e in TRANSFORMS], ids=[n for n, _, _ in TRANSFORMS])
def test_target_input_is_shaped_as_eventbridge_does(target: Target, expected: Any) -> None:
    assert json.loads(_shape(target)) == expected


REFUSED = [
    ("Input and InputPath together", Target("t", "a", input="{}", input_path="$"), "only one of"),
    ("Input that is not JSON", Target("t", "a", input="not json"), "not valid JSON"),
    ("InputPath without $", Target("t", "a", input_path="detail.x"), "must start with"),
    ("InputPath with a filter", Target("t", "a", input_path="$.detail[?(@.a)]"), "unsupported syntax"),
    ("InputPath too long", Target("t", "a", input_path="$." + "a" * 300), "longer than 256"),
    ("template placeholder not mapped", Target("t", "a", transformer=InputTransformer('"<who>"')), "does not define"),
    ("paths-map key reserved", Target("t", "a", transformer=InputTransformer('"<aws.x>"', {"aws.x": "$"})),
     "must not start with 'aws.'"),
    ("template not JSON once filled", Target("t", "a", transformer=InputTransformer('<n> and more', {"n": "$.id"})),
     "not valid JSON"),
    ("empty template", Target("t", "a", transformer=InputTransformer("")), "1 to 8192"),
    ("retry attempts over 185", Target("t", "a", retry=RetryPolicy(186, 600)), "MaximumRetryAttempts"),
    ("retry age under 60 s", Target("t", "a", retry=RetryPolicy(3, 59)), "MaximumEventAgeInSeconds"),
    ("retry age over a day", Target("t", "a", retry=RetryPolicy(3, 86_401)), "MaximumEventAgeInSeconds"),
]


@pytest.mark.parametrize(("target", "message"), [(t, m) for _, t, m in REFUSED], ids=[n for n, _, _ in REFUSED])
def test_invalid_targets_are_refused_with_the_reason(target: Target, message: str) -> None:
    with pytest.raises(TargetError, match=message) as refused:
        check_target(target)
    assert refused.value.code == "ValidationException"


def test_paths_parse_into_steps() -> None:
    assert parse_path("$") == []
    assert parse_path("$.detail.tags[0]") == ["detail", "tags", 0]
    assert parse_path("$['a b'].c") == ["a b", "c"]


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(value=st.recursive(st.none() | st.booleans() | st.integers() | _TEXT,
                          lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_TEXT, kids, max_size=3),
                          max_leaves=8))
def test_any_value_placed_in_or_out_of_a_string_keeps_the_template_json(value: Any) -> None:
    event = {**EVENT, "detail": {"v": value}}
    target = Target("t", "a", transformer=InputTransformer('{"in": "<v>", "out": <v>}', {"v": "$.detail.v"}))
    check_target(target)
    shaped = json.loads(shape_input(target, event, ARN, RULE, "t"))
    assert shaped["out"] == value
    assert shaped["in"] == (value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                                            ensure_ascii=False))
