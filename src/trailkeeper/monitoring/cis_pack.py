"""The CIS monitoring pack as API calls: install it, and gather what the CIS check reads.

Both work through a `Call` (`call(operation, **params)` -> answer, as `Client.call`), so the same code
runs over the native client (`trailkeeper monitoring install-cis` / `check`), an in-process
app, or a test's fake; every step is an ordinary API call, authorised and audited like any
other. Installing is idempotent: an existing log group or topic is reused, filters and alarms
are put again with the pack's exact texts and settings (so a drifted filter is repaired).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from trailkeeper.monitoring.cis import ALARM_DEFAULTS, CONTROLS, AlarmDefaults, CisControl
from trailkeeper.monitoring.compliance import ControlResult, StoredAlarm, StoredFilter, check

Call = Callable[..., dict[str, Any]]  # call(operation, **params), as Client.call
DEFAULT_TOPIC = "trailkeeper-cis-alarms"
ALREADY_EXISTS = "ResourceAlreadyExistsException"


@dataclass(frozen=True)
class OwnFilter:
    """A filter and alarm the pack adds beyond CIS: the audit of the audit system (issue #11
    item 8). CIS already covers stopping a trail (4.5) and disabling a key (4.7); these cover
    what CIS has no control for."""

    name: str  # filter, metric and alarm name
    topic: str
    pattern: str


def _any_name(*names: str) -> str:
    return "{ " + " || ".join(f'($.eventName = "{name}")' for name in names) + " }"


# Namespace of the pack's own metrics, apart from CIS's so that scanners see only CIS's.
OWN_NAMESPACE = "Trailkeeper"
OWN_FILTERS: tuple[OwnFilter, ...] = (
    OwnFilter("trailkeeper-auth-failures", "Requests whose signature or key failed, and console sign-in failures",
              '{ ($.errorCode = "SignatureDoesNotMatch") || ($.errorCode = "InvalidClientTokenId") || '
              '($.errorCode = "InvalidAccessKeyId") || ($.errorCode = "IncompleteSignature") || '
              '($.errorCode = "MissingAuthenticationToken") || '
              '(($.eventName = "ConsoleLogin") && ($.errorMessage = "Failed authentication")) }'),
    OwnFilter("trailkeeper-identity-deletions", "Users, access keys and roles deleted",
              _any_name("DeleteUser", "DeleteAccessKey", "DeleteRole")),
    OwnFilter("trailkeeper-monitoring-changes", "Log groups, filters, retention, alarms and topics removed or weakened",
              _any_name("DeleteLogGroup", "DeleteMetricFilter", "PutRetentionPolicy", "DeleteRetentionPolicy",
                        "DeleteAlarms", "DisableAlarmActions", "DeleteTopic", "Unsubscribe")),
)


@dataclass(frozen=True)
class Installed:
    log_group: str
    topic_arn: str
    controls: tuple[str, ...]  # the CIS numbers whose filter and alarm were put
    created_group: bool


def filter_params(control: CisControl, log_group: str, defaults: AlarmDefaults = ALARM_DEFAULTS) -> dict[str, Any]:
    """PutMetricFilter for one control: the published text, a count of 1 per matching event."""
    return {"logGroupName": log_group, "filterName": control.filter_name, "filterPattern": control.pattern,
            "metricTransformations": [{"metricName": control.metric_name, "metricNamespace": defaults.namespace,
                                       "metricValue": defaults.metric_value}]}


def alarm_params(control: CisControl, topic_arn: str, defaults: AlarmDefaults = ALARM_DEFAULTS) -> dict[str, Any]:
    """PutMetricAlarm for one control: CIS's remediation (Sum over 300 s >= 1, one period)."""
    return {"AlarmName": control.filter_name, "AlarmDescription": f"CIS {control.cis_number}: {control.topic}",
            "Namespace": defaults.namespace, "MetricName": control.metric_name, "Statistic": defaults.statistic,
            "Period": defaults.period, "EvaluationPeriods": defaults.evaluation_periods,
            "Threshold": defaults.threshold, "ComparisonOperator": defaults.comparison_operator,
            "TreatMissingData": defaults.treat_missing_data, "ActionsEnabled": True, "AlarmActions": [topic_arn]}


def install(call: Call, log_group: str, topic: str = DEFAULT_TOPIC,
            progress: Callable[[str], None] = lambda _: None) -> Installed:
    """Create the log group (if missing) and the topic, put the 15 CIS filters and the pack's own
    (OWN_FILTERS) with their alarms."""
    created = True
    try:
        call("CreateLogGroup", logGroupName=log_group)
    except Exception as e:  # the caller's error type; only "already exists" is expected here
        if getattr(e, "code", None) != ALREADY_EXISTS:
            raise
        created = False
    topic_arn = str(call("CreateTopic", Name=topic)["TopicArn"])
    for control in CONTROLS:
        call("PutMetricFilter", **filter_params(control, log_group))
        call("PutMetricAlarm", **alarm_params(control, topic_arn))
        progress(control.cis_number)
    own = AlarmDefaults(namespace=OWN_NAMESPACE)
    for extra in OWN_FILTERS:
        control = CisControl(None, None, "-", extra.topic, extra.name, extra.pattern)
        call("PutMetricFilter", **filter_params(control, log_group, own))
        call("PutMetricAlarm", **{**alarm_params(control, topic_arn, own), "AlarmDescription": extra.topic})
        progress(extra.name)
    return Installed(log_group, topic_arn, tuple(c.cis_number for c in CONTROLS), created)


# ---- the pack on by default -------------------------------------------------------------------
DEFAULT_ROLE = "CloudTrailRoleForCloudWatchLogs"
# A log group carrying this tag (its value: a role ARN) is where trails created without
# CloudWatch Logs settings forward, as that role; remove the tag to stop that.
NEW_TRAILS_TAG = "trailkeeper:new-trails-forward-as"


def install_default(call: Call, account_id: str, region: str) -> Installed:
    """What `trailkeeper init` installs: the pack on the default group, and a role that lets
    trails forward there, named on the group (NEW_TRAILS_TAG) so that new trails do."""
    from trailkeeper.monitoring.forwarder import ROLE_POLICY_NAME, minimal_role_policy, trust_policy
    from trailkeeper.monitoring.forwarding import default_log_group, log_group_arn

    group = default_log_group(account_id)
    installed = install(call, group)
    role = call("CreateRole", RoleName=DEFAULT_ROLE, AssumeRolePolicyDocument=orjson.dumps(trust_policy()).decode(),
                Description="CloudTrail forwards new trails to the CIS monitoring log group as this role")["Role"]
    call("PutRolePolicy", RoleName=DEFAULT_ROLE, PolicyName=ROLE_POLICY_NAME,
         PolicyDocument=orjson.dumps(minimal_role_policy(account_id, region, group)).decode())
    call("TagResource", resourceArn=log_group_arn(region, account_id, group), tags={NEW_TRAILS_TAG: role["Arn"]})
    return installed


# ---- what the check reads ----------------------------------------------------------------------
def group_of_arn(arn: str) -> str | None:
    """The log group an ARN `arn:aws:logs:{region}:{account}:log-group:{name}[:*]` names."""
    marker = ":log-group:"
    if marker not in arn:
        return None
    return arn.split(marker, 1)[1].removesuffix(":*") or None


def _pages(call: Call, operation: str, params: dict[str, Any], items: str, token: str) -> Iterator[dict[str, Any]]:
    request = dict(params)
    while True:
        answer = call(operation, **request)
        yield from answer.get(items, [])
        following = answer.get(token)
        if not following:
            return
        request[token] = following


def forwarded_groups(call: Call) -> list[str]:
    """Log groups that a trail which is logging forwards to."""
    groups = []
    for trail in call("DescribeTrails").get("trailList", []):
        group = group_of_arn(str(trail.get("CloudWatchLogsLogGroupArn") or ""))
        if group is not None and call("GetTrailStatus", Name=trail["Name"]).get("IsLogging"):
            groups.append(group)
    return groups


def stored_filters(call: Call) -> list[StoredFilter]:
    out = []
    for f in _pages(call, "DescribeMetricFilters", {}, "metricFilters", "nextToken"):
        for t in f.get("metricTransformations", []):
            out.append(StoredFilter(f["logGroupName"], f["filterName"], f.get("filterPattern", ""),
                                    t["metricNamespace"], t["metricName"]))
    return out


def stored_alarms(call: Call) -> list[StoredAlarm]:
    return [StoredAlarm(a["AlarmName"], a.get("Namespace", ""), a.get("MetricName", ""),
                        bool(a.get("ActionsEnabled")), tuple(a.get("AlarmActions", [])))
            for a in _pages(call, "DescribeAlarms", {}, "MetricAlarms", "NextToken")]


def confirmed_topics(call: Call) -> list[str]:
    """Topics with at least one confirmed subscription (SNS lists pending ones by that word)."""
    return sorted({s["TopicArn"] for s in _pages(call, "ListSubscriptions", {}, "Subscriptions", "NextToken")
                   if s.get("SubscriptionArn", "PendingConfirmation") not in ("PendingConfirmation", "Deleted")})


def run_check(call: Call) -> list[ControlResult]:
    return check(forwarded_groups(call), stored_filters(call), stored_alarms(call), confirmed_topics(call))
