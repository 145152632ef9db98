"""Everything the Sigma engine cannot evaluate faithfully is refused at load, with a reason that
names the rule, the file and what is unsupported; nothing is kept that would match everything
or nothing. One named case per feature."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml

from trailkeeper.rules.sigma import NO_PLACEHOLDERS, Refusal, load_text

RULE_ID = "5f3d7c2e-0000-4000-8000-0000000000aa"
TITLE = "Refused Case"
CLOUDTRAIL = {"product": "aws", "service": "cloudtrail"}


def rule_text(detection: Mapping[str, Any] | None = None, condition: str = "selection", **top: Any) -> str:
    document: dict[str, Any] = {"title": TITLE, "id": RULE_ID, "logsource": CLOUDTRAIL,
                                "detection": {**(detection or {"selection": {"eventName": "StopLogging"}}),
                                              "condition": condition}}
    document.update(top)
    return yaml.safe_dump({key: value for key, value in document.items() if value is not None}, sort_keys=False)


def refused(text: str, placeholders: Mapping[str, Sequence[str]] = NO_PLACEHOLDERS) -> Refusal:
    rules, refusals = load_text(text, "rules/case.yml", placeholders)
    assert rules == [], "the rule should have been refused"
    assert len(refusals) == 1, refusals
    assert refusals[0].source == "rules/case.yml"
    return refusals[0]


def modifier_case(modifier: str, value: Any = "x") -> Any:
    return pytest.param(rule_text({"selection": {f"eventName|{modifier}": value}}), modifier, id=f"modifier-{modifier}")


@pytest.mark.parametrize(("text", "reason"), [
    modifier_case("base64"),
    modifier_case("base64offset"),
    pytest.param(rule_text({"selection": {"eventName|wide|base64": "x"}}), "'wide'", id="modifier-wide"),
    pytest.param(rule_text({"selection": {"eventName|utf16|base64": "x"}}), "'utf16'", id="modifier-utf16"),
    pytest.param(rule_text({"selection": {"eventName|utf16be|base64": "x"}}), "'utf16be'", id="modifier-utf16be"),
    modifier_case("windash", "-x"),
    modifier_case("minute", 5),
    modifier_case("hour", 5),
    modifier_case("day", 5),
    modifier_case("week", 5),
    modifier_case("month", 5),
    modifier_case("year", 2026),
    pytest.param(rule_text({"selection": {"eventName|frobnicate": "x"}}), "Unknown modifier", id="modifier-unknown"),
    pytest.param(rule_text({"selection": {"eventName|utf16le": "x"}}), "Unknown modifier", id="modifier-utf16le-unknown"),
    pytest.param(rule_text({"selection": {"userIdentity.arn|expand": "no placeholder"}}), "without a %placeholder%",
                 id="expand-without-placeholder"),
    pytest.param(rule_text({"selection": {"userIdentity.arn|expand": "%admins%"}}), "%admins% has no configured values",
                 id="expand-unconfigured"),
    pytest.param(rule_text(condition="selection | count() > 5"), "aggregation", id="aggregation-count"),
    pytest.param(rule_text(condition="selection | count(userName) by sourceIPAddress > 3"), "aggregation",
                 id="aggregation-count-by"),
    pytest.param(rule_text({"selection": {"eventName": "ConsoleLogin"}, "timeframe": "5m"}), "timeframe",
                 id="aggregation-timeframe"),
    pytest.param(rule_text(logsource={"product": "windows", "category": "process_creation"}), "is not CloudTrail",
                 id="logsource-windows"),
    pytest.param(rule_text(logsource={"product": "aws", "service": "guardduty"}), "is not CloudTrail",
                 id="logsource-other-aws-service"),
    pytest.param(rule_text(logsource={"product": "aws", "service": "cloudtrail", "category": "network"}),
                 "is not CloudTrail", id="logsource-with-category"),
    pytest.param(rule_text(id=None), "no `id:`", id="missing-id"),
    pytest.param(rule_text(id="not-a-uuid"), "UUID", id="id-not-uuid"),
    pytest.param(rule_text(level="urgent"), "level", id="bad-level"),
    pytest.param(rule_text(status="deprecated"), "status deprecated", id="status-deprecated"),
    pytest.param(rule_text(status="unsupported"), "status unsupported", id="status-unsupported"),
    pytest.param(rule_text({"selection": {"eventName|re": "(unclosed"}}), "(unclosed", id="invalid-regex"),
    pytest.param(rule_text({"selection": {"sourceIPAddress|cidr": "10.0.0.0/33"}}), "CIDR", id="invalid-cidr"),
    pytest.param(rule_text({"selection": {"eventName": []}}), "empty value list", id="empty-value-list"),
    pytest.param(rule_text(condition="selection and missing"), "'missing' not defined", id="undefined-identifier"),
    pytest.param(rule_text(condition="1 of nothing_*"), "doesn't match any detection", id="selector-matches-nothing"),
    pytest.param(rule_text(condition="selection near other"), "Expected end of text", id="near-operator"),
    pytest.param(rule_text({"selection": {"eventName|gt": "many"}}), "incompatible", id="gt-not-a-number"),
    pytest.param(rule_text({"selection": {"eventName|i": "x"}}), "incompatible", id="regex-flag-without-re"),
    pytest.param(rule_text(trailkeeper="dedup everything"), "must be a mapping", id="policy-not-mapping"),
    pytest.param(rule_text(trailkeeper={"dedupe": ["sourceIPAddress"]}), "unknown key", id="policy-unknown-key"),
    pytest.param(rule_text(trailkeeper={"dedup": ["eventID"]}), "unique per event", id="policy-dedup-per-event"),
    pytest.param(rule_text(trailkeeper={"dedup": ["a", "b", "c", "d"]}), "1 to 3", id="policy-dedup-too-many"),
    pytest.param(rule_text(trailkeeper={"dedup": [1]}), "field path", id="policy-dedup-not-text"),
    pytest.param(rule_text(trailkeeper={"dedup_window": "2d"}), "dedup_window", id="policy-window-too-long"),
    pytest.param(rule_text(trailkeeper={"dedup_window": "soon"}), "dedup_window", id="policy-window-malformed"),
    pytest.param(rule_text(trailkeeper={"threshold": 5}), "go together", id="policy-threshold-without-window"),
    pytest.param(rule_text(trailkeeper={"threshold_window": "1h"}), "go together", id="policy-window-without-threshold"),
    pytest.param(rule_text(trailkeeper={"threshold": 0, "threshold_window": "1h"}), "threshold", id="policy-threshold-zero"),
    pytest.param(rule_text(trailkeeper={"threshold": True, "threshold_window": "1h"}), "threshold", id="policy-threshold-bool"),
])
def test_refused_rule(text: str, reason: str) -> None:
    refusal = refused(text)
    assert reason in refusal.reason
    assert refusal.rule is not None and refusal.rule.startswith(TITLE)  # names the rule ...
    assert str(refusal).startswith(f"rules/case.yml: {refusal.rule}: ")  # ... and the file


CORRELATION = """
title: Many failed logins
id: 5f3d7c2e-0000-4000-8000-0000000000bb
correlation:
    type: event_count
    rules: [5f3d7c2e-0000-4000-8000-0000000000aa]
    group-by: [sourceIPAddress]
    timespan: 1h
    condition: {gte: 5}
"""
FILTER = """
title: Ignore the deploy robot
id: 5f3d7c2e-0000-4000-8000-0000000000cc
logsource: {product: aws, service: cloudtrail}
filter:
    rules: [5f3d7c2e-0000-4000-8000-0000000000aa]
    selection: {userIdentity.userName: deploy}
    condition: not selection
"""


@pytest.mark.parametrize(("text", "rule", "reason"), [
    pytest.param(CORRELATION, "Many failed logins", "correlation rules", id="correlation-rule"),
    pytest.param(FILTER, "Ignore the deploy robot", "filters", id="filter-meta-rule"),
])
def test_refused_meta_rules(text: str, rule: str, reason: str) -> None:
    refusal = refused(text)
    assert refusal.rule is not None and refusal.rule.startswith(rule)
    assert reason in refusal.reason


@pytest.mark.parametrize(("text", "reason"), [
    pytest.param("title: [unclosed", "not valid YAML", id="invalid-yaml"),
    pytest.param("title: a\ntitle: b\n", "Duplicate key", id="duplicate-key"),
    pytest.param("- just\n- a list\n", "not mappings", id="not-a-mapping"),
    pytest.param("title: x\n---\n42\n", "not mappings", id="second-document-not-a-mapping"),
    pytest.param("a: &a [*a]\n", "Recursive YAML structure", id="recursive-alias"),
])
def test_refused_file(text: str, reason: str) -> None:
    rules, refusals = load_text(text, "rules/case.yml")
    assert rules == []
    assert len(refusals) >= 1
    assert reason in refusals[0].reason, refusals
    assert all(refusal.source == "rules/case.yml" for refusal in refusals)


def test_a_bad_rule_does_not_stop_the_others() -> None:
    good = rule_text()
    bad = rule_text({"selection": {"eventName|base64": "x"}}).replace(RULE_ID, "5f3d7c2e-0000-4000-8000-0000000000dd")
    rules, refusals = load_text(f"{bad}---\n{good}---\n{bad}", "rules/case.yml")
    assert [rule.id for rule in rules] == [RULE_ID]
    assert len(refusals) == 2


def test_expand_with_empty_configured_list_is_refused() -> None:
    refusal = refused(rule_text({"selection": {"userIdentity.arn|expand": "%admins%"}}), {"admins": []})
    assert "%admins% has no configured values" in refusal.reason


def test_duplicate_id_in_one_text_is_refused() -> None:
    rules, refusals = load_text(f"{rule_text()}---\n{rule_text().replace(TITLE, 'Second')}", "rules/case.yml")
    assert [rule.title for rule in rules] == [TITLE]
    assert [refusal.rule for refusal in refusals] == [f"Second ({RULE_ID})"]
    assert f"already the id of '{TITLE}'" in refusals[0].reason
