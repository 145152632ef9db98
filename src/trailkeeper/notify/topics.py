"""SNS topics and subscriptions: the rules of Amazon SNS's standard topics over a
`NotifyRepository`, and the messages subscribers receive.

- A topic is `arn:aws:sns:{region}:{account}:{name}`. CreateTopic is idempotent (the same name
  with the same attributes answers the same ARN; different attributes are refused); DeleteTopic
  of a topic that does not exist succeeds, as on AWS.
- Subscribing an `http`, `https`, `email` or `apprise` endpoint queues a signed
  SubscriptionConfirmation (a link to click for email and apprise). The subscription stays
  PendingConfirmation until someone calls ConfirmSubscription with its token: the endpoint's
  owner by fetching SubscribeURL, which trailkeeper answers without a signature, as SNS does.
- Publish writes one delivery row per confirmed subscription before it answers; the delivery
  worker (`notify/delivery.py`) sends them. A keyed publish (`dedup_key`, the alarm sender's) is
  queued at most once, so repeating it after a crash sends nothing twice.
- Every message is signed (SignatureVersion 2) with a key kept sealed by the root of trust in
  the state database; its certificate is served at `SigningCertURL` by the server.

Refusals carry SNS's codes: InvalidParameter (400), NotFound (404), AuthorizationError (403),
TopicLimitExceeded and SubscriptionLimitExceeded (403).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from trailkeeper.clock import Clock
from trailkeeper.errors import TrailkeeperError
from trailkeeper.keys.keyring import KeyProvider
from trailkeeper.notify.model import (
    DeliveryCounts,
    NewDelivery,
    NotifyRepository,
    RetryPolicy,
    Subscription,
    Topic,
)
from trailkeeper.notify.signing import SIGNATURE_VERSION, SigningIdentity, signed

SNS_SOURCE = "sns.amazonaws.com"
PROTOCOLS = ("http", "https", "email", "apprise")  # apprise: a trailkeeper extension
MAX_TOPICS = 1000  # per account and region (AWS allows 100,000; trailkeeper is one team's)
MAX_SUBSCRIPTIONS_PER_TOPIC = 100
MAX_MESSAGE_BYTES = 256 * 1024  # SNS's limit on a message
MAX_SUBJECT_CHARS = 100
MAX_DISPLAY_NAME_CHARS = 100
PAGE_SIZE = 100  # ListTopics and ListSubscriptions answer 100 per page, as SNS does
CONFIRMATION_TTL = timedelta(days=3)  # SNS deletes unconfirmed subscriptions after three days
PENDING = "PendingConfirmation"  # how List* show an unconfirmed subscription
PENDING_ANSWER = "pending confirmation"  # what Subscribe answers for one
SETTABLE_ATTRIBUTES = ("DisplayName", "SignatureVersion")
DEFAULT_EMAIL_SUBJECT = "AWS Notification Message"
CERTIFICATE_PREFIX = "/SimpleNotificationService-"
CERTIFICATE_SUFFIX = ".pem"
_SIGNING_CONTEXT = b"sns-signing-key"
_TOPIC_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_EMAIL_RE = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")
_TOKEN_BYTES = 64


class SnsError(TrailkeeperError):
    """A request SNS would refuse; `code` and `status` are SNS's (botocore's model)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


def invalid(message: str) -> SnsError:
    return SnsError("InvalidParameter", f"Invalid parameter: {message}")


def not_found(message: str) -> SnsError:
    return SnsError("NotFound", message, 404)


def sns_time(when: datetime) -> str:
    """SNS's message timestamp: `2012-05-02T00:54:06.655Z`."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Outgoing:
    """One message ready for one subscriber: the signed SNS document (what HTTP receives) and the
    subject and text of its human form (what email and apprise receive)."""

    protocol: str
    endpoint: str
    subscription_arn: str
    topic_arn: str
    message_id: str
    message_type: str
    document: dict[str, str]
    subject: str
    text: str


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_token: str | None


class Notifications:
    """The SNS topics of one account and region, and the message signing identity."""

    def __init__(self, repo: NotifyRepository, keyring: KeyProvider, clock: Clock, account_id: str, region: str,
                 base_url: str, policy: RetryPolicy | None = None,
                 validate_apprise: Callable[[str], bool] | None = None) -> None:
        """`base_url` is where subscribers reach this server (SubscribeURL, SigningCertURL,
        UnsubscribeURL start with it); `validate_apprise` says whether an Apprise URL is one
        Apprise can notify (default: ask Apprise)."""
        self.repo = repo
        self.keyring = keyring
        self.clock = clock
        self.account_id = account_id
        self.region = region
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self._validate_apprise = validate_apprise or _apprise_accepts
        self._lock = threading.RLock()  # check-then-write steps (limits, idempotent create)
        self._identity: SigningIdentity | None = None
        self._listeners: list[Callable[[], None]] = []

    def close(self) -> None:
        self.repo.close()

    def on_queued(self, callback: Callable[[], None]) -> None:
        """Call `callback` (cheap, non-blocking) whenever deliveries were queued."""
        self._listeners.append(callback)

    def _queued(self) -> None:
        for callback in self._listeners:
            callback()

    def topic_arn(self, name: str) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{name}"

    # ---- topics ---------------------------------------------------------------------------
    def create_topic(self, name: str, attributes: Mapping[str, str] | None = None) -> Topic:
        if name.endswith(".fifo"):
            raise invalid("Name Reason: FIFO topics are not supported by trailkeeper; use a standard topic name.")
        if not _TOPIC_NAME_RE.fullmatch(name):
            raise invalid("Topic Name: must be 1-256 ASCII letters, digits, hyphens or underscores.")
        wanted = self._topic_attributes(attributes or {}, creating=True)
        arn = self.topic_arn(name)
        with self._lock:
            existing = self.repo.get_topic(arn)
            if existing is not None:
                if any(existing.attributes.get(k) != v for k, v in wanted.items()):
                    raise invalid("Attributes Reason: Topic already exists with different attributes; "
                                  "use SetTopicAttributes to change them.")
                return existing
            if len(self.repo.topics()) >= MAX_TOPICS:
                raise SnsError("TopicLimitExceeded", f"Topic limit exceeded: at most {MAX_TOPICS} topics; "
                               "delete topics you no longer use.", 403)
            topic = Topic(arn, name, {"DisplayName": "", "SignatureVersion": SIGNATURE_VERSION, **wanted},
                          self._now())
            self.repo.put_topic(topic)
            return topic

    def delete_topic(self, arn: str) -> None:
        """Delete the topic, its subscriptions and what is still queued for them (idempotent)."""
        _parse_topic_arn(arn)
        self.repo.delete_topic(arn)

    def topic(self, arn: str) -> Topic:
        _parse_topic_arn(arn)
        found = self.repo.get_topic(arn)
        if found is None:
            raise not_found(f"Topic does not exist: {arn}; create it with CreateTopic.")
        return found

    def list_topics(self, next_token: str | None) -> Page:
        topics = self.repo.topics()
        return _page([t.arn for t in topics], topics, next_token)

    def topic_attributes(self, arn: str) -> dict[str, str]:
        topic = self.topic(arn)
        subs = self.repo.subscriptions(arn)
        confirmed = sum(1 for s in subs if s.confirmed)
        return {"TopicArn": topic.arn, "Owner": self.account_id, **dict(topic.attributes),
                "SubscriptionsConfirmed": str(confirmed), "SubscriptionsPending": str(len(subs) - confirmed),
                "SubscriptionsDeleted": "0",
                "EffectiveDeliveryPolicy": orjson.dumps(self.policy.to_sns()).decode()}

    def set_topic_attribute(self, arn: str, name: str, value: str | None) -> None:
        with self._lock:
            topic = self.topic(arn)
            change = self._topic_attributes({name: value or ""}, creating=False)
            self.repo.put_topic(replace(topic, attributes={**dict(topic.attributes), **change}))

    @staticmethod
    def _topic_attributes(attributes: Mapping[str, str], creating: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in attributes.items():
            if name == "FifoTopic" and creating and value.lower() == "false":
                continue
            if name not in SETTABLE_ATTRIBUTES:
                raise invalid(f"AttributeName: {name} is not supported by trailkeeper; it sets "
                              f"{', '.join(SETTABLE_ATTRIBUTES)} (policies: roles decide who may do what).")
            if name == "DisplayName" and len(value) > MAX_DISPLAY_NAME_CHARS:
                raise invalid(f"DisplayName: at most {MAX_DISPLAY_NAME_CHARS} characters.")
            if name == "SignatureVersion" and value != SIGNATURE_VERSION:
                raise invalid(f"SignatureVersion: trailkeeper signs with SignatureVersion {SIGNATURE_VERSION} "
                              "(SHA256withRSA) only.")
            out[name] = value
        return out

    # ---- subscriptions --------------------------------------------------------------------
    def subscribe(self, topic_arn: str, protocol: str, endpoint: str | None,
                  attributes: Mapping[str, str] | None = None) -> Subscription:
        topic = self.topic(topic_arn)
        if protocol not in PROTOCOLS:
            raise invalid(f"Amazon SNS does not support this protocol string: {protocol} "
                          f"(trailkeeper delivers to {', '.join(PROTOCOLS)}).")
        if attributes:
            raise invalid(f"Attributes: subscription attributes ({', '.join(sorted(attributes))}) are not "
                          "supported by trailkeeper; subscribe without them.")
        self._check_endpoint(protocol, endpoint or "")
        endpoint = endpoint or ""
        with self._lock:
            subs = self.repo.subscriptions(topic.arn)
            for existing in subs:
                if (existing.protocol, existing.endpoint) == (protocol, endpoint):
                    if existing.confirmed or not self._expired(existing):
                        return existing
                    self.repo.delete_subscription(existing.arn)  # its token expired: start again
            if len(subs) >= MAX_SUBSCRIPTIONS_PER_TOPIC:
                raise SnsError("SubscriptionLimitExceeded", f"Subscription limit exceeded: at most "
                               f"{MAX_SUBSCRIPTIONS_PER_TOPIC} per topic.", 403)
            sub = Subscription(f"{topic.arn}:{uuid.uuid4()}", topic.arn, protocol, endpoint,
                               secrets.token_hex(_TOKEN_BYTES), False, False, self._now())
            message_id = str(uuid.uuid4())
            confirmation = NewDelivery(sub.arn, message_id, self._confirmation(sub, message_id), sub.created)
            self.repo.put_subscription(sub, [confirmation])
        self._queued()
        return sub

    def confirm(self, topic_arn: str, token: str, authenticate_on_unsubscribe: str | None = None) -> Subscription:
        self.topic(topic_arn)
        if authenticate_on_unsubscribe not in (None, "", "true", "false"):
            raise invalid("AuthenticateOnUnsubscribe: must be true or false.")
        with self._lock:
            found = [s for s in self.repo.subscriptions(topic_arn) if _same_token(s.token, token)]
            if not found:
                raise invalid("Token: no subscription of this topic has this token; use the link of the latest "
                              "SubscriptionConfirmation.")
            sub = found[0]
            if sub.confirmed:
                return sub
            if self._expired(sub):
                raise invalid("Token: the token expired (tokens are valid for 3 days); Subscribe again.")
            sub = replace(sub, confirmed=True, authenticate_on_unsubscribe=authenticate_on_unsubscribe == "true")
            self.repo.put_subscription(sub)
            return sub

    def unsubscribe(self, arn: str, token: str | None = None) -> Subscription:
        """Unsubscribe; `token` is given by an unauthenticated UnsubscribeURL, which must carry the
        subscription's token and is refused for subscriptions confirmed with AuthenticateOnUnsubscribe."""
        if not arn.startswith("arn:aws:sns:") or arn.count(":") != 6:
            raise invalid("SubscriptionArn: not a subscription ARN.")
        found = self.repo.get_subscription(arn)
        if found is None:
            raise not_found(f"Subscription does not exist: {arn}.")
        if token is not None and (found.authenticate_on_unsubscribe or not _same_token(found.token, token)):
            raise SnsError("AuthorizationError", "This subscription may only be removed by an authenticated "
                           "Unsubscribe call.", 403)
        self.repo.delete_subscription(arn)
        return found

    def subscription_page(self, topic_arn: str | None, next_token: str | None) -> Page:
        if topic_arn is not None:
            self.topic(topic_arn)
        subs = self.repo.subscriptions(topic_arn)
        return _page([s.arn for s in subs], subs, next_token)

    def subscription(self, arn: str) -> Subscription | None:
        return self.repo.get_subscription(arn)

    def _check_endpoint(self, protocol: str, endpoint: str) -> None:
        if not endpoint:
            raise invalid(f"Endpoint: a {protocol} subscription needs an endpoint.")
        if protocol in ("http", "https"):
            parts = urlsplit(endpoint)
            if parts.scheme != protocol or not parts.hostname:
                raise invalid(f"Endpoint: must be a {protocol}:// URL for protocol {protocol}.")
        elif protocol == "email":
            if not _EMAIL_RE.fullmatch(endpoint):
                raise invalid("Endpoint: not an email address.")
        elif not self._validate_apprise(endpoint):
            raise invalid("Endpoint: Apprise does not recognise this URL; see Apprise's list of services.")

    def _expired(self, sub: Subscription) -> bool:
        return not sub.confirmed and self._now() - sub.created > CONFIRMATION_TTL.total_seconds()

    # ---- publishing -----------------------------------------------------------------------
    def publish(self, topic_arn: str, message: str, subject: str | None = None, structure: str | None = None,
                dedup_key: str | None = None) -> str:
        """Queue `message` for every confirmed subscription of the topic; its MessageId. With a
        `dedup_key` seen before, the MessageId of that publish, and nothing queued again."""
        topic = self.topic(topic_arn)
        _check_message(message, subject)
        if structure not in (None, "", "json"):
            raise invalid("MessageStructure: the only structure is json.")
        per_protocol = _structured(message) if structure == "json" else None
        message_id = str(uuid.uuid4())
        now = self.clock.now()
        base = {"Type": "Notification", "MessageId": message_id, "TopicArn": topic.arn,
                **({"Subject": subject} if subject else {}), "Timestamp": sns_time(now)}
        rows = []
        for sub in self.repo.subscriptions(topic.arn):
            if sub.confirmed:
                text = message if per_protocol is None else per_protocol.get(sub.protocol, per_protocol["default"])
                rows.append(NewDelivery(sub.arn, message_id, {**base, "Message": text}, now.timestamp()))
        done = self.repo.queue(rows, message_id, dedup_key, now.timestamp())
        if done == message_id and rows:
            self._queued()
        return done

    def delivery_counts(self) -> DeliveryCounts:
        """Deliveries still being tried and given up (for the status report)."""
        return self.repo.counts()

    # ---- what subscribers receive ---------------------------------------------------------
    def outgoing(self, message: Mapping[str, str], sub: Subscription) -> Outgoing:
        """The signed message for `sub` (signing at send time: the document is the same bytes at
        every attempt, since the message and its Timestamp were fixed when it was queued)."""
        unsubscribe = self.unsubscribe_url(sub)
        document = signed(message, self.identity(), self.certificate_url())
        if message["Type"] == "Notification":
            document["UnsubscribeURL"] = unsubscribe
            subject = message.get("Subject") or DEFAULT_EMAIL_SUBJECT
            text = (f"{message['Message']}\n\n--\nTo stop receiving notifications from this topic, visit:\n"
                    f"{unsubscribe}\n")
        else:
            topic_name = sub.topic_arn.rsplit(":", 1)[1]
            subject = f"Subscription Confirmation: {topic_name}"
            text = (f"You have chosen to subscribe to the topic:\n{sub.topic_arn}\n\nTo confirm this "
                    f"subscription, visit the link below (if this was in error, do nothing):\n"
                    f"{message['SubscribeURL']}\n")
        return Outgoing(sub.protocol, sub.endpoint, sub.arn, sub.topic_arn, message["MessageId"], message["Type"],
                        _ordered(document), subject, text)

    def _confirmation(self, sub: Subscription, message_id: str) -> dict[str, str]:
        return {"Type": "SubscriptionConfirmation", "MessageId": message_id, "Token": sub.token,
                "TopicArn": sub.topic_arn,
                "Message": f"You have chosen to subscribe to the topic {sub.topic_arn}.\nTo confirm the "
                           "subscription, visit the SubscribeURL included in this message.",
                "SubscribeURL": self.subscribe_url(sub), "Timestamp": sns_time(self.clock.now())}

    def subscribe_url(self, sub: Subscription) -> str:
        return (f"{self.base_url}/?Action=ConfirmSubscription&TopicArn={quote(sub.topic_arn, safe='')}"
                f"&Token={sub.token}")

    def unsubscribe_url(self, sub: Subscription) -> str:
        # SNS's UnsubscribeURL names only the subscription; trailkeeper's also carries its token, so
        # that only someone who received its messages can remove it without credentials.
        return (f"{self.base_url}/?Action=Unsubscribe&SubscriptionArn={quote(sub.arn, safe='')}"
                f"&Token={sub.token}")

    # ---- the signing identity -------------------------------------------------------------
    def identity(self) -> SigningIdentity:
        """The key messages are signed with: made once, sealed by the root of trust, kept."""
        with self._lock:
            if self._identity is None:
                stored = self.repo.signing_identity()
                if stored is None:
                    made = SigningIdentity.create(f"trailkeeper SNS {self.account_id} {self.region}",
                                                  self.clock.now())
                    sealed = self.keyring.encrypt(made.private_pem(), _SIGNING_CONTEXT)
                    self.repo.save_signing_identity(sealed, made.certificate_pem, self._now())
                    stored = self.repo.signing_identity()
                    assert stored is not None
                sealed_key, certificate = stored
                self._identity = SigningIdentity.load(self.keyring.decrypt(sealed_key, _SIGNING_CONTEXT), certificate)
            return self._identity

    def certificate_name(self) -> str:
        digest = hashlib.sha256(self.identity().certificate_pem).hexdigest()[:32]
        return f"{CERTIFICATE_PREFIX}{digest}{CERTIFICATE_SUFFIX}"

    def certificate_url(self) -> str:
        return f"{self.base_url}{self.certificate_name()}"

    def certificate(self, path: str) -> bytes | None:
        """The PEM certificate served at `path`, or None when `path` names no certificate."""
        return self.identity().certificate_pem if path == self.certificate_name() else None

    def _now(self) -> float:
        return self.clock.now().timestamp()


def _parse_topic_arn(arn: str) -> tuple[str, str, str]:
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sns"] or not _TOPIC_NAME_RE.fullmatch(parts[5]):
        raise invalid(f"TopicArn: {arn!r} is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME).")
    return parts[3], parts[4], parts[5]


def _same_token(stored: str, given: str) -> bool:
    # In constant time; as bytes, since a token from a URL may hold any character.
    return secrets.compare_digest(stored.encode("utf-8"), given.encode("utf-8"))


def _check_message(message: str, subject: str | None) -> None:
    if not message:
        raise invalid("Message: Empty message; send a non-empty Message.")
    if len(message.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise invalid(f"Message too long: at most {MAX_MESSAGE_BYTES} bytes (UTF-8).")
    if subject is not None and subject != "":
        printable = all(" " <= c <= "~" for c in subject)
        if len(subject) > MAX_SUBJECT_CHARS or not printable or subject[0] == " ":
            raise invalid(f"Subject: at most {MAX_SUBJECT_CHARS} printable ASCII characters, no line breaks, "
                          "not starting with a space.")


def _structured(message: str) -> dict[str, str]:
    try:
        parsed = orjson.loads(message)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise invalid("Message Structure - JSON message body failed to parse; with MessageStructure json the "
                      "Message is a JSON object of strings.")
    if "default" not in parsed:
        raise invalid("Message Structure - No default entry in JSON message body.")
    return parsed


def _page(keys: Sequence[str], items: Sequence[Any], next_token: str | None) -> Page:
    start = 0
    if next_token:
        if not next_token.startswith("arn:aws:sns:"):
            raise invalid("NextToken: pass the NextToken of the previous answer.")
        # The token is the last key of the previous page: entries added or removed meanwhile
        # never make a page repeat or skip one that stayed.
        start = next((i for i, key in enumerate(keys) if key > next_token), len(keys))
    chunk = list(items[start:start + PAGE_SIZE])
    more = start + PAGE_SIZE < len(items)
    return Page(chunk, keys[start + PAGE_SIZE - 1] if more else None)


_DOCUMENT_ORDER = ("Type", "MessageId", "Token", "TopicArn", "Subject", "Message", "SubscribeURL", "Timestamp",
                   "SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL")


def _ordered(document: Mapping[str, str]) -> dict[str, str]:
    """The fields in the order SNS writes them (receivers should not care; some log them raw)."""
    ordered = {k: document[k] for k in _DOCUMENT_ORDER if k in document}
    return {**ordered, **{k: v for k, v in document.items() if k not in ordered}}


def _apprise_accepts(url: str) -> bool:
    import apprise  # imported here: only subscriptions of the apprise protocol need it

    return apprise.Apprise.instantiate(url) is not None
