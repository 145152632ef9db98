"""The SNS Query adapter (api/sns.py) spoken by botocore's own `sns` client through the ASGI
app, no socket: botocore serialises the requests (maps as `Attributes.entry.N.key`), parses
the XML answers against its model, and turns each error code into its modelled exception.
Also: what each call's audit record keeps, the role check, and the Query decoding alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import orjson
import pytest
from tests.pipeline import Pipeline, botocore_client, open_pipeline

from trailkeeper.api.app import App
from trailkeeper.api.iam_query import QueryError
from trailkeeper.api.sns import SNS, success_xml, to_native

SESSION = botocore.session.get_session()
ACTIONS = frozenset(SNS.operations)


@pytest.fixture
def env(tmp_path: Any) -> Iterator[tuple[Pipeline, App]]:
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=2)
        yield pipeline, app
        app.pool.shutdown()


def _client(pipeline: Pipeline, app: App, key_id: str | None = None, secret: str | None = None) -> Any:
    return botocore_client(pipeline, app, "sns", key_id, secret)


def _last_record(pipeline: Pipeline) -> dict[str, Any]:
    spool = pipeline.service.spool
    [(_, body)] = spool.read(spool.next_seq() - 1, 1, 1 << 20)
    record: dict[str, Any] = orjson.loads(body)
    return record


def test_botocore_round_trips_every_operation(env: tuple[Pipeline, App]) -> None:
    pipeline, app = env
    sns = _client(pipeline, app)
    arn = sns.create_topic(Name="alerts", Attributes={"DisplayName": "Ops"})["TopicArn"]
    assert arn == f"arn:aws:sns:{pipeline.creds.region}:{pipeline.creds.account_id}:alerts"
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "Ops"
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="Security")
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"] == "Security"
    assert [t["TopicArn"] for t in sns.list_topics()["Topics"]] == [arn]
    assert sns.subscribe(TopicArn=arn, Protocol="https", Endpoint="https://hooks.example/sns")["SubscriptionArn"] \
        == "pending confirmation"
    sub = sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="oncall@example.com", ReturnSubscriptionArn=True)
    assert sub["SubscriptionArn"].startswith(arn + ":")
    token = next(s.token for s in pipeline.service.runtime.notifications.repo.subscriptions(arn)
                 if s.arn == sub["SubscriptionArn"])
    assert sns.confirm_subscription(TopicArn=arn, Token=token)["SubscriptionArn"] == sub["SubscriptionArn"]
    listed = sns.list_subscriptions()["Subscriptions"]
    assert sorted(s["SubscriptionArn"] for s in listed) == sorted(["PendingConfirmation", sub["SubscriptionArn"]])
    assert {s["Owner"] for s in listed} == {pipeline.creds.account_id}
    assert len(sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]) == 2
    message_id = sns.publish(TopicArn=arn, Message="hello", Subject="Hi")["MessageId"]
    assert _last_record(pipeline)["responseElements"] == {"MessageId": message_id}
    assert _last_record(pipeline)["requestParameters"]["Message"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    sns.delete_topic(TopicArn=arn)
    assert sns.list_topics()["Topics"] == []


ERRORS: list[tuple[str, str, dict[str, Any], str]] = [
    ("missing topic", "get_topic_attributes", {"TopicArn": "arn:aws:sns:us-east-1:123456789012:nope"},
     "NotFoundException"),
    ("bad topic name", "create_topic", {"Name": "no.dots"}, "InvalidParameterException"),
    ("tags refused", "create_topic", {"Name": "t", "Tags": [{"Key": "a", "Value": "b"}]}, "InvalidParameterException"),
    ("sms refused", "publish", {"PhoneNumber": "+15555550100", "Message": "x"}, "InvalidParameterException"),
    ("message attributes refused", "publish",
     {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "x",
      "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}, "InvalidParameterException"),
    ("unknown subscription", "unsubscribe", {"SubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:x"},
     "NotFoundException"),
]


@pytest.mark.parametrize(("method", "params", "error"), [(m, p, e) for _, m, p, e in ERRORS],
                         ids=[name for name, *_ in ERRORS])
def test_errors_become_botocores_modelled_exceptions(env: tuple[Pipeline, App], method: str,
                                                     params: dict[str, Any], error: str) -> None:
    pipeline, app = env
    sns = _client(pipeline, app)
    with pytest.raises(getattr(sns.exceptions, error)):
        getattr(sns, method)(**params)
    assert _last_record(pipeline)["errorCode"] in ("NotFound", "InvalidParameter")


def test_an_auditor_may_read_but_not_write_or_publish(env: tuple[Pipeline, App]) -> None:
    pipeline, app = env
    identity = pipeline.service.identity
    identity.create_user("reviewer", "auditor")
    key = identity.create_access_key("reviewer")
    admin, auditor = _client(pipeline, app), _client(pipeline, app, key.access_key_id, key.secret_access_key)
    arn = admin.create_topic(Name="alerts")["TopicArn"]
    assert auditor.list_topics()["Topics"] == [{"TopicArn": arn}]
    for call in (lambda: auditor.publish(TopicArn=arn, Message="fake ALARM"),
                 lambda: auditor.create_topic(Name="mine")):
        with pytest.raises(auditor.exceptions.AuthorizationErrorException):
            call()
        assert _last_record(pipeline)["errorCode"] == "AccessDenied"


def test_query_decoding_of_maps_and_unknown_parameters() -> None:
    native = to_native("CreateTopic", {"Name": "t", "Attributes.entry.2.key": "SignatureVersion",
                                       "Attributes.entry.2.value": "2", "Attributes.entry.1.key": "DisplayName",
                                       "Attributes.entry.1.value": "Ops"}, ACTIONS)
    assert native == {"Name": "t", "Attributes": {"DisplayName": "Ops", "SignatureVersion": "2"}}
    with pytest.raises(QueryError, match="no parameter Colour"):
        to_native("CreateTopic", {"Name": "t", "Colour": "red"}, ACTIONS)
    with pytest.raises(QueryError) as unknown:
        to_native("CreatePlatformApplication", {}, ACTIONS)
    assert unknown.value.code == "InvalidAction"


def test_success_xml_known_answer() -> None:
    xml = success_xml("GetTopicAttributes", {"Attributes": {"DisplayName": "a<b"}}, "r1").decode()
    assert xml == ('<GetTopicAttributesResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
                   "<GetTopicAttributesResult><Attributes><entry><key>DisplayName</key><value>a&lt;b</value>"
                   "</entry></Attributes></GetTopicAttributesResult><ResponseMetadata><RequestId>r1</RequestId>"
                   "</ResponseMetadata></GetTopicAttributesResponse>")
