"""The rules shipped in the package: SigmaHQ's 57 CloudTrail rules (unchanged, all loaded, each
with passing positive and negative samples), trailkeeper's own rules, and what the SigmaHQ
rules detect in the public Stratus Red Team detonation logs (spec monitoring.md §6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trailkeeper.rules.sigma import SigmaSet, load_directory, run_rule_tests, shipped_directory

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
UPSTREAM = SHARED / "sigma-aws-cloudtrail" / "rules"
STRATUS = SHARED / "cloudtrail-samples" / "stratus-red-team"
SIGMAHQ = shipped_directory() / "sigmahq"
OWN = shipped_directory() / "trailkeeper"


@pytest.fixture(scope="module")
def sigmahq() -> SigmaSet:
    return load_directory(SIGMAHQ)


def test_all_57_sigmahq_rules_load(sigmahq: SigmaSet) -> None:
    assert [str(refusal) for refusal in sigmahq.refusals] == []
    assert len(sigmahq.rules) == 57
    assert all(rule.author for rule in sigmahq.rules), "the DRL's attribution is each rule's author"


def test_sigmahq_rules_are_unchanged_copies() -> None:
    assert UPSTREAM.is_dir(), f"{UPSTREAM} is missing: lay the reference data (../shared) beside the clone, as CI does"
    upstream = {path.name: path.read_bytes() for path in UPSTREAM.glob("*.yml")}
    shipped = {path.name: path.read_bytes() for path in SIGMAHQ.glob("*.yml")}
    assert shipped == upstream


def test_sigmahq_readme_names_the_licence_and_commit() -> None:
    readme = (SIGMAHQ / "README.md").read_text()
    for needle in ("Detection Rule License (DRL) 1.1", "https://github.com/SigmaHQ/Detection-Rule-License",
                   "8eaafff1f2845a696050e05e72ba1140ee190698", "`author`"):
        assert needle in readme


def test_own_rules_load_with_their_alert_policies() -> None:
    own = load_directory(OWN)
    assert own.refusals == ()
    assert 4 <= len(own.rules) <= 8
    by_title = {rule.title: rule for rule in own.rules}
    failures = by_title["trailkeeper - Repeated Authentication Failures"]
    assert (failures.threshold, failures.threshold_window_s) == (5, 3600)
    assert (failures.dedup_fields, failures.dedup_window_s) == (("sourceIPAddress",), 3600)


def test_every_shipped_rule_passes_its_samples() -> None:
    report = run_rule_tests(shipped_directory())
    assert report.refusals == ()
    assert report.loaded == 57 + len(list(OWN.glob("*.yml")))
    problems = [(result.title, result.failures, result.problems) for result in report.results if not result.ok]
    assert problems == []
    assert report.coverage == 1.0
    assert report.failed == 0
    assert report.ok


def test_own_rules_carry_tests_blocks() -> None:
    report = run_rule_tests(OWN)
    assert all(result.covered for result in report.results)
    assert not list(OWN.glob("*.json")), "own rules keep their samples in the `tests:` block"


def _events(name: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads((STRATUS / name).read_text())
    return events


# Technique file -> the SigmaHQ rule that detects it (§6 coverage note).
STRATUS_DETECTIONS = [
    ("aws.defense-evasion.cloudtrail-stop.json", "aws_cloudtrail_disable_logging"),
    ("aws.defense-evasion.cloudtrail-delete.json", "aws_cloudtrail_disable_logging"),
    ("aws.defense-evasion.vpc-remove-flow-logs.json", "aws_cloudtrail_vpc_flow_logs_deleted"),
    ("aws.exfiltration.ec2-security-group-open-port-22-ingress.json", "aws_cloudtrail_security_group_change_ingress_egress"),
    ("aws.persistence.iam-backdoor-user.json", "aws_iam_backdoor_users_keys"),
    ("aws.persistence.iam-create-admin-user.json", "aws_iam_backdoor_users_keys"),
    ("aws.exfiltration.ec2-share-ebs-snapshot.json", "aws_snapshot_backup_exfiltration"),
    ("aws.persistence.lambda-layer-extension.json", "aws_new_lambda_layer_attached"),
    ("aws.execution.ssm-send-command.json", "aws_cloudtrail_ssm_malicious_usage"),
    ("aws.credential-access.ec2-steal-instance-credentials.json", "aws_cloudtrail_ssm_malicious_usage"),
    ("aws.initial-access.console-login-without-mfa.json", "aws_cloudtrail_console_login_success_without_mfa"),
]


@pytest.mark.parametrize(("technique", "rule_stem"),
                         [pytest.param(t, r, id=t.removeprefix("aws.").removesuffix(".json")) for t, r in STRATUS_DETECTIONS])
def test_stratus_technique_is_detected(sigmahq: SigmaSet, technique: str, rule_stem: str) -> None:
    assert STRATUS.is_dir(), f"{STRATUS} is missing: lay the reference data (../shared) beside the clone, as CI does"
    fired = {Path(rule.source).stem for event in _events(technique) for rule in sigmahq.matching(event)}
    assert rule_stem in fired, f"{technique}: fired {sorted(fired)}"


# §6: "They miss Organizations leave, secret retrieval, AMI/RDS snapshot sharing".
STRATUS_MISSES = [
    "aws.defense-evasion.organizations-leave.json",
    "aws.credential-access.secretsmanager-retrieve-secrets.json",
    "aws.exfiltration.ec2-share-ami.json",
    "aws.exfiltration.rds-share-snapshot.json",
]


@pytest.mark.parametrize("technique", [pytest.param(t, id=t.removeprefix("aws.").removesuffix(".json")) for t in STRATUS_MISSES])
def test_stratus_technique_missed_by_sigmahq(sigmahq: SigmaSet, technique: str) -> None:
    assert STRATUS.is_dir(), f"{STRATUS} is missing: lay the reference data (../shared) beside the clone, as CI does"
    noisy = "aws_sts_assumerole_misuse"  # fires on every AssumedRole call, whatever it does
    fired = {Path(rule.source).stem for event in _events(technique) for rule in sigmahq.matching(event)} - {noisy}
    assert fired == set()
