"""The rule index of SigmaSet: its keys (known answers), that it narrows the rules tried, and,
differentially with hypothesis, that `matching` always agrees with trying every rule's
`matches`, for the shipped rules and for random rules; random rules and records never crash."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailkeeper.rules.sigma import (
    SigmaRule,
    SigmaSet,
    load_directory,
    load_text,
    shipped_directory,
)
from trailkeeper.rules.sigma._load import INTERNAL_ERROR
from trailkeeper.rules.sigma._set import index_key

SHIPPED = load_directory(shipped_directory())


def one_rule(detection: Mapping[str, Any], condition: str = "selection") -> SigmaRule:
    text = yaml.safe_dump({"title": "t", "id": "5f3d7c2e-0000-4000-8000-000000000101",
                           "logsource": {"product": "aws", "service": "cloudtrail"},
                           "detection": {**detection, "condition": condition}})
    rules, refusals = load_text(text, "t.yml")
    assert not refusals, refusals
    return rules[0]


@pytest.mark.parametrize(("detection", "condition", "key"), [
    pytest.param({"selection": {"eventSource": "cloudtrail.amazonaws.com", "eventName": ["StopLogging", "DeleteTrail"]}},
                 "selection", ("eventName", {"stoplogging", "deletetrail"}), id="event-name-preferred"),
    pytest.param({"selection": {"eventSource": "lambda.amazonaws.com", "eventName|startswith": "UpdateFunction"}},
                 "selection", ("eventSource", {"lambda.amazonaws.com"}), id="wildcard-name-so-source"),
    pytest.param({"selection": {"userIdentity.type": "Root"}}, "selection", ("userIdentity.type", {"root"}),
                 id="other-field"),
    pytest.param({"selection": {"eventName|cased": "StopLogging"}}, "selection", ("eventName", {"stoplogging"}),
                 id="cased-filed-lowercased"),
    pytest.param({"a": {"eventName": "A"}, "b": {"eventName": "B"}}, "a or b", ("eventName", {"a", "b"}),
                 id="or-of-names"),
    pytest.param({"a": {"eventName": "A"}, "b": {"eventSource": "s3"}}, "a or b", None, id="or-of-different-fields"),
    pytest.param({"a": {"eventName": "A"}}, "not a", None, id="not"),
    pytest.param({"selection": {"userIdentity.arn|re": ".+"}}, "selection", None, id="regex-only"),
    pytest.param({"keywords": ["StopLogging"]}, "keywords", None, id="keyword"),
    pytest.param({"selection": {"eventName": None}}, "selection", None, id="null"),
    pytest.param({"selection": {"port": 22}}, "selection", ("port", {"22"}), id="number-as-text"),
    pytest.param({"sel_a": {"eventName": "A", "errorCode": None}, "sel_b": {"eventName": "B"}}, "1 of sel_*",
                 ("eventName", {"a", "b"}), id="one-of"),
])
def test_index_key(detection: Mapping[str, Any], condition: str, key: tuple[str, set[str]] | None) -> None:
    found = index_key(one_rule(detection, condition))
    assert (None if found is None else (found[0], set(found[1]))) == key


def test_shipped_rules_are_nearly_all_indexed() -> None:
    tried_always = {SHIPPED.rules[position].title for position in SHIPPED.candidates({})}
    assert tried_always == {
        "Malicious Usage Of IMDS Credentials Outside Of AWS Infrastructure",  # a regex on the ARN only
        "trailkeeper - Repeated Authentication Failures",  # errorCode or (eventName and errorMessage)
    }
    assert SHIPPED.indexed == len(SHIPPED.rules) - len(tried_always)


def test_an_event_is_tried_only_on_the_rules_it_could_match() -> None:
    record = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
              "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"}, "userAgent": "aws-cli"}
    tried = SHIPPED.candidates(record)
    assert 0 < len(tried) <= 5 < len(SHIPPED.rules)
    names = {SHIPPED.rules[position].title for position in tried}
    assert "AWS CloudTrail Important Change" in names
    assert [rule.title for rule in SHIPPED.matching(record)] == [
        rule.title for rule in SHIPPED.rules if rule.matches(record)]


def _shipped_samples() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(shipped_directory().rglob("*.json")):
        records.extend(json.loads(path.read_text()))
    return records


SAMPLES = _shipped_samples()
FIELDS = ["eventName", "eventSource", "errorCode", "userAgent", "userIdentity", "requestParameters",
          "responseElements", "additionalEventData", "sourceIPAddress", "eventType", "additionalEventData.MFAUsed"]
WORDS = ["StopLogging", "stoplogging", "Root", "AssumedRole", "Role", "TruffleHog", "S3 Browser", "Success",
         "cloudtrail.amazonaws.com", "iam.amazonaws.com", "ec2.amazonaws.com", "No", "false", "10.1.2.3", "*", ""]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(allow_nan=True),
                    st.sampled_from(WORDS), st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["type", "arn", "name", "enable", "layers", "MFAUsed", "a.b", "ConsoleLogin"]), inner, max_size=3),
    max_leaves=12)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped sample record with some fields dropped, replaced or re-cased, or a random one."""
    if draw(st.booleans()):
        return draw(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
    record = dict(draw(st.sampled_from(SAMPLES)))
    for key in draw(st.lists(st.sampled_from(sorted(record)), max_size=3)):
        record.pop(key, None)
    record.update(draw(st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=3)))
    name = record.get("eventName")
    if isinstance(name, str) and draw(st.booleans()):
        record["eventName"] = draw(st.sampled_from([name.lower(), name.upper(), name + "x"]))
    return record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_shipped_matching_agrees_with_every_rule(record: dict[str, Any]) -> None:
    assert SHIPPED.matching(record) == [rule for rule in SHIPPED.rules if rule.matches(record)]


STRING_VALUES = st.sampled_from(["StopLogging", "stop*", "*Logging", "Root", "a?c", "", "S3 Browser", "false", "x\\*y"])
MODIFIED_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "": st.one_of(STRING_VALUES, st.none(), st.integers(0, 30), st.booleans(), st.lists(STRING_VALUES, min_size=1, max_size=3)),
    "|contains": STRING_VALUES,
    "|startswith": STRING_VALUES,
    "|endswith": st.lists(STRING_VALUES, min_size=1, max_size=2),
    "|contains|all": st.lists(STRING_VALUES, min_size=2, max_size=3),
    "|cased": STRING_VALUES,
    "|re": st.sampled_from(["^Stop", "Logg", ".+:root$", "[0-9]+"]),
    "|re|i": st.sampled_from(["^stop", "ROOT"]),
    "|cidr": st.sampled_from(["10.0.0.0/8", "2001:db8::/32"]),
    "|exists": st.booleans(),
    "|neq": STRING_VALUES,
    "|gt": st.integers(-2, 20),
    "|lte": st.integers(-2, 20),
    "|fieldref": st.sampled_from(["eventSource", "userIdentity.type", "requestParameters.name"]),
}
DETECTION_FIELDS = ["eventName", "eventSource", "userIdentity.type", "requestParameters", "requestParameters.name",
                    "additionalEventData.MFAUsed", "a.b", "sourceIPAddress", "errorCode"]


@st.composite
def detections(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    names = draw(st.lists(st.sampled_from(["sel_a", "sel_b", "filter_x", "keywords"]), min_size=1, max_size=3, unique=True))
    detection: dict[str, Any] = {}
    for name in names:
        if name == "keywords":
            detection[name] = draw(st.lists(STRING_VALUES, min_size=1, max_size=2))
            continue
        items = draw(st.lists(st.tuples(st.sampled_from(DETECTION_FIELDS), st.sampled_from(sorted(MODIFIED_VALUES))),
                              min_size=1, max_size=3, unique_by=lambda item: item[0]))
        detection[name] = {field + modifier: draw(MODIFIED_VALUES[modifier]) for field, modifier in items}
    return detection, draw(_condition(names))


def _condition(names: list[str]) -> st.SearchStrategy[str]:
    atoms = st.sampled_from([*names, "1 of them", "all of them", "1 of sel_*" if any(n.startswith("sel_") for n in names) else names[0]])
    return st.recursive(atoms, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a} and {b})", inner, inner),
        st.builds(lambda a, b: f"({a} or {b})", inner, inner),
        st.builds(lambda a: f"not {a}", inner)), max_leaves=4)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(detections(), min_size=1, max_size=3), st.lists(records(), min_size=1, max_size=4))
def test_random_rules_never_crash_and_the_index_agrees(rules_spec: list[tuple[dict[str, Any], str]],
                                                        sample: list[dict[str, Any]]) -> None:
    documents = [{"title": f"random {i}", "id": f"5f3d7c2e-0000-4000-8000-{i:012d}",
                  "logsource": {"product": "aws", "service": "cloudtrail"},
                  "detection": {**detection, "condition": condition}} for i, (detection, condition) in enumerate(rules_spec)]
    rules, refusals = load_text(yaml.safe_dump_all(documents), "random.yml")
    assert len(rules) + len(refusals) >= len(documents)
    assert not [refusal for refusal in refusals if INTERNAL_ERROR in refusal.reason]
    ruleset = SigmaSet(rules)
    for record in sample:
        verdicts = [rule.matches(record) for rule in rules]
        assert all(isinstance(verdict, bool) for verdict in verdicts)
        assert ruleset.matching(record) == [rule for rule, verdict in zip(rules, verdicts, strict=True) if verdict]
