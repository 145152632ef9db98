"""The pattern index: the necessary conditions it reads from JSON patterns (known answers), and
differentially, that it never hides a pattern that matches (random patterns and events) and
that metric filters give the same datapoints with and without it; and the compiled JSON
evaluator (with its fast path for string comparisons) against a plain tree walk."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.monitoring.cis import CONTROLS
from trailkeeper.monitoring.filterpattern import Event, PatternIndex, parse
from trailkeeper.monitoring.filterpattern._json import And, JsonBody, Or, Predicate
from trailkeeper.monitoring.filterpattern._match import MISSING, resolve
from trailkeeper.monitoring.filterpattern._values import compare_json
from trailkeeper.monitoring.loggroups_store import MetricFilterRecord
from trailkeeper.monitoring.metricfilters import CompiledFilters, LogEvent, compile_filters

EN = ("eventName",)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('{ $.eventName = "StopLogging" }', {(EN, "StopLogging")}, id="one-equality"),
    pytest.param("{ $.eventName = A || $.eventName = B }", {(EN, "A"), (EN, "B")}, id="or-same-field"),
    pytest.param("{ $.eventName = A || $.errorCode = B }", {(EN, "A"), (("errorCode",), "B")},
                 id="or-different-fields"),
    pytest.param('{ $.eventName = A || $.errorCode = "B*" }', None, id="or-with-an-unpinned-alternative"),
    pytest.param("{ $.eventSource = s3 && ($.eventName = A || $.eventName = B) }", {(EN, "A"), (EN, "B")},
                 id="and-prefers-eventName"),
    pytest.param("{ $.eventSource = kms && $.userIdentity.type = Root }", {(("eventSource",), "kms")},
                 id="and-tie-smallest-then-text"),
    pytest.param("{ $.eventName = A && $.eventName = B }", {(EN, "A")}, id="and-disjoint-either-will-do"),
    pytest.param("{ ($.eventName = A && $.x = 1) || ($.eventName = B && $.y IS TRUE) }", {(EN, "A"), (EN, "B")},
                 id="or-of-ands"),
    pytest.param("{ ($.errorCode = X) || ($.eventName = C && $.errorMessage = F) }",
                 {(("errorCode",), "X"), (EN, "C")}, id="or-of-a-compare-and-an-and"),
    pytest.param('{ $.eventName = "Stop*" }', None, id="glob-not-exact"),
    pytest.param("{ $.eventName != A }", None, id="inequality"),
    pytest.param("{ $.eventName = 5 }", None, id="number"),
    pytest.param("{ $.eventName NOT EXISTS }", None, id="predicate"),
    pytest.param("{ $.eventName = * }", None, id="any-value"),
    pytest.param("{ $.items[0].name = A }", {(("items", 0, "name"), "A")}, id="indexed-selector"),
    pytest.param("StopLogging", None, id="terms-pattern"),
    pytest.param("[ip, user = bob]", None, id="space-pattern"),
])
def test_index_keys(text: str, expected: set[tuple[tuple[Any, ...], str]] | None) -> None:
    key = parse(text).index_key()
    assert (None if key is None else set(key)) == expected


def test_fourteen_of_the_fifteen_cis_filters_are_indexed() -> None:
    """Only the unauthorized-calls filter (errorCode globs) is evaluated for every event."""
    unindexed = [c.cis_number for c in CONTROLS if parse(c.pattern).index_key() is None]
    assert unindexed == ["4.1"]
    assert PatternIndex([parse(c.pattern) for c in CONTROLS]).indexed == 14


def test_candidates_keep_filter_order_and_skip_unrelated_events() -> None:
    patterns = [parse(t) for t in ('{ $.eventName = B }', '{ $.errorCode = "Access*" }', '{ $.eventName = A }',
                                   '{ $.eventSource = s && $.eventName = A }', '{ $.userIdentity.type = Root }')]
    index = PatternIndex(patterns)
    event = Event(json.dumps({"eventName": "A", "eventSource": "s", "userIdentity": {"type": "Root"}}))
    assert index.candidates(event) == [1, 2, 3, 4]
    assert index.candidates(Event(json.dumps({"eventName": "Z"}))) == [1]
    assert index.candidates(Event("not json")) == [1]


# -- differential: random patterns over a small vocabulary -------------------------------------------
FIELDS = ("eventName", "eventSource", "errorCode", "userIdentity.type")
WORDS = ("A", "B", "C", "Root", "kms")


def _leaf() -> st.SearchStrategy[str]:
    equality = st.builds(lambda f, op, w: f"$.{f} {op} {w}", st.sampled_from(FIELDS), st.sampled_from(("=", "!=")),
                         st.sampled_from((*WORDS, '"A*"', '"*o*"', "1")))
    predicate = st.builds(lambda f, p: f"$.{f} {p}", st.sampled_from(FIELDS),
                          st.sampled_from(("IS NULL", "NOT EXISTS", "IS TRUE")))
    return st.one_of(equality, equality, predicate)


EXPRS = st.recursive(_leaf(), lambda inner: st.builds(lambda a, op, b: f"({a}) {op} ({b})", inner,
                                                      st.sampled_from(("&&", "||")), inner), max_leaves=6)
PATTERNS = st.lists(EXPRS.map(lambda e: "{ " + e + " }"), min_size=1, max_size=12)
SCALARS = st.one_of(st.sampled_from(WORDS), st.none(), st.booleans(), st.integers(-1, 2), st.just("Axe"))
EVENTS = st.fixed_dictionaries({}, optional={
    "eventName": SCALARS, "eventSource": SCALARS, "errorCode": SCALARS,
    "userIdentity": st.one_of(st.fixed_dictionaries({}, optional={"type": SCALARS}), SCALARS)})


@settings(max_examples=300, deadline=None)
@given(texts=PATTERNS, events=st.lists(EVENTS, min_size=1, max_size=8))
def test_the_index_never_hides_a_match(texts: list[str], events: list[dict[str, Any]]) -> None:
    patterns = [parse(t) for t in texts]
    index = PatternIndex(patterns)
    for document in events:
        event = Event(json.dumps(document))
        matching = [i for i, p in enumerate(patterns) if p.match(event) is not None]
        candidates = index.candidates(event)
        assert candidates == sorted(set(candidates))
        assert set(matching) <= set(candidates), (texts, document)


def _filters(texts: list[str]) -> list[MetricFilterRecord]:
    return [MetricFilterRecord("g", f"f{i}", text, [{"metricName": f"m{i}", "metricNamespace": "N", "metricValue": "1"}],
                               False, 0) for i, text in enumerate(texts)]


@settings(max_examples=100, deadline=None)
@given(texts=PATTERNS, events=st.lists(EVENTS, min_size=1, max_size=8))
def test_metric_filters_emit_the_same_datapoints_with_and_without_the_index(
        texts: list[str], events: list[dict[str, Any]]) -> None:
    records = _filters([c.pattern for c in CONTROLS] + texts)
    indexed = compile_filters(records)
    plain = CompiledFilters(indexed.filters, indexed.skipped, indexed=False)
    batch = [LogEvent(1_700_000_000_000 + i, json.dumps({**e, "eventID": f"id-{i}"})) for i, e in enumerate(events)]
    assert indexed.apply(batch) == plain.apply(batch)


def _reference(expr: Any, document: object) -> bool:
    """The plain evaluator: the tree walked node by node, every comparison through compare_json."""
    if isinstance(expr, And):
        return all(_reference(part, document) for part in expr.parts)
    if isinstance(expr, Or):
        return any(_reference(part, document) for part in expr.parts)
    actual = resolve(document, expr.path)
    if isinstance(expr, Predicate):
        if expr.name == "NOT EXISTS":
            return actual is MISSING
        return actual is {"IS NULL": None, "IS TRUE": True, "IS FALSE": False}[expr.name]
    return actual is not MISSING and not isinstance(actual, dict | list) and compare_json(expr.op, expr.value, actual)


@settings(max_examples=300, deadline=None)
@given(text=EXPRS.map(lambda e: "{ " + e + " }"), events=st.lists(EVENTS, min_size=1, max_size=8))
def test_the_compiled_evaluator_agrees_with_the_plain_one(text: str, events: list[dict[str, Any]]) -> None:
    pattern = parse(text)
    assert isinstance(pattern.body, JsonBody)
    for document in events:
        assert (pattern.match(json.dumps(document)) is not None) == _reference(pattern.body.expr, document), document
