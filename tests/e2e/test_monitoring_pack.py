"""The monitoring pack end to end (issue #11 items 7 and 8), with real parts: `trailkeeper
monitoring install-cis` points a trail at a log group and installs the CIS filters, trailkeeper's
own and their alarms; `monitoring check` fails until someone's subscription is confirmed, then
passes; and the audit of the audit system flows through the same path: stopping a trail, a
failed sign-in, deleting a user, disabling a KMS key, deleting a log group and deleting an alarm
each put their alarm in ALARM, notify the HTTP subscriber with a notification whose SNS
signature verifies against the certificate at its SigningCertURL, and leave their event's ID
among the alarm metric's evidence."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.harness import Server, running_server, wait_until
from tests.e2e.sns_subscriber import Subscriber

from trailkeeper.monitoring.cis import find_control
from trailkeeper.monitoring.cis_pack import OWN_NAMESPACE
from trailkeeper.notify.signing import verify


@dataclass
class Pack:
    server: Server
    subscriber: Subscriber
    checks: list[subprocess.CompletedProcess[str]]  # `monitoring check --json` before and after confirming


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pack]:
    tmp = tmp_path_factory.mktemp("monitoring-pack")
    subscriber = Subscriber()
    subscriber.up()
    for server in running_server(tmp / "data"):
        for trail in ("main", "other"):
            server.cli("trail", "create", trail, "--destination", str(tmp / trail), "--json")
            server.cli("trail", "start", trail)
        installed = json.loads(server.cli("monitoring", "install-cis", "--trail", "main", "--subscribe",
                                          subscriber.url, "--json").stdout)
        assert installed["ForwardedTrails"] == ["main"] and len(installed["Controls"]) == 15
        assert installed["LogGroup"].startswith("aws-cloudtrail-logs-")
        checks = [server.cli("monitoring", "check", "--json", check=False)]
        subscriber.confirm()
        checks.append(server.cli("monitoring", "check", "--json", check=False))
        yield Pack(server, subscriber, checks)
    subscriber.down()


def test_the_check_passes_once_a_subscription_is_confirmed(pack: Pack) -> None:
    before, after = pack.checks
    assert before.returncode == 1
    results = json.loads(before.stdout)["Controls"]
    assert {r["status"] for r in results} == {"FAIL"}
    assert all("confirmed subscription" in r["findings"][0] for r in results)
    assert after.returncode == 0, after.stdout
    assert [r["status"] for r in json.loads(after.stdout)["Controls"]] == ["PASS"] * 15
    assert "15 of 15 pass" in pack.server.cli("monitoring", "check").stdout


def _event_id(server: Server, name: str, where: Callable[[dict[str, Any]], bool] = lambda _: True) -> str:
    def found() -> list[dict[str, Any]]:
        events = server.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                                 f"AttributeKey=EventName,AttributeValue={name}")["Events"]
        return [e for e in (json.loads(x["CloudTrailEvent"]) for x in events) if where(e)]

    assert wait_until(lambda: bool(found()), timeout=10), f"no {name} event recorded"
    return str(found()[0]["eventID"])


def _evidence(server: Server, namespace: str, metric: str) -> set[str]:
    now = datetime.now(UTC)
    answer = server.client().call("GetMetricStatistics", Namespace=namespace, MetricName=metric,
                                  StartTime=(now - timedelta(hours=1)).isoformat(),
                                  EndTime=(now + timedelta(minutes=5)).isoformat(), Period=3600, Statistics=["Sum"])
    return {i for point in answer["Datapoints"] for i in point["EventIds"]}


def _stop_a_trail(server: Server) -> str:
    server.aws_json("cloudtrail", "stop-logging", "--name", "other")
    return _event_id(server, "StopLogging")


def _fail_to_sign_in(server: Server) -> str:
    refused = server.aws("iam", "list-users", secret="not-the-secret-of-this-key-0000000000000")
    assert refused.returncode != 0 and "SignatureDoesNotMatch" in refused.stderr
    return _event_id(server, "ListUsers", lambda e: e.get("errorCode") == "SignatureDoesNotMatch")


def _delete_a_user(server: Server) -> str:
    server.aws_json("iam", "create-user", "--user-name", "leaver")
    server.aws_json("iam", "delete-user", "--user-name", "leaver")
    return _event_id(server, "DeleteUser")


def _disable_a_key(server: Server) -> str:
    key = server.aws_json("kms", "create-key")["KeyMetadata"]["KeyId"]
    server.aws_json("kms", "disable-key", "--key-id", key)
    return _event_id(server, "DisableKey")


def _delete_a_log_group(server: Server) -> str:
    server.aws_json("logs", "create-log-group", "--log-group-name", "scratch")
    server.aws_json("logs", "delete-log-group", "--log-group-name", "scratch")
    return _event_id(server, "DeleteLogGroup")


def _delete_an_alarm(server: Server) -> str:
    server.aws_json("cloudwatch", "put-metric-alarm", "--alarm-name", "scratch", "--namespace", "App",
                    "--metric-name", "m", "--statistic", "Sum", "--period", "60", "--evaluation-periods", "1",
                    "--threshold", "1", "--comparison-operator", "GreaterThanThreshold")
    server.aws_json("cloudwatch", "delete-alarms", "--alarm-names", "scratch")
    return _event_id(server, "DeleteAlarms")


CIS = "CISBenchmark"


@pytest.mark.parametrize(("act", "namespace", "alarm"), [
    pytest.param(_stop_a_trail, CIS, find_control("4.5").filter_name, id="stopping-a-trail"),
    pytest.param(_fail_to_sign_in, OWN_NAMESPACE, "trailkeeper-auth-failures", id="a-failed-sign-in"),
    pytest.param(_delete_a_user, OWN_NAMESPACE, "trailkeeper-identity-deletions", id="deleting-a-user"),
    pytest.param(_disable_a_key, CIS, find_control("4.7").filter_name, id="disabling-a-kms-key"),
    pytest.param(_delete_a_log_group, OWN_NAMESPACE, "trailkeeper-monitoring-changes", id="deleting-a-log-group"),
    pytest.param(_delete_an_alarm, OWN_NAMESPACE, "trailkeeper-monitoring-changes", id="deleting-an-alarm"),
])
def test_the_audit_of_the_audit_system_raises_its_alarm(
        pack: Pack, act: Callable[[Server], str], namespace: str, alarm: str) -> None:
    server, subscriber = pack.server, pack.subscriber
    event_id = act(server)
    assert wait_until(lambda: event_id in _evidence(server, namespace, alarm), timeout=5), \
        f"{event_id} never counted by {alarm}"
    assert wait_until(lambda: alarm in subscriber.alarms(), timeout=5), f"{alarm} notified nobody"
    received = subscriber.signed_alarm(alarm)
    certificate = httpx.get(received.body["SigningCertURL"], timeout=10)
    assert certificate.status_code == 200 and verify(received.body, certificate.content)
    [state] = [a["StateValue"] for a in server.aws_json("cloudwatch", "describe-alarms", "--alarm-names",
                                                        alarm)["MetricAlarms"]]
    assert state == "ALARM"


def test_init_installs_the_pack_and_new_trails_forward_to_it(tmp_path: Path) -> None:
    """On by default: `trailkeeper init` installs the pack (recorded), a trail created with no
    CloudWatch Logs settings forwards to its group, and subscribing someone makes the check pass."""
    server = Server(tmp_path / "data")
    creds = server.init(cis_pack=True)
    group = creds["monitoringLogGroup"]
    assert group.startswith(f"aws-cloudtrail-logs-{creds['accountId']}-")
    subscriber = Subscriber()
    subscriber.up()
    server.start()
    try:
        server.cli("trail", "create", "main", "--destination", str(tmp_path / "dest"), "--json")
        server.cli("trail", "start", "main")
        [trail] = server.aws_json("cloudtrail", "describe-trails", "--trail-name-list", "main")["trailList"]
        assert trail["CloudWatchLogsLogGroupArn"].endswith(f":log-group:{group}:*")
        assert trail["CloudWatchLogsRoleArn"].endswith(":role/CloudTrailRoleForCloudWatchLogs")
        [installed] = [json.loads(e["CloudTrailEvent"]) for e in server.aws_json(
            "cloudtrail", "lookup-events", "--lookup-attributes",
            "AttributeKey=EventName,AttributeValue=MonitoringPackInstalled")["Events"]]
        assert installed["serviceEventDetails"]["logGroupName"] == group
        server.aws_json("sns", "subscribe", "--topic-arn", creds["monitoringTopicArn"], "--protocol", "http",
                        "--notification-endpoint", subscriber.url)
        subscriber.confirm()
        server.aws_json("iam", "create-user", "--user-name", "leaver")
        server.aws_json("iam", "delete-user", "--user-name", "leaver")
        assert wait_until(lambda: "trailkeeper-identity-deletions" in subscriber.alarms(), timeout=10)
        checked = server.cli("monitoring", "check", "--json", check=False)
        assert checked.returncode == 0 and len(json.loads(checked.stdout)["Controls"]) == 15
    finally:
        assert server.terminate() == 0
        subscriber.down()
