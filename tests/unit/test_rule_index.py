"""The rule index: its keys (known answers), that it narrows the rules tried, and differentially
that it never hides a rule that matches (random rule sets and events, hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.rules.eventpattern import EventPatternError, parse
from trailkeeper.rules.index import RuleIndex, index_key, index_keys

NAME = ("detail", "eventName")


@pytest.mark.parametrize(("pattern", "key"), [
    pytest.param({"detail": {"eventName": ["StopLogging"]}}, (NAME, {"StopLogging"}), id="event-name"),
    pytest.param({"source": ["aws.iam"], "detail": {"eventName": ["DeleteUser", "DeleteRole"]}},
                 (NAME, {"DeleteUser", "DeleteRole"}), id="event-name-before-source"),
    pytest.param({"source": ["aws.kms"], "detail": {"eventName": [{"prefix": "Disable"}]}}, (("source",), {"aws.kms"}),
                 id="operator-on-name-so-source"),
    pytest.param({"source": ["aws.kms", {"prefix": "aws.k"}]}, None, id="mixed-leaf"),
    pytest.param({"detail": {"errorCode": ["AccessDenied"]}}, (("detail", "errorCode"), {"AccessDenied"}),
                 id="other-field"),
    pytest.param({"detail-type": ["AWS API Call via CloudTrail"], "detail": {"userIdentity": {"type": ["Root"]}}},
                 (("detail", "userIdentity", "type"), {"Root"}), id="detail-type-last"),
    pytest.param({"detail-type": ["AWS API Call via CloudTrail"]}, (("detail-type",), {"AWS API Call via CloudTrail"}),
                 id="detail-type-alone"),
    pytest.param({"detail": {"errorCode": [{"prefix": "Access"}], "readOnly": [False]}}, None,
                 id="operator-and-boolean"),
    pytest.param({"$or": [{"source": ["aws.iam"]}, {"source": ["aws.kms"]}]}, None, id="or-only"),
    pytest.param({"source": [5]}, None, id="number-literal"),
])
def test_index_keys(pattern: dict[str, Any], key: tuple[tuple[str, ...], set[str]] | None) -> None:
    found = index_key(parse(json.dumps(pattern)))
    assert (None if found is None else (found[0], set(found[1]))) == key


@pytest.mark.parametrize(("pattern", "keys"), [
    pytest.param({"$or": [{"source": ["aws.iam"]}, {"detail": {"eventName": ["StopLogging"]}}]},
                 [(("source",), {"aws.iam"}), (NAME, {"StopLogging"})], id="or-branches"),
    pytest.param({"detail": {"$or": [{"errorCode": ["A"]}, {"errorCode": ["B", "C"]}]}},
                 [(("detail", "errorCode"), {"A"}), (("detail", "errorCode"), {"B", "C"})], id="nested-or"),
    pytest.param({"$or": [{"source": ["aws.iam"]}, {"detail": {"eventName": [{"prefix": "Stop"}]}}]}, None,
                 id="or-with-an-open-branch"),
    pytest.param({"source": ["aws.kms"], "$or": [{"x": ["1"]}, {"y": ["2"]}]}, [(("source",), {"aws.kms"})],
                 id="required-leaf-first"),
])
def test_index_keys_with_or(pattern: dict[str, Any], keys: list[tuple[tuple[str, ...], set[str]]] | None) -> None:
    found = index_keys(parse(json.dumps(pattern)))
    assert (None if found is None else [(path, set(values)) for path, values in found]) == keys


def test_an_event_is_tried_only_on_the_rules_it_could_match() -> None:
    rules = [parse(json.dumps({"detail": {"eventName": [f"Op{i}"]}})) for i in range(1000)]
    rules.append(parse('{"detail": {"errorCode": [{"prefix": "AccessDenied"}]}}'))
    index = RuleIndex(rules)
    assert index.indexed == 1000
    assert index.candidates({"source": "aws.s3", "detail": {"eventName": "Op7"}}) == [7, 1000]
    assert index.candidates({"detail": {"eventName": ["Op3", "Op9", 5]}}) == [3, 9, 1000]
    assert index.candidates({"detail": "not an object"}) == [1000]


KEYS = ("source", "detail-type")
WORDS = ("a", "b", "c", "aws.iam")


def _leaf() -> st.SearchStrategy[list[Any]]:
    op = st.one_of(st.builds(lambda w: {"prefix": w}, st.sampled_from(WORDS)),
                   st.builds(lambda w: {"anything-but": w}, st.sampled_from(WORDS)),
                   st.builds(lambda b: {"exists": b}, st.booleans()))
    return st.lists(st.one_of(st.sampled_from(WORDS), st.none(), op), min_size=1, max_size=3)


PATTERNS = st.fixed_dictionaries({}, optional={
    "source": _leaf(), "detail-type": _leaf(),
    "detail": st.fixed_dictionaries({}, optional={
        "eventName": _leaf(), "readOnly": st.just([False]), "errorCode": _leaf(),
        "userIdentity": st.fixed_dictionaries({}, optional={"type": _leaf()}),
        "$or": st.lists(st.fixed_dictionaries({"errorCode": _leaf()}), min_size=2, max_size=2)}),
    "$or": st.lists(st.fixed_dictionaries({}, optional={"source": _leaf(), "detail-type": _leaf()}), min_size=2,
                    max_size=3),
})
VALUES = st.one_of(st.sampled_from(WORDS), st.none(), st.integers(0, 2), st.lists(st.sampled_from(WORDS), max_size=2))
EVENTS = st.fixed_dictionaries({}, optional={
    "source": VALUES, "detail-type": VALUES,
    "detail": st.one_of(st.fixed_dictionaries({}, optional={
        "eventName": VALUES, "readOnly": st.booleans(), "errorCode": VALUES,
        "userIdentity": st.one_of(VALUES, st.fixed_dictionaries({}, optional={"type": VALUES}))}), VALUES)})


@settings(max_examples=300, deadline=None)
@given(documents=st.lists(PATTERNS, min_size=1, max_size=15), events=st.lists(EVENTS, min_size=1, max_size=6))
def test_the_index_never_hides_a_matching_rule(documents: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    rules = []
    for document in documents:
        try:
            rules.append(parse(json.dumps(document)))
        except EventPatternError:
            continue  # an invalid random pattern: nothing to index
    index = RuleIndex(rules)
    for event in events:
        matching = [i for i, rule in enumerate(rules) if rule.matches(event)]
        assert set(matching) <= set(index.candidates(event)), (documents, event)
