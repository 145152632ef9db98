"""The CIS pack as API calls: what install puts (exact texts and CIS settings), that it is
idempotent, and that the check's inputs are read from paginated answers correctly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trailkeeper.monitoring import cis_pack
from trailkeeper.monitoring.cis import CONTROLS
from trailkeeper.monitoring.compliance import FAIL, PASS
from trailkeeper.monitoring.filterpattern import parse

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:trailkeeper-cis-alarms"
GROUP_ARN = "arn:aws:logs:eu-west-1:123456789012:log-group:cis-group:*"


class ApiError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class FakeApi:
    """Just enough of the API for the pack: stores what is put, answers describes in pages of 4."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.groups: set[str] = set()
        self.filters: dict[str, dict[str, Any]] = {}
        self.alarms: dict[str, dict[str, Any]] = {}
        self.subscriptions: list[dict[str, str]] = []
        self.trails = [{"Name": "main", "CloudWatchLogsLogGroupArn": GROUP_ARN},
                       {"Name": "stopped", "CloudWatchLogsLogGroupArn": GROUP_ARN.replace("cis-group", "other")},
                       {"Name": "plain"}]

    def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        self.calls.append((operation, params))
        return getattr(self, operation)(**params)  # type: ignore[no-any-return]

    def CreateLogGroup(self, logGroupName: str) -> dict[str, Any]:
        if logGroupName in self.groups:
            raise ApiError("ResourceAlreadyExistsException")
        self.groups.add(logGroupName)
        return {}

    def CreateTopic(self, Name: str) -> dict[str, Any]:
        return {"TopicArn": TOPIC_ARN.replace("trailkeeper-cis-alarms", Name)}

    def PutMetricFilter(self, **params: Any) -> dict[str, Any]:
        self.filters[params["filterName"]] = params
        return {}

    def PutMetricAlarm(self, **params: Any) -> dict[str, Any]:
        self.alarms[params["AlarmName"]] = params
        return {}

    def DescribeTrails(self) -> dict[str, Any]:
        return {"trailList": self.trails}

    def GetTrailStatus(self, Name: str) -> dict[str, Any]:
        return {"IsLogging": Name != "stopped"}

    @staticmethod
    def _page(items: list[Any], key: str, token_name: str, token: str | None) -> dict[str, Any]:
        start = int(token or 0)
        answer: dict[str, Any] = {key: items[start:start + 4]}
        if start + 4 < len(items):
            answer[token_name] = str(start + 4)
        return answer

    def DescribeMetricFilters(self, nextToken: str | None = None) -> dict[str, Any]:
        return self._page(list(self.filters.values()), "metricFilters", "nextToken", nextToken)

    def DescribeAlarms(self, NextToken: str | None = None) -> dict[str, Any]:
        return self._page(list(self.alarms.values()), "MetricAlarms", "NextToken", NextToken)

    def ListSubscriptions(self, NextToken: str | None = None) -> dict[str, Any]:
        return self._page(self.subscriptions, "Subscriptions", "NextToken", NextToken)


def test_install_puts_the_exact_texts_and_the_cis_alarm_settings() -> None:
    api = FakeApi()
    done = cis_pack.install(api, "cis-group")
    assert (done.log_group, done.created_group, done.topic_arn) == ("cis-group", True, TOPIC_ARN)
    assert done.controls == tuple(c.cis_number for c in CONTROLS)
    for control in CONTROLS:
        put = api.filters[control.filter_name]
        assert put["filterPattern"] == control.pattern and put["logGroupName"] == "cis-group"
        assert put["metricTransformations"] == [{"metricName": control.metric_name,
                                                 "metricNamespace": "CISBenchmark", "metricValue": "1"}]
        alarm = api.alarms[control.filter_name]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("CISBenchmark", control.metric_name)
        assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"], alarm["Threshold"],
                alarm["ComparisonOperator"]) == ("Sum", 300, 1, 1.0, "GreaterThanOrEqualToThreshold")
        assert alarm["AlarmActions"] == [TOPIC_ARN] and alarm["ActionsEnabled"] is True


def test_install_twice_reuses_the_group_and_repairs_drifted_filters() -> None:
    api = FakeApi()
    cis_pack.install(api, "cis-group")
    first = CONTROLS[0].filter_name
    api.filters[first] = {**api.filters[first], "filterPattern": "{ $.eventName = Anything }"}
    again = cis_pack.install(api, "cis-group")
    assert again.created_group is False
    assert api.filters[first]["filterPattern"] == CONTROLS[0].pattern
    assert len(api.filters) == len(api.alarms) == 15 + len(cis_pack.OWN_FILTERS)


def test_install_passes_on_other_errors() -> None:
    api = FakeApi()

    def failing(operation: str, **params: Any) -> dict[str, Any]:
        if operation == "CreateLogGroup":
            raise ApiError("AccessDeniedException")
        return api(operation, **params)

    with pytest.raises(ApiError, match="AccessDenied"):
        cis_pack.install(failing, "cis-group")


@pytest.mark.parametrize(("arn", "group"), [
    pytest.param(GROUP_ARN, "cis-group", id="with-star"),
    pytest.param("arn:aws:logs:eu-west-1:1:log-group:a/b:c", "a/b:c", id="colon-in-name"),
    pytest.param("arn:aws:logs:eu-west-1:1:log-group:x", "x", id="without-star"),
    pytest.param("arn:aws:s3:::bucket", None, id="not-a-log-group"),
    pytest.param("", None, id="empty"),
])
def test_group_of_arn(arn: str, group: str | None) -> None:
    assert cis_pack.group_of_arn(arn) == group


def test_check_inputs_follow_pages_and_only_logging_trails() -> None:
    api = FakeApi()
    cis_pack.install(api, "cis-group")
    assert cis_pack.forwarded_groups(api) == ["cis-group"]  # "stopped" is not logging, "plain" forwards nowhere
    assert len(cis_pack.stored_filters(api)) == len(cis_pack.stored_alarms(api)) == 15 + len(cis_pack.OWN_FILTERS)
    api.subscriptions = [{"TopicArn": TOPIC_ARN, "SubscriptionArn": "PendingConfirmation"}]
    assert cis_pack.confirmed_topics(api) == []
    results = cis_pack.run_check(api)
    assert {r.status for r in results} == {FAIL}
    assert all("confirmed subscription" in r.findings[0] for r in results)
    api.subscriptions.append({"TopicArn": TOPIC_ARN, "SubscriptionArn": f"{TOPIC_ARN}:8d2f"})
    assert [r.status for r in cis_pack.run_check(api)] == [PASS] * 15


OWN = {f.name: f for f in cis_pack.OWN_FILTERS}


@pytest.mark.parametrize(("name", "record", "hit"), [
    pytest.param("trailkeeper-auth-failures", {"eventName": "ListUsers", "errorCode": "SignatureDoesNotMatch"}, True,
                 id="bad-signature"),
    pytest.param("trailkeeper-auth-failures", {"eventName": "ListUsers", "errorCode": "InvalidClientTokenId"}, True,
                 id="unknown-key"),
    pytest.param("trailkeeper-auth-failures", {"eventName": "ConsoleLogin", "errorMessage": "Failed authentication"},
                 True, id="console-failure"),
    pytest.param("trailkeeper-auth-failures", {"eventName": "ConsoleLogin", "responseElements": {"ConsoleLogin":
                 "Success"}}, False, id="console-success"),
    pytest.param("trailkeeper-auth-failures", {"eventName": "ListUsers", "errorCode": "AccessDenied"}, False,
                 id="authorisation-is-cis-4.1"),
    pytest.param("trailkeeper-identity-deletions", {"eventName": "DeleteUser"}, True, id="delete-user"),
    pytest.param("trailkeeper-identity-deletions", {"eventName": "DeleteAccessKey"}, True, id="delete-key"),
    pytest.param("trailkeeper-identity-deletions", {"eventName": "CreateUser"}, False, id="create-user"),
    pytest.param("trailkeeper-monitoring-changes", {"eventName": "DeleteLogGroup"}, True, id="delete-log-group"),
    pytest.param("trailkeeper-monitoring-changes", {"eventName": "DeleteAlarms"}, True, id="delete-alarms"),
    pytest.param("trailkeeper-monitoring-changes", {"eventName": "DisableAlarmActions"}, True, id="disable-actions"),
    pytest.param("trailkeeper-monitoring-changes", {"eventName": "PutMetricAlarm"}, False, id="put-alarm"),
])
def test_own_filters(name: str, record: dict[str, Any], hit: bool) -> None:
    assert (parse(OWN[name].pattern).match(json.dumps(record)) is not None) is hit


def test_own_filters_are_put_with_their_alarms_in_their_own_namespace() -> None:
    api = FakeApi()
    cis_pack.install(api, "cis-group")
    for extra in cis_pack.OWN_FILTERS:
        assert api.filters[extra.name]["filterPattern"] == extra.pattern
        assert api.filters[extra.name]["metricTransformations"][0]["metricNamespace"] == cis_pack.OWN_NAMESPACE
        alarm = api.alarms[extra.name]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["AlarmActions"]) == (
            cis_pack.OWN_NAMESPACE, extra.name, [TOPIC_ARN])
