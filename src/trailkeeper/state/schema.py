"""The versioned schema of the data directory's databases, with forward migrations.

Each database (state.db, history.db) carries its version in SQLite's `user_version`. Whoever
opens one first brings it to this release's version, in one transaction (so two processes
starting at once cannot both migrate, and a crash leaves the old version whole); a version
newer than this release knows is refused, since an older release cannot tell what a newer one
changed. Version 0 is a database written before versions existed (or a new, empty file).

To change a table: append a Migration (never edit one that has shipped) and test that the
previous release's data directory (tests/fixtures) still opens, migrates and validates.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from trailkeeper._internal.sqlite import connect
from trailkeeper.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int  # the version this migration brings the database to
    summary: str
    apply: Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Migrated:
    path: Path
    from_version: int
    to_version: int


@dataclass(frozen=True)
class Schema:
    name: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        numbers = [m.version for m in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.name} migrations must be numbered 1, 2, ... in order, got {numbers}")

    @property
    def version(self) -> int:
        return len(self.migrations)

    def ensure(self, path: Path) -> Migrated | None:
        """Bring the database at `path` (created if missing) to this release's version; what was
        done, or None when it was already there. Refuses a newer database (ConfigError)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL is set only when migrating: a check alone leaves the file as it is.
        with closing(connect(path, wal=False)) as conn:
            if self._checked(conn, path) == self.version:
                return None
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = self._checked(conn, path)  # another process may have migrated meanwhile
                for migration in self.migrations[found:]:
                    migration.apply(conn)
                conn.execute(f"PRAGMA user_version = {self.version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if found == self.version:
            return None
        log.info("%s migrated from schema version %d to %d", path, found, self.version)
        return Migrated(path, found, self.version)

    def _checked(self, conn: sqlite3.Connection, path: Path) -> int:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if found > self.version:
            raise ConfigError(
                f"{path} has {self.name} schema version {found}, newer than this trailkeeper knows "
                f"({self.version}): it was written by a newer release",
                "upgrade trailkeeper to that release or a later one; an older release cannot run on it")
        return found


def schema_version(path: Path) -> int:
    """The version a database file carries (0: none, or no such file)."""
    if not path.exists():
        return 0
    with closing(connect(path, readonly=True)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _run(ddl: str) -> Callable[[sqlite3.Connection], None]:
    def apply(conn: sqlite3.Connection) -> None:
        # One statement at a time: executescript would commit the migration's transaction.
        for statement in ddl.split(";"):
            if statement.strip():
                conn.execute(statement)
    return apply


# ---- state.db -------------------------------------------------------------------------------

_TRAILS = """
CREATE TABLE IF NOT EXISTS trails (
  name TEXT PRIMARY KEY, config TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trail_state (
  name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logging_periods (
  name TEXT NOT NULL, started REAL NOT NULL, stopped REAL, final_digest_end REAL,
  PRIMARY KEY (name, started));
CREATE TABLE IF NOT EXISTS delivered_files (
  name TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL, stored_hash TEXT NOT NULL,
  newest REAL, oldest REAL, delivered_at REAL NOT NULL, digest_end REAL,
  seq_from INTEGER NOT NULL, seq_to INTEGER NOT NULL, events INTEGER NOT NULL,
  PRIMARY KEY (name, key));
CREATE INDEX IF NOT EXISTS delivered_pending ON delivered_files (name, digest_end, delivered_at);
CREATE TABLE IF NOT EXISTS deleted_trails (
  key TEXT PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL, created REAL NOT NULL, deleted REAL NOT NULL);
"""
# Where each logging period's files went (added after the first release: NULL there means the
# trail's location at the time, which could not change while logging).
PERIOD_LOCATION_COLUMNS = ("bucket", "prefix", "destination")

_IDENTITY = """
CREATE TABLE IF NOT EXISTS identity_account (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_users (
    user_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_access_keys (
    access_key_id TEXT PRIMARY KEY,
    user_id TEXT,
    user_name TEXT,
    status TEXT NOT NULL CHECK (status IN ('Active', 'Inactive', 'Deleted')),
    secret_envelope BLOB,
    created_us INTEGER NOT NULL,
    status_changed_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_version (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO identity_version VALUES (1, 0);
"""

_SIGNING_KEYS = """
CREATE TABLE IF NOT EXISTS signing_keys (
    fingerprint TEXT PRIMARY KEY,
    public_der BLOB NOT NULL,
    private_envelope BLOB NOT NULL,
    keyring_id TEXT NOT NULL,
    valid_from_us INTEGER NOT NULL,
    valid_to_us INTEGER
)
"""

_KMS = """
CREATE TABLE IF NOT EXISTS kms_keys (
    key_id TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('Enabled', 'Disabled', 'PendingDeletion')),
    current_version INTEGER NOT NULL,
    deletion_us INTEGER,
    pending_days INTEGER,
    rotation_enabled INTEGER NOT NULL DEFAULT 0,
    rotation_days INTEGER,
    rotation_anchor_us INTEGER
);
CREATE TABLE IF NOT EXISTS kms_key_material (
    key_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    on_demand INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS kms_aliases (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kms_tags (
    key_id TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
CREATE TABLE IF NOT EXISTS kms_deleted_keys (
    key_id TEXT PRIMARY KEY,
    deleted_us INTEGER NOT NULL
);
"""

_CHANNELS = """
CREATE TABLE IF NOT EXISTS channels (
    arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    destinations JSON NOT NULL, tags JSON NOT NULL, created REAL NOT NULL
);
"""


def _state_v1(conn: sqlite3.Connection) -> None:
    for ddl in (_IDENTITY, _SIGNING_KEYS, _TRAILS, _KMS, _CHANNELS):
        _run(ddl)(conn)
    # Data directories of the first releases lack the logging periods' location columns.
    present = {row[1] for row in conn.execute("PRAGMA table_info(logging_periods)")}
    for column in PERIOD_LOCATION_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE logging_periods ADD COLUMN {column} TEXT")


_CONSUMER_OFFSETS = """
CREATE TABLE IF NOT EXISTS consumer_offsets (
    name TEXT PRIMARY KEY, next_seq INTEGER NOT NULL CHECK (next_seq >= 1));
"""

# CloudWatch Logs (monitoring.loggroups): log groups, streams, events, tags, metric filters.
# Foreign keys are not enforced on these connections: deleting a group deletes its rows explicitly.
_LOG_GROUPS = """
CREATE TABLE IF NOT EXISTS log_groups (
    name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, retention_days INTEGER, kms_key_id TEXT
);
CREATE TABLE IF NOT EXISTS log_group_tags (
    group_name TEXT NOT NULL,
    tag_key TEXT NOT NULL, tag_value TEXT NOT NULL, PRIMARY KEY (group_name, tag_key)
);
CREATE TABLE IF NOT EXISTS log_streams (
    group_name TEXT NOT NULL,
    name TEXT NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (group_name, name)
);
CREATE TABLE IF NOT EXISTS log_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name TEXT NOT NULL, stream_name TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL, ingestion_ms INTEGER NOT NULL, message TEXT NOT NULL,
    dedup_key TEXT,
    event_name TEXT  -- a JSON message's top-level eventName: FilterLogEvents' index
);
CREATE INDEX IF NOT EXISTS log_events_by_stream ON log_events (group_name, stream_name, timestamp_ms);
CREATE INDEX IF NOT EXISTS log_events_by_group ON log_events (group_name, timestamp_ms);
CREATE UNIQUE INDEX IF NOT EXISTS log_events_dedup ON log_events (group_name, dedup_key)
    WHERE dedup_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS log_events_by_name ON log_events (group_name, event_name, timestamp_ms)
    WHERE event_name IS NOT NULL;
CREATE TABLE IF NOT EXISTS metric_filters (
    group_name TEXT NOT NULL,
    name TEXT NOT NULL, pattern TEXT NOT NULL, transformations JSON NOT NULL,
    regex INTEGER NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (group_name, name)
);
"""

# CloudWatch metrics and alarms (monitoring.cloudwatch): datapoints, alarms, their history and
# the notifications they owe.
_METRICS_ALARMS = """
CREATE TABLE IF NOT EXISTS cw_metric_buckets (
    metric_key TEXT NOT NULL, bucket_start INTEGER NOT NULL, namespace TEXT NOT NULL,
    metric_name TEXT NOT NULL, sample_count INTEGER NOT NULL, sum REAL NOT NULL,
    minimum REAL NOT NULL, maximum REAL NOT NULL, event_ids TEXT NOT NULL,
    dropped_event_ids INTEGER NOT NULL, PRIMARY KEY (metric_key, bucket_start)
);
CREATE INDEX IF NOT EXISTS cw_metric_buckets_namespace ON cw_metric_buckets (namespace, metric_name);
CREATE TABLE IF NOT EXISTS cw_alarms (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    reason_data TEXT, state_updated REAL NOT NULL, config_updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS cw_alarm_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alarm_name TEXT NOT NULL, timestamp REAL NOT NULL,
    item_type TEXT NOT NULL, summary TEXT NOT NULL, data TEXT NOT NULL, event_ids TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cw_alarm_history_alarm ON cw_alarm_history (alarm_name, seq);
CREATE TABLE IF NOT EXISTS cw_pending_notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alarm_name TEXT NOT NULL, timestamp REAL NOT NULL,
    new_state TEXT NOT NULL, actions TEXT NOT NULL, event_ids TEXT NOT NULL
);
"""

# IAM roles with their inline policies (roles.py), and how each trail's forwarding to CloudWatch
# Logs fares (monitoring.forwarder): kept apart from trail_state, which the trail's delivery
# worker rewrites whole, so that neither writer undoes the other's update.
_ROLES_FORWARDING = """
CREATE TABLE IF NOT EXISTS iam_roles (
    name TEXT PRIMARY KEY COLLATE NOCASE, role_id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
    assume_role_policy TEXT NOT NULL, description TEXT, created_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS iam_role_policies (
    role_id TEXT NOT NULL, policy_name TEXT NOT NULL COLLATE NOCASE, document TEXT NOT NULL,
    PRIMARY KEY (role_id, policy_name)
);
CREATE TABLE IF NOT EXISTS trail_forwarding (
    name TEXT PRIMARY KEY, latest_delivery REAL, latest_error TEXT NOT NULL DEFAULT '',
    failing_since REAL, forwarded INTEGER NOT NULL DEFAULT 0, oversize INTEGER NOT NULL DEFAULT 0,
    counted_seq INTEGER NOT NULL DEFAULT 0
);
"""

# SNS topics, subscriptions and the durable queue of their deliveries (notify/): a delivery row is
# written before Publish answers and removed only once its subscriber acknowledged it (or given
# up on, kept with `failed` set); `sns_published` makes a keyed publish (an alarm notification)
# idempotent across a crash; the signing identity is kept so SigningCertURL survives restarts.
_NOTIFICATIONS = """
CREATE TABLE IF NOT EXISTS sns_topics (
    arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, attributes TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sns_subscriptions (
    arn TEXT PRIMARY KEY, topic_arn TEXT NOT NULL, protocol TEXT NOT NULL, endpoint TEXT NOT NULL,
    token TEXT NOT NULL, confirmed INTEGER NOT NULL, authenticate_on_unsubscribe INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sns_subscriptions_topic ON sns_subscriptions (topic_arn, arn);
CREATE TABLE IF NOT EXISTS sns_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, subscription_arn TEXT NOT NULL, message_id TEXT NOT NULL,
    message TEXT NOT NULL, created REAL NOT NULL, next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', failed REAL,
    UNIQUE (subscription_arn, message_id)
);
CREATE INDEX IF NOT EXISTS sns_deliveries_due ON sns_deliveries (failed, next_attempt);
CREATE TABLE IF NOT EXISTS sns_published (
    dedup_key TEXT PRIMARY KEY, message_id TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sns_signing_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1), sealed_key BLOB NOT NULL, certificate BLOB NOT NULL,
    created REAL NOT NULL
);
"""

# CloudWatch Logs encryption at rest (monitoring.logcrypto): each log group's data keys, wrapped by
# its KMS key, and per event the data key that sealed it (NULL: stored in clear, `message` holds
# it) with the ciphertext in `sealed`. A group's `data_key_id` is the key new events are sealed
# with; old data keys stay while events they sealed may remain.
_LOG_DATA_KEYS = """
CREATE TABLE IF NOT EXISTS log_group_data_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT, group_name TEXT NOT NULL, key_arn TEXT NOT NULL,
    wrapped BLOB NOT NULL, created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_group_data_keys_by_group ON log_group_data_keys (group_name, id);
"""


def _log_encryption(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE log_groups ADD COLUMN data_key_id INTEGER")
    conn.execute("ALTER TABLE log_events ADD COLUMN data_key_id INTEGER")
    conn.execute("ALTER TABLE log_events ADD COLUMN sealed BLOB")
    _run(_LOG_DATA_KEYS)(conn)


# EventBridge rules on the default bus (rules/): each rule's pattern and state, its targets with
# their input shaping and RetryPolicy (as JSON), and the target invocations still to retry: a
# match whose publish failed waits here (keyed by rule, target and eventID, so a replayed spool
# batch adds nothing) until it succeeds, or its RetryPolicy gives up (kept with `failed` set).
_EVENT_RULES = """
CREATE TABLE IF NOT EXISTS event_rules (
    name TEXT PRIMARY KEY, pattern TEXT NOT NULL, state TEXT NOT NULL, description TEXT NOT NULL,
    tags TEXT NOT NULL, managed_by TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS event_targets (
    rule TEXT NOT NULL, id TEXT NOT NULL, arn TEXT NOT NULL, shape TEXT NOT NULL,
    PRIMARY KEY (rule, id)
);
CREATE TABLE IF NOT EXISTS event_target_retries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, target_id TEXT NOT NULL, target_arn TEXT NOT NULL,
    event_id TEXT NOT NULL, message TEXT NOT NULL, first_attempt REAL NOT NULL, next_attempt REAL NOT NULL,
    attempts INTEGER NOT NULL, last_error TEXT NOT NULL, failed REAL,
    UNIQUE (rule, target_id, event_id)
);
CREATE INDEX IF NOT EXISTS event_target_retries_due ON event_target_retries (failed, next_attempt);
"""


# Alerts (alerts/): each alert with its state and counts, the event IDs behind it (at most
# MAX_EVENT_IDS each, the rest only counted), its history of state changes (PCI DSS 10.4.3), the
# matches still below a rule's threshold, suppressions, and the notifications still to publish
# (written in the alert's own transaction: the outbox). `alert_seen` remembers each (rule,
# eventID) for a while so a replayed spool batch changes nothing; it and `alert_pending` are
# pruned by their `expires_us`. Settings are one JSON document. Times are epoch microseconds.
_ALERTS = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, rule_title TEXT NOT NULL, severity TEXT NOT NULL,
    dedup_key TEXT NOT NULL, state TEXT NOT NULL, first_seen_us INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL, match_count INTEGER NOT NULL, dropped INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL, updated_us INTEGER NOT NULL, notified_us INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_dedup ON alerts (dedup_key, id);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, id);
CREATE INDEX IF NOT EXISTS alerts_severity ON alerts (severity, id);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule_id, id);
CREATE INDEX IF NOT EXISTS alerts_last_seen ON alerts (last_seen_us);
CREATE TABLE IF NOT EXISTS alert_events (
    alert_id TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (alert_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_events_order ON alert_events (alert_id, seq);
CREATE TABLE IF NOT EXISTS alert_history (
    alert_id TEXT NOT NULL, seq INTEGER NOT NULL, at_us INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL, comment TEXT NOT NULL,
    PRIMARY KEY (alert_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_seen (
    rule_id TEXT NOT NULL, event_id TEXT NOT NULL, expires_us INTEGER NOT NULL, PRIMARY KEY (rule_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_seen_expiry ON alert_seen (expires_us);
CREATE TABLE IF NOT EXISTS alert_pending (
    dedup_key TEXT NOT NULL, event_id TEXT NOT NULL, rule_id TEXT NOT NULL, at_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL, PRIMARY KEY (dedup_key, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_pending_expiry ON alert_pending (expires_us);
CREATE TABLE IF NOT EXISTS alert_suppressions (
    id TEXT PRIMARY KEY, rule_id TEXT, fields TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL,
    created_us INTEGER NOT NULL, expires_us INTEGER NOT NULL, lifted_us INTEGER, lifted_by TEXT,
    suppressed INTEGER NOT NULL DEFAULT 0, last_suppressed_us INTEGER
);
CREATE INDEX IF NOT EXISTS alert_suppressions_active ON alert_suppressions (lifted_us, expires_us);
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL UNIQUE, topic_arn TEXT NOT NULL,
    subject TEXT NOT NULL, message TEXT NOT NULL, created_us INTEGER NOT NULL,
    next_attempt_us INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (next_attempt_us);
CREATE TABLE IF NOT EXISTS alert_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1), value TEXT NOT NULL, updated_us INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
"""


STATE_SCHEMA = Schema("state", (
    Migration(1, "the tables of releases up to b180352, with the logging periods' locations", _state_v1),
    Migration(2, "durable offsets of the generic spool consumers", _run(_CONSUMER_OFFSETS)),
    Migration(3, "CloudWatch Logs: log groups, streams, events and metric filters", _run(_LOG_GROUPS)),
    Migration(4, "CloudWatch metrics and alarms", _run(_METRICS_ALARMS)),
    Migration(5, "IAM roles and their inline policies; trails' CloudWatch Logs forwarding status",
              _run(_ROLES_FORWARDING)),
    Migration(6, "SNS topics, subscriptions, durable deliveries and the message signing identity",
              _run(_NOTIFICATIONS)),
    Migration(7, "CloudWatch Logs encryption at rest: wrapped data keys per log group, sealed events",
              _log_encryption),
    Migration(8, "EventBridge rules on the default bus, their targets and target invocations to retry",
              _run(_EVENT_RULES)),
    Migration(9, "alerts with their event IDs and history, threshold counters, suppressions, the "
                 "notification outbox and the alert settings", _run(_ALERTS)),
))

# ---- history.db -----------------------------------------------------------------------------

_HISTORY = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, t INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS attrs (
    k INTEGER NOT NULL, t INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (k, t, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ids (
    k INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (k, seq)
) WITHOUT ROWID;
"""

HISTORY_SCHEMA = Schema("history", (
    Migration(1, "events, attribute and event-ID indexes, meta", _run(_HISTORY)),
))
