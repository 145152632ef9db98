"""Alerts end to end on a real server: the unmodified AWS CLI stops a trail, the shipped SigmaHQ
rule raises an alert, and `trailkeeper alerts` lists, shows, acknowledges and closes it (each
change kept with its actor and comment, and recorded as an API call), suppresses the next one,
and changes the settings; `trailkeeper rules list` shows the rules in force and `rules test`
runs a folder's samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Server, run_cli, running_server, wait_until

RULE = "AWS CloudTrail Important Change"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("alerts-e2e") / "data")


def _alerts(server: Server, *args: str) -> list[dict[str, Any]]:
    return list(server.cli_json("alerts", "list", *args)["Alerts"])


def _stop_a_trail(server: Server, name: str, dest: Path) -> None:
    server.aws_json("cloudtrail", "create-trail", "--name", name, "--s3-bucket-name", f"{name}-bucket")
    server.aws_json("cloudtrail", "start-logging", "--name", name)
    server.aws_json("cloudtrail", "stop-logging", "--name", name)


def test_an_alert_is_raised_triaged_and_closed_with_its_history(server: Server, tmp_path: Path) -> None:
    _stop_a_trail(server, "watched", tmp_path)
    assert wait_until(lambda: any(a["ruleTitle"] == RULE for a in _alerts(server)), timeout=10)
    [alert] = [a for a in _alerts(server, "--state", "open") if a["ruleTitle"] == RULE]
    alert_id = alert["alertId"]
    assert alert["trigger"]["eventName"] == "StopLogging"

    server.cli("alerts", "ack", alert_id, "--comment", "on it")
    refused = server.cli("alerts", "ack", alert_id, check=False)
    assert refused.returncode != 0 and "InvalidTransition" in refused.stderr + refused.stdout
    assert server.cli("alerts", "close", alert_id, check=False).returncode != 0  # a comment is required
    server.cli("alerts", "close", alert_id, "--comment", "planned maintenance, change CHG-42")
    shown = server.cli_json("alerts", "show", alert_id)
    assert shown["Alert"]["state"] == "closed" and len(shown["EventIds"]) == 1
    root = f"arn:aws:iam::{server.creds['accountId']}:root"
    assert [(c["action"], c["actor"], c["comment"]) for c in shown["History"]][-2:] == [
        ("acknowledge", root, "on it"), ("close", root, "planned maintenance, change CHG-42")]
    recorded = server.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                               "AttributeKey=EventName,AttributeValue=CloseAlert")["Events"]
    assert recorded and "CHG-42" in recorded[0]["CloudTrailEvent"]
    assert "closed" in server.cli("alerts", "show", alert_id).stdout


def test_a_suppression_keeps_the_next_match_from_raising_an_alert(server: Server, tmp_path: Path) -> None:
    root = f"arn:aws:iam::{server.creds['accountId']}:root"
    before = {a["alertId"] for a in _alerts(server)}
    made = server.cli_json("alerts", "suppress", "--field", f"userIdentity.arn={root}", "--field",
                           "eventName=StopLogging", "--for", "1h", "--reason", "maintenance window")
    _stop_a_trail(server, "quiet", tmp_path)
    assert wait_until(lambda: any(s["suppressed"] >= 1 for s in server.cli_json("alerts", "suppressions")
                                  ["Suppressions"]), timeout=10)
    new = [a for a in _alerts(server) if a["alertId"] not in before and a["ruleTitle"] == RULE]
    assert new == []
    server.cli("alerts", "unsuppress", made["Suppression"]["suppressionId"])
    assert server.cli_json("alerts", "suppressions")["Suppressions"] == []


def test_settings_are_shown_and_changed(server: Server) -> None:
    assert server.cli_json("alerts", "settings")["Settings"]["ignore_service_principals"] is True
    changed = server.cli_json("alerts", "settings", "--set", "ignore_failed_calls=true")
    assert changed["Settings"]["ignore_failed_calls"] is True
    assert changed["Changed"] == {"ignore_failed_calls": {"Old": False, "New": True}}
    bad = server.cli("alerts", "settings", "--set", "dedup_window_s=-5", check=False)
    assert bad.returncode != 0 and "dedup_window_s" in bad.stderr + bad.stdout


def test_rules_are_listed_and_a_folder_is_tested(server: Server, tmp_path: Path) -> None:
    listed = server.cli_json("rules", "list")
    assert len(listed["Rules"]) >= 57 and listed["Refusals"] == []
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "deploy.yml").write_text("""title: Deploy outside CI
id: 4f0c8a52-6f0e-4c59-9f55-0b6d9d1c0a01
logsource: {product: aws, service: cloudtrail}
detection:
  selection: {eventName: Deploy}
  filter: {sourceIPAddress|cidr: 10.0.0.0/8}
  condition: selection and not filter
level: high
tests:
  positive:
    - {eventName: Deploy, sourceIPAddress: 198.51.100.7}
  negative:
    - {eventName: Deploy, sourceIPAddress: 10.1.2.3}
""")
    ok = run_cli("rules", "test", str(folder), "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (folder / "deploy.yml").write_text((folder / "deploy.yml").read_text().replace("10.1.2.3", "192.0.2.1"))
    failing = run_cli("rules", "test", str(folder), check=False)
    assert failing.returncode == 1 and "Deploy outside CI" in failing.stdout
