"""One contract per state repository, run against its SQLite and its memory implementation.

Every test takes a fixture parametrised over both; the tests named `test_sqlite_only_...` at
the end take a SQLite repository alone (what survives a reopen of the file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.identity import Account, IdentityRepository, StoredAccessKey, StoredUser
from trailkeeper.keys.signing import PublicKeyInfo, SigningKeyRepository
from trailkeeper.kms import (
    AliasRecord,
    KeyRecord,
    KmsRepository,
    MaterialRecord,
    MemoryKmsRepository,
    SqliteKmsRepository,
)
from trailkeeper.lake import Channel, ChannelRepository
from trailkeeper.state.channels import MemoryChannelRepository, SqliteChannelRepository
from trailkeeper.state.identities import MemoryIdentityRepository, SqliteIdentityRepository
from trailkeeper.state.signing_keys import MemorySigningKeyRepository, SqliteSigningKeyRepository
from trailkeeper.state.trails import MemoryTrailRepository, SqliteTrailRepository
from trailkeeper.trails import (
    ChainHead,
    DeliveredFile,
    Location,
    TrailConfig,
    TrailRepository,
    TrailState,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KINDS = ["sqlite", "memory"]
HERE = Location("bucket-a", "p", "/data/bucket-a")
THERE = Location("bucket-b", "", "/data/bucket-b")


class Boom(Exception):
    """Raised inside a transaction to make it fail."""


# ---- fixtures: one per aggregate, each giving both implementations ---------------------------------
@pytest.fixture(params=KINDS)
def trails(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrailRepository]:
    if request.param == "memory":
        yield MemoryTrailRepository()
        return
    db = Database(tmp_path / "state.db")
    yield SqliteTrailRepository(db)
    db.close()


@pytest.fixture(params=KINDS)
def identities(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdentityRepository]:
    repo: IdentityRepository = (MemoryIdentityRepository() if request.param == "memory"
                                else SqliteIdentityRepository(tmp_path / "state.db"))
    yield repo
    repo.close()


@pytest.fixture(params=KINDS)
def signing_keys(request: pytest.FixtureRequest, tmp_path: Path) -> SigningKeyRepository:
    if request.param == "memory":
        return MemorySigningKeyRepository()
    return SqliteSigningKeyRepository(tmp_path / "state.db")


@pytest.fixture(params=KINDS)
def channels(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChannelRepository]:
    if request.param == "memory":
        yield MemoryChannelRepository()
        return
    db = Database(tmp_path / "state.db")
    yield SqliteChannelRepository(db)
    db.close()


@pytest.fixture(params=KINDS)
def kms_rows(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KmsRepository]:
    repo: KmsRepository = (MemoryKmsRepository() if request.param == "memory"
                           else SqliteKmsRepository(tmp_path / "state.db"))
    yield repo
    repo.close()


# ---- trails -------------------------------------------------------------------------------------------
def config(name: str, bucket: str = "bucket-a") -> TrailConfig:
    return TrailConfig(name=name, bucket=bucket, destination=f"/data/{bucket}", prefix="p")


def delivered(key: str, at: datetime, hash_value: str = "h") -> DeliveredFile:
    return DeliveredFile(key, hash_value, "s" + hash_value, at - timedelta(minutes=1), at - timedelta(minutes=2), at, 3)


def test_trail_create_get_count(trails: TrailRepository) -> None:
    assert trails.get("t") is None and trails.count() == 0
    assert trails.create(config("t"), TrailState(offset_seq=7), T0)
    got = trails.get("t")
    assert got is not None
    assert (got.config, got.state.offset_seq, got.created) == (config("t"), 7, T0)
    assert trails.count() == 1


def test_trail_duplicate_name_is_refused_and_changes_nothing(trails: TrailRepository) -> None:
    assert trails.create(config("t"), TrailState(), T0)
    assert not trails.create(config("t", bucket="other-bucket"), TrailState(offset_seq=9), T0 + timedelta(hours=1))
    got = trails.get("t")
    assert got is not None
    assert (got.config.bucket, got.state.offset_seq, got.created, trails.count()) == ("bucket-a", 0, T0, 1)


def test_trails_are_listed_by_name(trails: TrailRepository) -> None:
    for name in ("delta", "Alpha", "charlie", "bravo"):
        assert trails.create(config(name), TrailState(), T0)
    assert [t.config.name for t in trails.all()] == ["Alpha", "bravo", "charlie", "delta"]


def test_trail_config_and_state_updates(trails: TrailRepository) -> None:
    trails.create(config("t"), TrailState(), T0)
    trails.update_config(replace(config("t"), validation=True, tags=(("k", "v"),)))
    chain = ChainHead("bucket-a", "d/key.json.gz", "ab" * 32, "cd" * 64, T0 + timedelta(hours=1))
    state = TrailState(is_logging=True, offset_seq=42, start_logging_time=T0, chain=chain, intent={"seq": [1, 2]})
    trails.save_state("t", state)
    got = trails.get("t")
    assert got is not None
    assert got.config.validation and got.config.tags == (("k", "v"),) and got.created == T0
    assert got.state == state


def test_trail_writes_to_a_missing_trail_change_nothing(trails: TrailRepository) -> None:
    trails.update_config(config("ghost"))
    trails.save_state("ghost", TrailState(offset_seq=3))
    trails.archive("ghost", "ghost@1", T0)
    assert (trails.get("ghost"), trails.count(), trails.all(), trails.deleted()) == (None, 0, [], [])


def test_trail_state_read_back_is_a_copy(trails: TrailRepository) -> None:
    state = TrailState(intent={"seq": [1]})
    trails.create(config("t"), state, T0)
    state.intent = {"seq": [2]}
    got = trails.get("t")
    assert got is not None and got.state.intent == {"seq": [1]}


def test_logging_periods_open_close_and_order(trails: TrailRepository) -> None:
    trails.create(config("t"), TrailState(), T0)
    later, earlier = T0 + timedelta(days=1), T0
    trails.start_chain("t", TrailState(is_logging=True, offset_seq=1), later, THERE)
    trails.start_chain("t", TrailState(is_logging=True, offset_seq=2), earlier, HERE)
    trails.mark_stopped("t", TrailState(offset_seq=3), T0 + timedelta(days=2))
    periods = trails.periods("t")
    assert [(p.started, p.stopped, p.location) for p in periods] == [
        (earlier, T0 + timedelta(days=2), HERE), (later, T0 + timedelta(days=2), THERE)]
    got = trails.get("t")
    assert got is not None and got.state.offset_seq == 3
    assert trails.periods("other") == []


def test_start_chain_at_the_same_time_replaces_the_period(trails: TrailRepository) -> None:
    trails.create(config("t"), TrailState(), T0)
    trails.start_chain("t", TrailState(), T0, HERE)
    trails.mark_stopped("t", TrailState(), T0 + timedelta(hours=1))
    trails.start_chain("t", TrailState(), T0, THERE)
    assert [(p.started, p.stopped, p.location) for p in trails.periods("t")] == [(T0, None, THERE)]


def test_deliveries_are_kept_once_and_ordered(trails: TrailRepository) -> None:
    trails.create(config("t"), TrailState(), T0)
    at = T0 + timedelta(minutes=5)
    trails.record_delivery("t", TrailState(offset_seq=10), delivered("b", at), 1, 9)
    trails.record_delivery("t", TrailState(offset_seq=11), delivered("a", at), 10, 10)
    trails.record_delivery("t", TrailState(offset_seq=12), delivered("c", at - timedelta(minutes=1)), 11, 11)
    trails.record_delivery("t", TrailState(offset_seq=13), delivered("a", at, hash_value="other"), 10, 10)
    files = trails.delivered_files("t")
    assert [f.key for f in files] == ["c", "a", "b"]
    assert files[1] == delivered("a", at)  # the first record of a key stays
    got = trails.get("t")
    assert got is not None and got.state.offset_seq == 13
    assert trails.delivered_files("other") == []


def test_digests_mark_files_and_close_the_newest_period(trails: TrailRepository) -> None:
    trails.create(config("t"), TrailState(), T0)
    trails.start_chain("t", TrailState(), T0, HERE)
    trails.start_chain("t", TrailState(), T0 + timedelta(hours=2), HERE)
    for i, key in enumerate(("k1", "k2", "k3")):
        trails.record_delivery("t", TrailState(), delivered(key, T0 + timedelta(minutes=10 * i)), i, i)
    before = T0 + timedelta(minutes=15)
    assert [f.key for f in trails.undigested("t", before)] == ["k1", "k2"]
    end = T0 + timedelta(hours=3)
    trails.record_digest("t", TrailState(offset_seq=99), ["k1", "missing"], end, final=True)
    assert [f.key for f in trails.undigested("t", before)] == ["k2"]
    assert [f.key for f in trails.delivered_files("t")] == ["k1", "k2", "k3"]
    assert [p.final_digest_end for p in trails.periods("t")] == [None, end]
    got = trails.get("t")
    assert got is not None and got.state.offset_seq == 99


def test_archive_keeps_the_history_under_the_key(trails: TrailRepository) -> None:
    trails.create(config("t"), TrailState(), T0)
    trails.create(config("u"), TrailState(), T0)
    trails.start_chain("t", TrailState(), T0, HERE)
    trails.record_delivery("t", TrailState(), delivered("k", T0), 1, 1)
    trails.archive("t", "t@2", T0 + timedelta(days=2))
    trails.archive("u", "u@1", T0 + timedelta(days=1))
    assert trails.get("t") is None and trails.count() == 0
    gone = trails.deleted()
    assert [(d.key, d.config.name, d.created, d.deleted) for d in gone] == [
        ("u@1", "u", T0, T0 + timedelta(days=1)), ("t@2", "t", T0, T0 + timedelta(days=2))]
    assert trails.periods("t") == [] and [p.location for p in trails.periods("t@2")] == [HERE]
    assert trails.delivered_files("t") == [] and [f.key for f in trails.delivered_files("t@2")] == ["k"]


def test_period_places_name_deleted_trails_by_their_name(trails: TrailRepository) -> None:
    trails.create(config("t"), TrailState(), T0)
    trails.create(config("b"), TrailState(), T0)
    trails.start_chain("t", TrailState(), T0, HERE)
    trails.start_chain("t", TrailState(), T0 + timedelta(hours=1), THERE)
    trails.start_chain("b", TrailState(), T0, THERE)
    trails.archive("t", "t@1", T0 + timedelta(days=1))
    assert trails.period_places() == [("b", THERE), ("t", HERE), ("t", THERE)]


# ---- identities ---------------------------------------------------------------------------------------
ACCOUNT = Account("123456789012", "eu-west-1", T0)


def user(user_id: str, name: str, role: str = "writer") -> StoredUser:
    return StoredUser(user_id, name, role, T0)


def access_key(key_id: str, user_id: str | None, at: datetime = T0, status: str = "Active") -> StoredAccessKey:
    return StoredAccessKey(key_id, user_id, None if user_id is None else f"name-of-{user_id}", status,
                           b"envelope-" + key_id.encode(), at, at)


def test_account_is_added_once(identities: IdentityRepository) -> None:
    assert identities.account() is None
    with identities.transaction():
        assert identities.add_account(ACCOUNT)
        assert not identities.add_account(replace(ACCOUNT, account_id="999999999999"))
    assert identities.account() == ACCOUNT


def test_users_match_ignoring_ascii_case(identities: IdentityRepository) -> None:
    with identities.transaction():
        assert identities.add_user(user("AIDA1", "Alice"))
        assert not identities.add_user(user("AIDA2", "ALICE"))
        assert not identities.add_user(user("AIDA1", "someone-else"))
    assert identities.user("alice") == user("AIDA1", "Alice")
    assert identities.user("bob") is None
    assert [u.user_id for u in identities.users()] == ["AIDA1"]


def test_users_are_listed_by_name_ignoring_case(identities: IdentityRepository) -> None:
    with identities.transaction():
        for n, name in enumerate(("carol", "Bob", "alice", "_ops")):
            identities.add_user(user(f"AIDA{n}", name))
    assert [u.name for u in identities.users()] == ["_ops", "alice", "Bob", "carol"]


def test_remove_user(identities: IdentityRepository) -> None:
    with identities.transaction():
        identities.add_user(user("AIDA1", "alice"))
    with identities.transaction():
        identities.remove_user("AIDA1")
        identities.remove_user("AIDA-missing")
    assert (identities.user("alice"), identities.users()) == (None, [])


def test_access_keys_of_an_owner_oldest_first(identities: IdentityRepository) -> None:
    with identities.transaction():
        identities.add_user(user("AIDA1", "alice"))
        assert identities.add_access_key(access_key("AKIA-Z", None))
        assert identities.add_access_key(access_key("AKIA-A", None))  # same time: kept in the order added
        assert identities.add_access_key(access_key("AKIA-OLD", None, T0 - timedelta(days=1)))
        assert identities.add_access_key(access_key("AKIA-U", "AIDA1"))
        assert not identities.add_access_key(access_key("AKIA-A", "AIDA1"))
    assert [k.access_key_id for k in identities.access_keys(None)] == ["AKIA-OLD", "AKIA-Z", "AKIA-A"]
    assert identities.access_keys("AIDA1") == [access_key("AKIA-U", "AIDA1")]
    assert identities.access_keys("AIDA-nobody") == []


def test_key_status_changes_only_for_its_owner(identities: IdentityRepository) -> None:
    later = T0 + timedelta(hours=1)
    with identities.transaction():
        identities.add_access_key(access_key("AKIA-U", "AIDA1"))
        assert not identities.set_key_status("AKIA-U", None, "Inactive", later, erase_secret=False)
        assert not identities.set_key_status("AKIA-missing", "AIDA1", "Inactive", later, erase_secret=False)
        assert identities.set_key_status("AKIA-U", "AIDA1", "Inactive", later, erase_secret=False)
    assert identities.access_keys("AIDA1") == [replace(access_key("AKIA-U", "AIDA1"), status="Inactive",
                                                       status_changed=later)]


def test_deleted_keys_leave_every_listing(identities: IdentityRepository) -> None:
    with identities.transaction():
        identities.add_user(user("AIDA1", "alice"))
        identities.add_access_key(access_key("AKIA-U", "AIDA1"))
        identities.add_access_key(access_key("AKIA-R", None))
        assert identities.set_key_status("AKIA-U", "AIDA1", "Deleted", T0, erase_secret=True)
        assert not identities.set_key_status("AKIA-U", "AIDA1", "Active", T0, erase_secret=False)
    assert identities.access_keys("AIDA1") == []
    assert [(k.access_key_id, u) for k, u in identities.live_keys()] == [("AKIA-R", None)]


def test_live_keys_come_with_their_users(identities: IdentityRepository) -> None:
    with identities.transaction():
        identities.add_user(user("AIDA1", "alice", "auditor"))
        identities.add_access_key(access_key("AKIA-R", None))
        identities.add_access_key(access_key("AKIA-U", "AIDA1", T0 + timedelta(seconds=1)))
        identities.add_access_key(access_key("AKIA-GONE", "AIDA2", T0 + timedelta(seconds=2)))
    live = identities.live_keys()
    assert [(k.access_key_id, k.secret_envelope, u) for k, u in live] == [
        ("AKIA-R", b"envelope-AKIA-R", None),
        ("AKIA-U", b"envelope-AKIA-U", user("AIDA1", "alice", "auditor")),
        ("AKIA-GONE", b"envelope-AKIA-GONE", None),
    ]


def test_identity_transaction_is_all_or_nothing(identities: IdentityRepository) -> None:
    before = identities.version()
    with pytest.raises(Boom), identities.transaction():
        identities.add_account(ACCOUNT)
        identities.add_user(user("AIDA1", "alice"))
        raise Boom
    assert (identities.account(), identities.users(), identities.version()) == (None, [], before)
    with identities.transaction():
        identities.add_user(user("AIDA1", "alice"))
    assert identities.version() != before and len(identities.users()) == 1


def test_identity_writes_belong_in_a_transaction(identities: IdentityRepository) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        identities.add_user(user("AIDA1", "alice"))
    assert identities.users() == []


# ---- signing keys -------------------------------------------------------------------------------------
def public_key(fp: str, valid_from: datetime, valid_to: datetime | None = None) -> PublicKeyInfo:
    return PublicKeyInfo(b"der-" + fp.encode(), fp, valid_from, valid_to)


def test_signing_keys_history(signing_keys: SigningKeyRepository) -> None:
    assert (signing_keys.current(), signing_keys.all()) == (None, [])
    with signing_keys.transaction():
        assert signing_keys.add(public_key("b" * 32, T0 + timedelta(days=1)), b"sealed-b", "ring")
        assert signing_keys.add(public_key("a" * 32, T0), b"sealed-a", "ring")
        assert not signing_keys.add(public_key("a" * 32, T0 + timedelta(days=5)), b"other", "ring")
    assert [k.fingerprint for k in signing_keys.all()] == ["a" * 32, "b" * 32]
    assert signing_keys.current() == public_key("b" * 32, T0 + timedelta(days=1))
    assert signing_keys.private_envelope("a" * 32) == b"sealed-a"
    assert signing_keys.private_envelope("c" * 32) is None


def test_retired_keys_are_not_current(signing_keys: SigningKeyRepository) -> None:
    end = T0 + timedelta(days=3)
    with signing_keys.transaction():
        signing_keys.add(public_key("a" * 32, T0), b"sealed-a", "ring")
        signing_keys.retire("a" * 32, end)
    assert signing_keys.current() is None
    assert signing_keys.all() == [public_key("a" * 32, T0, end)]


def test_signing_key_transaction_is_all_or_nothing(signing_keys: SigningKeyRepository) -> None:
    with pytest.raises(Boom), signing_keys.transaction():
        signing_keys.add(public_key("a" * 32, T0), b"sealed-a", "ring")
        raise Boom
    assert signing_keys.all() == []
    with pytest.raises(RuntimeError, match="transaction"):
        signing_keys.add(public_key("a" * 32, T0), b"sealed-a", "ring")
    assert signing_keys.all() == []


def test_signing_key_times_need_a_timezone(signing_keys: SigningKeyRepository) -> None:
    with pytest.raises(ValueError, match="timezone"), signing_keys.transaction():
        signing_keys.add(public_key("a" * 32, T0.replace(tzinfo=None)), b"sealed-a", "ring")
    assert signing_keys.all() == []


# ---- channels -----------------------------------------------------------------------------------------
def channel(uuid_tail: str, name: str) -> Channel:
    return Channel(f"arn:aws:cloudtrail:eu-west-1:123456789012:channel/00000000-0000-0000-0000-{uuid_tail}",
                   name, "Custom", [{"Type": "EVENT_DATA_STORE", "Location": "eds"}], [{"Key": "k", "Value": "v"}],
                   T0.timestamp())


def test_channels_add_get_list_remove(channels: ChannelRepository) -> None:
    b, a = channel("00000000000b", "second"), channel("00000000000a", "first")
    assert channels.add(b) and channels.add(a)
    assert channels.get("00000000-0000-0000-0000-00000000000a") == a
    assert channels.get("00000000-0000-0000-0000-00000000000c") is None
    assert [c.name for c in channels.all()] == ["first", "second"]
    assert channels.remove(a.arn) and not channels.remove(a.arn)
    assert channels.all() == [b]


def test_channel_names_and_arns_are_unique(channels: ChannelRepository) -> None:
    assert channels.add(channel("00000000000a", "first"))
    assert not channels.add(channel("00000000000b", "first"))
    assert not channels.add(channel("00000000000a", "other"))
    assert [c.name for c in channels.all()] == ["first"]


def test_a_channel_read_back_is_a_copy(channels: ChannelRepository) -> None:
    original = channel("00000000000a", "first")
    channels.add(original)
    original.destinations.append({"Type": "AWS_SERVICE", "Location": "x"})
    got = channels.get("00000000-0000-0000-0000-00000000000a")
    assert got is not None and len(got.destinations) == 1


# ---- KMS ----------------------------------------------------------------------------------------------
KEY_A, KEY_B = "aaaaaaaa-0000-4000-8000-000000000000", "bbbbbbbb-0000-4000-8000-000000000000"


def kms_key(key_id: str) -> KeyRecord:
    return KeyRecord(key_id, "a key", 1_000, "Enabled", 1)


def material(key_id: str, version: int) -> MaterialRecord:
    return MaterialRecord(key_id, version, f"sealed-{key_id}-{version}".encode(), 1_000 * version, version > 1)


def add_keys(repo: KmsRepository, *key_ids: str) -> None:
    with repo.transaction():
        for key_id in key_ids:
            assert repo.add_key(kms_key(key_id), material(key_id, 1), {"z": "1", "a": "2"})


def test_kms_keys_add_get_list(kms_rows: KmsRepository) -> None:
    add_keys(kms_rows, KEY_B, KEY_A)
    with kms_rows.transaction():
        assert not kms_rows.add_key(kms_key(KEY_A), material(KEY_A, 1), {})
    assert kms_rows.key(KEY_A) == kms_key(KEY_A) and kms_rows.key("missing") is None
    assert [k.key_id for k in kms_rows.all_keys()] == [KEY_A, KEY_B]
    assert [k.key_id for k in kms_rows.all_keys(after=KEY_A)] == [KEY_B]
    assert [k.key_id for k in kms_rows.all_keys(limit=1)] == [KEY_A]
    assert kms_rows.tags(KEY_A) == {"a": "2", "z": "1"} and list(kms_rows.tags(KEY_A)) == ["a", "z"]
    assert kms_rows.tags("missing") == {}


def test_kms_key_update(kms_rows: KmsRepository) -> None:
    add_keys(kms_rows, KEY_A)
    changed = replace(kms_key(KEY_A), state="PendingDeletion", deletion_us=5, pending_days=7, rotation_enabled=True,
                      rotation_days=90, rotation_anchor_us=3)
    with kms_rows.transaction():
        assert kms_rows.update_key(changed)
        assert not kms_rows.update_key(kms_key(KEY_B))
    assert kms_rows.key(KEY_A) == changed and kms_rows.key(KEY_B) is None


def test_kms_material_versions(kms_rows: KmsRepository) -> None:
    add_keys(kms_rows, KEY_A)
    with kms_rows.transaction():
        assert kms_rows.add_material(material(KEY_A, 2))
        assert not kms_rows.add_material(replace(material(KEY_A, 2), sealed=b"other"))
    assert kms_rows.material(KEY_A, 1) == material(KEY_A, 1).sealed
    assert kms_rows.material(KEY_A, 2) == material(KEY_A, 2).sealed
    assert kms_rows.material(KEY_A, 3) is None


def test_kms_aliases(kms_rows: KmsRepository) -> None:
    add_keys(kms_rows, KEY_A, KEY_B)
    with kms_rows.transaction():
        for name, key_id in (("alias/c", KEY_A), ("alias/a", KEY_B), ("alias/b", KEY_A)):
            assert kms_rows.add_alias(AliasRecord(name, key_id, 1, 2))
        assert not kms_rows.add_alias(AliasRecord("alias/a", KEY_A, 3, 3))
    assert kms_rows.alias("alias/a") == AliasRecord("alias/a", KEY_B, 1, 2)
    assert kms_rows.alias("alias/none") is None
    assert [a.name for a in kms_rows.aliases()] == ["alias/a", "alias/b", "alias/c"]
    assert [a.name for a in kms_rows.aliases(key_id=KEY_A)] == ["alias/b", "alias/c"]
    assert [a.name for a in kms_rows.aliases(after="alias/a", limit=1)] == ["alias/b"]
    with kms_rows.transaction():
        assert kms_rows.remove_alias("alias/a") and not kms_rows.remove_alias("alias/a")
    assert [a.name for a in kms_rows.aliases()] == ["alias/b", "alias/c"]


def test_kms_destroy_keeps_a_tombstone(kms_rows: KmsRepository) -> None:
    add_keys(kms_rows, KEY_A, KEY_B)
    with kms_rows.transaction():
        kms_rows.add_alias(AliasRecord("alias/a", KEY_A, 1, 1))
        kms_rows.add_alias(AliasRecord("alias/b", KEY_B, 1, 1))
        kms_rows.destroy_key(KEY_A, 77)
    assert (kms_rows.key(KEY_A), kms_rows.material(KEY_A, 1), kms_rows.tags(KEY_A)) == (None, None, {})
    assert [a.name for a in kms_rows.aliases()] == ["alias/b"]
    assert (kms_rows.deleted_on(KEY_A), kms_rows.deleted_on(KEY_B)) == (77, None)
    assert kms_rows.key(KEY_B) == kms_key(KEY_B)


def test_kms_transaction_is_all_or_nothing(kms_rows: KmsRepository) -> None:
    with pytest.raises(Boom), kms_rows.transaction():
        kms_rows.add_key(kms_key(KEY_A), material(KEY_A, 1), {"t": "v"})
        raise Boom
    assert (kms_rows.key(KEY_A), kms_rows.material(KEY_A, 1), kms_rows.tags(KEY_A)) == (None, None, {})
    with pytest.raises(RuntimeError, match="transaction"):
        kms_rows.add_alias(AliasRecord("alias/a", KEY_A, 1, 1))
    assert kms_rows.aliases() == []


# ---- SQLite only: what a reopened file still holds ---------------------------------------------------------
def test_sqlite_only_every_repository_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = Database(path)
    SqliteTrailRepository(db).create(config("t"), TrailState(offset_seq=4), T0)
    SqliteChannelRepository(db).add(channel("00000000000a", "first"))
    db.close()
    identities = SqliteIdentityRepository(path)
    with identities.transaction():
        identities.add_account(ACCOUNT)
    identities.close()
    signing = SqliteSigningKeyRepository(path)
    with signing.transaction():
        signing.add(public_key("a" * 32, T0), b"sealed-a", "ring")
    kms = SqliteKmsRepository(path)
    add_keys(kms, KEY_A)
    kms.close()

    reopened = Database(path)
    trail = SqliteTrailRepository(reopened).get("t")
    assert trail is not None and trail.state.offset_seq == 4
    assert [c.name for c in SqliteChannelRepository(reopened).all()] == ["first"]
    reopened.close()
    assert SqliteIdentityRepository(path).account() == ACCOUNT
    assert SqliteSigningKeyRepository(path).all() == [public_key("a" * 32, T0)]
    assert SqliteKmsRepository(path).key(KEY_A) == kms_key(KEY_A)


def test_sqlite_only_identity_version_is_seen_by_another_connection(tmp_path: Path) -> None:
    """Another process's identity writes reach this one's key cache through the version."""
    mine, theirs = SqliteIdentityRepository(tmp_path / "state.db"), SqliteIdentityRepository(tmp_path / "state.db")
    before = mine.version()
    with theirs.transaction():
        theirs.add_user(user("AIDA1", "alice"))
    assert mine.version() != before and [u.name for u in mine.users()] == ["alice"]
    mine.close()
    theirs.close()
