"""The composition root: the components of one data directory, built one way for the server
(`Service`), the offline validator and `init` / `recover-root` alike.

Each component is built on first use and once: a command that needs only the trails (the
validator's stored mode) never opens the root of trust, and the server's components are the
same objects its handlers and consumers are given. Nothing here decides anything; it only
says which implementation of each seam a data directory uses (today SQLite and the folder
spool; the PostgreSQL repositories will be chosen here).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from trailkeeper._internal.sqlite import Database
from trailkeeper.clock import Clock, SystemClock
from trailkeeper.config import Config
from trailkeeper.identity import Account, read_account

if TYPE_CHECKING:
    from trailkeeper.alerts import Alerts
    from trailkeeper.history.sqlite import SqliteHistory
    from trailkeeper.identity import IdentityStore
    from trailkeeper.keys.keyring import KeyProvider
    from trailkeeper.keys.signing import SigningKeys
    from trailkeeper.kms import KeyUsers, Kms
    from trailkeeper.lake import ChannelStore
    from trailkeeper.monitoring.cloudwatch import CloudWatch
    from trailkeeper.monitoring.loggroups import LogGroups
    from trailkeeper.notify.topics import Notifications
    from trailkeeper.roles import Roles
    from trailkeeper.rules.bus import EventBus
    from trailkeeper.spool import Spool
    from trailkeeper.state.schema import Migrated
    from trailkeeper.trails import TrailStore

# Each component's modules are imported where it is built: the offline validator starts a
# process per run and needs only the trails, so it does not pay for the spool, the history,
# the indexer or the KMS at start-up.


# The components `close()` closes when they were built, in this order.
_CLOSE_ORDER = ("spool", "history", "identity", "log_groups", "cloudwatch")


class Runtime:
    """Builds, keeps and closes the components of `config.data_dir`."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._kms: Kms | None = None

    def migrate(self) -> list[Migrated]:
        """Bring both databases to this release's schema before any component opens them: an
        older data directory is migrated, a newer one refused (state.schema)."""
        from trailkeeper.state.schema import HISTORY_SCHEMA, STATE_SCHEMA

        done = (STATE_SCHEMA.ensure(self.config.state_db), HISTORY_SCHEMA.ensure(self.config.history_db))
        return [d for d in done if d is not None]

    def account(self) -> Account:
        """The account, read without the root of trust (offline tools)."""
        return read_account(self.config.state_db)

    @cached_property
    def keyring(self) -> KeyProvider:
        from trailkeeper.keys.roots import open_root_of_trust

        # The root of trust seals access-key secrets, signing keys and KMS key material alike.
        return open_root_of_trust(self.config.root_of_trust, self.config.keyring_dir)

    @cached_property
    def state_db(self) -> Database:
        return Database(self.config.state_db)

    @cached_property
    def identity(self) -> IdentityStore:
        from trailkeeper.identity import IdentityStore
        from trailkeeper.state.identities import SqliteIdentityRepository

        return IdentityStore(SqliteIdentityRepository(self.config.state_db), self.keyring, self.clock)

    @cached_property
    def trails(self) -> TrailStore:
        from trailkeeper.state.trails import SqliteTrailRepository
        from trailkeeper.trails import TrailStore

        return TrailStore(SqliteTrailRepository(self.state_db))

    @cached_property
    def channels(self) -> ChannelStore:
        from trailkeeper.lake import ChannelStore
        from trailkeeper.state.channels import SqliteChannelRepository

        return ChannelStore(SqliteChannelRepository(self.state_db))

    @cached_property
    def signing_keys(self) -> SigningKeys:
        from trailkeeper.keys.signing import SigningKeys
        from trailkeeper.state.signing_keys import SqliteSigningKeyRepository

        return SigningKeys(SqliteSigningKeyRepository(self.config.state_db), self.keyring, self.clock,
                           self.config.key_rotation)

    def kms(self, account_id: str, region: str, users: KeyUsers | None = None) -> Kms:
        """The KMS of the account; `users` answers which trails use a key (the server's trails),
        so a key in use is not deleted. Built on the first call; later calls return it."""
        if self._kms is None:
            from trailkeeper.kms import Kms, SqliteKmsRepository

            self._kms = Kms(SqliteKmsRepository(self.config.state_db), self.keyring, self.clock, account_id, region,
                            users=users, material_ttl_s=self.config.kms_material_ttl.total_seconds())
        return self._kms

    @cached_property
    def spool(self) -> Spool:
        from trailkeeper.spool import Spool

        return Spool(self.config.spool_dir, segment_bytes=self.config.spool_segment_bytes,
                     idempotency_window=self.config.idempotency_window)

    @cached_property
    def log_groups(self) -> LogGroups:
        from trailkeeper.monitoring.logcrypto import KmsLogKeys
        from trailkeeper.monitoring.loggroups import LogGroups
        from trailkeeper.monitoring.loggroups_store import SqliteLogGroupRepository

        account = self.account()
        # Metric filters feed CloudWatch: a matching log event is a datapoint, evaluated at once.
        # Groups are encrypted with the account's KMS, opened when a group first needs it; its
        # material TTL also bounds how long an unwrapped data key is reused.
        keys = KmsLogKeys(lambda: self.kms(account.account_id, account.region))
        return LogGroups(SqliteLogGroupRepository(self.state_db), self.clock, account.account_id, account.region,
                         metrics=self.cloudwatch, keys=keys,
                         data_key_ttl_s=self.config.kms_material_ttl.total_seconds())

    @cached_property
    def cloudwatch(self) -> CloudWatch:
        from trailkeeper.monitoring.cloudwatch import CloudWatch
        from trailkeeper.monitoring.cloudwatch_store import SqliteCloudWatchRepository

        account = self.account()
        return CloudWatch(SqliteCloudWatchRepository(self.state_db), self.clock, account.account_id, account.region)

    @cached_property
    def history(self) -> SqliteHistory:
        from trailkeeper.history.indexer import SERVER_CACHE_KIB
        from trailkeeper.history.sqlite import SqliteHistory

        return SqliteHistory(self.config.history_db, cache_kib=SERVER_CACHE_KIB, mmap_bytes=0)

    def close(self) -> None:
        """Close what was opened, the spool first (its last group commit), the state last."""
        built = self.__dict__
        for name in _CLOSE_ORDER:
            component = built.get(name)
            if component is not None:
                component.close()
        if self._kms is not None:
            self._kms.close()
        if "state_db" in built:
            built["state_db"].close()

    @cached_property
    def roles(self) -> Roles:
        from trailkeeper.roles import Roles
        from trailkeeper.state.roles import SqliteRoleRepository

        return Roles(SqliteRoleRepository(self.state_db), self.clock, self.account().account_id)

    @cached_property
    def notifications(self) -> Notifications:
        from trailkeeper.notify.store import SqliteNotifyRepository
        from trailkeeper.notify.topics import Notifications

        account = self.account()
        # The root of trust seals the SNS signing key too; subscribers are sent this server's URLs.
        return Notifications(SqliteNotifyRepository(self.state_db), self.keyring, self.clock, account.account_id,
                             account.region, self.config.notification_base_url)

    @cached_property
    def event_bus(self) -> EventBus:
        from trailkeeper.rules.bus import EventBus
        from trailkeeper.rules.store import SqliteRuleRepository

        account = self.account()
        return EventBus(SqliteRuleRepository(self.state_db), self.clock, account.account_id, account.region)

    @cached_property
    def alerts(self) -> Alerts:
        from trailkeeper.alerts import Alerts, SqliteAlertRepository

        return Alerts(SqliteAlertRepository(self.state_db), self.clock)
