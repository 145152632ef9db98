"""SNS message signatures: the string to sign (known answers), signing and verifying, and every
tampered field refused (one named case each)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trailkeeper.notify.signing import (
    SigningIdentity,
    SnsSignatureError,
    signed,
    string_to_sign,
    verify,
)

NOW = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)
CERT_URL = "http://127.0.0.1:4566/sns/SimpleNotificationService.pem"
NOTIFICATION = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
    "Subject": 'ALARM: "root-usage" in US East (N. Virginia)',
    "Message": '{"AlarmName":"root-usage"}\nsecond line',
    "Timestamp": "2026-12-06T01:00:00.000Z",
}
CONFIRMATION = {
    "Type": "SubscriptionConfirmation",
    "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
    "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:alerts.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
    "SubscribeURL": "http://127.0.0.1:4566/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:alerts&Token=2336",
    "Timestamp": "2026-12-06T01:00:00.000Z",
}


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return SigningIdentity.create("sns.trailkeeper.local", NOW)


def test_the_string_to_sign_of_a_notification() -> None:
    assert string_to_sign(NOTIFICATION) == (
        b"Message\n{\"AlarmName\":\"root-usage\"}\nsecond line\n"
        b"MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
        b"Subject\nALARM: \"root-usage\" in US East (N. Virginia)\n"
        b"Timestamp\n2026-12-06T01:00:00.000Z\n"
        b"TopicArn\narn:aws:sns:us-east-1:123456789012:alerts\n"
        b"Type\nNotification\n")


def test_a_notification_without_subject_signs_without_it() -> None:
    plain = {k: v for k, v in NOTIFICATION.items() if k != "Subject"}
    assert b"Subject" not in string_to_sign(plain)
    assert string_to_sign(plain).startswith(b"Message\n") and string_to_sign(plain).endswith(b"Type\nNotification\n")


def test_the_string_to_sign_of_a_confirmation() -> None:
    c = CONFIRMATION
    assert string_to_sign(c).decode() == (
        f"Message\n{c['Message']}\nMessageId\n{c['MessageId']}\nSubscribeURL\n{c['SubscribeURL']}\n"
        f"Timestamp\n{c['Timestamp']}\nToken\n{c['Token']}\nTopicArn\n{c['TopicArn']}\n"
        "Type\nSubscriptionConfirmation\n")


@pytest.mark.parametrize("message, problem", [
    ({**NOTIFICATION, "Type": "Whatever"}, "not signed"),
    ({k: v for k, v in NOTIFICATION.items() if k != "TopicArn"}, "lacks TopicArn"),
    ({k: v for k, v in CONFIRMATION.items() if k != "Token"}, "lacks Token"),
], ids=["unknown type", "notification without TopicArn", "confirmation without Token"])
def test_messages_that_cannot_be_signed_are_refused(message: dict[str, str], problem: str) -> None:
    with pytest.raises(SnsSignatureError, match=problem):
        string_to_sign(message)


def test_a_signed_message_verifies_with_the_certificate_alone(identity: SigningIdentity) -> None:
    for message in (NOTIFICATION, CONFIRMATION):
        sent = signed(message, identity, CERT_URL)
        assert sent["SignatureVersion"] == "2" and sent["SigningCertURL"] == CERT_URL
        assert verify(sent, identity.certificate_pem)


def test_the_signature_is_sha256_with_rsa_pkcs1_as_receivers_check_it(identity: SigningIdentity) -> None:
    # What a receiver does by hand (the AWS documentation's steps), with nothing of ours.
    sent = signed(NOTIFICATION, identity, CERT_URL)
    key = x509.load_pem_x509_certificate(identity.certificate_pem).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    fields = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    payload = "".join(f"{name}\n{sent[name]}\n" for name in fields).encode()
    key.verify(base64.b64decode(sent["Signature"]), payload, padding.PKCS1v15(), hashes.SHA256())


TAMPERED = {
    "message changed": ("Message", "{\"AlarmName\":\"other\"}"),
    "subject changed": ("Subject", "OK: nothing to see"),
    "topic changed": ("TopicArn", "arn:aws:sns:us-east-1:123456789012:other"),
    "timestamp changed": ("Timestamp", "2026-12-06T02:00:00.000Z"),
    "message id changed": ("MessageId", "00000000-0000-0000-0000-000000000000"),
    "type changed": ("Type", "SubscriptionConfirmation"),
    "signature not base64": ("Signature", "!!!"),
    "signature of another message": ("Signature", ""),
    "version 1 claimed": ("SignatureVersion", "1"),
    "unknown version": ("SignatureVersion", "3"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_message_is_refused(identity: SigningIdentity, case: str) -> None:
    sent = signed(NOTIFICATION, identity, CERT_URL)
    field, value = TAMPERED[case]
    if case == "signature of another message":
        value = signed({**NOTIFICATION, "Message": "x"}, identity, CERT_URL)["Signature"]
    assert verify(sent, identity.certificate_pem)
    assert not verify({**sent, field: value}, identity.certificate_pem)


def test_another_certificate_does_not_verify(identity: SigningIdentity) -> None:
    other = SigningIdentity.create("sns.trailkeeper.local", NOW)
    assert not verify(signed(NOTIFICATION, identity, CERT_URL), other.certificate_pem)
    assert not verify(signed(NOTIFICATION, identity, CERT_URL), b"not a certificate")


def test_the_identity_survives_storing_its_key(identity: SigningIdentity) -> None:
    again = SigningIdentity.load(identity.private_pem(), identity.certificate_pem)
    assert verify(signed(NOTIFICATION, again, CERT_URL), identity.certificate_pem)
    cert = x509.load_pem_x509_certificate(identity.certificate_pem)
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
