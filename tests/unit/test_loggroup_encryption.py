"""CloudWatch Logs encryption at rest: AssociateKmsKey / DisassociateKmsKey and log events sealed
under the group's key of trailkeeper's own KMS (a real Kms over its memory repository), read
back transparently, unreadable while the key is not usable, and bound to their row."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.pipeline import botocore_client, open_pipeline

from trailkeeper._internal.sqlite import Database
from trailkeeper.api.app import App
from trailkeeper.clock import FrozenClock
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.kms import Kms, MemoryKmsRepository
from trailkeeper.monitoring.logcrypto import (
    DATA_KEY_MAX_AGE_MS,
    DataKeyCache,
    KeyUnreachableError,
    KmsLogKeys,
    SealBrokenError,
    event_aad,
    open_message,
    seal_message,
)
from trailkeeper.monitoring.loggroups import LogGroups, LogsError, Transformation
from trailkeeper.monitoring.loggroups_store import (
    EventQuery,
    LogGroupRepository,
    MemoryLogGroupRepository,
    NewEvent,
    SqliteLogGroupRepository,
)
from trailkeeper.monitoring.metrics import Datum

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(T0.timestamp() * 1000)
ACCOUNT, REGION = "123456789012", "eu-west-1"
LOGIN = '{"eventName": "ConsoleLogin", "sourceIPAddress": "192.0.2.1", "secret": "hunter2"}'
OTHER = '{"eventName": "DescribeTrails"}'


class CountingKeys:
    """The real KMS adapter, counting how often the KMS unwraps a data key."""

    def __init__(self, kms: Kms) -> None:
        self.inner = KmsLogKeys(lambda: kms)
        self.unwrapped = 0

    def check_usable(self, key_ref: str) -> str:
        return self.inner.check_usable(key_ref)

    def generate_data_key(self, key_arn: str, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        return self.inner.generate_data_key(key_arn, context)

    def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str], key_arn: str) -> bytes:
        self.unwrapped += 1
        return self.inner.decrypt_data_key(wrapped, context, key_arn)


class Setup:
    def __init__(self, repo: LogGroupRepository) -> None:
        self.clock = FrozenClock(T0)
        self.kms = Kms(MemoryKmsRepository(), MemoryKeyring(), self.clock, ACCOUNT, REGION)
        self.keys = CountingKeys(self.kms)
        self.repo = repo
        self.datums: list[Datum] = []
        self.logs = self.open()
        self.key = self.kms.create_key("logs").arn
        self.logs.create_group("g")
        self.logs.create_stream("g", "s")

    def open(self, ttl_s: float = 300.0) -> LogGroups:
        return LogGroups(self.repo, self.clock, ACCOUNT, REGION, keys=self.keys, data_key_ttl_s=ttl_s,
                         metrics=self)

    def put_metric_data(self, data: Any) -> None:
        self.datums.extend(data)

    def messages(self, group: str = "g", stream: str = "s") -> list[str]:
        return [e.message for e in self.logs.get_events(group, stream, from_head=True).events]


@pytest.fixture
def env() -> Setup:
    return Setup(MemoryLogGroupRepository())


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[tuple[Setup, sqlite3.Connection]]:
    db = Database(tmp_path / "state.db")
    setup = Setup(SqliteLogGroupRepository(db))
    raw = sqlite3.connect(tmp_path / "state.db")
    yield setup, raw
    raw.close()
    db.close()


def _code(call: Callable[[], Any]) -> str:
    with pytest.raises(LogsError) as caught:
        call()
    return caught.value.code


# ---- association --------------------------------------------------------------------------------
REFUSALS: list[tuple[str, Callable[[Setup], str], str]] = [
    ("no such key id", lambda s: "1234abcd-12ab-34cd-56ef-1234567890ab", "InvalidParameterException"),
    ("not a key reference", lambda s: "my-key", "InvalidParameterException"),
    ("another region's key ARN", lambda s: s.key.replace(REGION, "us-east-1"), "InvalidParameterException"),
    ("not a KMS ARN", lambda s: "arn:aws:s3:::bucket/key", "InvalidParameterException"),
    ("no such alias", lambda s: f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/none", "InvalidParameterException"),
    ("too long", lambda s: "k" * 257, "InvalidParameterException"),
    ("disabled key", lambda s: s.kms.disable_key(s.key).arn, "InvalidParameterException"),
    ("key pending deletion", lambda s: s.kms.schedule_key_deletion(s.key, 7).arn, "InvalidParameterException"),
]


@pytest.mark.parametrize(("case", "key_of", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_key_that_cannot_encrypt_is_refused(env: Setup, case: str, key_of: Callable[[Setup], str],
                                              code: str) -> None:
    key = key_of(env)
    assert _code(lambda: env.logs.associate_kms_key("g", key)) == code
    assert _code(lambda: env.logs.create_group("new", kms_key_id=key)) == code
    assert env.logs.repo.get_group("new") is None, "a refused key creates no group"
    group = env.logs.repo.get_group("g")
    assert group is not None and group.kms_key_id is None and env.repo.data_keys("g") == []


def test_association_needs_the_group_and_a_kms(env: Setup) -> None:
    assert _code(lambda: env.logs.associate_kms_key("missing", env.key)) == "ResourceNotFoundException"
    assert _code(lambda: env.logs.disassociate_kms_key("missing")) == "ResourceNotFoundException"
    without = LogGroups(MemoryLogGroupRepository(), env.clock, ACCOUNT, REGION)
    without.create_group("g")
    assert _code(lambda: without.associate_kms_key("g", env.key)) == "InvalidParameterException"
    assert _code(lambda: without.create_group("h", kms_key_id=env.key)) == "InvalidParameterException"
    env.logs.create_group("taken")
    assert _code(lambda: env.logs.create_group("taken", kms_key_id=env.key)) == "ResourceAlreadyExistsException"


@pytest.mark.parametrize("form", ["key id", "key ARN", "alias name", "alias ARN"])
def test_a_key_is_accepted_as_the_kms_resolves_it_and_kept_as_its_arn(env: Setup, form: str) -> None:
    env.kms.create_alias("alias/logs", env.key)
    key_id = env.key.rpartition("/")[2]
    ref = {"key id": key_id, "key ARN": env.key, "alias name": "alias/logs",
           "alias ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/logs"}[form]
    env.logs.associate_kms_key("g", ref)
    env.logs.create_group("created", kms_key_id=ref)
    described = {g.record.name: g.record.kms_key_id for g in env.logs.describe_groups()[0]}
    assert described == {"g": env.key, "created": env.key}


# ---- at rest and read back ------------------------------------------------------------------------
def test_events_are_stored_sealed_with_no_plaintext_in_the_row(
        sqlite_env: tuple[Setup, sqlite3.Connection]) -> None:
    env, raw = sqlite_env
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "before")])
    env.logs.associate_kms_key("g", env.key)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + 1, LOGIN, "ev-1")])
    rows = raw.execute("SELECT message, event_name, sealed, data_key_id, dedup_key FROM log_events ORDER BY seq"
                       ).fetchall()
    assert rows[0] == ("before", None, None, None, None), "events stored before the association stay clear"
    message, name, sealed, data_key, dedup = rows[1]
    assert (message, name, dedup) == ("", None, "ev-1") and data_key is not None
    for secret in (b"hunter2", b"ConsoleLogin", b"192.0.2.1", LOGIN.encode()):
        assert secret not in sealed
    [wrapped] = raw.execute("SELECT wrapped FROM log_group_data_keys").fetchall()
    assert len(wrapped[0]) > 32  # the data key is stored only wrapped by the KMS key
    assert env.messages() == ["before", LOGIN]
    [group] = env.logs.describe_groups()[0]
    assert group.record.kms_key_id == env.key
    assert group.stored_bytes == len("before") + len(LOGIN) + 2 * 26  # the sender's bytes, not the ciphertext's


def test_filter_patterns_and_metric_filters_see_encrypted_events(env: Setup) -> None:
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, LOGIN)])
    env.logs.associate_kms_key("g", env.key)
    env.logs.put_metric_filter("g", "logins", '{ $.eventName = "ConsoleLogin" }',
                               [Transformation("Logins", "CIS", "1")])
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + 1, LOGIN, "k2"), NewEvent(NOW_MS + 2, OTHER, "k3")])
    assert [d.stats.event_ids for d in env.datums] == [("k2",)]
    # A pattern that pins eventName would read the index, which holds no encrypted event: the
    # encrypted group is searched by decrypting instead, so both logins are found.
    page = env.logs.filter_events("g", '{ $.eventName = "ConsoleLogin" }')
    assert [e.message for e in page.events] == [LOGIN, LOGIN] and page.next_token is None
    assert [e.message for e in env.logs.filter_events("g", "DescribeTrails").events] == [OTHER]


def test_after_disassociation_new_events_are_clear_and_old_ones_still_read(
        sqlite_env: tuple[Setup, sqlite3.Connection]) -> None:
    env, raw = sqlite_env
    env.logs.associate_kms_key("g", env.key)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "sealed")])
    env.logs.disassociate_kms_key("g")
    env.logs.disassociate_kms_key("g")  # a group without a key stays as it is
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + 1, "clear")])
    assert raw.execute("SELECT message, sealed IS NULL FROM log_events ORDER BY seq").fetchall() == [
        ("", 0), ("clear", 1)]
    assert env.messages() == ["sealed", "clear"]
    [group] = env.logs.describe_groups()[0]
    assert group.record.kms_key_id is None


def test_a_key_that_stops_working_makes_its_events_unreadable_until_enabled(env: Setup) -> None:
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "clear")])
    env.logs.associate_kms_key("g", env.key)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + 1, LOGIN)])
    env.kms.disable_key(env.key)
    # At once, although the unwrapped data key is cached: the key's state is read on each call.
    assert _code(lambda: env.logs.get_events("g", "s", from_head=True)) == "AccessDeniedException"
    assert _code(lambda: env.logs.filter_events("g", "ConsoleLogin")) == "AccessDeniedException"
    assert _code(lambda: env.logs.put_events("g", "s", [NewEvent(NOW_MS + 2, "more")])) == "AccessDeniedException"
    env.kms.enable_key(env.key)
    assert env.messages() == ["clear", LOGIN]
    env.kms.schedule_key_deletion(env.key, 7)
    with pytest.raises(LogsError, match="CancelKeyDeletion") as caught:
        env.logs.get_events("g", "s", from_head=True)
    assert caught.value.code == "AccessDeniedException"
    env.kms.cancel_key_deletion(env.key)
    env.kms.enable_key(env.key)
    assert env.messages() == ["clear", LOGIN]


def test_old_events_need_their_own_key_after_the_group_moves_to_another(env: Setup) -> None:
    env.logs.associate_kms_key("g", env.key)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "under first")])
    second = env.kms.create_key("second").arn
    env.logs.associate_kms_key("g", second)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + 1, "under second")])
    assert env.messages() == ["under first", "under second"]
    env.kms.disable_key(env.key)
    with pytest.raises(LogsError, match=env.key):
        env.logs.get_events("g", "s", from_head=True)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + 2, "still writable")])  # new events use the second key


def test_an_unreachable_kms_is_a_retryable_503(env: Setup) -> None:
    env.logs.associate_kms_key("g", env.key)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "x")])

    class Down(CountingKeys):
        def check_usable(self, key_ref: str) -> str:
            raise KeyUnreachableError("DependencyTimeoutException: the root of trust is unreachable")

    down = LogGroups(env.repo, env.clock, ACCOUNT, REGION, keys=Down(env.kms))
    with pytest.raises(LogsError) as caught:
        down.get_events("g", "s", from_head=True)
    assert (caught.value.code, caught.value.status) == ("ServiceUnavailableException", 503)
    assert _code(lambda: down.associate_kms_key("g", env.key)) == "ServiceUnavailableException"


# ---- bound to their row ----------------------------------------------------------------------------
def _move_to_other_group(raw: sqlite3.Connection) -> None:
    raw.execute("UPDATE log_events SET group_name = 'h' WHERE group_name = 'g'")


def _swap_rows(raw: sqlite3.Connection) -> None:
    (a, first), (b, second) = raw.execute("SELECT seq, sealed FROM log_events ORDER BY seq").fetchall()
    raw.execute("UPDATE log_events SET sealed = ? WHERE seq = ?", (second, a))
    raw.execute("UPDATE log_events SET sealed = ? WHERE seq = ?", (first, b))


def _other_stream(raw: sqlite3.Connection) -> None:
    raw.execute("UPDATE log_events SET stream_name = 't'")


def _flip_a_byte(raw: sqlite3.Connection) -> None:
    seq, sealed = raw.execute("SELECT seq, sealed FROM log_events ORDER BY seq").fetchone()
    raw.execute("UPDATE log_events SET sealed = ? WHERE seq = ?", (sealed[:-1] + bytes([sealed[-1] ^ 1]), seq))


def _other_data_key(raw: sqlite3.Connection) -> None:
    [(other,)] = raw.execute("SELECT id FROM log_group_data_keys WHERE group_name = 'h'").fetchall()
    raw.execute("UPDATE log_events SET data_key_id = ? WHERE group_name = 'g'", (other,))


def _truncate(raw: sqlite3.Connection) -> None:
    raw.execute("UPDATE log_events SET sealed = substr(sealed, 1, 10)")


TAMPERS = [("moved to another group", _move_to_other_group, "h", "s"), ("rows swapped", _swap_rows, "g", "s"),
           ("moved to another stream", _other_stream, "g", "t"), ("one byte flipped", _flip_a_byte, "g", "s"),
           ("pointed at another group's data key", _other_data_key, "g", "s"),
           ("truncated", _truncate, "g", "s")]


@pytest.mark.parametrize(("case", "tamper", "group", "stream"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_a_sealed_message_altered_or_moved_fails_to_open(sqlite_env: tuple[Setup, sqlite3.Connection], case: str,
                                                         tamper: Callable[[sqlite3.Connection], None], group: str,
                                                         stream: str) -> None:
    env, raw = sqlite_env
    env.logs.create_group("h")
    for name, stream_name in (("g", "t"), ("h", "s"), ("h", "t")):
        env.logs.create_stream(name, stream_name)
    for name in ("g", "h"):
        env.logs.associate_kms_key(name, env.key)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "first"), NewEvent(NOW_MS + 1, "second")])
    assert env.messages() == ["first", "second"]
    tamper(raw)
    raw.commit()
    with pytest.raises(LogsError, match="integrity") as caught:
        env.logs.get_events(group, stream, from_head=True)
    assert (caught.value.code, caught.value.status) == ("InternalFailure", 500)


def test_seal_and_open_bind_every_part_of_the_row() -> None:
    key = bytes(range(32))
    sealed = seal_message(key, event_aad("g", "s", 7, 1), "hello")
    assert open_message(key, event_aad("g", "s", 7, 1), sealed) == "hello"
    for aad in (event_aad("h", "s", 7, 1), event_aad("g", "t", 7, 1), event_aad("g", "s", 8, 1),
                event_aad("g", "s", 7, 2)):
        with pytest.raises(SealBrokenError):
            open_message(key, aad, sealed)
    with pytest.raises(SealBrokenError, match="unknown format"):
        open_message(key, event_aad("g", "s", 7, 1), b"\x02" + sealed[1:])


# ---- data keys: cache, rotation ------------------------------------------------------------------
def test_an_unwrapped_data_key_is_reused_for_its_ttl_only(env: Setup) -> None:
    env.logs.associate_kms_key("g", env.key)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "x")])
    env.messages()
    assert env.keys.unwrapped == 0  # the key generated at association is cached
    cold = env.open(ttl_s=300.0)
    cold.get_events("g", "s", from_head=True)
    cold.get_events("g", "s", from_head=True)
    assert env.keys.unwrapped == 1
    uncached = env.open(ttl_s=0.0)
    uncached.get_events("g", "s", from_head=True)
    uncached.get_events("g", "s", from_head=True)
    assert env.keys.unwrapped == 3


def test_the_cache_expires_and_stays_bounded() -> None:
    now = [0.0]
    cache = DataKeyCache(ttl_s=10.0, max_entries=2, now=lambda: now[0])
    cache.put(1, b"a")
    cache.put(2, b"b")
    now[0] = 9.9
    assert (cache.get(1), cache.get(2)) == (b"a", b"b")
    cache.put(3, b"c")  # the oldest goes
    assert (cache.get(1), cache.get(3)) == (None, b"c")
    now[0] = 10.0
    assert cache.get(2) is None
    with pytest.raises(ValueError):
        DataKeyCache(ttl_s=-1)


def test_a_data_key_is_replaced_once_a_day_old(env: Setup) -> None:
    env.logs.associate_kms_key("g", env.key)
    env.logs.set_retention("g", 30)
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "day one")])
    env.clock.advance(timedelta(milliseconds=DATA_KEY_MAX_AGE_MS - 1))
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + DATA_KEY_MAX_AGE_MS - 1, "same key")])
    assert len(env.repo.data_keys("g")) == 1
    env.clock.advance(timedelta(milliseconds=1))
    env.logs.put_events("g", "s", [NewEvent(NOW_MS + DATA_KEY_MAX_AGE_MS, "day two")])
    first, second = env.repo.data_keys("g")
    stored = env.repo.events(EventQuery("g"))
    assert [e.data_key for e in stored] == [first.id, first.id, second.id]
    assert env.messages() == ["day one", "same key", "day two"]


def test_deleting_a_group_removes_its_data_keys(env: Setup) -> None:
    env.logs.associate_kms_key("g", env.key)
    env.logs.delete_group("g")
    assert env.repo.data_keys("g") == []
    env.logs.create_group("g")
    env.logs.create_stream("g", "s")
    env.logs.put_events("g", "s", [NewEvent(NOW_MS, "clear again")])
    assert [e.sealed for e in env.repo.events(EventQuery("g"))] == [None]


@settings(max_examples=40, deadline=None)
# Text as the wire carries it: valid Unicode (a lone surrogate is refused when the JSON is read).
@given(messages=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300),
                         min_size=1, max_size=5),
       stream=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=":*"), min_size=1,
                      max_size=20))
def test_any_batch_reads_back_as_it_was_put(messages: list[str], stream: str) -> None:
    env = Setup(MemoryLogGroupRepository())
    env.logs.create_group("k", kms_key_id=env.key)
    env.logs.create_stream("k", stream)
    env.logs.put_events("k", stream, [NewEvent(NOW_MS + i, m) for i, m in enumerate(messages)])
    assert env.messages("k", stream) == messages
    assert [e.message for e in env.repo.events(EventQuery("k"))] == [""] * len(messages)
    assert [e.message for e in env.logs.filter_events("k").events] == messages


# ---- the API ----------------------------------------------------------------------------------------
def test_the_logs_api_associates_shows_and_refuses_keys(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=1)
        try:
            kms = botocore_client(pipeline, app, "kms")
            logs = botocore_client(pipeline, app, "logs")
            key = kms.create_key()["KeyMetadata"]
            logs.create_log_group(logGroupName="api")
            logs.create_log_stream(logGroupName="api", logStreamName="s")
            group_arn = f"arn:aws:logs:{pipeline.creds.region}:{key['AWSAccountId']}:log-group:api"
            logs.associate_kms_key(resourceIdentifier=group_arn, kmsKeyId=key["KeyId"])
            [described] = logs.describe_log_groups(logGroupNamePrefix="api")["logGroups"]
            assert described["kmsKeyId"] == key["Arn"]
            now = int(pipeline.clock.now().timestamp() * 1000)
            logs.put_log_events(logGroupName="api", logStreamName="s", logEvents=[{"timestamp": now, "message": "m"}])
            kms.disable_key(KeyId=key["KeyId"])
            with pytest.raises(logs.exceptions.ClientError) as denied:
                logs.get_log_events(logGroupName="api", logStreamName="s", startFromHead=True)
            assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
            with pytest.raises(logs.exceptions.InvalidParameterException):
                logs.associate_kms_key(logGroupName="api", kmsKeyId=key["Arn"])
            with pytest.raises(logs.exceptions.InvalidParameterException):
                logs.associate_kms_key(logGroupName="api", resourceIdentifier=group_arn, kmsKeyId=key["Arn"])
            kms.enable_key(KeyId=key["KeyId"])
            got = logs.get_log_events(logGroupName="api", logStreamName="s", startFromHead=True)
            assert [e["message"] for e in got["events"]] == ["m"]
            logs.disassociate_kms_key(logGroupName="api")
            record = _last_record(pipeline)
            assert (record["eventName"], record["readOnly"]) == ("DisassociateKmsKey", False)
            assert record["requestParameters"] == {"logGroupName": "api"}
            [plain] = logs.describe_log_groups(logGroupNamePrefix="api")["logGroups"]
            assert "kmsKeyId" not in plain
        finally:
            app.pool.shutdown()


def _last_record(pipeline: Any) -> dict[str, Any]:
    spool = pipeline.service.spool
    [(_, body)] = spool.read(spool.next_seq() - 1, 1, 1 << 20)
    record: dict[str, Any] = orjson.loads(body)
    return record
