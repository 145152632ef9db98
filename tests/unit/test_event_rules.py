"""EventBridge rules on the default bus, through botocore's own client and the App: the API's
shapes and refusals, every acknowledged event routed to SNS targets once (also when a batch is
offered again after a crash), the read-only rule state, and failed invocations retried within
their RetryPolicy, then given up and recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import orjson
import pytest
from tests.pipeline import Pipeline, botocore_client, open_pipeline

from trailkeeper.api.app import App
from trailkeeper.consumers.spool_consumer import Spooled
from trailkeeper.rules.router import CONSUMER_NAME, GAVE_UP_EVENT

STOP = {"source": ["ops.example.com"], "detail": {"eventName": ["StopLogging"]}}


@pytest.fixture
def bus(tmp_path: Any) -> Iterator[tuple[Pipeline, Any, Any]]:
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=2)
        yield pipeline, botocore_client(pipeline, app, "events"), botocore_client(pipeline, app, "sns")
        app.pool.shutdown()


def _topic(pipeline: Pipeline, sns: Any, name: str = "alerts") -> str:
    arn = str(sns.create_topic(Name=name)["TopicArn"])
    sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="soc@example.com")
    [token] = [s.token for s in pipeline.service.runtime.notifications.repo.subscriptions(arn)]
    sns.confirm_subscription(TopicArn=arn, Token=token)
    return arn


def _messages(pipeline: Pipeline) -> list[Any]:
    due = pipeline.service.runtime.notifications.repo.due(pipeline.clock.now().timestamp() + 1e6, 10_000)
    return [json.loads(d.message["Message"]) for d in due if d.message.get("Type") == "Notification"]


def _record(name: str, **extra: Any) -> dict[str, Any]:
    """A record an application sends (its own source; the bus keeps a custom source as it is)."""
    return {"eventName": name, "eventSource": "ops.example.com", "eventTime": "2026-12-06T05:00:00Z",
            "sourceIPAddress": "198.51.100.7", "requestParameters": {"name": "main"}, **extra}


def _code(call: Any, **params: Any) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call(**params)
    return refused.value.response["Error"]["Code"], refused.value.response["Error"]["Message"]


def test_rules_are_put_described_listed_and_deleted_as_eventbridge_answers(bus: Any) -> None:
    pipeline, events, _ = bus
    arn = events.put_rule(Name="stop", EventPattern=json.dumps(STOP), Description="trail stopped")["RuleArn"]
    assert arn == f"arn:aws:events:{pipeline.creds.region}:{pipeline.creds.account_id}:rule/stop"
    described = events.describe_rule(Name="stop")
    assert (described["State"], described["Description"], described["EventBusName"], described["Arn"]) == (
        "ENABLED", "trail stopped", "default", arn)
    for i in range(3):
        events.put_rule(Name=f"other-{i}", EventPattern=json.dumps({"source": ["aws.iam"]}), State="DISABLED")
    first = events.list_rules(NamePrefix="other", Limit=2)
    rest = events.list_rules(NamePrefix="other", Limit=2, NextToken=first["NextToken"])
    assert [r["Name"] for r in first["Rules"] + rest["Rules"]] == ["other-0", "other-1", "other-2"]
    assert "NextToken" not in rest
    events.enable_rule(Name="other-0")
    assert events.describe_rule(Name="other-0")["State"] == "ENABLED"
    events.disable_rule(Name="stop")
    assert events.describe_rule(Name="stop")["State"] == "DISABLED"
    events.tag_resource(ResourceARN=arn, Tags=[{"Key": "team", "Value": "soc"}])
    assert events.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "soc"}]
    events.delete_rule(Name="stop")
    assert _code(events.describe_rule, Name="stop")[0] == "ResourceNotFoundException"
    events.delete_rule(Name="stop")  # gone already: EventBridge answers success


REFUSALS = [
    ("pattern not JSON", "put_rule", {"Name": "r", "EventPattern": "{"}, "InvalidEventPatternException", ""),
    ("pattern leaf not an array", "put_rule", {"Name": "r", "EventPattern": '{"source": "aws.iam"}'},
     "InvalidEventPatternException", "source"),
    ("neither pattern nor schedule", "put_rule", {"Name": "r"}, "ValidationException",
     "EventPattern or ScheduleExpression"),
    ("a schedule", "put_rule", {"Name": "r", "ScheduleExpression": "rate(5 minutes)"}, "ValidationException",
     "ScheduleExpression is not supported"),
    ("a bad name", "put_rule", {"Name": "no spaces", "EventPattern": '{"source": ["a"]}'}, "ValidationException",
     "Name"),
    ("another bus", "put_rule", {"Name": "r", "EventPattern": '{"source": ["a"]}', "EventBusName": "custom"},
     "ResourceNotFoundException", "default bus"),
    ("enable a missing rule", "enable_rule", {"Name": "missing"}, "ResourceNotFoundException", "missing"),
    ("targets of a missing rule", "list_targets_by_rule", {"Rule": "missing"}, "ResourceNotFoundException", ""),
    ("test event without its envelope", "test_event_pattern",
     {"EventPattern": '{"source": ["a"]}', "Event": '{"source": "a"}'}, "ValidationException", "missing id"),
]


@pytest.mark.parametrize(("op", "params", "code", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_bad_requests_are_refused_with_eventbridges_codes(bus: Any, op: str, params: dict[str, Any], code: str,
                                                         message: str) -> None:
    _, events, _ = bus
    got_code, got_message = _code(getattr(events, op), **params)
    assert got_code == code and message in got_message


def test_a_rule_with_targets_is_not_deleted_and_targets_are_checked(bus: Any) -> None:
    pipeline, events, sns = bus
    topic = _topic(pipeline, sns)
    events.put_rule(Name="stop", EventPattern=json.dumps(STOP))
    answer = events.put_targets(Rule="stop", Targets=[{"Id": "soc", "Arn": topic},
                                                      {"Id": "q", "Arn": "arn:aws:sqs:us-east-1:1:queue"}])
    assert answer["FailedEntryCount"] == 1 and answer["FailedEntries"][0]["TargetId"] == "q"
    assert "SNS topics only" in answer["FailedEntries"][0]["ErrorMessage"]
    assert [t["Id"] for t in events.list_targets_by_rule(Rule="stop")["Targets"]] == ["soc"]
    assert _code(events.delete_rule, Name="stop") == ("ValidationException", "Rule can't be deleted since it has targets.")
    assert _code(events.put_targets, Rule="stop", Targets=[{"Id": "x", "Arn": topic, "Input": "{", }])[0] == \
        "ValidationException"
    events.remove_targets(Rule="stop", Ids=["soc"])
    events.delete_rule(Name="stop")


def test_test_event_pattern_answers_true_or_false(bus: Any) -> None:
    _, events, _ = bus
    event = {"id": "1", "account": "1", "source": "ops.example.com", "time": "2026-12-06T05:00:00Z",
             "region": "us-east-1", "resources": [], "detail-type": "AWS API Call via CloudTrail",
             "detail": {"eventName": "StopLogging"}}
    assert events.test_event_pattern(EventPattern=json.dumps(STOP), Event=json.dumps(event))["Result"] is True
    event["detail"] = {"eventName": "StartLogging"}
    assert events.test_event_pattern(EventPattern=json.dumps(STOP), Event=json.dumps(event))["Result"] is False


def test_each_matching_event_reaches_the_topic_shaped_and_once(bus: Any) -> None:
    pipeline, events, sns = bus
    topic = _topic(pipeline, sns)
    events.put_rule(Name="stop", EventPattern=json.dumps(STOP))
    events.put_targets(Rule="stop", Targets=[
        {"Id": "whole", "Arn": topic},
        {"Id": "said", "Arn": topic, "InputTransformer": {"InputPathsMap": {"trail": "$.detail.requestParameters.name"},
                                                          "InputTemplate": '"trail <trail> was stopped"'}}])
    ids = pipeline.ingest([_record("StopLogging"), _record("StartLogging")])
    pipeline.service.pump()
    messages = _messages(pipeline)
    whole = [m for m in messages if isinstance(m, dict) and m.get("detail-type")]
    assert [m["detail"]["eventID"] for m in whole] == [ids[0]]
    assert (whole[0]["source"], whole[0]["detail"]["eventName"]) == ("ops.example.com", "StopLogging")
    assert "trail main was stopped" in messages

    # A crash after publishing and before the offset moved: the batch is offered again.
    service = pipeline.service
    router = service.rules.router
    [replayed] = [Spooled(seq, orjson.loads(body)) for seq, body in service.spool.read(1, 100_000, 1 << 26)
                  if orjson.loads(body).get("eventID") == ids[0]]
    router([replayed])
    assert len(_messages(pipeline)) == len(messages), "a replayed batch published again"


def test_read_only_events_reach_only_rules_that_ask_for_them(bus: Any) -> None:
    pipeline, events, sns = bus
    topic = _topic(pipeline, sns)
    pattern = json.dumps({"detail": {"eventName": ["DescribeTrails"]}})
    events.put_rule(Name="plain", EventPattern=pattern)
    events.put_rule(Name="all", EventPattern=pattern, State="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
    for rule in ("plain", "all"):
        events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": topic, "Input": json.dumps({"rule": rule})}])
    pipeline.ingest([_record("DescribeTrails", readOnly=True)])
    pipeline.service.pump()
    assert _messages(pipeline) == [{"rule": "all"}]


def test_disabled_rules_and_rules_without_targets_route_nothing(bus: Any) -> None:
    pipeline, events, sns = bus
    topic = _topic(pipeline, sns)
    events.put_rule(Name="stop", EventPattern=json.dumps(STOP), State="DISABLED")
    events.put_targets(Rule="stop", Targets=[{"Id": "t", "Arn": topic}])
    pipeline.ingest([_record("StopLogging")])
    pipeline.service.pump()
    assert _messages(pipeline) == []
    events.enable_rule(Name="stop")
    pipeline.ingest([_record("StopLogging")])
    pipeline.service.pump()
    assert len(_messages(pipeline)) == 1


def test_a_failed_invocation_is_retried_then_delivered(bus: Any) -> None:
    pipeline, events, sns = bus
    topic = f"arn:aws:sns:{pipeline.creds.region}:{pipeline.creds.account_id}:late"
    events.put_rule(Name="stop", EventPattern=json.dumps(STOP))
    events.put_targets(Rule="stop", Targets=[{"Id": "t", "Arn": topic}])
    pipeline.ingest([_record("StopLogging")])
    pipeline.service.pump()
    repo = pipeline.service.runtime.event_bus.repo
    assert repo.counts().retrying == 1 and "NotFound" in repo.due(1e12)[0].last_error
    _topic(pipeline, sns, "late")  # the topic comes (back)
    pipeline.clock.advance(__import__("datetime").timedelta(seconds=2))
    pipeline.service.rules.retrier.retry_due()
    assert repo.counts().retrying == 0 and len(_messages(pipeline)) == 1


def test_an_invocation_out_of_its_retry_policy_is_given_up_and_recorded(bus: Any) -> None:
    from datetime import timedelta

    pipeline, events, _ = bus
    topic = f"arn:aws:sns:{pipeline.creds.region}:{pipeline.creds.account_id}:never"
    events.put_rule(Name="stop", EventPattern=json.dumps(STOP))
    events.put_targets(Rule="stop", Targets=[{"Id": "t", "Arn": topic,
                                              "RetryPolicy": {"MaximumRetryAttempts": 2,
                                                              "MaximumEventAgeInSeconds": 3600}}])
    [event_id] = pipeline.ingest([_record("StopLogging")])
    pipeline.service.pump()
    repo = pipeline.service.runtime.event_bus.repo
    for _ in range(4):
        pipeline.clock.advance(timedelta(seconds=600))
        pipeline.service.rules.retrier.retry_due()
    assert repo.counts().failed == 1 and repo.counts().retrying == 0
    [failed] = repo.failed()
    assert failed.attempts == 3 and failed.event_id == event_id  # the first attempt and two retries
    spool = pipeline.service.spool
    records = [orjson.loads(body) for _, body in spool.read(1, 100_000, 1 << 26)]
    [gave_up] = [r for r in records if r.get("eventName") == GAVE_UP_EVENT]
    assert gave_up["serviceEventDetails"]["eventID"] == event_id


def test_the_consumer_has_a_durable_offset(bus: Any) -> None:
    pipeline, _, _ = bus
    pipeline.ingest([_record("Anything")])
    pipeline.service.pump()
    consumer = pipeline.service.consumers.get(CONSUMER_NAME)
    assert consumer is not None and consumer.needed() == pipeline.service.spool.next_seq()
