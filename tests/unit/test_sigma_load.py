"""Loading rule directories (refusals collected, never raised), the hot-reload fingerprint, the
`trailkeeper:` alert policy, and the rule-test runner with its report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from trailkeeper.rules.sigma import (
    COLUMNS,
    SigmaLoadError,
    fingerprint,
    load_directory,
    load_text,
    run_rule_tests,
)


def rule_yaml(rule_id: int, name: str = "StopLogging", **top: Any) -> str:
    document = {"title": f"Rule {rule_id}", "id": f"5f3d7c2e-0000-4000-8000-{rule_id:012d}",
                "logsource": {"product": "aws", "service": "cloudtrail"},
                "detection": {"selection": {"eventName": name}, "condition": "selection"}, **top}
    return yaml.safe_dump(document, sort_keys=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_directory_is_read_recursively_skipping_hidden_and_sample_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yml", rule_yaml(1))
    write(tmp_path / "sub" / "deeper" / "b.yaml", rule_yaml(2))
    write(tmp_path / ".hidden" / "c.yml", rule_yaml(3))
    write(tmp_path / ".d.yml", rule_yaml(4))
    write(tmp_path / "a.positive.yml", rule_yaml(5))
    write(tmp_path / "a.positive.json", "[]")
    write(tmp_path / "README.md", "# rules")
    ruleset = load_directory(tmp_path)
    assert sorted(rule.title for rule in ruleset.rules) == ["Rule 1", "Rule 2"]
    assert ruleset.refusals == ()


def test_bad_files_become_refusals_and_loading_goes_on(tmp_path: Path) -> None:
    write(tmp_path / "1-good.yml", rule_yaml(1))
    write(tmp_path / "2-yaml.yml", "title: [unclosed")
    (tmp_path / "3-binary.yml").write_bytes(b"\xff\xfe\x00garbage")
    write(tmp_path / "4-unsupported.yml", rule_yaml(4).replace("eventName:", "eventName|base64:"))
    write(tmp_path / "5-duplicate.yml", rule_yaml(1).replace("Rule 1", "Copy of rule 1"))
    write(tmp_path / "6-good.yml", rule_yaml(6))
    ruleset = load_directory(tmp_path)
    assert [rule.title for rule in ruleset.rules] == ["Rule 1", "Rule 6"]
    reasons = {Path(refusal.source).name: refusal.reason for refusal in ruleset.refusals}
    assert set(reasons) == {"2-yaml.yml", "3-binary.yml", "4-unsupported.yml", "5-duplicate.yml"}
    assert "not valid YAML" in reasons["2-yaml.yml"]
    assert "cannot read" in reasons["3-binary.yml"]
    assert "base64" in reasons["4-unsupported.yml"]
    assert "already the id of 'Rule 1'" in reasons["5-duplicate.yml"]


def test_unreadable_subdirectory_is_a_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a.yml", rule_yaml(1))
    locked = tmp_path / "locked"
    write(locked / "b.yml", rule_yaml(2))
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        # A permission error as an unreadable folder gives (chmod 0 does not stop root, who runs CI).
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    ruleset = load_directory(tmp_path)
    assert [rule.title for rule in ruleset.rules] == ["Rule 1"]
    assert [Path(refusal.source).name for refusal in ruleset.refusals] == ["locked"]


@pytest.mark.parametrize("make", [
    pytest.param(lambda tmp: tmp / "missing", id="missing"),
    pytest.param(lambda tmp: write(tmp / "file.yml", rule_yaml(1)), id="a-file"),
])
def test_unreadable_directory_raises(tmp_path: Path, make: Any) -> None:
    path = make(tmp_path)
    with pytest.raises(SigmaLoadError) as raised:
        load_directory(path)
    assert str(path) in str(raised.value)
    with pytest.raises(SigmaLoadError):
        fingerprint(path)


def test_fingerprint_changes_with_names_sizes_and_times(tmp_path: Path) -> None:
    rule = write(tmp_path / "a.yml", rule_yaml(1))
    first = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == first
    write(tmp_path / "b.yml", rule_yaml(2))
    added = fingerprint(tmp_path)
    assert added != first
    rule.write_text(rule_yaml(1, "DeleteTrail"))
    edited = fingerprint(tmp_path)
    assert edited != added
    stat = rule.stat()
    os.utime(rule, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = fingerprint(tmp_path)
    assert touched != edited
    rule.rename(tmp_path / "c.yml")
    assert fingerprint(tmp_path) != touched


@pytest.mark.parametrize(("policy", "expected"), [
    pytest.param({"dedup": ["userIdentity.arn", "sourceIPAddress"], "dedup_window": "60m", "threshold": 5,
                  "threshold_window": "1h"}, (("userIdentity.arn", "sourceIPAddress"), 3600, 5, 3600), id="full"),
    pytest.param({"dedup": "sourceIPAddress"}, (("sourceIPAddress",), 3600, None, None), id="one-field-default-window"),
    pytest.param({"dedup_window": 300}, ((), 300, None, None), id="window-alone-dedups-the-rule"),
    pytest.param({"threshold": 6, "threshold_window": "360s"}, (None, None, 6, 360), id="threshold-seconds"),
    pytest.param({"dedup": ["a"], "dedup_window": "1d"}, (("a",), 86400, None, None), id="one-day"),
])
def test_alert_policy(policy: dict[str, Any], expected: tuple[Any, ...]) -> None:
    rules, refusals = load_text(rule_yaml(1, trailkeeper=policy), "p.yml")
    assert not refusals, refusals
    rule = rules[0]
    assert (rule.dedup_fields, rule.dedup_window_s, rule.threshold, rule.threshold_window_s) == expected


POSITIVE = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging", "eventTime": "2026-12-06T10:00:00Z"}
NEGATIVE = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StartLogging"}


def test_rule_tests_from_block_and_files(tmp_path: Path) -> None:
    write(tmp_path / "block.yml", rule_yaml(1, tests={"positive": [POSITIVE], "negative": [NEGATIVE]}))
    write(tmp_path / "files.yml", rule_yaml(2))
    write(tmp_path / "files.positive.json", json.dumps(POSITIVE))
    write(tmp_path / "files.negative.json", json.dumps([NEGATIVE, {"eventName": "DeleteTrail"}]))
    write(tmp_path / "untested.yml", rule_yaml(3))
    write(tmp_path / "half.yml", rule_yaml(4, tests={"positive": [POSITIVE]}))
    report = run_rule_tests(tmp_path)
    by_title = {result.title: result for result in report.results}
    assert by_title["Rule 1"].row()[2:7] == (1, 0, 1, 0, True)
    assert by_title["Rule 2"].row()[2:7] == (1, 0, 2, 0, True)
    assert by_title["Rule 3"].row()[2:7] == (0, 0, 0, 0, False)
    assert by_title["Rule 4"].row()[2:7] == (1, 0, 0, 0, False)
    assert (report.loaded, report.covered, report.coverage, report.failed) == (4, 2, 0.5, 0)
    assert report.ok  # uncovered rules are reported in the coverage, not as failures
    assert len(COLUMNS) == len(report.rows()[0])


def test_rule_tests_report_failures_by_sample(tmp_path: Path) -> None:
    write(tmp_path / "r.yml", rule_yaml(1, tests={"positive": [NEGATIVE], "negative": [POSITIVE, NEGATIVE]}))
    result = run_rule_tests(tmp_path).results[0]
    assert result.row()[2:6] == (0, 1, 1, 1)
    assert result.failures == ("positive #0 of tests block (StartLogging) does not match",
                               "negative #0 of tests block (StopLogging) matches")
    assert not result.ok


def test_yaml_timestamps_in_tests_block_are_text(tmp_path: Path) -> None:
    text = rule_yaml(1).replace("eventName: StopLogging", "eventTime: '2026-12-06T10:00:00Z'")
    text += "tests:\n  positive:\n    - eventTime: 2026-12-06T10:00:00Z\n  negative:\n    - eventTime: 2026-12-07\n"
    write(tmp_path / "r.yml", text)
    result = run_rule_tests(tmp_path).results[0]
    assert result.row()[2:7] == (1, 0, 1, 0, True)


@pytest.mark.parametrize(("files", "tests", "problem"), [
    pytest.param({"r.positive.json": "{not json"}, None, "not valid JSON", id="bad-json"),
    pytest.param({"r.negative.json": "[1, 2]"}, None, "JSON object", id="not-records"),
    pytest.param({}, ["a", "list"], "mapping with keys", id="block-not-mapping"),
    pytest.param({}, {"positive": [POSITIVE], "maybe": []}, "mapping with keys", id="block-unknown-key"),
    pytest.param({}, {"positive": "StopLogging"}, "list of records", id="block-not-list"),
])
def test_unreadable_samples_are_problems(tmp_path: Path, files: dict[str, str], tests: Any, problem: str) -> None:
    write(tmp_path / "r.yml", rule_yaml(1, **({"tests": tests} if tests is not None else {})))
    for name, text in files.items():
        write(tmp_path / name, text)
    report = run_rule_tests(tmp_path)
    result = report.results[0]
    assert any(problem in text for text in result.problems), result.problems
    assert not result.ok and not report.ok


def test_refused_rules_appear_in_the_report(tmp_path: Path) -> None:
    write(tmp_path / "r.yml", rule_yaml(1, logsource={"product": "windows"}))
    report = run_rule_tests(tmp_path)
    assert report.results == ()
    assert len(report.refusals) == 1
    assert (report.loaded, report.coverage, report.ok) == (0, 0.0, False)
