"""Forwarding a trail to a log group: names and ARNs, the log-event message, and the IAM-like
check of the role's policies (one named, data-driven case per rule)."""

from __future__ import annotations

import fnmatch
import re
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper.monitoring.forwarding import (
    default_log_group,
    forwarding_denials,
    log_group_arn,
    log_message,
    stream_arn,
    stream_name,
)

REGION, ACCOUNT, GROUP = "us-east-2", "111122223333", "trail-logs"
# Written out by hand from the CloudTrail docs' role policy (not built by the code under test).
STREAM = "111122223333_CloudTrail_us-east-2"
GROUP_ARN = "arn:aws:logs:us-east-2:111122223333:log-group:trail-logs"
STREAM_ARN = GROUP_ARN + ":log-stream:" + STREAM
CREATE, PUT = "logs:CreateLogStream", "logs:PutLogEvents"
LIMIT = 262_144 - 26  # CloudWatch Logs: 256 KiB per event, 26 bytes of it per-event overhead


# --- names and ARNs ------------------------------------------------------------------------------

@pytest.mark.parametrize(("got", "expected"), [
    pytest.param(stream_name("111122223333", "us-east-2"), STREAM, id="stream-name"),
    pytest.param(stream_name("000000000001", "eu-west-1"), "000000000001_CloudTrail_eu-west-1",
                 id="stream-name-other-region"),
    pytest.param(default_log_group("111122223333", "0a1b2c3d"), "aws-cloudtrail-logs-111122223333-0a1b2c3d",
                 id="default-log-group-with-suffix"),
    pytest.param(log_group_arn("us-east-2", "111122223333", "trail-logs"), GROUP_ARN, id="log-group-arn"),
    pytest.param(log_group_arn("eu-west-1", "123456789012", "a/b.c-d_e#f"),
                 "arn:aws:logs:eu-west-1:123456789012:log-group:a/b.c-d_e#f", id="log-group-arn-all-name-characters"),
    pytest.param(stream_arn("us-east-2", "111122223333", "trail-logs", STREAM), STREAM_ARN, id="stream-arn"),
])
def test_names_and_arns(got: str, expected: str) -> None:
    assert got == expected


def test_the_default_log_group_gets_a_fresh_eight_hex_suffix() -> None:
    names = {default_log_group("111122223333") for _ in range(5)}
    assert len(names) == 5
    for name in names:
        assert re.fullmatch(r"aws-cloudtrail-logs-111122223333-[0-9a-f]{8}", name), name


# --- log_message ---------------------------------------------------------------------------------

def _document_of(size: int, char: str = "x") -> bytes:
    """A pretty-printed record whose compact UTF-8 form is exactly `size` bytes."""
    overhead = len(b'{"a":""}')
    width = len(char.encode())
    assert (size - overhead) % width == 0
    return b'{ "a" : "' + (char * ((size - overhead) // width)).encode() + b'" }'


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(b'{\n  "eventName": "PutObject",\n  "n": [1, 2.5, null, true]\n}',
                 '{"eventName":"PutObject","n":[1,2.5,null,true]}', id="whitespace-removed"),
    pytest.param(b'{"z": 1, "a": {"y": 2, "b": 3}}', '{"z":1,"a":{"y":2,"b":3}}', id="key-order-kept"),
    pytest.param(b'{"n": "caf\\u00e9 \\ud83d\\ude00"}', '{"n":"caf\u00e9 \U0001f600"}', id="escapes-become-utf8"),
    pytest.param(b'{"q": "a\\"b\\\\c\\n"}', '{"q":"a\\"b\\\\c\\n"}', id="required-escapes-kept"),
])
def test_the_message_is_the_compact_json_of_the_record(body: bytes, expected: str) -> None:
    assert log_message(body) == expected


@pytest.mark.parametrize(("size", "forwarded"), [
    pytest.param(LIMIT - 1, True, id="one-byte-under"),
    pytest.param(LIMIT, True, id="exactly-at-the-limit"),
    pytest.param(LIMIT + 1, False, id="one-byte-over"),
])
def test_the_size_limit_is_262118_bytes_of_compact_json(size: int, forwarded: bool) -> None:
    message = log_message(_document_of(size))
    if forwarded:
        assert message is not None and len(message.encode()) == size
    else:
        assert message is None


@pytest.mark.parametrize(("size", "forwarded"), [
    pytest.param(LIMIT, True, id="two-byte-characters-at-the-limit"),
    pytest.param(LIMIT + 2, False, id="two-byte-characters-over-though-fewer-characters"),
])
def test_the_limit_counts_utf8_bytes_not_characters(size: int, forwarded: bool) -> None:
    message = log_message(_document_of(size, "\u00e9"))
    assert (message is not None) is forwarded
    if message is not None:
        assert len(message.encode()) == size and len(message) < size


def test_whitespace_that_compaction_removes_does_not_count() -> None:
    body = b'{"a": "' + b"x" * 100 + b'"' + b" " * LIMIT + b"}"
    assert log_message(body) == '{"a":"' + "x" * 100 + '"}'


# --- forwarding_denials: one named case per rule --------------------------------------------------

def allow(action: Any, resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def deny(action: Any, resource: Any = "*", **more: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **more}


def policy(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


NO_STATEMENT = "no statement allows it on " + STREAM_ARN
DENIED = "explicitly denied on " + STREAM_ARN
CONDITION = "allowed only under a Condition"
BOTH_MISSING = {CREATE: NO_STATEMENT, PUT: NO_STATEMENT}

# (policies, {denied action: the reason it names}); an empty dict means the role is accepted.
CASES: list[Any] = [
    # actions
    pytest.param([policy(allow([CREATE, PUT], STREAM_ARN))], {}, id="allow-exact-actions-on-exact-stream"),
    pytest.param([policy(allow("logs:*"))], {}, id="allow-logs-star"),
    pytest.param([policy(allow("*"))], {}, id="allow-star"),
    pytest.param([policy(allow(["LOGS:createlogstream", "Logs:PutLogEVENTS"], STREAM_ARN))], {},
                 id="actions-are-case-insensitive"),
    pytest.param([policy(allow(["logs:Create*", "logs:put*"]))], {}, id="action-prefix-wildcards"),
    pytest.param([policy(allow(["logs:CreateLogStrea?", "logs:PutLog?vents"]))], {},
                 id="action-question-mark-wildcard"),
    pytest.param([policy(allow("logs:PutLogEvent"))], BOTH_MISSING, id="action-is-matched-whole-not-as-prefix"),
    pytest.param([policy(allow("logs:CreateLogStream?"))], BOTH_MISSING,
                 id="action-question-mark-needs-one-character"),
    pytest.param([policy(allow("s3:*"))], BOTH_MISSING, id="other-service-action"),
    pytest.param([policy(allow("logs:Create*"))], {PUT: NO_STATEMENT}, id="allow-only-create-names-put"),
    pytest.param([policy(allow(PUT))], {CREATE: NO_STATEMENT}, id="allow-only-put-names-create"),
    # resources
    pytest.param([policy(allow("logs:*", GROUP_ARN + ":log-stream:*"))], {}, id="resource-star-for-any-stream"),
    pytest.param([policy(allow("logs:*", "arn:aws:logs:us-east-?:111122223333:log-group:trail-logs:*"))], {},
                 id="resource-question-mark-wildcard"),
    pytest.param([policy(allow("logs:*", GROUP_ARN[:-2] + "??:*"))], {}, id="resource-two-question-marks-two-characters"),
    pytest.param([policy(allow("logs:*", GROUP_ARN[:-2] + "???:*"))], BOTH_MISSING,
                 id="resource-question-mark-is-exactly-one-character"),
    pytest.param([policy(allow("logs:*", "arn:aws:logs:*:*:*"))], {}, id="resource-star-spans-colons"),
    pytest.param([policy(allow("logs:*", GROUP_ARN.replace("trail-logs", "Trail-Logs") + ":*"))], BOTH_MISSING,
                 id="resources-are-case-sensitive"),
    pytest.param([policy(allow("logs:*", GROUP_ARN.upper() + ":*"))], BOTH_MISSING,
                 id="resource-arn-prefix-is-case-sensitive-too"),
    pytest.param([policy(allow("logs:*", GROUP_ARN + ":*"))], {}, id="group-arn-with-colon-star-covers-the-stream"),
    pytest.param([policy(allow("logs:*", GROUP_ARN))], BOTH_MISSING, id="bare-group-arn-does-not-cover-the-stream"),
    pytest.param([policy(allow("logs:*", GROUP_ARN + "*"))], {}, id="group-arn-with-star-covers-the-stream"),
    pytest.param([policy(allow("logs:*", GROUP_ARN + ":log-stream:other"))], BOTH_MISSING, id="another-stream"),
    pytest.param([policy(allow("logs:*", "arn:aws:logs:us-east-2:111122223333:log-group:trail-logs-2:*"))],
                 BOTH_MISSING, id="another-group-sharing-the-prefix"),
    pytest.param([policy(allow("logs:*", "arn:aws:logs:eu-west-1:111122223333:log-group:trail-logs:*"))],
                 BOTH_MISSING, id="another-region"),
    pytest.param([policy(allow("logs:*", ["arn:aws:s3:::bucket", GROUP_ARN + ":*"]))], {}, id="resource-list"),
    # explicit deny
    pytest.param([policy(allow("logs:*"), deny(PUT))], {PUT: DENIED}, id="explicit-deny-wins-over-allow"),
    pytest.param([policy(deny("logs:*", GROUP_ARN + ":*"), allow(["logs:*", "*"], STREAM_ARN))],
                 {CREATE: DENIED, PUT: DENIED}, id="deny-listed-first-or-last-still-wins"),
    pytest.param([policy(allow("logs:*")), policy(deny("LOGS:PUT*"))], {PUT: DENIED},
                 id="deny-in-another-policy-wins"),
    pytest.param([policy(allow("logs:*"), deny("logs:*", GROUP_ARN.replace("trail-logs", "other") + ":*"))], {},
                 id="deny-on-another-group-does-not-apply"),
    pytest.param([policy(deny("logs:*"))], {CREATE: DENIED, PUT: DENIED}, id="deny-without-any-allow"),
    # NotAction / NotResource
    pytest.param([policy({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})], {}, id="not-action-allows-the-rest"),
    pytest.param([policy({"Effect": "Allow", "NotAction": ["logs:putlogevents"], "Resource": "*"})],
                 {PUT: NO_STATEMENT}, id="not-action-excludes-case-insensitively"),
    pytest.param([policy(allow("logs:*"), {"Effect": "Deny", "NotAction": CREATE, "Resource": "*"})],
                 {PUT: DENIED}, id="deny-with-not-action"),
    pytest.param([policy({"Effect": "Allow", "Action": "logs:*", "NotResource": "arn:aws:logs:*:*:log-group:other:*"})],
                 {}, id="not-resource-allows-the-rest"),
    pytest.param([policy({"Effect": "Allow", "Action": "logs:*", "NotResource": [GROUP_ARN + ":*"]})],
                 BOTH_MISSING, id="not-resource-excludes-the-stream"),
    pytest.param([policy({"Effect": "Allow", "Action": "logs:*",
                          "NotResource": GROUP_ARN.replace("trail-logs", "TRAIL-LOGS") + ":*"})],
                 {}, id="not-resource-is-case-sensitive"),
    pytest.param([policy(allow("logs:*"), {"Effect": "Deny", "Action": "logs:*", "NotResource": GROUP_ARN + ":*"})],
                 {}, id="deny-with-not-resource-spares-the-stream"),
    # shapes of Statement and Action
    pytest.param([{"Statement": allow("logs:*")}], {}, id="statement-as-a-single-object"),
    pytest.param([{"Statement": [allow(CREATE), allow([PUT])]}], {}, id="action-as-string-and-as-list"),
    pytest.param([policy(allow(CREATE)), policy(allow(PUT, GROUP_ARN + ":*"))], {}, id="two-policies-combine"),
    pytest.param([], BOTH_MISSING, id="no-policies"),
    # Condition (a configuration-time check has no request context)
    pytest.param([policy(allow("logs:*", Condition={"StringEquals": {"aws:SourceArn": "arn:x"}}))],
                 {CREATE: CONDITION, PUT: CONDITION}, id="allow-only-under-a-condition-does-not-count"),
    pytest.param([policy(allow("logs:*", Condition={"Bool": {"aws:SecureTransport": "true"}}), allow(PUT))],
                 {CREATE: CONDITION}, id="an-unconditional-allow-beside-a-conditional-one-counts"),
    pytest.param([policy(allow("logs:*", Condition={}))], {}, id="an-empty-condition-is-no-condition"),
    pytest.param([policy(allow("logs:*"), deny(PUT, Condition={"StringEquals": {"aws:SourceArn": "arn:x"}}))],
                 {PUT: DENIED}, id="a-conditional-deny-still-denies"),
    # malformed documents: they grant nothing and never crash
    pytest.param([{"Version": "2012-10-17"}], BOTH_MISSING, id="malformed-no-statement"),
    pytest.param([{"Statement": "Allow logs:*"}], BOTH_MISSING, id="malformed-statement-is-a-string"),
    pytest.param([{"Statement": [None, 7, "x", allow("logs:*")]}], {}, id="malformed-items-skipped-valid-kept"),
    pytest.param([policy({"Effect": "Allow", "Resource": "*"})], BOTH_MISSING, id="malformed-no-action"),
    pytest.param([policy({"Effect": "Allow", "Action": "logs:*"})], BOTH_MISSING, id="malformed-no-resource"),
    pytest.param([policy({"Action": "logs:*", "Resource": "*"})], BOTH_MISSING, id="malformed-no-effect"),
    pytest.param([policy(allow("logs:*"), {"Effect": "deny", "Action": "*", "Resource": "*"})], {},
                 id="malformed-lowercase-effect-denies-nothing"),
    pytest.param([policy({"Effect": "Allow", "NotAction": {"x": 1}, "Resource": "*"})], BOTH_MISSING,
                 id="malformed-not-action-object-allows-nothing"),
    pytest.param([policy({"Effect": "Allow", "NotAction": [], "Resource": "*"})], BOTH_MISSING,
                 id="malformed-empty-not-action-allows-nothing"),
    pytest.param([policy({"Effect": "Allow", "Action": "*", "NotResource": [3]})], BOTH_MISSING,
                 id="malformed-not-resource-number-allows-nothing"),
    pytest.param([policy(allow(["logs:*", 5]))], BOTH_MISSING, id="malformed-action-list-with-a-number"),
    pytest.param([policy(allow(None))], BOTH_MISSING, id="malformed-action-null"),
    pytest.param([policy({"Effect": "Allow", "Action": "logs:*", "NotAction": "s3:*", "Resource": "*"})],
                 BOTH_MISSING, id="malformed-action-and-not-action"),
    pytest.param([policy(allow("logs:*"), {"Effect": "Deny", "NotAction": 5, "Resource": "*"})], {},
                 id="malformed-deny-denies-nothing"),
    pytest.param([["not", "a", "document"], "text", None, policy(allow("logs:*"))], {},
                 id="malformed-non-document-policies-skipped"),
]


@pytest.mark.parametrize(("policies", "expected"), CASES)
def test_forwarding_denials(policies: list[Any], expected: dict[str, str]) -> None:
    found = forwarding_denials(policies, REGION, ACCOUNT, GROUP)
    reasons = dict(line.split(": ", 1) for line in found)
    assert len(reasons) == len(found)  # one line per action
    assert sorted(reasons) == sorted(expected)
    for action, why in expected.items():
        assert reasons[action].startswith(why), reasons[action]


def test_denials_come_in_the_order_cloudtrail_calls_the_actions() -> None:
    assert [line.split(":", 2)[:2] for line in forwarding_denials([], REGION, ACCOUNT, GROUP)] == [
        ["logs", "CreateLogStream"], ["logs", "PutLogEvents"]]


# --- wildcards: against an independent matcher, and without backtracking blow-ups ------------------

_ARN_CHARS = "ab:-_/"


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(alphabet=_ARN_CHARS + "*?", max_size=12),
       group=st.text(alphabet="ab-_/", min_size=1, max_size=8))
def test_resource_wildcards_agree_with_shell_style_globbing(pattern: str, group: str) -> None:
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}:log-stream:{STREAM}"
    resource = "arn:aws:logs:" + REGION + ":" + ACCOUNT + ":log-group:" + pattern + ":log-stream:" + STREAM
    # fnmatchcase has the same meaning for * and ? (no '[' is generated) and is case-sensitive.
    allowed = fnmatch.fnmatchcase(arn, resource)
    found = forwarding_denials([policy(allow("logs:*", resource))], REGION, ACCOUNT, group)
    assert found == ([] if allowed else [f"{CREATE}: no statement allows it on {arn}",
                                         f"{PUT}: no statement allows it on {arn}"])


def test_a_pathological_pattern_is_decided_quickly() -> None:
    # A regex translation backtracks for tens of seconds on this; the check runs on user input.
    resource = "*a" * 7 + "*Z"
    started = time.monotonic()
    found = forwarding_denials([policy(allow("logs:*", resource))], REGION, ACCOUNT, "a" * 48)
    assert time.monotonic() - started < 1.0
    assert len(found) == 2


# --- random documents never crash ----------------------------------------------------------------

_KEYS = st.sampled_from(["Statement", "Effect", "Action", "NotAction", "Resource", "NotResource",
                         "Condition", "Sid", "Version", "Allow", "Deny"])
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.sampled_from(["Allow", "Deny", "*", "logs:*", CREATE, PUT, GROUP_ARN + ":*", STREAM_ARN, "?", ""])
            | st.text(max_size=8))
_JSONISH = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(_KEYS | st.text(max_size=4), inner, max_size=5), max_leaves=30)
_DOCUMENTS = st.lists(_JSONISH | st.dictionaries(_KEYS, _JSONISH, max_size=4), max_size=4)


@settings(max_examples=400, deadline=None)
@given(policies=_DOCUMENTS)
def test_random_policy_documents_never_crash(policies: list[Any]) -> None:
    found = forwarding_denials(policies, REGION, ACCOUNT, GROUP)
    actions = [line.split(": ", 1)[0] for line in found]
    assert actions in ([], [CREATE], [PUT], [CREATE, PUT])


@settings(max_examples=200, deadline=None)
@given(policies=_DOCUMENTS)
def test_a_deny_of_everything_wins_over_any_documents(policies: list[Any]) -> None:
    found = forwarding_denials([*policies, policy(deny("*"))], REGION, ACCOUNT, GROUP)
    assert found == [f"{CREATE}: {DENIED}", f"{PUT}: {DENIED}"]


@settings(max_examples=200, deadline=None)
@given(policies=_DOCUMENTS)
def test_an_unconditional_allow_of_everything_leaves_only_explicit_denials(policies: list[Any]) -> None:
    found = forwarding_denials([policy(allow("*")), *policies], REGION, ACCOUNT, GROUP)
    assert all(line.endswith(DENIED) for line in found), found


def test_policies_may_be_any_iterable_of_documents() -> None:
    documents = (orjson.loads(orjson.dumps(policy(allow("logs:*")))) for _ in range(2))
    assert forwarding_denials(documents, REGION, ACCOUNT, GROUP) == []
