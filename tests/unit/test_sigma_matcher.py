"""The Sigma matcher's semantics, one named case per modifier, condition form and data shape.

Each case is (detection, record, expected): the detection is a rule's `detection:` block
without its condition (`selection` unless the case gives one), the record a CloudTrail-like
object. docs/sigma.md states every rule shown here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml

from trailkeeper.rules.sigma import NO_PLACEHOLDERS, SigmaRule, load_text

RULE_ID = "5f3d7c2e-0000-4000-8000-000000000001"


def compile_rule(detection: Mapping[str, Any], condition: str | list[str] = "selection",
                 placeholders: Mapping[str, Sequence[str]] = NO_PLACEHOLDERS) -> SigmaRule:
    document = {"title": "case", "id": RULE_ID, "logsource": {"product": "aws", "service": "cloudtrail"},
                "detection": {**detection, "condition": condition}}
    rules, refusals = load_text(yaml.safe_dump(document, sort_keys=False), "case.yml", placeholders)
    assert not refusals, refusals
    return rules[0]


def case(name: str, detection: Mapping[str, Any], record: Mapping[str, Any], expected: bool,
         condition: str | list[str] = "selection") -> Any:
    return pytest.param(detection, record, expected, condition, id=name)


SEL = "selection"
STOP = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}

PLAIN = [
    case("equal-ignores-case", {SEL: {"eventName": "stoplogging"}}, STOP, True),
    case("equal-other-value", {SEL: {"eventName": "StartLogging"}}, STOP, False),
    case("equal-missing-field", {SEL: {"errorCode": "AccessDenied"}}, STOP, False),
    case("equal-whole-value-only", {SEL: {"eventName": "Stop"}}, STOP, False),
    case("empty-string-equals-empty", {SEL: {"errorCode": ""}}, {"errorCode": ""}, True),
    case("empty-string-not-missing", {SEL: {"errorCode": ""}}, {}, False),
    case("star-prefix", {SEL: {"eventName": "Stop*"}}, STOP, True),
    case("star-middle", {SEL: {"eventName": "S*ing"}}, STOP, True),
    case("star-alone-any-string", {SEL: {"eventName": "*"}}, STOP, True),
    case("star-alone-not-missing", {SEL: {"errorCode": "*"}}, STOP, False),
    case("star-not-null", {SEL: {"errorCode": "*"}}, {"errorCode": None}, False),
    case("question-one-char", {SEL: {"eventName": "StopLoggin?"}}, STOP, True),
    case("question-not-two-chars", {SEL: {"eventName": "StopLoggi?"}}, STOP, False),
    case("question-with-star", {SEL: {"eventName": "?top*"}}, STOP, True),
    case("escaped-star-literal", {SEL: {"name": "a\\*b"}}, {"name": "a*b"}, True),
    case("escaped-star-not-wildcard", {SEL: {"name": "a\\*b"}}, {"name": "axxb"}, False),
    case("escaped-question-literal", {SEL: {"name": "why\\?"}}, {"name": "why?"}, True),
    case("escaped-question-not-wildcard", {SEL: {"name": "why\\?"}}, {"name": "whyX"}, False),
    case("plain-backslash-kept", {SEL: {"path": "C:\\Windows"}}, {"path": "c:\\windows"}, True),
    case("value-list-is-or", {SEL: {"eventName": ["DeleteTrail", "StopLogging"]}}, STOP, True),
    case("value-list-none-equal", {SEL: {"eventName": ["DeleteTrail", "UpdateTrail"]}}, STOP, False),
    case("map-is-and", {SEL: {"eventName": "StopLogging", "eventSource": "s3.amazonaws.com"}}, STOP, False),
    case("list-of-maps-is-or", {SEL: [{"eventSource": "s3.amazonaws.com"}, {"eventName": "StopLogging"}]}, STOP, True),
    case("non-ascii-case", {SEL: {"userName": "ÉMILE"}}, {"userName": "émile"}, True),
]

TYPES = [
    case("string-false-vs-json-false", {SEL: {"requestParameters.enable": "false"}},
         {"requestParameters": {"enable": False}}, True),
    case("string-true-vs-json-false", {SEL: {"requestParameters.enable": "true"}},
         {"requestParameters": {"enable": False}}, False),
    case("yaml-bool-vs-json-bool", {SEL: {"responseElements.publiclyAccessible": True}},
         {"responseElements": {"publiclyAccessible": True}}, True),
    case("yaml-bool-vs-string", {SEL: {"valid": False}}, {"valid": "FALSE"}, True),
    case("yaml-number-vs-json-number", {SEL: {"port": 22}}, {"port": 22}, True),
    case("yaml-number-vs-string", {SEL: {"port": 22}}, {"port": "22"}, True),
    case("string-number-vs-json-number", {SEL: {"port": "22"}}, {"port": 22}, True),
    case("number-other-value", {SEL: {"port": 22}}, {"port": 2222}, False),
    case("float-as-json-text", {SEL: {"ratio": 1.5}}, {"ratio": 1.5}, True),
    case("int-is-not-float-text", {SEL: {"ratio": "1"}}, {"ratio": 1.0}, False),
    case("bool-is-not-number", {SEL: {"flag": 1}}, {"flag": True}, False),
]

PATHS = [
    case("nested-path", {SEL: {"userIdentity.sessionContext.sessionIssuer.type": "Role"}},
         {"userIdentity": {"sessionContext": {"sessionIssuer": {"type": "Role"}}}}, True),
    case("nested-path-missing-step", {SEL: {"userIdentity.sessionContext.sessionIssuer.type": "Role"}},
         {"userIdentity": {"type": "Role"}}, False),
    case("path-through-a-string", {SEL: {"userIdentity.type": "Root"}}, {"userIdentity": "Root"}, False),
    case("literal-dotted-key", {SEL: {"additionalEventData.MFAUsed": "no"}},
         {"additionalEventData.MFAUsed": "No"}, True),
    case("literal-dotted-key-deeper", {SEL: {"requestParameters.tag.key": "env"}},
         {"requestParameters": {"tag.key": "env"}}, True),
    case("literal-and-nested-both-tried", {SEL: {"a.b": "nested"}}, {"a.b": "literal", "a": {"b": "nested"}}, True),
    case("list-any-element", {SEL: {"requestParameters.layers": "arn:b"}},
         {"requestParameters": {"layers": ["arn:a", "arn:b"]}}, True),
    case("list-no-element", {SEL: {"requestParameters.layers": "arn:c"}},
         {"requestParameters": {"layers": ["arn:a", "arn:b"]}}, False),
    case("list-empty-no-match", {SEL: {"requestParameters.layers|contains": "*"}},
         {"requestParameters": {"layers": []}}, False),
    case("list-of-objects-fan-out", {SEL: {"requestParameters.containerDefinitions.command|contains": "$AWS_CONTAINER"}},
         {"requestParameters": {"containerDefinitions": [{"command": ["sh"]}, {"command": ["sh", "-c", "curl $AWS_CONTAINER_X"]}]}},
         True),
    case("nested-lists-fan-out", {SEL: {"a.b": "x"}}, {"a": [[{"b": "y"}], [[{"b": "x"}]]]}, True),
    case("object-compact-json", {SEL: {"requestParameters|contains": '"Status":"Suspended"'}},
         {"requestParameters": {"VersioningConfiguration": {"Status": "Suspended"}}}, True),
    case("object-nested-scalar", {SEL: {"requestParameters|contains": "suspended"}},
         {"requestParameters": {"VersioningConfiguration": {"Status": "Suspended"}}}, True),
    case("object-json-string-inside", {SEL: {"requestParameters|contains": '"s3:GetObject"'}},
         {"requestParameters": {"policyDocument": '{"Action": ["s3:GetObject"]}'}}, True),
    case("object-equals-nested-leaf", {SEL: {"requestParameters": "orders"}},
         {"requestParameters": {"name": "orders"}}, True),
    case("object-no-such-text", {SEL: {"responseElements|contains": "Failure"}},
         {"responseElements": {"state": "active"}}, False),
    case("object-number-leaf", {SEL: {"requestParameters": 7}}, {"requestParameters": {"days": 7}}, True),
]

MODIFIERS = [
    case("contains", {SEL: {"userAgent|contains": "s3 browser"}}, {"userAgent": "S3 Browser/11.5.7"}, True),
    case("contains-absent", {SEL: {"userAgent|contains": "TruffleHog"}}, {"userAgent": "aws-cli/2.15"}, False),
    case("contains-with-inner-star", {SEL: {"p|contains": "arn:*/x"}}, {"p": "a arn:aws:s3:::b/x c"}, True),
    case("startswith", {SEL: {"eventName|startswith": "UpdateFunctionConfiguration"}},
         {"eventName": "UpdateFunctionConfiguration20150331v2"}, True),
    case("startswith-not-inside", {SEL: {"eventName|startswith": "Function"}},
         {"eventName": "UpdateFunctionConfiguration20150331v2"}, False),
    case("endswith", {SEL: {"userIdentity.arn|endswith": ":root"}}, {"userIdentity": {"arn": "arn:aws:iam::1:root"}}, True),
    case("endswith-not-start", {SEL: {"userIdentity.arn|endswith": "arn"}}, {"userIdentity": {"arn": "arn:aws:iam::1:root"}}, False),
    case("all-every-value", {SEL: {"requestParameters|contains|all": ["s3:GetObject", "Allow"]}},
         {"requestParameters": {"policy": "Allow s3:GetObject"}}, True),
    case("all-one-missing", {SEL: {"requestParameters|contains|all": ["s3:GetObject", "Deny"]}},
         {"requestParameters": {"policy": "Allow s3:GetObject"}}, False),
    case("all-across-list-elements", {SEL: {"tags|all": ["a", "b"]}}, {"tags": ["b", "a"]}, True),
    case("re-case-sensitive", {SEL: {"eventName|re": "stop.*"}}, STOP, False),
    case("re-match", {SEL: {"userIdentity.arn|re": ".+:assumed-role/aws:.+"}},
         {"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/aws:ec2-instance/i-0a"}}, True),
    case("re-no-match", {SEL: {"userIdentity.arn|re": ".+:assumed-role/aws:.+"}},
         {"userIdentity": {"arn": "arn:aws:sts::1:assumed-role/admin/alice"}}, False),
    case("re-searches-inside", {SEL: {"eventName|re": "Logg"}}, STOP, True),
    case("re-anchored-by-caret", {SEL: {"eventName|re": "^Logg"}}, STOP, False),
    case("re-i-flag", {SEL: {"eventName|re|i": "^stop.*"}}, STOP, True),
    case("re-m-flag", {SEL: {"msg|re|m": "^second$"}}, {"msg": "first\nsecond"}, True),
    case("re-without-m-flag", {SEL: {"msg|re": "^second$"}}, {"msg": "first\nsecond"}, False),
    case("re-s-flag", {SEL: {"msg|re|s": "first.second"}}, {"msg": "first\nsecond"}, True),
    case("re-without-s-flag", {SEL: {"msg|re": "first.second"}}, {"msg": "first\nsecond"}, False),
    case("re-on-json-number", {SEL: {"port|re": "^2[0-9]$"}}, {"port": 22}, True),
    case("cidr-v4-inside", {SEL: {"sourceIPAddress|cidr": "10.0.0.0/8"}}, {"sourceIPAddress": "10.1.2.3"}, True),
    case("cidr-v4-outside", {SEL: {"sourceIPAddress|cidr": "10.0.0.0/8"}}, {"sourceIPAddress": "11.0.0.1"}, False),
    case("cidr-v6-inside", {SEL: {"sourceIPAddress|cidr": "2001:db8::/32"}}, {"sourceIPAddress": "2001:db8:0:1::7"}, True),
    case("cidr-v6-outside", {SEL: {"sourceIPAddress|cidr": "2001:db8::/32"}}, {"sourceIPAddress": "2001:db9::1"}, False),
    case("cidr-v4-address-v6-net", {SEL: {"sourceIPAddress|cidr": "::/0"}}, {"sourceIPAddress": "10.1.2.3"}, False),
    case("cidr-not-an-address", {SEL: {"sourceIPAddress|cidr": "0.0.0.0/0"}}, {"sourceIPAddress": "AWS Internal"}, False),
    case("cidr-list-of-values", {SEL: {"sourceIPAddress|cidr": ["192.0.2.0/24", "198.51.100.0/24"]}},
         {"sourceIPAddress": "198.51.100.23"}, True),
    case("exists-present", {SEL: {"errorCode|exists": True}}, {"errorCode": "AccessDenied"}, True),
    case("exists-missing", {SEL: {"errorCode|exists": True}}, {}, False),
    case("exists-null-is-absent", {SEL: {"errorCode|exists": True}}, {"errorCode": None}, False),
    case("exists-false-missing", {SEL: {"errorCode|exists": False}}, {}, True),
    case("exists-false-present", {SEL: {"errorCode|exists": False}}, {"errorCode": "x"}, False),
    case("exists-empty-object", {SEL: {"requestParameters|exists": True}}, {"requestParameters": {}}, True),
    case("cased-exact", {SEL: {"eventName|cased": "StopLogging"}}, STOP, True),
    case("cased-other-case", {SEL: {"eventName|cased": "stoplogging"}}, STOP, False),
    case("cased-contains", {SEL: {"userAgent|contains|cased": "Browser"}}, {"userAgent": "S3 browser"}, False),
    case("cased-contains-match", {SEL: {"userAgent|contains|cased": "Browser"}}, {"userAgent": "S3 Browser"}, True),
    case("fieldref-equal", {SEL: {"userIdentity.userName|fieldref": "requestParameters.userName"}},
         {"userIdentity": {"userName": "Alice"}, "requestParameters": {"userName": "alice"}}, True),
    case("fieldref-different", {SEL: {"userIdentity.userName|fieldref": "requestParameters.userName"}},
         {"userIdentity": {"userName": "alice"}, "requestParameters": {"userName": "bob"}}, False),
    case("fieldref-missing-other", {SEL: {"userIdentity.userName|fieldref": "requestParameters.userName"}},
         {"userIdentity": {"userName": "alice"}}, False),
    case("fieldref-endswith", {SEL: {"userIdentity.arn|fieldref|endswith": "requestParameters.userName"}},
         {"userIdentity": {"arn": "arn:aws:iam::1:user/alice"}, "requestParameters": {"userName": "alice"}}, True),
    case("fieldref-contains-no", {SEL: {"userIdentity.arn|fieldref|contains": "requestParameters.userName"}},
         {"userIdentity": {"arn": "arn:aws:iam::1:user/alice"}, "requestParameters": {"userName": "bob"}}, False),
    case("neq-other-value", {SEL: {"eventName|neq": "StopLogging"}}, {"eventName": "StartLogging"}, True),
    case("neq-same-value", {SEL: {"eventName|neq": "stoplogging"}}, STOP, False),
    case("neq-missing-field", {SEL: {"errorCode|neq": "AccessDenied"}}, STOP, True),
    case("neq-every-value", {SEL: {"eventName|neq": ["StartLogging", "StopLogging"]}}, STOP, False),
    case("gt", {SEL: {"serviceEventDetails.digestsInvalid|gt": 0}}, {"serviceEventDetails": {"digestsInvalid": 2}}, True),
    case("gt-equal", {SEL: {"serviceEventDetails.digestsInvalid|gt": 0}}, {"serviceEventDetails": {"digestsInvalid": 0}}, False),
    case("gte-equal", {SEL: {"count|gte": 5}}, {"count": 5}, True),
    case("lt", {SEL: {"count|lt": 5}}, {"count": 4.5}, True),
    case("lte-above", {SEL: {"count|lte": 5}}, {"count": 6}, False),
    case("gt-numeric-string", {SEL: {"count|gt": 5}}, {"count": "10"}, True),
    case("gt-text-not-number", {SEL: {"count|gt": 5}}, {"count": "ten"}, False),
    case("gt-bool-not-number", {SEL: {"count|gt": 0}}, {"count": True}, False),
    case("gt-list-any", {SEL: {"ports|gt": 1024}}, {"ports": [22, 8080]}, True),
    case("gt-missing", {SEL: {"count|gt": 0}}, {}, False),
    case("gt-big-int", {SEL: {"bytes|gt": 5}}, {"bytes": 10**30}, True),
]

NULLS = [
    case("null-missing", {SEL: {"errorCode": None}}, {"eventName": "x"}, True),
    case("null-json-null", {SEL: {"errorCode": None}}, {"errorCode": None}, True),
    case("null-empty-string", {SEL: {"errorCode": None}}, {"errorCode": ""}, False),
    case("null-value", {SEL: {"errorCode": None}}, {"errorCode": "AccessDenied"}, False),
    case("null-nested-missing-step", {SEL: {"responseElements.ConsoleLogin": None}}, {"responseElements": None}, True),
    case("null-or-success", {SEL: {"errorCode": [None, "Success"]}}, {"errorCode": "Success"}, True),
    case("null-or-success-other", {SEL: {"errorCode": [None, "Success"]}}, {"errorCode": "Throttling"}, False),
]

CONDITIONS = [
    case("and", {"a": {"eventName": "StopLogging"}, "b": {"eventSource": "cloudtrail.amazonaws.com"}}, STOP, True,
         "a and b"),
    case("and-one-false", {"a": {"eventName": "StopLogging"}, "b": {"eventSource": "s3.amazonaws.com"}}, STOP, False,
         "a and b"),
    case("or", {"a": {"eventName": "DeleteTrail"}, "b": {"eventName": "StopLogging"}}, STOP, True, "a or b"),
    case("or-none", {"a": {"eventName": "DeleteTrail"}, "b": {"eventName": "UpdateTrail"}}, STOP, False, "a or b"),
    case("not", {"a": {"eventName": "StopLogging"}, "f": {"errorCode|exists": True}}, STOP, True, "a and not f"),
    case("not-filtered", {"a": {"eventName": "StopLogging"}, "f": {"eventSource": "cloudtrail.amazonaws.com"}}, STOP,
         False, "a and not f"),
    case("parentheses", {"a": {"eventName": "X"}, "b": {"eventName": "StopLogging"}, "c": {"eventSource": "s3"}}, STOP,
         False, "(a or b) and c"),
    case("precedence-and-before-or", {"a": {"eventName": "X"}, "b": {"eventName": "StopLogging"}, "c": {"eventSource": "s3"}},
         STOP, False, "a or b and c"),
    case("precedence-or-true", {"a": {"eventName": "StopLogging"}, "b": {"eventName": "X"}, "c": {"eventSource": "s3"}},
         STOP, True, "a or b and c"),
    case("one-of-prefix", {"selection_a": {"eventName": "X"}, "selection_b": {"eventName": "StopLogging"}}, STOP, True,
         "1 of selection_*"),
    case("one-of-prefix-none", {"selection_a": {"eventName": "X"}, "selection_b": {"eventName": "Y"}, "other": {"eventName": "StopLogging"}},
         STOP, False, "1 of selection_*"),
    case("all-of-prefix", {"selection_a": {"eventName": "StopLogging"}, "selection_b": {"eventSource": "cloudtrail.amazonaws.com"}},
         STOP, True, "all of selection_*"),
    case("all-of-prefix-one-false", {"selection_a": {"eventName": "StopLogging"}, "selection_b": {"eventSource": "s3"}},
         STOP, False, "all of selection_*"),
    case("one-of-them", {"a": {"eventName": "X"}, "b": {"eventName": "StopLogging"}}, STOP, True, "1 of them"),
    case("all-of-them", {"a": {"eventName": "StopLogging"}, "b": {"eventName": "X"}}, STOP, False, "all of them"),
    case("not-one-of-filters", {"selection": {"eventName": "StopLogging"}, "filter_a": {"errorCode|exists": True},
                                "filter_b": {"userAgent": "console.amazonaws.com"}}, STOP, True,
         "selection and not 1 of filter_*"),
    case("not-one-of-filters-hit", {"selection": {"eventName": "StopLogging"}, "filter_a": {"eventSource|contains": "cloudtrail"},
                                    "filter_b": {"userAgent": "console.amazonaws.com"}}, STOP, False,
         "selection and not 1 of filter_*"),
    case("condition-list-is-or", {"a": {"eventName": "X"}, "b": {"eventName": "StopLogging"}}, STOP, True, ["a", "b"]),
    case("keyword-anywhere", {"keywords": ["cloudtrail.amazon"]}, STOP, True, "keywords"),
    case("keyword-ignores-case", {"keywords": ["STOPLOGGING"]}, STOP, True, "keywords"),
    case("keyword-absent", {"keywords": ["DeleteTrail"]}, STOP, False, "keywords"),
    case("keyword-nested-json-string", {"keywords": ['"Effect": "Allow"']},
         {"requestParameters": {"policyDocument": '{"Effect": "Allow"}'}}, True, "keywords"),
    case("keyword-regex", {"keywords": {"|re": "Stop[A-Z]"}}, STOP, True, "keywords"),
    case("keyword-and-field", {"keywords": ["cloudtrail"], "selection": {"eventName": "StopLogging"}}, STOP, True,
         "keywords and selection"),
]


@pytest.mark.parametrize(("detection", "record", "expected", "condition"),
                         PLAIN + TYPES + PATHS + MODIFIERS + NULLS + CONDITIONS)
def test_matches(detection: Mapping[str, Any], record: Mapping[str, Any], expected: bool, condition: str) -> None:
    assert compile_rule(detection, condition).matches(record) is expected


ADMINS = {"admins": ["arn:aws:iam::123456789012:user/alice", "arn:aws:iam::*:user/break-glass"], "empty": []}


@pytest.mark.parametrize(("field", "value", "record_value", "expected"), [
    pytest.param("userIdentity.arn|expand", "%admins%", "arn:aws:iam::123456789012:user/alice", True, id="expand-value"),
    pytest.param("userIdentity.arn|expand", "%admins%", "ARN:AWS:IAM::123456789012:USER/ALICE", True, id="expand-ignores-case"),
    pytest.param("userIdentity.arn|expand", "%admins%", "arn:aws:iam::999:user/break-glass", True, id="expand-wildcard-value"),
    pytest.param("userIdentity.arn|expand", "%admins%", "arn:aws:iam::123456789012:user/bob", False, id="expand-other"),
    pytest.param("userIdentity.arn|expand", "prefix-%admins%", "prefix-arn:aws:iam::123456789012:user/alice", True,
                 id="expand-inside-text"),
    pytest.param("userIdentity.arn|expand|contains", "%admins%", "x arn:aws:iam::123456789012:user/alice y", True,
                 id="expand-contains"),
    pytest.param("userIdentity.arn|re|expand", "^%admins%$", "arn:aws:iam::123456789012:user/alice", True,
                 id="expand-regex-escaped-value"),
    pytest.param("userIdentity.arn|re|expand", "^%admins%$", "arn:aws:iam::123456789012:user/alicX", False,
                 id="expand-regex-no-match"),
])
def test_expand(field: str, value: str, record_value: str, expected: bool) -> None:
    rule = compile_rule({SEL: {field: value}}, placeholders=ADMINS)
    assert rule.matches({"userIdentity": {"arn": record_value}}) is expected


def test_rule_metadata() -> None:
    text = """
title: Meta
id: 5f3d7c2e-0000-4000-8000-000000000002
description: what it finds
author: Jane Doe
tags: [attack.defense-evasion, attack.t1562.008]
falsepositives: [maintenance]
logsource: {product: aws, service: cloudtrail}
detection: {selection: {eventName: StopLogging}, condition: selection}
"""
    rules, refusals = load_text(text, "meta.yml")
    assert not refusals
    rule = rules[0]
    assert (rule.id, rule.title, rule.level, rule.source) == ("5f3d7c2e-0000-4000-8000-000000000002", "Meta", "medium", "meta.yml")
    assert (rule.author, rule.description) == ("Jane Doe", "what it finds")
    assert rule.tags == ("attack.defense-evasion", "attack.t1562.008")
    assert rule.falsepositives == ("maintenance",)
    assert (rule.dedup_fields, rule.dedup_window_s, rule.threshold, rule.threshold_window_s) == (None, None, None, None)


def test_multi_document_file() -> None:
    text = "\n---\n".join(
        f"title: R{i}\nid: 5f3d7c2e-0000-4000-8000-00000000001{i}\nlogsource: {{product: aws, service: cloudtrail}}\n"
        f"detection: {{selection: {{eventName: E{i}}}, condition: selection}}\nlevel: high\n" for i in range(3))
    rules, refusals = load_text(text, "multi.yml")
    assert not refusals
    assert [rule.title for rule in rules] == ["R0", "R1", "R2"]
    assert all(rule.level == "high" for rule in rules)
    assert rules[1].matches({"eventName": "E1"}) and not rules[1].matches({"eventName": "E0"})


@pytest.mark.parametrize("record", [
    pytest.param({"a": [[[[[[[[[[{"b": "x"}]]]]]]]]]]}, id="nested-arrays"),
    pytest.param({"requestParameters": {"a": {"b": {"c": [1, 2.5, None, True, {"d": "x"}]}}}}, id="mixed-object"),
    pytest.param({"requestParameters": {"n": float("nan"), "i": float("inf")}}, id="non-finite"),
    pytest.param({"eventName": None, "userIdentity": None}, id="nulls"),
])
def test_odd_records_do_not_crash(record: Mapping[str, Any]) -> None:
    rule = compile_rule({"selection": {"requestParameters|contains": "x", "a.b": "x"}, "keywords": ["x"]},
                        "selection or keywords")
    assert isinstance(rule.matches(record), bool)


def test_deeply_nested_record_does_not_crash() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = {"k": deep}
    record = {"requestParameters": deep, "eventName": "x"}
    rule = compile_rule({"selection": {"requestParameters|contains": "nothing"}, "keywords": ["nothing"]},
                        "selection or keywords")
    assert rule.matches(record) is False


def test_long_value_lists_and_conditions() -> None:
    values = [f"needle{i}" for i in range(3000)]
    contains = compile_rule({SEL: {"userAgent|contains": values}})
    assert contains.matches({"userAgent": "x needle2999 y"})
    assert not contains.matches({"userAgent": "no"})
    names = {f"s{i}": {f"field{i}": "x"} for i in range(1500)}
    assert compile_rule(names, "1 of s*").matches({"field1499": "x"})
    assert not compile_rule(names, "all of s*").matches({"field1499": "x"})
