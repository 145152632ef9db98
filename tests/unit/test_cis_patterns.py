"""CIS monitoring controls: texts byte-exact against the spec, behaviour over real CloudTrail
samples (DataDog/stratus-red-team, Apache-2.0; adanalvarez/TrailDiscover, CC-BY-4.0), and the
text-only compliance check."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.pipeline import SHARED

from trailkeeper.monitoring.cis import (
    ALARM_DEFAULTS,
    CIS_1_2_CONSOLE_SIGNIN_WITHOUT_MFA,
    CIS_1_4_ROOT_USAGE,
    CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE,
    CIS_5_0_SECURITY_GROUP_CHANGES,
    CIS_5_0_UNAUTHORIZED_API_CALLS,
    CONTROLS,
    CisControl,
    find_control,
    text_matches,
)
from trailkeeper.monitoring.filterpattern import parse

SPEC = SHARED / "spec" / "monitoring.md"
SAMPLES = SHARED / "data" / "cloudtrail-samples"
CONTROL_IDS = [c.cis_number for c in CONTROLS]


# -- the spec, read here so that a typo in cis.py fails ----------------------------------------


def _cis_section() -> str:
    text = SPEC.read_text(encoding="utf-8")
    return text[text.index("## 5. CIS") : text.index("**The CIS 1.4 4.1 bug")]


def spec_entries() -> dict[int, list[str]]:
    """Entry number -> the `{...}` texts it lists, in order (default text first)."""
    section = _cis_section()
    body = section[section.index("**Exact pattern text") :]
    parts = re.split(r"^(\d+)\. \*\*", body, flags=re.MULTILINE)
    return {
        int(number): re.findall(r"`(\{[^`]*\})`", chunk)
        for number, chunk in zip(parts[1::2], parts[2::2], strict=True)
    }


def spec_table() -> list[list[str]]:
    rows = re.findall(r"^\| (\d+) \| (.*?) \| (.*?) \| (.*?) \| (.*?) \|$", _cis_section(), re.M)
    return [list(row) for row in rows]


def test_the_spec_lists_fifteen_controls() -> None:
    assert sorted(spec_entries()) == list(range(1, 16))
    assert len(spec_table()) == 15 == len(CONTROLS)


@pytest.mark.parametrize("index", range(15), ids=CONTROL_IDS)
def test_installed_text_is_byte_exact_with_the_spec(index: int) -> None:
    assert CONTROLS[index].pattern == spec_entries()[index + 1][0]


def test_variants_and_fixtures_are_byte_exact_with_the_spec() -> None:
    entries = spec_entries()
    assert entries[1][1] == CIS_1_4_ROOT_USAGE
    assert entries[2][1:] == [CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE, CIS_5_0_UNAUTHORIZED_API_CALLS]
    assert entries[3][1] == CIS_1_2_CONSOLE_SIGNIN_WITHOUT_MFA
    appended = re.search(r"CIS 5\.0 appends `([^`]*)`", _cis_section())
    assert appended is not None
    assert entries[10][0][:-1] + " " + appended.group(1) + "}" == CIS_5_0_SECURITY_GROUP_CHANGES


def test_every_text_in_the_spec_is_known_to_cis_py() -> None:
    in_spec = {text for texts in spec_entries().values() for text in texts}
    known = {t for c in CONTROLS for t in c.accepted_texts} | {CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE}
    assert in_spec <= known


@pytest.mark.parametrize("index", range(15), ids=CONTROL_IDS)
def test_numbers_and_topics_follow_the_spec_table(index: int) -> None:
    number, hub, v12, v14, topic = spec_table()[index]
    control = CONTROLS[index]
    assert int(number) == index + 1
    assert (control.security_hub_id or "—", control.cis_v1_2 or "—") == (hub, v12)
    assert (control.cis_number, control.topic) == (v14, topic)
    assert control.filter_name.startswith(f"cis-{control.cis_number}-")
    assert control.metric_name == control.filter_name


def test_every_text_parses_as_json_with_at_most_the_regex_quota() -> None:
    texts = [t for c in CONTROLS for t in c.accepted_texts] + [CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE]
    for text in texts:
        pattern = parse(text)
        assert pattern.kind == "json", text
        assert pattern.regex_count == 0
        assert pattern.supports_dimensions


def test_alarm_defaults_follow_the_cis_remediation() -> None:
    assert ALARM_DEFAULTS.namespace == "CISBenchmark"
    assert ALARM_DEFAULTS.metric_value == "1"
    assert (ALARM_DEFAULTS.statistic, ALARM_DEFAULTS.period) == ("Sum", 300)
    assert ALARM_DEFAULTS.threshold == 1.0
    assert ALARM_DEFAULTS.comparison_operator == "GreaterThanOrEqualToThreshold"
    assert ALARM_DEFAULTS.evaluation_periods == 1
    assert ALARM_DEFAULTS.treat_missing_data == "notBreaching"


@pytest.mark.parametrize(
    "key, number",
    [
        ("CloudWatch.2", "4.1"),
        ("3.1", "4.1"),
        ("4.15", "4.15"),
        ("cis-4.3-root-usage", "4.3"),
        ("CloudWatch.15", None),
    ],
)
def test_find_control(key: str, number: str | None) -> None:
    if number is None:
        with pytest.raises(KeyError, match=r"CloudWatch\.1-14"):
            find_control(key)
        return
    assert find_control(key).cis_number == number


# -- behaviour over the public samples -----------------------------------------------------------


def _events_of(path: Path) -> list[dict[str, Any]]:
    data = orjson.loads(path.read_bytes())
    return data if isinstance(data, list) else [data]


@cache
def corpus(name: str) -> tuple[str, ...]:
    """The corpus's events as messages, the way CloudTrail delivers them to CloudWatch Logs."""
    if name == "stratus-red-team":
        files = sorted((SAMPLES / name).glob("*.json"))
    else:
        files = sorted((SAMPLES / name / "logExamples").glob("*.json.cloudtrail"))
    return tuple(orjson.dumps(e).decode() for f in files for e in _events_of(f))


def count(text: str, name: str) -> int:
    pattern = parse(text)
    return sum(pattern.match(message) is not None for message in corpus(name))


def test_corpora_are_the_ones_the_spec_measured() -> None:
    assert len(corpus("stratus-red-team")) == 310
    assert len(corpus("traildiscover")) == 563


@pytest.mark.parametrize(
    "name, total, always_true, correct",
    [("stratus-red-team", 310, 310, 51), ("traildiscover", 563, 563, 411)],
)
def test_cis_1_4_unauthorized_text_is_always_true(
    name: str, total: int, always_true: int, correct: int
) -> None:
    # The spec's figures (§5, decision D2 applied) for the corpora we hold.
    assert count(CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE, name) == always_true == total
    assert count(find_control("CloudWatch.2").pattern, name) == correct
    # CIS 5.0 reads A || (B && C && D), so it counts like the Security Hub text.
    assert count(CIS_5_0_UNAUTHORIZED_API_CALLS, name) == correct


def test_non_json_sample_files_match_no_json_pattern_not_even_the_always_true_one() -> None:
    bad = [SAMPLES / "traildiscover" / "logExamples" / n for n in ("index.html", "script.js")]
    pattern = parse(CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE)
    for path in bad:
        assert pattern.match(path.read_text(encoding="utf-8")) is None


def sample(event_name: str, **fields: Any) -> str:
    """The first sample event with that eventName (and fields)."""
    for name in ("stratus-red-team", "traildiscover"):
        for message in corpus(name):
            event = orjson.loads(message)
            if event.get("eventName") == event_name and all(
                event.get(k) == v for k, v in fields.items()
            ):
                return message
    raise AssertionError(f"no sample {event_name} {fields}")


def written(event_name: str, source: str, **fields: Any) -> str:
    """A written event, for controls the public samples never trigger."""
    event: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/u"},
        "eventTime": "2025-01-02T03:04:05Z",
        "eventSource": source,
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.1",
        "eventType": "AwsApiCall",
        **fields,
    }
    return orjson.dumps(event).decode()


ROOT = {"type": "Root", "arn": "arn:aws:iam::111122223333:root"}
# Control -> (a positive event, a near-miss that must not match).
CASES: dict[str, tuple[str, str]] = {
    "4.3": (
        written("ListBuckets", "s3.amazonaws.com", userIdentity=ROOT),
        written("ListBuckets", "s3.amazonaws.com", userIdentity={**ROOT, "invokedBy": "s3.amazonaws.com"}),
    ),
    "4.1": (
        sample("GetCertificate", errorCode="AccessDenied"),
        written("RunInstances", "ec2.amazonaws.com", errorCode="Client.InvalidParameterValue"),
    ),
    "4.2": (
        sample("ConsoleLogin"),
        written(
            "ConsoleLogin", "signin.amazonaws.com",
            additionalEventData={"MFAUsed": "Yes"}, responseElements={"ConsoleLogin": "Success"},
        ),
    ),
    "4.4": (sample("AttachRolePolicy"), written("GetRolePolicy", "iam.amazonaws.com")),
    "4.5": (sample("StopLogging"), written("DescribeTrails", "cloudtrail.amazonaws.com")),
    "4.6": (
        written(
            "ConsoleLogin", "signin.amazonaws.com",
            errorMessage="Failed authentication", responseElements={"ConsoleLogin": "Failure"},
        ),
        sample("ConsoleLogin"),
    ),
    "4.7": (
        written("ScheduleKeyDeletion", "kms.amazonaws.com"),
        written("DisableKey", "kms-proxy.example.com"),
    ),
    "4.8": (sample("PutBucketPolicy"), written("PutBucketPolicy", "s3-outposts.amazonaws.com")),
    "4.9": (sample("StopConfigurationRecorder"), written("DescribeDeliveryChannels", "config.amazonaws.com")),
    "4.10": (sample("AuthorizeSecurityGroupIngress"), written("ModifySecurityGroupRules", "ec2.amazonaws.com")),
    "4.11": (sample("CreateNetworkAclEntry"), written("DescribeNetworkAcls", "ec2.amazonaws.com")),
    "4.12": (written("CreateInternetGateway", "ec2.amazonaws.com"), written("CreateEgressOnlyInternetGateway", "ec2.amazonaws.com")),
    "4.13": (sample("CreateRoute", eventSource="ec2.amazonaws.com"), written("CreateRouteX", "ec2.amazonaws.com")),
    "4.14": (written("CreateVpc", "ec2.amazonaws.com"), written("CreateVpcEndpoint", "ec2.amazonaws.com")),
    "4.15": (sample("LeaveOrganization"), written("LeaveOrganization", "iam.amazonaws.com")),
}  # fmt: skip


@pytest.mark.parametrize("control", CONTROLS, ids=CONTROL_IDS)
def test_each_control_matches_its_positive_event_and_not_its_near_miss(control: CisControl) -> None:
    positive, negative = CASES[control.cis_number]
    pattern = parse(control.pattern)
    assert pattern.match(positive) is not None
    assert pattern.match(negative) is None


def test_cis_5_0_security_group_text_adds_modify_security_group_rules() -> None:
    event = written("ModifySecurityGroupRules", "ec2.amazonaws.com")
    assert parse(find_control("4.10").pattern).match(event) is None  # the default's known gap
    assert parse(CIS_5_0_SECURITY_GROUP_CHANGES).match(event) is not None


def test_cis_1_2_mfa_text_also_fires_on_failed_and_sso_logins() -> None:
    failed_sso = written(
        "ConsoleLogin", "signin.amazonaws.com",
        userIdentity={"type": "AssumedRole"}, responseElements={"ConsoleLogin": "Failure"},
        additionalEventData={"MFAUsed": "No"},
    )  # fmt: skip
    assert parse(CIS_1_2_CONSOLE_SIGNIN_WITHOUT_MFA).match(failed_sso) is not None
    assert parse(find_control("CloudWatch.3").pattern).match(failed_sso) is None


def test_mfa_value_is_case_sensitive() -> None:
    event = written("ConsoleLogin", "signin.amazonaws.com", additionalEventData={"MFAUsed": "No"})
    assert parse('{ $.additionalEventData.MFAUsed = "NO" }').match(event) is None


# -- text_matches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("control", CONTROLS, ids=CONTROL_IDS)
def test_text_matches_every_accepted_text(control: CisControl) -> None:
    for text in control.accepted_texts:
        assert text_matches(control, text)


def _reversed_or_list(text: str) -> str:
    """`{(A) || (B) || (C)}` -> `{ ( C )||( B )||( A ) }`: reordered and re-spaced."""
    inner = text.strip("{} ")
    clauses = [c.strip("() ") for c in inner.split(" || ")]
    return "{ " + "||".join(f"( {c} )" for c in reversed(clauses)) + " }"


PURE_OR = [c for c in CONTROLS if "&&" not in c.pattern]


@pytest.mark.parametrize("control", PURE_OR, ids=[c.cis_number for c in PURE_OR])
def test_text_matches_accepts_reordered_and_respaced_or_lists(control: CisControl) -> None:
    reordered = _reversed_or_list(control.pattern)
    assert reordered != control.pattern
    assert text_matches(control, reordered)


@pytest.mark.parametrize(
    "key, text",
    [
        pytest.param(
            "4.3",
            "{ $.eventType != AwsServiceEvent && $.userIdentity.invokedBy NOT EXISTS && "
            "$.userIdentity.type = Root }",
            id="root-and-reordered-unquoted",
        ),
        pytest.param(
            "4.7",
            "{ ((($.eventName = ScheduleKeyDeletion) || ($.eventName = DisableKey))) && "
            '$.eventSource = "kms.amazonaws.com" }',
            id="cmk-nested-reordered-extra-parens",
        ),
        pytest.param("4.2", CIS_1_2_CONSOLE_SIGNIN_WITHOUT_MFA, id="mfa-cis-1.2-variant"),
        pytest.param("4.10", CIS_5_0_SECURITY_GROUP_CHANGES, id="sg-cis-5.0-variant"),
        pytest.param("4.1", CIS_5_0_UNAUTHORIZED_API_CALLS, id="unauthorized-cis-5.0-variant"),
        pytest.param(
            "4.6",
            '{\n\t($.errorMessage = "Failed authentication")\n\t&& ($.eventName = "ConsoleLogin")\n}',
            id="auth-failures-newlines-and-tabs",
        ),
    ],
)
def test_text_matches_accepts(key: str, text: str) -> None:
    assert text_matches(find_control(key), text)


@pytest.mark.parametrize(
    "key, text",
    [
        pytest.param("4.1", CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE, id="always-true-text-added-clauses"),
        pytest.param(
            "4.2",
            find_control("4.2").pattern[:-1] + "&& ($.additionalEventData.SamlProviderArn NOT EXISTS) }",
            id="saml-exclusion-added",
        ),
        pytest.param(
            "4.3", find_control("4.3").pattern[:-1] + ' && $.sourceIPAddress != "192.0.2.1"}',
            id="root-clause-added",
        ),
        pytest.param(
            "4.5", "{($.eventName=CreateTrail) || ($.eventName=UpdateTrail) || ($.eventName=DeleteTrail)}",
            id="clauses-removed",
        ),
        pytest.param(
            "4.7",
            "{($.eventSource=kms.amazonaws.com) && ($.eventName=DisableKey) || ($.eventName=ScheduleKeyDeletion)}",
            id="grouping-changed",
        ),
        pytest.param(
            "4.6", '{($.eventName=ConsoleLogin) && ($.errorMessage!="Failed authentication")}',
            id="operator-changed",
        ),
        pytest.param(
            "4.6", '{($.eventName=ConsoleLogin) && ($.errorMessage="Failed*")}', id="value-changed"
        ),
        pytest.param(
            "4.6",
            '{($.eventName=ConsoleLogin) && ($.errorMessage="Failed authentication") && ($.eventName=ConsoleLogin)}',
            id="clause-duplicated",
        ),
        pytest.param("4.4", CIS_5_0_SECURITY_GROUP_CHANGES, id="another-controls-text"),
        pytest.param("4.5", "{($.eventName=CreateTrail) ||", id="unparseable"),
        pytest.param("4.5", "CreateTrail UpdateTrail DeleteTrail StartLogging StopLogging", id="terms"),
        pytest.param("4.5", "", id="empty"),
    ],
)  # fmt: skip
def test_text_matches_refuses(key: str, text: str) -> None:
    assert not text_matches(find_control(key), text)
