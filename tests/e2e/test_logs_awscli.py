"""The unmodified AWS CLI drives trailkeeper's CloudWatch Logs: a group with retention, a
stream, events written and read back, a JSON filter pattern, a metric filter and its test."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.e2e.harness import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("logs-awscli") / "data")


def aws(server: Server, *args: str) -> Any:
    return server.aws_json("logs", *args)


def test_a_log_group_through_the_aws_cli(server: Server) -> None:
    group = ["--log-group-name", "trail/main"]
    assert aws(server, "create-log-group", *group) == {}
    aws(server, "put-retention-policy", *group, "--retention-in-days", "30")
    aws(server, "create-log-stream", *group, "--log-stream-name", "cli")
    now = int(time.time() * 1000)
    login = json.dumps({"eventName": "ConsoleLogin", "sourceIPAddress": "192.0.2.1"})
    other = json.dumps({"eventName": "DescribeTrails"})
    events = json.dumps([{"timestamp": now, "message": login}, {"timestamp": now + 1, "message": other}])
    assert "rejectedLogEventsInfo" not in aws(server, "put-log-events", *group, "--log-stream-name", "cli",
                                              "--log-events", events)

    got = aws(server, "get-log-events", *group, "--log-stream-name", "cli", "--start-from-head")
    assert [e["message"] for e in got["events"]] == [login, other]
    assert got["nextForwardToken"] and got["nextBackwardToken"]

    found = aws(server, "filter-log-events", *group, "--filter-pattern", '{ $.eventName = "ConsoleLogin" }')
    assert [(e["logStreamName"], e["message"]) for e in found["events"]] == [("cli", login)]

    aws(server, "put-metric-filter", *group, "--filter-name", "logins",
        "--filter-pattern", '{ $.eventName = "ConsoleLogin" }', "--metric-transformations",
        "metricName=ConsoleLogins,metricNamespace=CISBenchmark,metricValue=1")
    [described] = aws(server, "describe-metric-filters", *group)["metricFilters"]
    assert (described["filterName"], described["metricTransformations"][0]["metricName"]) == (
        "logins", "ConsoleLogins")
    tested = aws(server, "test-metric-filter", "--filter-pattern", "[ip, user, status = 4*]",
                 "--log-event-messages", "192.0.2.1 bob 200", "192.0.2.2 eve 403")
    assert [(m["eventNumber"], m["extractedValues"]["$user"]) for m in tested["matches"]] == [(2, "eve")]

    [described_group] = aws(server, "describe-log-groups", "--log-group-name-prefix", "trail/")["logGroups"]
    assert described_group["logGroupName"] == "trail/main" and described_group["retentionInDays"] == 30
    assert described_group["arn"].endswith(":log-group:trail/main:*") and described_group["metricFilterCount"] == 1
    assert described_group["storedBytes"] == len(login) + len(other) + 2 * 26

    [stream] = aws(server, "describe-log-streams", *group, "--order-by", "LastEventTime", "--descending")["logStreams"]
    assert (stream["logStreamName"], stream["lastEventTimestamp"]) == ("cli", now + 1)
    arn = described_group["logGroupArn"]
    aws(server, "tag-resource", "--resource-arn", arn, "--tags", "team=security,pci=10.2")
    aws(server, "untag-resource", "--resource-arn", arn, "--tag-keys", "pci")
    assert aws(server, "list-tags-for-resource", "--resource-arn", arn)["tags"] == {"team": "security"}
    aws(server, "delete-retention-policy", *group)
    aws(server, "delete-metric-filter", *group, "--filter-name", "logins")
    [plain] = aws(server, "describe-log-groups", "--log-group-name-prefix", "trail/")["logGroups"]
    assert "retentionInDays" not in plain and plain["metricFilterCount"] == 0

    aws(server, "delete-log-group", *group)
    assert aws(server, "describe-log-groups", "--log-group-name-prefix", "trail/")["logGroups"] == []


def test_a_log_group_encrypted_with_a_kms_key_through_the_aws_cli(server: Server) -> None:
    key = server.aws_json("kms", "create-key", "--description", "log group key")["KeyMetadata"]
    group = ["--log-group-name", "trail/sealed"]
    aws(server, "create-log-group", *group)
    aws(server, "create-log-stream", *group, "--log-stream-name", "cli")
    now = int(time.time() * 1000)

    def put(offset: int, message: str) -> None:
        aws(server, "put-log-events", *group, "--log-stream-name", "cli",
            "--log-events", json.dumps([{"timestamp": now + offset, "message": message}]))

    put(0, "before the key")
    assert aws(server, "associate-kms-key", *group, "--kms-key-id", key["Arn"]) == {}
    [described] = aws(server, "describe-log-groups", "--log-group-name-prefix", "trail/sealed")["logGroups"]
    assert described["kmsKeyId"] == key["Arn"]
    login = json.dumps({"eventName": "ConsoleLogin", "sourceIPAddress": "192.0.2.9"})
    put(1, login)
    got = aws(server, "get-log-events", *group, "--log-stream-name", "cli", "--start-from-head")
    assert [e["message"] for e in got["events"]] == ["before the key", login]
    found = aws(server, "filter-log-events", *group, "--filter-pattern", '{ $.eventName = "ConsoleLogin" }')
    assert [e["message"] for e in found["events"]] == [login]

    server.aws_json("kms", "disable-key", "--key-id", key["KeyId"])
    refused = server.aws("logs", "get-log-events", *group, "--log-stream-name", "cli", "--start-from-head")
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr
    refused = server.aws("logs", "associate-kms-key", *group, "--kms-key-id", key["Arn"])
    assert refused.returncode != 0 and "InvalidParameterException" in refused.stderr
    server.aws_json("kms", "enable-key", "--key-id", key["KeyId"])

    assert aws(server, "disassociate-kms-key", *group) == {}
    put(2, "after the key")
    got = aws(server, "get-log-events", *group, "--log-stream-name", "cli", "--start-from-head")
    assert [e["message"] for e in got["events"]] == ["before the key", login, "after the key"]
    [plain] = aws(server, "describe-log-groups", "--log-group-name-prefix", "trail/sealed")["logGroups"]
    assert "kmsKeyId" not in plain
