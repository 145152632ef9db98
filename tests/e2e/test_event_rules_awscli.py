"""EventBridge rules end to end, driven by the unmodified AWS CLI (`aws events`) against a real
server: every operation of the subset, and a rule on StopLogging whose SNS target reaches an HTTP
subscriber on 127.0.0.1 within a second of the call."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Server, running_server
from tests.e2e.sns_subscriber import Subscriber

STOP_PATTERN = {"source": ["aws.cloudtrail"], "detail-type": ["AWS API Call via CloudTrail"],
                "detail": {"eventSource": ["cloudtrail.amazonaws.com"], "eventName": ["StopLogging"]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("events-e2e") / "data")


def events(server: Server, *args: str) -> Any:
    return server.aws_json("events", *args)


def _failing(server: Server, *args: str) -> str:
    done = server.aws("events", *args)
    assert done.returncode != 0, f"aws events {' '.join(args)} succeeded"
    return done.stderr


def test_the_aws_cli_drives_every_rule_operation(server: Server) -> None:
    pattern = json.dumps({"source": ["aws.iam"], "detail": {"eventName": [{"prefix": "Delete"}]}})
    arn = events(server, "put-rule", "--name", "iam-deletes", "--event-pattern", pattern,
                 "--description", "IAM deletions")["RuleArn"]
    assert arn.endswith(":rule/iam-deletes")
    described = events(server, "describe-rule", "--name", "iam-deletes")
    assert (described["State"], json.loads(described["EventPattern"])) == ("ENABLED", json.loads(pattern))
    assert [r["Name"] for r in events(server, "list-rules", "--name-prefix", "iam-")["Rules"]] == ["iam-deletes"]
    topic = server.aws_json("sns", "create-topic", "--name", "iam-changes")["TopicArn"]
    answer = events(server, "put-targets", "--rule", "iam-deletes", "--targets",
                    json.dumps([{"Id": "soc", "Arn": topic, "InputPath": "$.detail.eventName"}]))
    assert answer["FailedEntryCount"] == 0
    assert events(server, "list-targets-by-rule", "--rule", "iam-deletes")["Targets"][0]["InputPath"] == \
        "$.detail.eventName"
    assert "Rule can't be deleted since it has targets" in _failing(server, "delete-rule", "--name", "iam-deletes")
    events(server, "disable-rule", "--name", "iam-deletes")
    assert events(server, "describe-rule", "--name", "iam-deletes")["State"] == "DISABLED"
    events(server, "enable-rule", "--name", "iam-deletes")
    events(server, "tag-resource", "--resource-arn", arn, "--tags", "Key=team,Value=soc")
    assert events(server, "list-tags-for-resource", "--resource-arn", arn)["Tags"] == [{"Key": "team", "Value": "soc"}]
    events(server, "remove-targets", "--rule", "iam-deletes", "--ids", "soc")
    events(server, "delete-rule", "--name", "iam-deletes")
    assert "ResourceNotFoundException" in _failing(server, "describe-rule", "--name", "iam-deletes")

    event = {"id": "7", "account": server.creds["accountId"], "source": "aws.iam", "time": "2026-12-06T05:00:00Z",
             "region": "us-east-1", "resources": [], "detail-type": "AWS API Call via CloudTrail",
             "detail": {"eventName": "DeleteUser"}}
    result = events(server, "test-event-pattern", "--event-pattern", pattern, "--event", json.dumps(event))
    assert result == {"Result": True}
    event["detail"] = {"eventName": "CreateUser"}
    assert events(server, "test-event-pattern", "--event-pattern", pattern, "--event", json.dumps(event)) == \
        {"Result": False}
    refused = _failing(server, "put-rule", "--name", "bad", "--event-pattern", '{"source": "aws.iam"}')
    assert "InvalidEventPatternException" in refused and "source" in refused


def test_a_stop_logging_rule_reaches_an_http_subscriber_within_a_second(server: Server, tmp_path: Path) -> None:
    subscriber = Subscriber()
    subscriber.up()
    try:
        topic = server.aws_json("sns", "create-topic", "--name", "trail-tampering")["TopicArn"]
        server.aws_json("sns", "subscribe", "--topic-arn", topic, "--protocol", "http",
                        "--notification-endpoint", subscriber.url)
        subscriber.confirm()
        events(server, "put-rule", "--name", "trail-stopped", "--event-pattern", json.dumps(STOP_PATTERN))
        template = '"<who> stopped trail <trail> from <ip>"'
        events(server, "put-targets", "--rule", "trail-stopped", "--targets", json.dumps([
            {"Id": "whole", "Arn": topic},
            {"Id": "sentence", "Arn": topic, "InputTransformer": {
                "InputPathsMap": {"who": "$.detail.userIdentity.arn", "trail": "$.detail.requestParameters.Name",
                                  "ip": "$.detail.sourceIPAddress"},
                "InputTemplate": template}}]))
        server.cli("trail", "create", "watched", "--destination", str(tmp_path / "dest"), "--json")
        server.cli("trail", "start", "watched")
        client = server.client()
        sent = time.time()
        client.stop_logging("watched")
        notes = subscriber.wait_for("Notification", count=2, timeout=10)
        latency = max(n.at for n in notes) - sent
        assert latency < 1.0, f"StopLogging → subscriber took {latency:.3f} s"
        messages = [json.loads(n.body["Message"]) for n in notes]
        [whole] = [m for m in messages if isinstance(m, dict)]
        assert (whole["source"], whole["detail-type"], whole["detail"]["eventName"]) == (
            "aws.cloudtrail", "AWS API Call via CloudTrail", "StopLogging")
        root = f"arn:aws:iam::{server.creds['accountId']}:root"
        assert f"{root} stopped trail watched from 127.0.0.1" in messages
        time.sleep(0.5)
        assert len(subscriber.of_type("Notification")) == 2, "one notification per target, once"
    finally:
        subscriber.down()
