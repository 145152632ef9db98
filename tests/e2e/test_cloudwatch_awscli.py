"""The unmodified AWS CLI drives trailkeeper's CloudWatch over Smithy RPC v2 CBOR (botocore's
first choice for CloudWatch): custom metrics, statistics, an alarm that reaches ALARM from the
datapoint that breaches it (with the evidence), its history, its actions, and the errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Server, running_server, wait_until

NAMESPACE = "App/Checkout"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("cloudwatch-awscli") / "data")


def cw(server: Server, *args: str) -> dict[str, object]:
    answer = server.aws_json("cloudwatch", *args)
    assert isinstance(answer, dict)
    return answer


def test_the_cli_speaks_cbor_to_cloudwatch(server: Server) -> None:
    """The CLI does not fall back to JSON or Query: it sent CBOR, and its calls were audited."""
    cw(server, "list-metrics")
    found = server.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                            "AttributeKey=EventName,AttributeValue=ListMetrics")
    [event] = [json.loads(e["CloudTrailEvent"]) for e in found["Events"]]
    assert event["eventSource"] == "monitoring.amazonaws.com" and event["readOnly"] is True


def test_metrics_and_statistics(server: Server) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    data = [{"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "web-1"}],
             "Timestamp": (now - timedelta(minutes=2)).isoformat(), "Value": v} for v in (10.0, 30.0)]
    data.append({"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "web-2"}],
                 "Timestamp": now.isoformat(), "StatisticValues": {"SampleCount": 2, "Sum": 5, "Minimum": 1,
                                                                    "Maximum": 4}})
    cw(server, "put-metric-data", "--namespace", NAMESPACE, "--metric-data", json.dumps(data))

    stats = cw(server, "get-metric-statistics", "--namespace", NAMESPACE, "--metric-name", "Latency",
               "--dimensions", "Name=Host,Value=web-1", "--start-time", (now - timedelta(hours=1)).isoformat(),
               "--end-time", (now + timedelta(minutes=1)).isoformat(), "--period", "3600",
               "--statistics", "Sum", "Average", "Maximum", "SampleCount")
    [point] = stats["Datapoints"]  # type: ignore[misc]
    assert (point["Sum"], point["Average"], point["Maximum"], point["SampleCount"]) == (40.0, 20.0, 30.0, 2.0)
    assert stats["Label"] == "Latency"

    metrics = cw(server, "list-metrics", "--namespace", NAMESPACE, "--dimensions", "Name=Host")["Metrics"]
    assert sorted(m["Dimensions"][0]["Value"] for m in metrics) == ["web-1", "web-2"]  # type: ignore[attr-defined]
    only = cw(server, "list-metrics", "--dimensions", "Name=Host,Value=web-2")["Metrics"]
    assert [m["MetricName"] for m in only] == ["Latency"]  # type: ignore[attr-defined]

    queries = [{"Id": "w2", "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": "Latency",
                                                      "Dimensions": [{"Name": "Host", "Value": "web-2"}]},
                                           "Period": 60, "Stat": "Maximum"}}]
    result = cw(server, "get-metric-data", "--metric-data-queries", json.dumps(queries),
                "--start-time", (now - timedelta(hours=1)).isoformat(),
                "--end-time", (now + timedelta(minutes=1)).isoformat())
    [series] = result["MetricDataResults"]  # type: ignore[misc]
    assert (series["Id"], series["Values"], series["StatusCode"]) == ("w2", [4.0], "Complete")


def test_an_alarm_reaches_alarm_from_the_breaching_datapoint(server: Server) -> None:
    cw(server, "put-metric-alarm", "--alarm-name", "errors", "--namespace", NAMESPACE, "--metric-name", "Errors",
       "--statistic", "Sum", "--period", "300", "--evaluation-periods", "1", "--threshold", "1",
       # missing: with no data the timer keeps it in INSUFFICIENT_DATA (notBreaching would make it OK).
       "--comparison-operator", "GreaterThanOrEqualToThreshold", "--treat-missing-data", "missing",
       "--alarm-actions", "arn:aws:sns:us-east-1:123456789012:security")
    [alarm] = cw(server, "describe-alarms", "--alarm-names", "errors")["MetricAlarms"]  # type: ignore[misc]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")
    assert alarm["AlarmArn"].endswith(":alarm:errors") and alarm["Threshold"] == 1.0

    cw(server, "put-metric-data", "--namespace", NAMESPACE, "--metric-name", "Errors", "--value", "1")
    [alarm] = cw(server, "describe-alarms", "--state-value", "ALARM")["MetricAlarms"]  # type: ignore[misc]
    assert alarm["AlarmName"] == "errors"
    assert "Threshold Crossed" in alarm["StateReason"]
    for_metric = cw(server, "describe-alarms-for-metric", "--namespace", NAMESPACE, "--metric-name", "Errors")
    assert [a["AlarmName"] for a in for_metric["MetricAlarms"]] == ["errors"]  # type: ignore[attr-defined]

    history = cw(server, "describe-alarm-history", "--alarm-name", "errors")["AlarmHistoryItems"]
    kinds = [(h["HistoryItemType"], h["HistorySummary"]) for h in history]  # type: ignore[attr-defined]
    assert kinds == [("StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM"),
                     ("ConfigurationUpdate", 'Alarm "errors" created')]
    assert json.loads(history[0]["HistoryData"])["newState"]["stateValue"] == "ALARM"  # type: ignore[index]

    cw(server, "disable-alarm-actions", "--alarm-names", "errors")
    [alarm] = cw(server, "describe-alarms", "--alarm-names", "errors")["MetricAlarms"]  # type: ignore[misc]
    assert alarm["ActionsEnabled"] is False
    cw(server, "enable-alarm-actions", "--alarm-names", "errors")
    [alarm] = cw(server, "describe-alarms", "--alarm-names", "errors")["MetricAlarms"]  # type: ignore[misc]
    assert alarm["ActionsEnabled"] is True
    # SetAlarmState holds until the next evaluation; the alarm timer's, a second later, sees the
    # breaching datapoint again and returns the alarm to ALARM, as CloudWatch does.
    cw(server, "set-alarm-state", "--alarm-name", "errors", "--state-value", "OK", "--state-reason", "drill")
    history = cw(server, "describe-alarm-history", "--alarm-name", "errors", "--history-item-type", "StateUpdate")
    [drill] = [h for h in history["AlarmHistoryItems"]  # type: ignore[attr-defined]
               if h["HistorySummary"] == "Alarm updated from ALARM to OK"]
    assert json.loads(drill["HistoryData"])["newState"]["stateReason"] == "drill"
    assert wait_until(lambda: cw(server, "describe-alarms", "--alarm-names", "errors")["MetricAlarms"][0][  # type: ignore[index]
        "StateValue"] == "ALARM", timeout=5)

    cw(server, "delete-alarms", "--alarm-names", "errors")
    assert cw(server, "describe-alarms")["MetricAlarms"] == []


@pytest.mark.parametrize(("args", "code"), [
    pytest.param(["put-metric-data", "--namespace", "AWS/EC2", "--metric-name", "x", "--value", "1"],
                 "InvalidParameterValue", id="reserved-namespace"),
    pytest.param(["put-metric-alarm", "--alarm-name", "bad", "--namespace", "N", "--metric-name", "M",
                  "--statistic", "Sum", "--period", "45", "--evaluation-periods", "1", "--threshold", "1",
                  "--comparison-operator", "GreaterThanThreshold"], "ValidationError", id="period-45"),
    pytest.param(["set-alarm-state", "--alarm-name", "nobody", "--state-value", "OK", "--state-reason", "x"],
                 "ResourceNotFound", id="unknown-alarm"),
    pytest.param(["get-metric-statistics", "--namespace", "N", "--metric-name", "M", "--start-time",
                  "2026-01-01T00:00:00Z", "--end-time", "2026-01-01T01:00:00Z", "--period", "60",
                  "--extended-statistics", "p99"], "InvalidParameterCombination", id="percentiles-refused"),
])
def test_errors_carry_cloudwatch_codes(server: Server, args: list[str], code: str) -> None:
    done = server.aws("cloudwatch", *args)
    assert done.returncode != 0
    assert f"({code})" in done.stderr, done.stderr


def cbor_cloudwatch(server: Server, models: Path) -> Any:
    """botocore's own CBOR client. botocore ranks JSON above CBOR, so (like the AWS CLI) it
    speaks JSON 1.0 to CloudWatch; SDKs that follow the model's order speak CBOR. To drive our CBOR
    adapter with a real serializer and parser, this client loads botocore's CloudWatch model with
    `protocols` narrowed to CBOR, nothing else changed."""
    import boto3
    import botocore.session

    session = botocore.session.get_session()
    model = session.get_component("data_loader").load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    folder = models / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    session.get_component("data_loader").search_paths.insert(0, str(models))
    return boto3.session.Session(botocore_session=session).client(
        "cloudwatch", endpoint_url=server.endpoint, region_name=server.creds["region"],
        aws_access_key_id=server.creds["rootAccessKeyId"], aws_secret_access_key=server.creds["rootSecretAccessKey"])


def test_botocore_cbor_client_gets_the_same_answers(server: Server, tmp_path: Path) -> None:
    """Smithy RPC v2 CBOR: timestamps travel as CBOR tag 1, errors carry the Query code in
    x-amzn-query-error, which botocore maps to its modelled exceptions."""
    client = cbor_cloudwatch(server, tmp_path)
    assert client.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    seen: list[str] = []
    client.meta.events.register("before-send.cloudwatch.*",
                                lambda request, **_: seen.append(request.headers["Content-Type"].decode()))
    now = datetime.now(UTC).replace(microsecond=0)
    client.put_metric_data(Namespace="App/Boto", MetricData=[
        {"MetricName": "Jobs", "Timestamp": now - timedelta(seconds=30), "Values": [2.0, 5.0], "Counts": [3, 1]}])
    [point] = client.get_metric_statistics(
        Namespace="App/Boto", MetricName="Jobs", StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=1),
        Period=3600, Statistics=["Sum", "SampleCount", "Minimum", "Maximum"])["Datapoints"]
    assert (point["Sum"], point["SampleCount"], point["Minimum"], point["Maximum"]) == (11.0, 4.0, 2.0, 5.0)
    assert point["Timestamp"].tzinfo is not None and point["Timestamp"] <= now

    client.put_metric_alarm(AlarmName="jobs-high", Namespace="App/Boto", MetricName="Jobs", Statistic="Maximum",
                            Period=60, EvaluationPeriods=1, Threshold=4, ComparisonOperator="GreaterThanThreshold")
    [alarm] = client.describe_alarms(AlarmNames=["jobs-high"])["MetricAlarms"]
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert abs((alarm["AlarmConfigurationUpdatedTimestamp"] - datetime.now(UTC)).total_seconds()) < 60
    with pytest.raises(client.exceptions.ResourceNotFound):
        client.set_alarm_state(AlarmName="nobody", StateValue="OK", StateReason="x")
    client.delete_alarms(AlarmNames=["jobs-high"])
    assert seen and set(seen) == {"application/cbor"}
