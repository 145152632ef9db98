"""The operation registry: every registered operation against botocore's service model, and an
operation added to a test-only spec reaching the router, the permission check and the audit
record with no other edit."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import orjson
import pytest
from tests.pipeline import Pipeline, app_event, botocore_client, call_app, open_pipeline

from trailkeeper.api.app import App
from trailkeeper.api.registry import OperationSpec, Params, Registry, ServiceSpec
from trailkeeper.api.services import DEFAULT_REGISTRY
from trailkeeper.identity import PERMISSIONS, Principal
from trailkeeper.service import Service

SESSION = botocore.session.get_session()
MODELLED = [spec for spec in DEFAULT_REGISTRY.services if spec.has_model]


# ---- the static spec against botocore's model ----------------------------------------------------
@pytest.mark.parametrize("spec", MODELLED, ids=lambda spec: spec.name)
def test_each_service_is_spoken_as_its_model_says(spec: ServiceSpec[Any]) -> None:
    model = SESSION.get_service_model(spec.name)
    meta = model.metadata
    assert spec.protocol == meta["protocol"]
    assert spec.api_version == meta["apiVersion"]
    assert spec.signing_name == (meta.get("signingName") or meta["endpointPrefix"])
    assert spec.target_prefix == (meta.get("targetPrefix") or "")
    assert spec.event_source == f"{meta['endpointPrefix']}.amazonaws.com"


def _registered() -> list[tuple[ServiceSpec[Any], str, OperationSpec[Any]]]:
    return [(spec, name, op) for spec in DEFAULT_REGISTRY.services for name, op in spec.operations.items()]


def test_the_registry_holds_every_operation_the_api_answers() -> None:
    # 20 CloudTrail + 15 IAM + 19 KMS + 1 native + 19 CloudWatch Logs + 12 CloudWatch + 11 SNS + 13 EventBridge
    # + 10 native alert and detection operations
    assert len(_registered()) == 120
    assert len(DEFAULT_REGISTRY.operations()) == 120
    assert {spec.name for spec in DEFAULT_REGISTRY.services} == {"cloudtrail", "iam", "kms", "trailkeeper", "s3",
                                                                 "cloudtrail-data", "logs", "cloudwatch", "sns",
                                                                 "events", "trailkeeper-alerts"}


@pytest.mark.parametrize(("spec", "name", "op"), _registered(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_operation_is_in_its_model(spec: ServiceSpec[Any], name: str, op: OperationSpec[Any]) -> None:
    assert op.permission in PERMISSIONS
    if not spec.has_model:
        assert spec.protocol == "native" and spec.name in ("trailkeeper", "trailkeeper-alerts")
        return
    model = SESSION.get_service_model(spec.name)
    assert name in model.operation_names, f"{spec.name} has no operation {name}"
    members = _input_members(spec.name, name)
    assert not op.extensions & members, f"{name}: an extension shadows a model member"
    # CloudTrail's readOnly, as AWS sets it: reads by name, plus KMS's cryptographic calls.
    crypto = spec.name == "kms" and name in {"Encrypt", "Decrypt", "GenerateDataKey", "ReEncrypt"}
    log_reads = spec.name == "logs" and name in {"FilterLogEvents", "TestMetricFilter"}
    pattern_test = spec.name == "events" and name == "TestEventPattern"
    assert op.read_only == (name.startswith(("Get", "List", "Describe", "Lookup")) or crypto or log_reads
                            or pattern_test), name


def test_signing_names_are_unique_and_a_shared_operation_name_is_found_by_service() -> None:
    cloudtrail = DEFAULT_REGISTRY.service("cloudtrail")
    assert cloudtrail is not None
    with pytest.raises(ValueError, match="each needs its own signing name"):
        DEFAULT_REGISTRY.with_spec(dataclasses.replace(cloudtrail, operations={}))
    # TagResource is CloudWatch Logs' and EventBridge's: each adapter finds its own; by name
    # alone (the native API) it is no one's, rather than the wrong one's.
    logs, events = DEFAULT_REGISTRY.find("TagResource", "logs"), DEFAULT_REGISTRY.find("TagResource", "events")
    assert logs is not None and events is not None and logs.service.name == "logs" and events.service.name == "events"
    assert DEFAULT_REGISTRY.find("TagResource") is None
    assert DEFAULT_REGISTRY.find("PutRule") is not None and DEFAULT_REGISTRY.find("PutRule", "logs") is None


def _input_members(service: str, operation: str) -> set[str]:
    shape = SESSION.get_service_model(service).operation_model(operation).input_shape
    return set(shape.members) if shape is not None else set()


def _output_members(service: str, operation: str) -> set[str]:
    shape = SESSION.get_service_model(service).operation_model(operation).output_shape
    return set(shape.members) if shape is not None else set()


# ---- the live check: real botocore clients through the App, every handler watched -------------
class _Reads(dict[str, Any]):
    """Request parameters that remember which members a handler looked at."""

    def __init__(self, params: Params, seen: set[str]) -> None:
        super().__init__(params)
        self._seen = seen

    def get(self, key: str, default: Any = None) -> Any:
        self._seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._seen.add(key)
        return super().__contains__(key)


@dataclasses.dataclass
class _Watch:
    """What each operation's handler read and answered, across a scenario."""

    reads: dict[tuple[str, str], set[str]] = dataclasses.field(default_factory=dict)
    answers: dict[tuple[str, str], set[str]] = dataclasses.field(default_factory=dict)

    def wrap(self, key: tuple[str, str], op: OperationSpec[Any]) -> OperationSpec[Any]:
        def handler(domain: Any, principal: Principal, params: Params) -> dict[str, Any]:
            response = op.handler(domain, principal, _Reads(params, self.reads.setdefault(key, set())))
            self.answers.setdefault(key, set()).update(response)
            return response
        return dataclasses.replace(op, handler=handler)

    def registry(self) -> Registry:
        return Registry([dataclasses.replace(spec, operations={n: self.wrap((spec.name, n), op)
                                                               for n, op in spec.operations.items()})
                         for spec in DEFAULT_REGISTRY.services])


def _client(pipeline: Pipeline, app: App, service: str) -> Any:
    return botocore_client(pipeline, app, service)


def _cloudtrail_scenario(ct: Any, pipeline: Pipeline) -> None:
    pipeline.ingest([app_event(1, pipeline.clock.now(), "Seen")])
    pipeline.service.pump()
    ct.create_trail(Name="main", S3BucketName="registry-bucket", EnableLogFileValidation=True)
    ct.update_trail(Name="main", IncludeGlobalServiceEvents=True)
    ct.start_logging(Name="main")
    ct.put_event_selectors(TrailName="main", EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}])
    ct.get_event_selectors(TrailName="main")
    ct.get_trail(Name="main")
    ct.describe_trails(trailNameList=["main"])
    ct.list_trails()
    ct.get_trail_status(Name="main")
    arn = ct.get_trail(Name="main")["Trail"]["TrailARN"]
    ct.add_tags(ResourceId=arn, TagsList=[{"Key": "team", "Value": "audit"}])
    ct.list_tags(ResourceIdList=[arn])
    ct.remove_tags(ResourceId=arn, TagsList=[{"Key": "team"}])
    ct.list_public_keys()
    ct.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "Seen"}], MaxResults=5)
    channel = ct.create_channel(Name="registry-channel", Source="Custom",
                                Destinations=[{"Type": "EVENT_DATA_STORE", "Location": "eds"}])["ChannelArn"]
    ct.get_channel(Channel=channel)
    ct.list_channels()
    ct.delete_channel(Channel=channel)
    ct.stop_logging(Name="main")
    ct.create_trail(Name="spare", S3BucketName="registry-bucket")
    ct.delete_trail(Name="spare")


def _iam_scenario(iam: Any) -> None:
    iam.create_user(UserName="reg", Tags=[{"Key": "trailkeeper:role", "Value": "auditor"}])
    iam.list_users()
    key = iam.create_access_key(UserName="reg")["AccessKey"]["AccessKeyId"]
    iam.list_access_keys(UserName="reg")
    iam.update_access_key(UserName="reg", AccessKeyId=key, Status="Inactive")
    iam.delete_access_key(UserName="reg", AccessKeyId=key)
    iam.delete_user(UserName="reg")
    trust = ('{"Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, '
             '"Action": "sts:AssumeRole"}]}')
    iam.create_role(RoleName="reg", AssumeRolePolicyDocument=trust, Path="/", Description="d")
    iam.get_role(RoleName="reg")
    iam.list_roles()
    iam.put_role_policy(RoleName="reg", PolicyName="p", PolicyDocument=trust)
    iam.get_role_policy(RoleName="reg", PolicyName="p")
    iam.list_role_policies(RoleName="reg")
    iam.delete_role_policy(RoleName="reg", PolicyName="p")
    iam.delete_role(RoleName="reg")


def _kms_scenario(kms: Any) -> str:
    key = kms.create_key(Description="reg", Tags=[{"TagKey": "a", "TagValue": "b"}])["KeyMetadata"]["KeyId"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.describe_key(KeyId=key)
    kms.list_keys()
    kms.list_resource_tags(KeyId=key)
    kms.create_alias(AliasName="alias/reg", TargetKeyId=key)
    kms.list_aliases(KeyId=key)
    blob = kms.encrypt(KeyId="alias/reg", Plaintext=b"x", EncryptionContext={"a": "b"})["CiphertextBlob"]
    kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})
    data_key = kms.generate_data_key(KeyId=key, KeySpec="AES_256")["CiphertextBlob"]
    kms.re_encrypt(CiphertextBlob=data_key, DestinationKeyId=other)
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    kms.get_key_rotation_status(KeyId=key)
    kms.rotate_key_on_demand(KeyId=key)
    kms.disable_key_rotation(KeyId=key)
    kms.disable_key(KeyId=key)
    kms.enable_key(KeyId=key)
    kms.delete_alias(AliasName="alias/reg")
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key)
    return str(other)  # still Enabled (`key` ends Disabled)


def _logs_scenario(logs: Any, key_id: str) -> None:
    logs.create_log_group(logGroupName="reg", tags={"a": "b"})
    logs.put_retention_policy(logGroupName="reg", retentionInDays=7)
    logs.create_log_stream(logGroupName="reg", logStreamName="s")
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName="reg", logStreamName="s", logEvents=[{"timestamp": now, "message": '{"a": 1}'}])
    logs.get_log_events(logGroupName="reg", logStreamName="s", startFromHead=True)
    logs.filter_log_events(logGroupName="reg", filterPattern="{ $.a = 1 }")
    logs.describe_log_streams(logGroupName="reg")
    arn = logs.describe_log_groups(logGroupNamePrefix="reg")["logGroups"][0]["arn"]
    logs.tag_resource(resourceArn=arn, tags={"c": "d"})
    logs.list_tags_for_resource(resourceArn=arn)
    logs.untag_resource(resourceArn=arn, tagKeys=["c"])
    transformation = {"metricName": "m", "metricNamespace": "n", "metricValue": "$.a"}
    logs.put_metric_filter(logGroupName="reg", filterName="f", filterPattern="{ $.a = 1 }",
                           metricTransformations=[transformation])
    logs.describe_metric_filters(logGroupName="reg")
    logs.test_metric_filter(filterPattern="{ $.a = 1 }", logEventMessages=['{"a": 1}'])
    logs.delete_metric_filter(logGroupName="reg", filterName="f")
    logs.associate_kms_key(logGroupName="reg", kmsKeyId=key_id)
    logs.disassociate_kms_key(logGroupName="reg")
    logs.delete_retention_policy(logGroupName="reg")
    logs.delete_log_group(logGroupName="reg")


def _cloudwatch_scenario(cw: Any) -> None:
    now = datetime.now(UTC)
    metric = {"Namespace": "Reg", "MetricName": "m", "Dimensions": [{"Name": "d", "Value": "v"}]}
    cw.put_metric_data(Namespace="Reg", MetricData=[{"MetricName": "m", "Dimensions": metric["Dimensions"],
                                                     "Value": 1.0, "Timestamp": now}])
    cw.get_metric_statistics(**metric, StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=1),
                             Period=60, Statistics=["Sum"])
    cw.get_metric_data(MetricDataQueries=[{"Id": "q", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}],
                       StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=1))
    cw.list_metrics(Namespace="Reg")
    cw.put_metric_alarm(AlarmName="reg", **metric, Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold")
    cw.describe_alarms(AlarmNames=["reg"])
    cw.describe_alarms_for_metric(**metric)
    cw.disable_alarm_actions(AlarmNames=["reg"])
    cw.enable_alarm_actions(AlarmNames=["reg"])
    cw.set_alarm_state(AlarmName="reg", StateValue="OK", StateReason="registry")
    cw.describe_alarm_history(AlarmName="reg")
    cw.delete_alarms(AlarmNames=["reg"])


def _sns_scenario(sns: Any, pipeline: Pipeline) -> None:
    arn = sns.create_topic(Name="reg", Attributes={"DisplayName": "Reg"})["TopicArn"]
    sns.list_topics()
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="R")
    sns.get_topic_attributes(TopicArn=arn)
    sub = sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="reg@example.com",
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    [token] = [s.token for s in pipeline.service.runtime.notifications.repo.subscriptions(arn)]
    sns.confirm_subscription(TopicArn=arn, Token=token)
    sns.list_subscriptions()
    sns.list_subscriptions_by_topic(TopicArn=arn)
    sns.publish(TopicArn=arn, Message="reg", Subject="Reg")
    sns.unsubscribe(SubscriptionArn=sub)
    sns.delete_topic(TopicArn=arn)


def _events_scenario(events: Any) -> None:
    pattern = '{"source": ["aws.cloudtrail"], "detail": {"eventName": ["StopLogging"]}}'
    arn = events.put_rule(Name="reg", EventPattern=pattern, State="ENABLED", Description="d",
                          Tags=[{"Key": "a", "Value": "b"}])["RuleArn"]
    events.describe_rule(Name="reg")
    events.list_rules(NamePrefix="re", Limit=10)
    events.disable_rule(Name="reg")
    events.enable_rule(Name="reg")
    events.put_targets(Rule="reg", Targets=[{"Id": "t", "Arn": "arn:aws:sns:us-east-1:123456789012:reg",
                                             "InputTransformer": {"InputPathsMap": {"n": "$.detail.eventName"},
                                                                  "InputTemplate": '"<n>"'},
                                             "RetryPolicy": {"MaximumRetryAttempts": 3,
                                                             "MaximumEventAgeInSeconds": 600}}])
    events.list_targets_by_rule(Rule="reg")
    events.tag_resource(ResourceARN=arn, Tags=[{"Key": "c", "Value": "d"}])
    events.list_tags_for_resource(ResourceARN=arn)
    events.untag_resource(ResourceARN=arn, TagKeys=["c"])
    events.test_event_pattern(EventPattern=pattern, Event=orjson.dumps({
        "id": "1", "account": "1", "source": "aws.cloudtrail", "time": "2026-01-01T00:00:00Z", "region": "r",
        "resources": [], "detail-type": "x", "detail": {"eventName": "StopLogging"}}).decode())
    events.remove_targets(Rule="reg", Ids=["t"])
    events.delete_rule(Name="reg")


def _alerts_scenario(pipeline: Pipeline, app: App) -> None:
    from trailkeeper.alerts import Detection

    record = {"eventID": "e-1", "eventName": "StopLogging", "userIdentity": {"arn": "arn:aws:iam::1:user/m"}}
    opened = pipeline.service.runtime.alerts.on_match(Detection("r-1", "Trail stopped", "high", record))
    assert opened.alert is not None
    creds = pipeline.creds

    def native(operation: str, params: dict[str, Any]) -> Any:
        status, answer = call_app(app, creds.region, creds.access_key_id, creds.secret_access_key, "trailkeeper",
                                  f"/v1/ops/{operation}", orjson.dumps(params), {"Content-Type": "application/json"})
        assert status == 200, answer
        return answer

    alert_id = opened.alert.id
    assert alert_id in [a["alertId"] for a in native("ListAlerts", {"State": "open"})["Alerts"]]
    native("GetAlert", {"AlertId": alert_id})
    native("AcknowledgeAlert", {"AlertId": alert_id, "Comment": "looking"})
    native("CloseAlert", {"AlertId": alert_id, "Comment": "maintenance window"})
    made = native("PutAlertSuppression", {"Fields": {"userIdentity.arn": "*:user/ci"}, "DurationSeconds": 600,
                                          "Reason": "ci"})["Suppression"]
    native("ListAlertSuppressions", {})
    native("DeleteAlertSuppression", {"SuppressionId": made["suppressionId"]})
    native("GetAlertSettings", {})
    native("UpdateAlertSettings", {"Changes": {"ignore_failed_calls": True}})
    native("ListDetectionRules", {})


def test_every_operation_reads_and_answers_only_its_model_members(tmp_path: Any) -> None:
    """Each handler, called by botocore's own client through the App, reads only members of the
    model's input shape (or its declared extensions) and answers only output members."""
    watch = _Watch()
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=2, registry=watch.registry())
        _cloudtrail_scenario(_client(pipeline, app, "cloudtrail"), pipeline)
        _iam_scenario(_client(pipeline, app, "iam"))
        key_id = _kms_scenario(_client(pipeline, app, "kms"))
        _logs_scenario(_client(pipeline, app, "logs"), key_id)
        _cloudwatch_scenario(_client(pipeline, app, "cloudwatch"))
        _sns_scenario(_client(pipeline, app, "sns"), pipeline)
        _events_scenario(_client(pipeline, app, "events"))
        _alerts_scenario(pipeline, app)
        status, answer = call_app(app, pipeline.creds.region, pipeline.creds.access_key_id,
                                  pipeline.creds.secret_access_key, "trailkeeper", "/v1/ops/GetServerStatus", b"{}",
                                  {"Content-Type": "application/json"})
        assert status == 200 and "Spool" in answer
        app.pool.shutdown()
    modelled = [(spec, name, op) for spec, name, op in _registered() if spec.has_model]
    assert set(watch.answers) == {(spec.name, name) for spec, name, _ in _registered()}, "every operation ran"
    for spec, name, op in modelled:
        extra_reads = watch.reads[(spec.name, name)] - _input_members(spec.name, name) - op.extensions
        assert not extra_reads, f"{name} reads {sorted(extra_reads)}, not in botocore's input shape"
        extra_answers = watch.answers[(spec.name, name)] - _output_members(spec.name, name) - op.extensions
        assert not extra_answers, f"{name} answers {sorted(extra_answers)}, not in botocore's output shape"


# ---- one more operation, in a test-only spec ------------------------------------------------------
def _echo(service: Service, principal: Principal, params: Params) -> dict[str, Any]:
    return {"Echo": params.get("Thing"), "Account": service.account.account_id, "Caller": principal.arn}


def _whole(service: Service) -> Service:
    return service


ECHO: ServiceSpec[Service] = ServiceSpec(
    name="echo", title="Echo", signing_name="echo", protocol="json", event_source="echo.trailkeeper.test",
    target_prefix="Echo_20261205", has_model=False, context=_whole,
    operations={"EchoThing": OperationSpec(_echo, "trails:read", read_only=True),
                "StoreThing": OperationSpec(_echo, "identity:write", read_only=False)})


def _last_record(pipeline: Pipeline) -> dict[str, Any]:
    spool = pipeline.service.spool
    [(_, body)] = spool.read(spool.next_seq() - 1, 1, 1 << 20)
    record: dict[str, Any] = orjson.loads(body)
    return record


def test_an_operation_in_a_new_spec_is_routed_authorised_and_audited(tmp_path: Any) -> None:
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=2, registry=DEFAULT_REGISTRY.with_spec(ECHO))
        creds = pipeline.creds

        def json11(operation: str, key: Any = creds) -> tuple[int, Any]:
            return call_app(app, creds.region, key.access_key_id, key.secret_access_key, "echo", "/",
                            orjson.dumps({"Thing": "hello"}),
                            {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"Echo_20261205.{operation}"})

        status, answer = json11("EchoThing")
        assert (status, answer["Echo"], answer["Caller"]) == (200, "hello", f"arn:aws:iam::{creds.account_id}:root")
        record = _last_record(pipeline)
        assert (record["eventName"], record["eventSource"], record["readOnly"]) == ("EchoThing", "echo.trailkeeper.test", True)
        assert record["requestParameters"] == {"Thing": "hello"} and record["responseElements"] is None

        status, answer = json11("StoreThing")
        record = _last_record(pipeline)
        assert status == 200 and (record["readOnly"], record["responseElements"]["Echo"]) == (False, "hello")

        # The native API reaches it by name too.
        status, answer = call_app(app, creds.region, creds.access_key_id, creds.secret_access_key, "trailkeeper",
                                  "/v1/ops/EchoThing", b'{"Thing": "native"}', {"Content-Type": "application/json"})
        assert (status, answer["Echo"]) == (200, "native")
        assert _last_record(pipeline)["eventSource"] == "echo.trailkeeper.test"

        # Its permission is checked, and the refusal recorded under its source.
        pipeline.service.identity.create_user("wendy", "writer")
        wendy = pipeline.service.identity.create_access_key("wendy")
        status, answer = json11("StoreThing", wendy)
        assert (status, answer["__type"]) == (403, "AccessDeniedException")
        refused = _last_record(pipeline)
        assert (refused["eventName"], refused["eventSource"], refused["errorCode"]) == (
            "StoreThing", "echo.trailkeeper.test", "AccessDenied")

        # A target it lacks is refused in its name; the default registry has no such service.
        status, answer = json11("Missing")
        assert (status, answer["__type"]) == (400, "UnknownOperationException") and "Echo" in answer["message"]
        plain = App(pipeline.service, workers=1)
        status, answer = call_app(plain, creds.region, creds.access_key_id, creds.secret_access_key, "echo", "/",
                                  b"{}", {"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "Echo_20261205.EchoThing"})
        assert status == 403 and answer["__type"] != "UnknownOperationException"
        for each in (app, plain):
            each.pool.shutdown()
