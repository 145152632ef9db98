"""The recipe's CloudTrail → CloudWatch Logs steps with the unmodified AWS CLI against a real
server: create a role and its policy, point the trail at a log group, ingest an event, find it
with filter-log-events within seconds, see LatestCloudWatchLogsDeliveryTime; and the refusal of a
role that lacks logs:PutLogEvents. Then `trailkeeper trail update --log-group` does the same
set-up in one command."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.e2e.harness import Server, running_server, wait_until
from tests.pipeline import app_event

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("forwarding-awscli") / "data")


def _policy(server: Server, group: str, actions: list[str]) -> str:
    account, region = server.creds["accountId"], server.creds["region"]
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": actions,
        "Resource": f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:{account}_CloudTrail_{region}*"}]})


def _trail(server: Server, name: str) -> None:
    server.aws_json("cloudtrail", "create-trail", "--name", name, "--s3-bucket-name", f"{name}-logs")
    server.aws_json("cloudtrail", "start-logging", "--name", name)


def _found(server: Server, group: str, event_id: str) -> list[dict[str, Any]]:
    answer = server.aws_json("logs", "filter-log-events", "--log-group-name", group,
                             "--filter-pattern", f'{{ $.eventID = "{event_id}" }}')
    return list(answer["events"])


def test_the_recipe_with_the_aws_cli(server: Server) -> None:
    group = "CloudTrail/recipe"
    _trail(server, "recipe")
    created = server.aws_json("logs", "create-log-group", "--log-group-name", group)
    assert created == {}
    group_arn = server.aws_json("logs", "describe-log-groups", "--log-group-name-prefix", group)["logGroups"][0]["arn"]
    role = server.aws_json("iam", "create-role", "--role-name", "CloudTrail_CloudWatchLogs_Role",
                           "--assume-role-policy-document", TRUST)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    server.aws_json("iam", "put-role-policy", "--role-name", "CloudTrail_CloudWatchLogs_Role", "--policy-name",
                    "cloudtrail-to-logs", "--policy-document",
                    _policy(server, group, ["logs:CreateLogStream", "logs:PutLogEvents"]))
    updated = server.aws_json("cloudtrail", "update-trail", "--name", "recipe", "--cloud-watch-logs-log-group-arn",
                              group_arn, "--cloud-watch-logs-role-arn", role["Arn"])
    assert (updated["CloudWatchLogsLogGroupArn"], updated["CloudWatchLogsRoleArn"]) == (group_arn, role["Arn"])
    described = server.aws_json("cloudtrail", "describe-trails", "--trail-name-list", "recipe")["trailList"][0]
    assert described["CloudWatchLogsRoleArn"] == role["Arn"]

    before_ms = time.time() * 1000
    [event_id] = server.client().put_events([app_event(0, datetime.now(UTC), "RecipeEvent")])
    assert wait_until(lambda: _found(server, group, event_id), timeout=3.0), "not forwarded within 3 s"
    [event] = _found(server, group, event_id)
    # Stored in the group within 1 s of the call that acknowledged it (the CLI's own start-up is
    # not part of the lag).
    assert event["ingestionTime"] - before_ms < 1000
    account, region = server.creds["accountId"], server.creds["region"]
    assert event["logStreamName"] == f"{account}_CloudTrail_{region}"
    assert json.loads(event["message"])["eventName"] == "RecipeEvent"

    status = server.aws_json("cloudtrail", "get-trail-status", "--name", "recipe")
    assert "LatestCloudWatchLogsDeliveryTime" in status
    assert "LatestCloudWatchLogsDeliveryError" not in status


def test_a_role_lacking_put_log_events_is_refused(server: Server) -> None:
    group = "CloudTrail/refused"
    _trail(server, "refused")
    server.aws_json("logs", "create-log-group", "--log-group-name", group)
    role = server.aws_json("iam", "create-role", "--role-name", "StreamsOnly",
                           "--assume-role-policy-document", TRUST)["Role"]
    server.aws_json("iam", "put-role-policy", "--role-name", "StreamsOnly", "--policy-name", "streams",
                    "--policy-document", _policy(server, group, ["logs:CreateLogStream"]))
    account, region = server.creds["accountId"], server.creds["region"]
    done = server.aws("cloudtrail", "update-trail", "--name", "refused", "--cloud-watch-logs-log-group-arn",
                      f"arn:aws:logs:{region}:{account}:log-group:{group}:*", "--cloud-watch-logs-role-arn", role["Arn"])
    assert done.returncode != 0
    assert "InvalidCloudWatchLogsRoleArnException" in done.stderr and "logs:PutLogEvents" in done.stderr
    described = server.aws_json("cloudtrail", "get-trail", "--name", "refused")["Trail"]
    assert "CloudWatchLogsLogGroupArn" not in described


def test_trailkeeper_trail_update_log_group_sets_it_all_up(server: Server) -> None:
    _trail(server, "console")
    answer = server.cli_json("trail", "update", "console", "--log-group")
    account = server.creds["accountId"]
    group_arn = answer["CloudWatchLogsLogGroupArn"]
    group = group_arn.split(":log-group:")[1].removesuffix(":*")
    assert group.startswith(f"aws-cloudtrail-logs-{account}-")
    assert answer["CloudWatchLogsRoleArn"].endswith(":role/CloudTrailRoleForCloudWatchLogs_console")
    policy = server.aws_json("iam", "get-role-policy", "--role-name", "CloudTrailRoleForCloudWatchLogs_console",
                             "--policy-name", "CloudTrailCloudWatchLogs")["PolicyDocument"]
    assert {a for s in policy["Statement"] for a in s["Action"]} == {"logs:CreateLogStream", "logs:PutLogEvents"}
    [event_id] = server.client().put_events([app_event(0, datetime.now(UTC), "ConsoleEvent")])
    assert wait_until(lambda: _found(server, group, event_id), timeout=3.0)
    # Again, naming an existing group: the role is reused and its policy follows the group.
    again = server.cli_json("trail", "update", "console", "--log-group", "CloudTrail/recipe")
    assert again["CloudWatchLogsLogGroupArn"].endswith(":log-group:CloudTrail/recipe:*")
