"""SNS notifications end to end, against a real server driven by the unmodified AWS CLI: an
HTTP subscriber confirms by fetching SubscribeURL, a CloudWatch alarm reaches it within a second
as a signed notification (checked with notify.signing.verify and, independently, with
`cryptography` alone over the canonical string), an email arrives at a real SMTP server over
STARTTLS with authentication, a receiver that is down is retried, and a notification owed when
the server is killed with SIGKILL is delivered after the restart.

Nothing is faked: the subscriber is a threading http.server on 127.0.0.1, the mail server is
aiosmtpd with a certificate made here, the server is `trailkeeper server`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from tests.e2e.harness import Server, free_port, wait_until
from tests.e2e.sns_subscriber import Subscriber

from trailkeeper.notify.signing import verify

SMTP_USER, SMTP_PASSWORD = "trailkeeper", "s3cret-mail"
NAMESPACE = "App/Security"


# ---- a mail server: STARTTLS and AUTH ---------------------------------------------------------------
def _certificate(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content), session.ssl is not None))
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            SMTP_USER.encode(), SMTP_PASSWORD.encode())
        if ok:
            self.logins.append(mechanism)
        return AuthResult(success=ok)


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mailbox, int, Path]]:
    cert, key = _certificate(tmp_path_factory.mktemp("smtp"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            auth_required=True, authenticator=mailbox.authenticate)
    controller.start()
    yield mailbox, port, cert
    controller.stop()


def _start(data_dir: Path, smtp_port: int, ca: Path, server: Server | None = None) -> Server:
    srv = server or Server(data_dir)
    if server is None:
        srv.init()
        (data_dir / "trailkeeper.toml").write_text(
            f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsender = "alerts@trailkeeper.test"\n'
            f'username = "{SMTP_USER}"\npassword = "{SMTP_PASSWORD}"\nca_file = "{ca}"\n')
    srv.start()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mail: tuple[Mailbox, int, Path]) -> Iterator[Server]:
    srv = _start(tmp_path_factory.mktemp("sns-e2e") / "data", mail[1], mail[2])
    yield srv
    assert srv.terminate() == 0


def sns(server: Server, *args: str) -> Any:
    return server.aws_json("sns", *args)


def _failing(server: Server, *args: str) -> str:
    done = server.aws("sns", *args)
    assert done.returncode != 0, f"aws sns {' '.join(args)} succeeded"
    return done.stderr


def _independent_check(document: dict[str, str], certificate_pem: bytes) -> None:
    """The receiver's check as AWS documents it, with cryptography alone: the canonical string
    of the message type's fields, SHA256withRSA, the certificate's key."""
    fields = (("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type") if document["Type"] == "Notification"
              else ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"))
    canonical = "".join(f"{name}\n{document[name]}\n" for name in fields if name in document).encode()
    key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(document["Signature"]), canonical, padding.PKCS1v15(), hashes.SHA256())


def _subscribe_and_confirm(server: Server, topic: str, subscriber: Subscriber) -> str:
    """Subscribe an HTTP endpoint; it confirms by GETting SubscribeURL, unsigned, as a receiver does."""
    answer = sns(server, "subscribe", "--topic-arn", topic, "--protocol", "http",
                 "--notification-endpoint", subscriber.url)
    assert answer == {"SubscriptionArn": "pending confirmation"}
    [confirmation] = subscriber.wait_for("SubscriptionConfirmation")
    confirmed = httpx.get(confirmation.body["SubscribeURL"], timeout=10)
    assert confirmed.status_code == 200 and b"<ConfirmSubscriptionResult>" in confirmed.content
    subs = sns(server, "list-subscriptions-by-topic", "--topic-arn", topic)["Subscriptions"]
    [arn] = [s["SubscriptionArn"] for s in subs if s["Endpoint"] == subscriber.url]
    assert arn.startswith(topic + ":")
    return str(arn)


def _breaching_alarm(server: Server, name: str, topic: str) -> None:
    server.aws_json("cloudwatch", "put-metric-alarm", "--alarm-name", name, "--namespace", NAMESPACE,
                    "--metric-name", name, "--statistic", "Sum", "--period", "300", "--evaluation-periods", "1",
                    "--threshold", "1", "--comparison-operator", "GreaterThanOrEqualToThreshold",
                    "--treat-missing-data", "notBreaching", "--alarm-actions", topic)
    server.aws_json("cloudwatch", "put-metric-data", "--namespace", NAMESPACE, "--metric-name", name,
                    "--value", "1")


# ---- the tests ------------------------------------------------------------------------------------
def test_an_alarm_reaches_an_http_subscriber_within_a_second_signed(server: Server) -> None:
    subscriber = Subscriber()
    subscriber.up()
    topic = sns(server, "create-topic", "--name", "security-alarms")["TopicArn"]
    sub_arn = _subscribe_and_confirm(server, topic, subscriber)
    [confirmation] = subscriber.of_type("SubscriptionConfirmation")
    assert confirmation.headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert confirmation.headers["content-type"] == "text/plain; charset=UTF-8"

    _breaching_alarm(server, "RootLogins", topic)
    [note] = subscriber.wait_for("Notification", timeout=10)
    body = note.body
    message = json.loads(body["Message"])
    changed = dt.datetime.strptime(message["StateChangeTime"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    assert note.at - changed < 1.0, f"alarm → subscriber took {note.at - changed:.3f} s"
    # A new alarm starts INSUFFICIENT_DATA; the server's periodic evaluation may already have
    # moved it to OK (notBreaching, no data yet) before the datapoint arrived.
    assert (message["AlarmName"], message["NewStateValue"]) == ("RootLogins", "ALARM")
    assert message["OldStateValue"] in ("INSUFFICIENT_DATA", "OK")
    assert body["Subject"] == 'ALARM: "RootLogins" in US East (N. Virginia)'
    assert note.headers["x-amz-sns-message-type"] == "Notification"
    assert note.headers["x-amz-sns-message-id"] == body["MessageId"]
    assert note.headers["x-amz-sns-topic-arn"] == topic and note.headers["x-amz-sns-subscription-arn"] == sub_arn

    certificate = httpx.get(body["SigningCertURL"], timeout=10)  # unauthenticated, as on AWS
    assert certificate.status_code == 200
    for document in (body, confirmation.body):
        assert verify(document, certificate.content)
        _independent_check(document, certificate.content)
    tampered = {**body, "Message": body["Message"].replace("ALARM", "OK")}
    assert not verify(tampered, certificate.content)

    # The UnsubscribeURL works unsigned, but only with the subscription's own token.
    forged = body["UnsubscribeURL"].rsplit("&Token=", 1)[0] + "&Token=" + "0" * 128
    assert httpx.get(forged, timeout=10).status_code == 403
    assert httpx.get(body["UnsubscribeURL"], timeout=10).status_code == 200
    assert sns(server, "list-subscriptions-by-topic", "--topic-arn", topic)["Subscriptions"] == []
    subscriber.down()


def test_the_aws_cli_drives_every_sns_operation(server: Server) -> None:
    subscriber = Subscriber()
    subscriber.up()
    topic = sns(server, "create-topic", "--name", "ops", "--attributes", "DisplayName=Ops")["TopicArn"]
    assert sns(server, "create-topic", "--name", "ops", "--attributes", "DisplayName=Ops")["TopicArn"] == topic
    assert topic in [t["TopicArn"] for t in sns(server, "list-topics")["Topics"]]
    sns(server, "set-topic-attributes", "--topic-arn", topic, "--attribute-name", "DisplayName",
        "--attribute-value", "Operations")
    attrs = sns(server, "get-topic-attributes", "--topic-arn", topic)["Attributes"]
    assert (attrs["DisplayName"], attrs["SubscriptionsPending"]) == ("Operations", "0")

    answer = sns(server, "subscribe", "--topic-arn", topic, "--protocol", "http", "--notification-endpoint",
                 subscriber.url, "--return-subscription-arn")
    sub_arn = answer["SubscriptionArn"]
    [confirmation] = subscriber.wait_for("SubscriptionConfirmation")
    assert [s["SubscriptionArn"] for s in sns(server, "list-subscriptions")["Subscriptions"]
            if s["TopicArn"] == topic] == ["PendingConfirmation"]
    confirmed = sns(server, "confirm-subscription", "--topic-arn", topic, "--token", confirmation.body["Token"])
    assert confirmed["SubscriptionArn"] == sub_arn
    message_id = sns(server, "publish", "--topic-arn", topic, "--message", "deploy finished",
                     "--subject", "Deploy")["MessageId"]
    [note] = subscriber.wait_for("Notification")
    assert (note.body["MessageId"], note.body["Message"], note.body["Subject"]) == (message_id, "deploy finished",
                                                                                    "Deploy")
    sns(server, "unsubscribe", "--subscription-arn", sub_arn)
    assert sns(server, "list-subscriptions-by-topic", "--topic-arn", topic)["Subscriptions"] == []

    assert "(NotFound)" in _failing(server, "get-topic-attributes", "--topic-arn", topic + "-missing")
    assert "(InvalidParameter)" in _failing(server, "subscribe", "--topic-arn", topic, "--protocol", "sqs",
                                            "--notification-endpoint", "arn:aws:sqs:us-east-1:1:q")
    assert "(InvalidParameter)" in _failing(server, "confirm-subscription", "--topic-arn", topic, "--token", "0")
    assert "(NotFound)" in _failing(server, "unsubscribe", "--subscription-arn", sub_arn)
    assert "(InvalidParameter)" in _failing(server, "publish", "--topic-arn", topic, "--message", "x",
                                            "--message-group-id", "g")
    sns(server, "delete-topic", "--topic-arn", topic)
    assert topic not in [t["TopicArn"] for t in sns(server, "list-topics")["Topics"]]
    found = server.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                            "AttributeKey=EventName,AttributeValue=Publish")
    records = [json.loads(e["CloudTrailEvent"]) for e in found["Events"]]
    [record] = [r for r in records if r["requestParameters"]["TopicArn"] == topic and "errorCode" not in r]
    [refused] = [r for r in records if r["requestParameters"]["TopicArn"] == topic and "errorCode" in r]
    assert refused["errorCode"] == "InvalidParameter" and record["eventSource"] == "sns.amazonaws.com"
    assert record["responseElements"] == {"MessageId": message_id}
    assert record["requestParameters"]["Message"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    subscriber.down()


def test_an_email_subscription_is_confirmed_by_link_and_sent_over_starttls_with_auth(
        server: Server, mail: tuple[Mailbox, int, Path]) -> None:
    mailbox = mail[0]
    topic = sns(server, "create-topic", "--name", "mail-alerts")["TopicArn"]
    sns(server, "subscribe", "--topic-arn", topic, "--protocol", "email", "--notification-endpoint",
        "oncall@example.com")
    assert wait_until(lambda: len(mailbox.messages) >= 1, 15)
    recipients, confirmation, over_tls = mailbox.messages[0]
    assert recipients == ["oncall@example.com"] and over_tls and mailbox.logins
    text = confirmation.get_payload(decode=True).decode()
    [link] = [line for line in text.splitlines() if "Action=ConfirmSubscription" in line]
    with urllib.request.urlopen(link, timeout=10) as clicked:  # what a mail reader's click does
        assert clicked.status == 200
    message_id = sns(server, "publish", "--topic-arn", topic, "--message", "root signed in",
                     "--subject", "Root login")["MessageId"]
    assert wait_until(lambda: len(mailbox.messages) >= 2, 15)
    _, note, _ = mailbox.messages[1]
    assert note["Subject"] == "Root login" and note["X-Amz-Sns-Message-Id"] == message_id
    assert "root signed in" in note.get_payload(decode=True).decode()


def test_a_receiver_that_is_down_is_retried_and_every_failure_is_recorded(server: Server) -> None:
    subscriber = Subscriber()
    subscriber.up()
    topic = sns(server, "create-topic", "--name", "flaky")["TopicArn"]
    _subscribe_and_confirm(server, topic, subscriber)
    subscriber.down()
    message_id = sns(server, "publish", "--topic-arn", topic, "--message", "while you were out")["MessageId"]

    def failures() -> list[dict[str, Any]]:
        found = server.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",
                                "AttributeKey=EventName,AttributeValue=SnsDeliveryFailed")
        details = [json.loads(e["CloudTrailEvent"])["serviceEventDetails"] for e in found["Events"]]
        return [d for d in details if d["messageId"] == message_id]

    assert wait_until(lambda: len(failures()) >= 2, 20, 0.5)
    subscriber.up()
    [note] = subscriber.wait_for("Notification", timeout=30)
    assert note.body["MessageId"] == message_id and note.body["Message"] == "while you were out"


def test_a_notification_owed_at_sigkill_is_delivered_after_the_restart(
        tmp_path: Path, mail: tuple[Mailbox, int, Path]) -> None:
    srv = _start(tmp_path / "data", mail[1], mail[2])
    subscriber = Subscriber()
    subscriber.up()
    try:
        topic = sns(srv, "create-topic", "--name", "crash")["TopicArn"]
        _subscribe_and_confirm(srv, topic, subscriber)
        certificate = httpx.get(subscriber.of_type("SubscriptionConfirmation")[0].body["SigningCertURL"]).content
        subscriber.down()
        _breaching_alarm(srv, "AfterCrash", topic)
        # The transition happened and its notification is queued: the first attempt failed.
        found = lambda: srv.aws_json("cloudtrail", "lookup-events", "--lookup-attributes",  # noqa: E731
                                     "AttributeKey=EventName,AttributeValue=SnsDeliveryFailed")["Events"]
        assert wait_until(lambda: len(found()) >= 1, 20, 0.5)
        srv.kill9()
        subscriber.up()
        srv.start()
        notes = subscriber.wait_for("Notification", timeout=30)
        assert {n.body["MessageId"] for n in notes} == {notes[0].body["MessageId"]}  # at least once, one message
        assert json.loads(notes[0].body["Message"])["AlarmName"] == "AfterCrash"
        after = httpx.get(notes[0].body["SigningCertURL"], timeout=10).content
        assert after == certificate and verify(notes[0].body, after)  # the key survived the crash too
    finally:
        subscriber.down()
        if srv.proc is not None and srv.proc.poll() is None:
            srv.terminate()
