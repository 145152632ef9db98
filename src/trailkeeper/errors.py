"""Error hierarchy, one branch per origin. Every message says what was wrong and what to do."""

from __future__ import annotations


class TrailkeeperError(Exception):
    """Base of every error trailkeeper raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint

    def diagnostics(self) -> str:
        text = str(self)
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class ConfigError(TrailkeeperError):
    """Settings are missing, malformed or inconsistent."""


class StorageError(TrailkeeperError):
    """The object store failed (I/O error, permissions, full disk)."""


class ObjectNotFoundError(StorageError):
    """The requested object key does not exist."""


class ObjectExistsError(StorageError):
    """A create-exclusive write found different bytes already stored under the key."""


class StoreFormatError(StorageError):
    """The store's format-version marker is missing or unsupported."""


class SigningKeyError(TrailkeeperError):
    """Signing keys or the keyring are unusable (missing, corrupt, undecryptable)."""


class SpoolError(TrailkeeperError):
    """The durable spool could not append or read."""


class RecordError(TrailkeeperError):
    """An ingested record (or batch) is invalid; names the record index and field path."""

    def __init__(self, message: str, index: int | None = None, path: str = "") -> None:
        self.index = index
        self.path = path
        where = ""
        if index is not None:
            where = f"record {index}"
        if path:
            where = f"{where}, field {path}" if where else f"field {path}"
        super().__init__(f"{where}: {message}" if where else message)


class HistoryError(TrailkeeperError):
    """The event-history store failed or a lookup request is invalid."""


class AuthError(TrailkeeperError):
    """A request could not be authenticated or is not authorised.

    `code` is the AWS error code the API answers with (e.g. SignatureDoesNotMatch).
    """

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


class IdentityError(TrailkeeperError):
    """User or access-key management failed (unknown user, too many keys, ...)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


class TrailError(TrailkeeperError):
    """A trail operation failed; `code` is the CloudTrail exception name."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


class ValidationRunError(TrailkeeperError):
    """The validator could not run at all (unknown trail, unreadable data dir)."""


class KeyProviderUnavailableError(StorageError):
    """A remote root of trust (OpenBao/Vault Transit, AWS KMS) is unreachable or refuses.

    A StorageError so that delivery treats it like a store outage: wait, retry, report."""


class BacklogFullError(TrailkeeperError):
    """Too many undelivered events wait for a failing destination; the fail-closed policy refuses more."""


class KmsError(TrailkeeperError):
    """A KMS operation failed; `code` is the AWS KMS exception name (NotFoundException, ...)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


class EnvelopeError(TrailkeeperError):
    """An encrypted log file cannot be opened: tampered, moved, or its key is unusable.

    `reason` is a short machine-readable cause (e.g. CIPHERTEXT_TAMPERED, CONTEXT_MISMATCH)."""

    def __init__(self, reason: str, message: str, hint: str = "") -> None:
        self.reason = reason
        super().__init__(message, hint)
