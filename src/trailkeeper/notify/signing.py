"""SNS message signatures, as Amazon SNS makes them, so a receiver's standard SNS validator
accepts trailkeeper's messages.

The string to sign is the message's fields, each as its name, a newline, its value and a
newline, in byte order of the names: for a `Notification` Message, MessageId, Subject (only
when present), Timestamp, TopicArn and Type; for a `SubscriptionConfirmation` or
`UnsubscribeConfirmation` Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn and Type.
SignatureVersion 2 signs it with SHA256withRSA (PKCS#1 v1.5), version 1 with SHA1withRSA; the
signature travels base64-encoded in `Signature`, the X.509 certificate of the key at
`SigningCertURL` (served by trailkeeper itself: the key never leaves it).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from trailkeeper.errors import TrailkeeperError

NOTIFICATION = "Notification"
CONFIRMATION_TYPES = ("SubscriptionConfirmation", "UnsubscribeConfirmation")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
OPTIONAL_FIELDS = frozenset({"Subject"})
SIGNATURE_VERSION = "2"
_HASHES: Mapping[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
KEY_BITS = 2048
CERTIFICATE_DAYS = 3650


class SnsSignatureError(TrailkeeperError):
    """A message cannot be signed or verified as it stands."""


def fields_of(message_type: str) -> tuple[str, ...]:
    """The fields a message of this type signs, in signing order."""
    if message_type == NOTIFICATION:
        return NOTIFICATION_FIELDS
    if message_type in CONFIRMATION_TYPES:
        return CONFIRMATION_FIELDS
    raise SnsSignatureError(f"SNS message Type {message_type!r} is not signed",
                            f"Type must be {NOTIFICATION} or one of {', '.join(CONFIRMATION_TYPES)}")


def string_to_sign(message: Mapping[str, str]) -> bytes:
    """The bytes SNS signs for `message` (a Notification or a (un)subscribe confirmation)."""
    parts: list[str] = []
    missing: list[str] = []
    for name in fields_of(message.get("Type", "")):
        value = message.get(name)
        if value is None:
            if name not in OPTIONAL_FIELDS:
                missing.append(name)
            continue
        parts.append(f"{name}\n{value}\n")
    if missing:
        raise SnsSignatureError(f"SNS message lacks {', '.join(missing)}",
                                "build the message with every field its Type signs")
    return "".join(parts).encode("utf-8")


@dataclass(frozen=True)
class SigningIdentity:
    """The RSA key SNS messages are signed with and its self-signed certificate (PEM)."""

    key: rsa.RSAPrivateKey
    certificate_pem: bytes

    @classmethod
    def create(cls, common_name: str, now: datetime, days: int = CERTIFICATE_DAYS) -> SigningIdentity:
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
        return cls(key, cert.public_bytes(serialization.Encoding.PEM))

    def private_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM: the caller seals it (the root of trust) before storing."""
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @classmethod
    def load(cls, private_pem: bytes, certificate_pem: bytes) -> SigningIdentity:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SnsSignatureError("the stored SNS signing key is not an RSA key",
                                    "delete it so a new signing identity is created")
        return cls(key, certificate_pem)

    def sign(self, message: Mapping[str, str], version: str = SIGNATURE_VERSION) -> str:
        """The base64 `Signature` of `message` under SignatureVersion `version`."""
        digest = _hash_of(version)
        signature = self.key.sign(string_to_sign(message), padding.PKCS1v15(), digest())
        return base64.b64encode(signature).decode("ascii")


def signed(message: Mapping[str, str], identity: SigningIdentity, certificate_url: str) -> dict[str, str]:
    """`message` with SignatureVersion, Signature and SigningCertURL added (SignatureVersion 2)."""
    return {**message, "SignatureVersion": SIGNATURE_VERSION, "Signature": identity.sign(message),
            "SigningCertURL": certificate_url}


def verify(message: Mapping[str, str], certificate_pem: bytes) -> bool:
    """Whether `message`'s Signature is valid for the certificate's key (what a receiver checks)."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        public_key = certificate.public_key()
        signature = base64.b64decode(message.get("Signature", ""), validate=True)
        digest = _hash_of(message.get("SignatureVersion", ""))
        payload = string_to_sign(message)
    except (ValueError, binascii.Error, SnsSignatureError):
        return False
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        public_key.verify(signature, payload, padding.PKCS1v15(), digest())
    except InvalidSignature:
        return False
    return True


def _hash_of(version: str) -> type[hashes.HashAlgorithm]:
    digest = _HASHES.get(version)
    if digest is None:
        raise SnsSignatureError(f"SignatureVersion {version!r} is not one SNS uses", "use 1 or 2")
    return digest
