"""Typed configuration: named defaults, optional TOML file, bounds checked at start."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trailkeeper.errors import ConfigError
from trailkeeper.keys.roots import RootOfTrustConfig
from trailkeeper.notify.settings import SmtpSettings
from trailkeeper.records import DEFAULT_MAX_EVENT_AGE

if TYPE_CHECKING:
    from trailkeeper.storage.s3 import S3Settings

DEFAULT_DATA_DIR = Path("trailkeeper-data")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8790
DEFAULT_REGION = "us-east-1"

DEFAULT_FLUSH_INTERVAL = timedelta(seconds=60)
MIN_FLUSH_INTERVAL = timedelta(seconds=1)
DEFAULT_MAX_BATCH_EVENTS = 10_000
DEFAULT_MAX_BATCH_BYTES = 5 * 1024 * 1024
DEFAULT_DIGEST_INTERVAL = timedelta(hours=1)
MIN_DIGEST_INTERVAL = timedelta(minutes=1)
DEFAULT_KEY_ROTATION = timedelta(days=30)
MIN_KEY_ROTATION = timedelta(minutes=1)
DEFAULT_RETENTION = timedelta(days=90)
DEFAULT_PURGE_INTERVAL = timedelta(hours=1)
DEFAULT_MAX_CLOCK_SKEW = timedelta(minutes=5)
# A request's headers, then its body, must arrive within these (slow senders hold connections).
DEFAULT_HEADER_TIMEOUT = timedelta(seconds=10)
DEFAULT_BODY_TIMEOUT = timedelta(seconds=15)
# The kernel's receive buffer per connection (SO_RCVBUF; 0: the kernel's autotuning, up to
# megabytes). Small, a flood pipelining hundreds of KB per connection pushes a quarter of the
# bytes through the loopback before it is answered and closed (bench_unauth_flood: honest p99
# 2.2x -> 1.6x unflooded); 64 KiB still moves 60 MB/s at 1 ms round trip.
DEFAULT_RECEIVE_BUFFER_BYTES = 64 * 1024
DEFAULT_SPOOL_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_IDEMPOTENCY_WINDOW = timedelta(hours=1)
DEFAULT_RETRY_MAX_BACKOFF = timedelta(seconds=30)
# Ingest waits while more acknowledged events than this are not yet searchable (about half a
# second of indexing here), so "acknowledged → searchable within 1 s" holds under load.
DEFAULT_MAX_INDEX_LAG_EVENTS = 12_000
MAX_TRAILS = 5  # CloudTrail's per-region limit
# While a destination or its KMS key is out, events wait in the spool. Past this many
# undelivered events on any logging trail (about 5 GB of 1 KB events) the backlog policy acts.
DEFAULT_MAX_BACKLOG_EVENTS = 5_000_000
# Unsealed KMS key material is reused this long before the root of trust is asked again.
DEFAULT_KMS_MATERIAL_TTL = timedelta(minutes=5)
# Where SNS subscribers reach this server (SubscribeURL, SigningCertURL, UnsubscribeURL); empty:
# http://{host}:{port}, with the machine's name when the server listens on every address.
DEFAULT_PUBLIC_URL = ""
FAIL_CLOSED, FAIL_OPEN = "fail-closed", "fail-open"
BACKLOG_POLICIES = (FAIL_CLOSED, FAIL_OPEN)

ENV_DATA_DIR = "TRAILKEEPER_DATA_DIR"
ENV_CONFIG = "TRAILKEEPER_CONFIG"
CONFIG_FILE_NAME = "trailkeeper.toml"


@dataclass(frozen=True)
class Config:
    data_dir: Path = DEFAULT_DATA_DIR
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    default_flush_interval: timedelta = DEFAULT_FLUSH_INTERVAL
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    default_digest_interval: timedelta = DEFAULT_DIGEST_INTERVAL
    key_rotation: timedelta = DEFAULT_KEY_ROTATION
    retention: timedelta = DEFAULT_RETENTION
    purge_interval: timedelta = DEFAULT_PURGE_INTERVAL
    max_clock_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW
    max_event_age: timedelta = DEFAULT_MAX_EVENT_AGE
    header_timeout: timedelta = DEFAULT_HEADER_TIMEOUT
    body_timeout: timedelta = DEFAULT_BODY_TIMEOUT
    receive_buffer_bytes: int = DEFAULT_RECEIVE_BUFFER_BYTES
    spool_segment_bytes: int = DEFAULT_SPOOL_SEGMENT_BYTES
    idempotency_window: timedelta = DEFAULT_IDEMPOTENCY_WINDOW
    retry_max_backoff: timedelta = DEFAULT_RETRY_MAX_BACKOFF
    max_index_lag_events: int = DEFAULT_MAX_INDEX_LAG_EVENTS
    max_backlog_events: int = DEFAULT_MAX_BACKLOG_EVENTS
    backlog_policy: str = FAIL_CLOSED
    kms_material_ttl: timedelta = DEFAULT_KMS_MATERIAL_TTL
    default_bucket_root: Path | None = field(default=None)
    root_of_trust: RootOfTrustConfig = field(default_factory=RootOfTrustConfig)
    s3: S3Settings | None = None  # connection to S3-compatible destinations; None: boto3's defaults
    public_url: str = DEFAULT_PUBLIC_URL
    smtp: SmtpSettings | None = None  # the mail server of email subscriptions; None: email fails, audited
    # Sigma detection rules of the installation (beside the shipped ones), hot-reloaded; None:
    # data_dir/rules. Placeholders fill Sigma's `expand` modifier (`%admins%` -> the values).
    rules_dir: Path | None = None
    sigma_placeholders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    # Derived locations inside the data directory.
    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def history_db(self) -> Path:
        return self.data_dir / "history.db"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def keyring_dir(self) -> Path:
        return self.data_dir / "keyring"

    @property
    def buckets_dir(self) -> Path:
        return self.default_bucket_root or self.data_dir / "buckets"

    @property
    def validation_state_dir(self) -> Path:
        return self.data_dir / "validation-state"

    @property
    def detection_rules_dir(self) -> Path:
        return self.rules_dir or self.data_dir / "rules"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def notification_base_url(self) -> str:
        """The URL subscribers reach this server at (`public_url`, or one made of host and port)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.getfqdn()
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def check(self) -> Config:
        """Refuse inconsistent settings with a message saying which and why."""
        problems: list[str] = []
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port} is not in 1..65535")
        if self.default_flush_interval < MIN_FLUSH_INTERVAL:
            problems.append(f"flush_interval must be at least {MIN_FLUSH_INTERVAL.total_seconds():g}s")
        if self.default_digest_interval < MIN_DIGEST_INTERVAL:
            problems.append("digest_interval must be at least 60s")
        if self.default_flush_interval > self.default_digest_interval:
            problems.append("flush_interval must not exceed digest_interval (every digest period needs a delivery)")
        if self.default_digest_interval.total_seconds() % 60:
            problems.append("digest_interval must be a whole number of minutes (digest keys are stamped to the second, windows to the minute)")
        if not 1 <= self.max_batch_events <= 100_000:
            problems.append("max_batch_events must be in 1..100000")
        if not 1024 <= self.max_batch_bytes <= 64 * 1024 * 1024:
            problems.append("max_batch_bytes must be in 1 KiB..64 MiB")
        if self.key_rotation < MIN_KEY_ROTATION:
            problems.append("key_rotation must be at least 60s")
        if self.retention < timedelta(days=1):
            problems.append("retention must be at least 1 day")
        if self.max_clock_skew <= timedelta(0) or self.max_clock_skew > timedelta(minutes=15):
            problems.append("max_clock_skew must be in (0, 15 min]")
        for name in ("header_timeout", "body_timeout"):
            if not timedelta(seconds=1) <= getattr(self, name) <= timedelta(minutes=10):
                problems.append(f"{name} must be in 1s..10m")
        if self.receive_buffer_bytes != 0 and not 4096 <= self.receive_buffer_bytes <= 16 * 1024 * 1024:
            problems.append("receive_buffer_bytes must be 0 (the kernel's autotuning) or in 4 KiB..16 MiB")
        if not timedelta(minutes=1) <= self.max_event_age <= timedelta(days=3650):
            problems.append("max_event_age must be in 1 min..3650 d")
        if self.max_index_lag_events < 100:
            problems.append("max_index_lag_events must be at least 100")
        if not timedelta(0) <= self.kms_material_ttl <= timedelta(hours=24):
            problems.append("kms_material_ttl must be in 0s..24h")
        if self.max_backlog_events < 1:
            problems.append("max_backlog_events must be at least 1")
        if self.backlog_policy not in BACKLOG_POLICIES:
            problems.append(f"backlog_policy {self.backlog_policy!r} is not one of {', '.join(BACKLOG_POLICIES)}")
        if self.spool_segment_bytes < 1024 * 1024:
            problems.append("spool_segment_bytes must be at least 1 MiB")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            problems.append(f"public_url {self.public_url!r} must start with http:// or https://")
        if self.smtp is not None:
            problems.extend(self.smtp.problems())
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems), "fix the settings in the config file or the command line")
        return self


_DURATION_FIELDS = {f.name for f in fields(Config) if f.type in ("timedelta",)}
_INT_FIELDS = {f.name for f in fields(Config) if f.type in ("int",)}
_STR_FIELDS = {"host", "region", "backlog_policy", "public_url"}
_PATH_FIELDS = {"data_dir", "default_bucket_root", "rules_dir"}


def parse_duration(value: object, name: str) -> timedelta:
    """Accept seconds (number) or text like '90', '30s', '5m', '2h', '7d'."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            if text and text[-1] in units:
                return timedelta(seconds=float(text[:-1]) * units[text[-1]])
            return timedelta(seconds=float(text))
        except ValueError:
            pass
    raise ConfigError(f"{name}: cannot read {value!r} as a duration", "use seconds or a number with s, m, h or d, e.g. 30s")


def _convert(name: str, value: Any) -> Any:
    if name in _DURATION_FIELDS:
        return parse_duration(value, name)
    if name in _INT_FIELDS:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if name in _STR_FIELDS:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if name in _PATH_FIELDS:
        return Path(str(value))
    raise ConfigError(f"unknown setting {name!r}", f"known settings: {', '.join(sorted(f.name for f in fields(Config)))}")


def _flatten(table: dict[str, Any]) -> dict[str, Any]:
    """Sections are for readability only: [delivery] max_batch_events == max_batch_events."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value))
        else:
            flat[key] = value
    return flat


def _sections(raw: dict[str, Any]) -> dict[str, Any]:
    """Tables that are settings of their own (not flattened); removed from `raw`."""
    out: dict[str, Any] = {}
    section = raw.pop("root_of_trust", None)
    if section is not None:
        if not isinstance(section, dict):
            raise ConfigError("root_of_trust: expected a table [root_of_trust]", "see docs/operations.md")
        out["root_of_trust"] = RootOfTrustConfig.from_toml(section)
    s3 = raw.pop("s3", None)
    if s3 is not None:
        out["s3"] = _s3_settings(s3)
    smtp = raw.pop("smtp", None)
    if smtp is not None:
        if not isinstance(smtp, dict):
            raise ConfigError("smtp: expected a table [smtp]", "see docs/notifications.md")
        try:
            out["smtp"] = SmtpSettings.from_toml(smtp)
        except ValueError as e:
            raise ConfigError(str(e), "see docs/notifications.md") from e
    placeholders = raw.pop("sigma_placeholders", None)
    if placeholders is not None:
        out["sigma_placeholders"] = _placeholders(placeholders)
    return out


def _placeholders(section: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(section, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in section.values()):
        raise ConfigError("sigma_placeholders: expected a table of names to lists of strings, "
                          'e.g. admins = ["alice", "bob"]', "see docs/sigma.md")
    return {str(k): tuple(v) for k, v in section.items()}


_SECTION_FIELDS = frozenset({"root_of_trust", "s3", "smtp", "sigma_placeholders"})  # given as their dataclasses by callers
_S3_KEYS = {"endpoint_url", "region", "access_key_id", "secret_access_key", "addressing_style",
            "connect_timeout", "read_timeout", "max_attempts", "sse_kms_key_id"}


def _s3_settings(section: object) -> S3Settings:
    # Imported here: boto3 costs ~150 ms, paid only by installations with S3 destinations.
    from trailkeeper.storage.s3 import S3Settings

    if not isinstance(section, dict):
        raise ConfigError("s3: expected a table [s3]", "see docs/operations.md")
    unknown = sorted(set(section) - _S3_KEYS)
    if unknown:
        raise ConfigError(f"[s3] has unknown settings {', '.join(unknown)}", f"known: {', '.join(sorted(_S3_KEYS))}")
    try:
        return S3Settings(
            endpoint_url=section.get("endpoint_url"), region=section.get("region"),
            access_key_id=section.get("access_key_id"), secret_access_key=section.get("secret_access_key"),
            addressing_style=section.get("addressing_style", "path"),
            connect_timeout=float(section.get("connect_timeout", 5)), read_timeout=float(section.get("read_timeout", 30)),
            max_attempts=int(section.get("max_attempts", 3)), sse_kms_key_id=section.get("sse_kms_key_id"))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[s3] has a value of the wrong type: {e}") from e


def load_config(data_dir: Path | None = None, config_path: Path | None = None, **overrides: Any) -> Config:
    """Defaults < TOML file (explicit, or data_dir/trailkeeper.toml) < env < explicit overrides."""
    values: dict[str, Any] = {}
    env_dir = os.environ.get(ENV_DATA_DIR)
    base_dir = data_dir or (Path(env_dir) if env_dir else DEFAULT_DATA_DIR)
    env_cfg = os.environ.get(ENV_CONFIG)
    path = config_path or (Path(env_cfg) if env_cfg else None) or base_dir / CONFIG_FILE_NAME
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from e
        values.update(_sections(raw))
        for key, value in _flatten(raw).items():
            values[key] = _convert(key, value)
    elif config_path is not None:
        raise ConfigError(f"config file {config_path} does not exist")
    values["data_dir"] = base_dir
    for key, value in overrides.items():
        if value is not None:
            structured = isinstance(value, timedelta | Path) or key in _SECTION_FIELDS
            values[key] = value if structured else _convert(key, value)
    return replace(Config(), **values).check()
