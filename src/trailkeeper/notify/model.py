"""Topics, subscriptions and queued deliveries: plain records, and the `NotifyRepository`
protocol that keeps them (SQLite and memory implementations in `notify/store.py`).

A repository stores rows and reports a missing row as None; the rules (limits, confirmation,
who may be told what) live in `notify/topics.py`. Times are epoch seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Topic:
    arn: str
    name: str
    attributes: Mapping[str, str]  # the settable ones (DisplayName, SignatureVersion)
    created: float


@dataclass(frozen=True)
class Subscription:
    arn: str
    topic_arn: str
    protocol: str
    endpoint: str
    token: str  # the confirmation token; also the secret of the UnsubscribeURL
    confirmed: bool
    authenticate_on_unsubscribe: bool
    created: float


@dataclass(frozen=True)
class NewDelivery:
    """One message owed to one subscription, as Publish (or Subscribe) queues it."""

    subscription_arn: str
    message_id: str
    message: Mapping[str, str]  # the unsigned SNS message (Type, MessageId, TopicArn, ...)
    created: float


@dataclass(frozen=True)
class Delivery:
    id: int
    subscription_arn: str
    message_id: str
    message: Mapping[str, str]
    created: float
    next_attempt: float
    attempts: int = 0
    last_error: str = ""
    failed: float | None = None  # when delivery was given up; None while it is still tried


@dataclass(frozen=True)
class DeliveryCounts:
    pending: int  # still being tried
    failed: int  # given up (kept for the operator)
    oldest_pending: float | None = field(default=None)  # creation time of the oldest pending one

    def to_dict(self) -> dict[str, int | float | None]:
        return {"Pending": self.pending, "Failed": self.failed, "OldestPendingTime": self.oldest_pending}


class NotifyRepository(Protocol):
    # topics
    def get_topic(self, arn: str) -> Topic | None: ...
    def topics(self) -> list[Topic]: ...  # ordered by ARN
    def put_topic(self, topic: Topic) -> None: ...
    def delete_topic(self, arn: str) -> bool: ...  # and its subscriptions and their deliveries
    # subscriptions
    def get_subscription(self, arn: str) -> Subscription | None: ...
    def subscriptions(self, topic_arn: str | None = None) -> list[Subscription]: ...  # ordered by ARN
    def put_subscription(self, subscription: Subscription, deliveries: Sequence[NewDelivery] = ()) -> None: ...
    def delete_subscription(self, arn: str) -> bool: ...  # and its deliveries
    # the delivery queue
    def queue(self, deliveries: Sequence[NewDelivery], message_id: str, dedup_key: str | None = None,
              now: float = 0.0) -> str: ...
    def due(self, now: float, limit: int) -> list[Delivery]: ...
    def next_due(self) -> float | None: ...
    def delivered(self, delivery_id: int) -> None: ...
    def retry_later(self, delivery_id: int, attempts: int, next_attempt: float, error: str) -> None: ...
    def give_up(self, delivery_id: int, attempts: int, error: str, when: float) -> None: ...
    def counts(self) -> DeliveryCounts: ...
    # the message signing identity (private key sealed by the root of trust)
    def signing_identity(self) -> tuple[bytes, bytes] | None: ...
    def save_signing_identity(self, sealed_key: bytes, certificate: bytes, now: float) -> bool: ...
    def close(self) -> None: ...


# ---- how long and how often a delivery is tried --------------------------------------------------
# AWS's default policy for HTTP/S endpoints retries 3 times 20 s apart, then drops the message
# (about a minute). An alarm of an audit system must outlive a receiver's restart or a short
# network outage, so trailkeeper tries longer: the first retry after 1 s (a receiver that is
# restarting is back quickly, and an alarm should still arrive within seconds), doubling up to
# 20 s between attempts (AWS's delay), and gives up an hour after the message was published
# (about 185 attempts). Every failed attempt and the give-up are audit events.
FIRST_RETRY_DELAY_S = 1.0
MAX_RETRY_DELAY_S = 20.0
DELIVERY_WINDOW_S = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = FIRST_RETRY_DELAY_S
    max_delay: float = MAX_RETRY_DELAY_S
    window: float = DELIVERY_WINDOW_S  # seconds after publishing when a failing delivery is given up

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay or self.window < 0:
            raise ValueError(f"retry policy {self} needs 0 < first_delay <= max_delay and window >= 0")

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1, 2, 4, ... up to max_delay)."""
        return float(min(self.max_delay, self.first_delay * 2 ** max(0, attempts - 1)))

    def to_sns(self) -> dict[str, object]:
        """The policy in SNS's EffectiveDeliveryPolicy form (GetTopicAttributes shows it)."""
        retries = 0
        waited = 0.0
        while waited < self.window:
            retries += 1
            waited += self.delay(retries)
        return {"http": {"defaultHealthyRetryPolicy": {
            "minDelayTarget": self.first_delay, "maxDelayTarget": self.max_delay, "numRetries": retries,
            "numNoDelayRetries": 0, "numMinDelayRetries": 0, "numMaxDelayRetries": 0,
            "backoffFunction": "exponential"}, "disableSubscriptionOverrides": True}}
