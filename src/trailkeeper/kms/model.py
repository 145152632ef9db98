"""The KMS's vocabulary: limits, key states and their rules (AWS's key-state table), the
results of its operations, ARNs, and what it asks of the rest of trailkeeper (KeyUsers)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, Protocol, TypeVar

from trailkeeper.errors import KmsError
from trailkeeper.kms.blob import material_id
from trailkeeper.kms.errors import validation
from trailkeeper.kms.repository import KeyRecord

MATERIAL_BYTES = 32
MIN_PENDING_DAYS, MAX_PENDING_DAYS, DEFAULT_PENDING_DAYS = 7, 30, 30
MIN_ROTATION_DAYS, MAX_ROTATION_DAYS, DEFAULT_ROTATION_DAYS = 90, 2560, 365
MAX_PLAINTEXT_BYTES = 4096
MAX_DATA_KEY_BYTES = 1024
MAX_LIMIT, DEFAULT_LIMIT = 1000, 100
MAX_TAGS = 50
ENABLED, DISABLED, PENDING_DELETION = "Enabled", "Disabled", "PendingDeletion"
DAY_US = 86_400_000_000
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ALIAS_RE = re.compile(r"alias/[a-zA-Z0-9/_-]+")
_RESERVED_ALIAS_PREFIX = "alias/aws/"
_MAX_ALIAS_LEN = 256

T = TypeVar("T")


class KeyUsers(Protocol):
    """Who uses a key in a way that forbids deleting it (the service: its logging trails)."""

    def trails_using_key(self, key_arn: str) -> list[str]:
        """Names of the logging trails that encrypt with the key `key_arn`."""
        ...


class NoKeyUsers:
    """Nothing uses any key (a KMS on its own, as in tests and offline tools)."""

    def trails_using_key(self, key_arn: str) -> list[str]:
        return []


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def alias_arn(region: str, account_id: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{alias_name}"


def to_us(when: datetime) -> int:
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


# ---- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyMetadata:
    key_id: str
    arn: str
    account_id: str
    created: datetime
    description: str
    state: str
    current_version: int
    deletion_date: datetime | None = None
    pending_window_days: int | None = None

    @property
    def enabled(self) -> bool:
        return self.state == ENABLED

    @property
    def current_material_id(self) -> str:
        return material_id(self.key_id, self.current_version)


@dataclass(frozen=True)
class RotationStatus:
    key_arn: str
    enabled: bool
    period_days: int | None
    next_rotation: datetime | None


@dataclass(frozen=True)
class AliasEntry:
    name: str
    arn: str
    target_key_id: str
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    arn: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_marker: str | None


@dataclass(frozen=True)
class Encrypted:
    blob: bytes
    key_arn: str
    key_version: int


@dataclass(frozen=True)
class DataKey:
    plaintext: bytes
    blob: bytes
    key_arn: str
    key_version: int


@dataclass(frozen=True)
class Decrypted:
    plaintext: bytes
    key_arn: str
    key_version: int


@dataclass(frozen=True)
class ReEncrypted:
    blob: bytes
    key_arn: str
    key_version: int
    source_key_arn: str
    source_key_version: int


@dataclass(frozen=True)
class Maintenance:
    rotated: list[str] = field(default_factory=list)  # key ARNs given new material
    deleted: list[str] = field(default_factory=list)  # key ARNs whose material was destroyed
    blocked: list[str] = field(default_factory=list)  # due for deletion but used by a logging trail


@dataclass(frozen=True)
class Key:
    """A key as the KMS reasons about it: its stored row and its ARN."""

    arn: str
    row: KeyRecord

    @property
    def key_id(self) -> str:
        return self.row.key_id

    @property
    def state(self) -> str:
        return self.row.state

    @property
    def current_version(self) -> int:
        return self.row.current_version


# ---- state rules (AWS key-state table) --------------------------------------------------------
def not_pending(key: Key) -> None:
    if key.state == PENDING_DELETION:
        raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion; cancel it with "
                       "CancelKeyDeletion first.")


def pending_only(key: Key) -> None:
    if key.state != PENDING_DELETION:
        raise KmsError("KMSInvalidStateException", f"{key.arn} is not pending deletion (state {key.state}).")


def enabled_only(key: Key) -> None:
    not_pending(key)
    if key.state == DISABLED:
        raise KmsError("DisabledException", f"{key.arn} is disabled; enable it with EnableKey first.")


def usable(key: Key) -> None:
    """Encrypt/Decrypt/GenerateDataKey/ReEncrypt need an Enabled key."""
    enabled_only(key)


def rotation_due(row: KeyRecord, now_us: int) -> bool:
    """An Enabled key whose automatic rotation date is at or before `now_us`."""
    return (row.rotation_enabled and row.state == ENABLED and row.rotation_anchor_us is not None
            and row.rotation_days is not None and row.rotation_anchor_us + row.rotation_days * DAY_US <= now_us)


def deletion_due(row: KeyRecord, now_us: int) -> bool:
    """A key pending deletion whose deletion date is at or before `now_us`."""
    return row.state == PENDING_DELETION and row.deletion_us is not None and row.deletion_us <= now_us


# ---- request checks -----------------------------------------------------------------------------
def check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise validation(f"{name} must be an integer from {low} to {high}, not {value!r}.")


def check_alias_name(name: str) -> None:
    if not isinstance(name, str) or not name.startswith("alias/"):
        raise validation(f"AliasName '{name}' must start with alias/.")
    if name.startswith(_RESERVED_ALIAS_PREFIX):
        raise KmsError("NotAuthorizedException", f"Alias names beginning with {_RESERVED_ALIAS_PREFIX} "
                       "are reserved for AWS managed keys; choose another name.")
    if len(name) > _MAX_ALIAS_LEN or not _ALIAS_RE.fullmatch(name):
        raise KmsError("InvalidAliasNameException", f"AliasName '{name}' must be alias/ followed by 1 to "
                       f"{_MAX_ALIAS_LEN - 6} characters of a-z A-Z 0-9 / _ -.")


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise KmsError("TagException", f"A key may have at most {MAX_TAGS} tags, not {len(tags)}.")
    for k, v in tags.items():
        if not isinstance(k, str) or not isinstance(v, str) or not 1 <= len(k) <= 128 or len(v) > 256:
            raise KmsError("TagException", f"Tag {k!r}: keys must be 1-128 and values 0-256 characters.")
        if k.lower().startswith("aws:"):
            raise KmsError("TagException", f"Tag key {k!r}: the aws: prefix is reserved.")
    return dict(tags)
