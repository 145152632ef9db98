"""SNS topics and subscriptions (notify/topics.py) over both repositories: the rules, and each
refusal as a named case with SNS's code.

Fakes: the memory repository is held to the SQLite one's contract by running every test on
both; the keyring is `MemoryKeyring` (the root of trust's in-memory twin) and the clock is frozen
so token expiry can be reached without waiting three days."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.clock import FrozenClock
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.notify.model import NotifyRepository
from trailkeeper.notify.signing import verify
from trailkeeper.notify.store import MemoryNotifyRepository, SqliteNotifyRepository
from trailkeeper.notify.topics import (
    MAX_MESSAGE_BYTES,
    PAGE_SIZE,
    Notifications,
    SnsError,
)

START = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)
ACCOUNT, REGION = "123456789012", "eu-west-1"
ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"


@pytest.fixture(params=["memory", "sqlite"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifyRepository]:
    if request.param == "memory":
        yield MemoryNotifyRepository()
        return
    db = Database(tmp_path / "state.db")
    yield SqliteNotifyRepository(db)
    db.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def sns(repo: NotifyRepository, clock: FrozenClock) -> Notifications:
    return Notifications(repo, MemoryKeyring(), clock, ACCOUNT, REGION, "http://tk.example:8790/",
                         validate_apprise=lambda url: url.startswith("json://"))


def _confirmed(sns: Notifications, endpoint: str = "http://hooks.example/sns") -> str:
    sub = sns.subscribe(ARN, "http", endpoint)
    return sns.confirm(ARN, sub.token).arn


# ---- topics ---------------------------------------------------------------------------------
def test_create_topic_is_idempotent_and_names_the_account_and_region(sns: Notifications) -> None:
    first = sns.create_topic("alerts", {"DisplayName": "Ops"})
    assert first.arn == ARN
    assert sns.create_topic("alerts", {"DisplayName": "Ops"}).arn == ARN
    assert [t.arn for t in sns.list_topics(None).items] == [ARN]


def test_topic_attributes_count_subscriptions_and_show_the_retry_policy(sns: Notifications) -> None:
    sns.create_topic("alerts")
    _confirmed(sns)
    sns.subscribe(ARN, "email", "ops@example.com")
    sns.set_topic_attribute(ARN, "DisplayName", "Security")
    attrs = sns.topic_attributes(ARN)
    assert (attrs["TopicArn"], attrs["Owner"], attrs["DisplayName"]) == (ARN, ACCOUNT, "Security")
    assert (attrs["SubscriptionsConfirmed"], attrs["SubscriptionsPending"], attrs["SignatureVersion"]) == ("1", "1", "2")
    policy = orjson.loads(attrs["EffectiveDeliveryPolicy"])["http"]["defaultHealthyRetryPolicy"]
    assert (policy["minDelayTarget"], policy["maxDelayTarget"]) == (1.0, 20.0)


def test_delete_topic_removes_its_subscriptions_and_queue_and_is_idempotent(sns: Notifications) -> None:
    sns.create_topic("alerts")
    _confirmed(sns)
    sns.publish(ARN, "hello")
    assert sns.delivery_counts().pending == 2  # the confirmation (never sent here) and the notification
    sns.delete_topic(ARN)
    sns.delete_topic(ARN)
    assert sns.list_topics(None).items == [] and sns.subscription_page(None, None).items == []
    assert sns.delivery_counts().pending == 0


def test_list_topics_pages_by_100_without_repeats(sns: Notifications) -> None:
    for i in range(PAGE_SIZE + 5):
        sns.create_topic(f"t{i:03d}")
    first = sns.list_topics(None)
    second = sns.list_topics(first.next_token)
    assert len(first.items) == PAGE_SIZE and len(second.items) == 5 and second.next_token is None
    assert {t.arn for t in first.items}.isdisjoint({t.arn for t in second.items})


# ---- subscriptions --------------------------------------------------------------------------
def test_subscribe_queues_a_signed_confirmation_with_a_subscribe_url(sns: Notifications) -> None:
    sns.create_topic("alerts")
    sub = sns.subscribe(ARN, "https", "https://hooks.example/sns")
    assert not sub.confirmed
    [queued] = sns.repo.due(START.timestamp(), 10)
    out = sns.outgoing(queued.message, sub)
    doc = out.document
    assert doc["Type"] == "SubscriptionConfirmation" and doc["Token"] == sub.token
    assert doc["SubscribeURL"].startswith("http://tk.example:8790/?Action=ConfirmSubscription&TopicArn=arn%3Aaws")
    assert doc["SigningCertURL"] == sns.certificate_url() and doc["SignatureVersion"] == "2"
    assert verify(doc, sns.identity().certificate_pem)


def test_confirm_makes_the_subscription_receive_publishes(sns: Notifications) -> None:
    sns.create_topic("alerts")
    sub = sns.subscribe(ARN, "http", "http://hooks.example/sns")
    sns.publish(ARN, "before confirmation")  # nobody confirmed: nothing owed
    assert sns.delivery_counts().pending == 1  # only the confirmation
    confirmed = sns.confirm(ARN, sub.token, "true")
    assert confirmed.confirmed and confirmed.authenticate_on_unsubscribe
    assert sns.confirm(ARN, sub.token).arn == sub.arn  # again: the same subscription
    message_id = sns.publish(ARN, "after", subject="Hi")
    due = [d for d in sns.repo.due(START.timestamp(), 10) if d.message["Type"] == "Notification"]
    assert [(d.message_id, d.message["Message"], d.message["Subject"]) for d in due] == [(message_id, "after", "Hi")]
    out = sns.outgoing(due[0].message, confirmed)
    assert out.document["UnsubscribeURL"].startswith("http://tk.example:8790/?Action=Unsubscribe&SubscriptionArn=")
    assert verify(out.document, sns.identity().certificate_pem)


def test_subscribing_the_same_endpoint_twice_answers_the_same_subscription(sns: Notifications) -> None:
    sns.create_topic("alerts")
    first = sns.subscribe(ARN, "email", "ops@example.com")
    assert sns.subscribe(ARN, "email", "ops@example.com").arn == first.arn
    assert len(sns.subscription_page(ARN, None).items) == 1


def test_an_expired_token_is_refused_and_subscribing_again_starts_over(sns: Notifications, clock: FrozenClock) -> None:
    sns.create_topic("alerts")
    old = sns.subscribe(ARN, "http", "http://hooks.example/sns")
    clock.advance(timedelta(days=3, seconds=1))
    with pytest.raises(SnsError, match="expired") as refused:
        sns.confirm(ARN, old.token)
    assert refused.value.code == "InvalidParameter"
    new = sns.subscribe(ARN, "http", "http://hooks.example/sns")
    assert new.arn != old.arn and sns.confirm(ARN, new.token).confirmed


def test_unsubscribe_by_link_needs_the_token_and_honours_authenticate_on_unsubscribe(sns: Notifications) -> None:
    sns.create_topic("alerts")
    sub = sns.subscribe(ARN, "http", "http://hooks.example/a")
    sns.confirm(ARN, sub.token)
    with pytest.raises(SnsError) as refused:
        sns.unsubscribe(sub.arn, token="f" * 128)
    assert (refused.value.code, refused.value.status) == ("AuthorizationError", 403)
    sns.unsubscribe(sub.arn, token=sub.token)
    assert sns.subscription(sub.arn) is None
    strict = sns.subscribe(ARN, "http", "http://hooks.example/b")
    sns.confirm(ARN, strict.token, "true")
    with pytest.raises(SnsError, match="authenticated"):
        sns.unsubscribe(strict.arn, token=strict.token)
    sns.unsubscribe(strict.arn)  # an authenticated call (the API) may


def test_unsubscribing_drops_what_was_still_queued_for_it(sns: Notifications) -> None:
    sns.create_topic("alerts")
    arn = _confirmed(sns)
    sns.publish(ARN, "queued")
    sns.unsubscribe(arn)
    assert [d for d in sns.repo.due(START.timestamp() + 1, 10) if d.subscription_arn == arn] == []


def test_message_structure_json_sends_each_protocol_its_text(sns: Notifications) -> None:
    sns.create_topic("alerts")
    http_sub = _confirmed(sns)
    mail = sns.subscribe(ARN, "email", "ops@example.com")
    sns.confirm(ARN, mail.token)
    sns.publish(ARN, orjson.dumps({"default": "plain", "email": "for mail"}).decode(), structure="json")
    texts = {d.subscription_arn: d.message["Message"] for d in sns.repo.due(START.timestamp(), 10)
             if d.message["Type"] == "Notification"}
    assert texts == {http_sub: "plain", mail.arn: "for mail"}


def test_a_keyed_publish_is_queued_once(sns: Notifications) -> None:
    sns.create_topic("alerts")
    _confirmed(sns)
    first = sns.publish(ARN, "alarm", dedup_key="alarm:7:" + ARN)
    again = sns.publish(ARN, "alarm", dedup_key="alarm:7:" + ARN)
    assert first == again
    notes = [d for d in sns.repo.due(START.timestamp(), 10) if d.message["Type"] == "Notification"]
    assert [d.message_id for d in notes] == [first]


def test_the_signing_identity_survives_a_new_domain_on_the_same_store(repo: NotifyRepository, clock: FrozenClock) -> None:
    keyring = MemoryKeyring()
    first = Notifications(repo, keyring, clock, ACCOUNT, REGION, "http://tk.example")
    pem = first.identity().certificate_pem
    second = Notifications(repo, keyring, clock, ACCOUNT, REGION, "http://tk.example")
    assert second.identity().certificate_pem == pem
    assert second.certificate(second.certificate_name()) == pem and second.certificate("/other.pem") is None


# ---- refusals, each with SNS's code -----------------------------------------------------------
REFUSALS: list[tuple[str, Callable[[Notifications], Any], str, int]] = [
    ("fifo topic", lambda s: s.create_topic("orders.fifo"), "InvalidParameter", 400),
    ("topic name with a dot", lambda s: s.create_topic("a.b"), "InvalidParameter", 400),
    ("topic name too long", lambda s: s.create_topic("a" * 257), "InvalidParameter", 400),
    ("same name other attributes", lambda s: s.create_topic("alerts", {"DisplayName": "Other"}), "InvalidParameter", 400),
    ("unsupported topic attribute", lambda s: s.create_topic("x", {"Policy": "{}"}), "InvalidParameter", 400),
    ("signature version 1", lambda s: s.set_topic_attribute(ARN, "SignatureVersion", "1"), "InvalidParameter", 400),
    ("display name too long", lambda s: s.set_topic_attribute(ARN, "DisplayName", "x" * 101), "InvalidParameter", 400),
    ("attributes of a missing topic", lambda s: s.topic_attributes(ARN + "x"), "NotFound", 404),
    ("malformed topic arn", lambda s: s.topic_attributes("arn:aws:sqs:eu-west-1:1:q"), "InvalidParameter", 400),
    ("subscribe to a missing topic", lambda s: s.subscribe(ARN + "x", "http", "http://a.example"), "NotFound", 404),
    ("unknown protocol", lambda s: s.subscribe(ARN, "sqs", "arn:aws:sqs:eu-west-1:1:q"), "InvalidParameter", 400),
    ("http endpoint for https", lambda s: s.subscribe(ARN, "https", "http://a.example"), "InvalidParameter", 400),
    ("no endpoint", lambda s: s.subscribe(ARN, "http", None), "InvalidParameter", 400),
    ("not an email address", lambda s: s.subscribe(ARN, "email", "ops"), "InvalidParameter", 400),
    ("apprise url apprise refuses", lambda s: s.subscribe(ARN, "apprise", "nosuch://x"), "InvalidParameter", 400),
    ("subscription attributes", lambda s: s.subscribe(ARN, "http", "http://a.example", {"RawMessageDelivery": "true"}),
     "InvalidParameter", 400),
    ("wrong token", lambda s: s.confirm(ARN, "0" * 128), "InvalidParameter", 400),
    ("non-ascii token", lambda s: s.confirm(ARN, "é" * 10), "InvalidParameter", 400),
    ("unknown MessageStructure", lambda s: s.publish(ARN, "m", structure="xml"), "InvalidParameter", 400),
    ("confirm on a missing topic", lambda s: s.confirm(ARN + "x", "0"), "NotFound", 404),
    ("bad AuthenticateOnUnsubscribe", lambda s: s.confirm(ARN, "0", "yes"), "InvalidParameter", 400),
    ("unsubscribe unknown", lambda s: s.unsubscribe(ARN + ":0b7e8b3c-0000-4000-8000-000000000000"), "NotFound", 404),
    ("unsubscribe malformed", lambda s: s.unsubscribe("pending confirmation"), "InvalidParameter", 400),
    ("empty message", lambda s: s.publish(ARN, ""), "InvalidParameter", 400),
    ("message too long", lambda s: s.publish(ARN, "x" * (MAX_MESSAGE_BYTES + 1)), "InvalidParameter", 400),
    ("subject with a line break", lambda s: s.publish(ARN, "m", subject="a\nb"), "InvalidParameter", 400),
    ("subject too long", lambda s: s.publish(ARN, "m", subject="s" * 101), "InvalidParameter", 400),
    ("json structure without default", lambda s: s.publish(ARN, '{"email": "x"}', structure="json"),
     "InvalidParameter", 400),
    ("json structure not json", lambda s: s.publish(ARN, "not json", structure="json"), "InvalidParameter", 400),
    ("publish to a missing topic", lambda s: s.publish(ARN + "x", "m"), "NotFound", 404),
    ("list a missing topic", lambda s: s.subscription_page(ARN + "x", None), "NotFound", 404),
    ("foreign next token", lambda s: s.list_topics("garbage"), "InvalidParameter", 400),
]


@pytest.mark.parametrize(("action", "code", "status"), [(a, c, s) for _, a, c, s in REFUSALS],
                         ids=[name for name, *_ in REFUSALS])
def test_refusals(sns: Notifications, action: Callable[[Notifications], Any], code: str, status: int) -> None:
    sns.create_topic("alerts")
    with pytest.raises(SnsError) as refused:
        action(sns)
    assert (refused.value.code, refused.value.status) == (code, status)
    assert str(refused.value)  # says what was wrong


def test_topic_limit(sns: Notifications, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trailkeeper.notify.topics.MAX_TOPICS", 2)
    sns.create_topic("a")
    sns.create_topic("b")
    with pytest.raises(SnsError) as refused:
        sns.create_topic("c")
    assert (refused.value.code, refused.value.status) == ("TopicLimitExceeded", 403)


def test_subscription_limit(sns: Notifications, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trailkeeper.notify.topics.MAX_SUBSCRIPTIONS_PER_TOPIC", 1)
    sns.create_topic("alerts")
    sns.subscribe(ARN, "http", "http://a.example")
    with pytest.raises(SnsError) as refused:
        sns.subscribe(ARN, "http", "http://b.example")
    assert (refused.value.code, refused.value.status) == ("SubscriptionLimitExceeded", 403)
