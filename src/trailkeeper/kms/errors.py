"""The KMS's errors, with AWS KMS's codes (KmsError from trailkeeper.errors)."""

from __future__ import annotations

from trailkeeper.errors import KeyProviderUnavailableError, KmsError


class KmsUnavailableError(KmsError, KeyProviderUnavailableError):
    """The root of trust could not seal or unseal key material (outage, refusal).

    On the wire it is DependencyTimeoutException (503); it is also a
    KeyProviderUnavailableError (so a StorageError), which delivery treats as "wait and retry".
    """

    def __init__(self, message: str) -> None:
        KmsError.__init__(self, "DependencyTimeoutException", message, 503)


def invalid_ciphertext(why: str) -> KmsError:
    return KmsError("InvalidCiphertextException",
                    f"The ciphertext is invalid: {why}. Pass the unmodified CiphertextBlob and the "
                    "exact EncryptionContext it was encrypted with.")


def validation(message: str) -> KmsError:
    return KmsError("ValidationException", message)


def not_found(message: str) -> KmsError:
    return KmsError("NotFoundException", message)
