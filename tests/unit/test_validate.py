"""Offline validator: the tamper table, tail truncation against the verified state,
stored mode, the AWS CLI text form, and a cross-check with the AWS CLI's own traverser."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tamper_scenarios as ts
from awscli.customizations.cloudtrail.validation import create_digest_traverser
from botocore.exceptions import ClientError

from trailkeeper._internal import gzipio
from trailkeeper.clock import FrozenClock
from trailkeeper.errors import ConfigError
from trailkeeper.storage.base import ObjectStore
from trailkeeper.storage.folder import FolderStore
from trailkeeper.storage.memory import MemoryStore
from trailkeeper.validate import (
    Code,
    StateConflictError,
    Status,
    TrailInfo,
    ValidationReport,
    VerifiedState,
    Window,
    expected_windows,
    validate_trail,
)
from trailkeeper.validate.render import exit_code, render_cli, render_json

H = timedelta(hours=1)


def _t(hhmm: str) -> datetime:
    return datetime.strptime(f"2024-03-10 {hhmm}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@dataclass
class Built:
    facts: ts.TrailFacts
    objects: ts.Objects
    folder: FolderStore


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("trail")
    clock = FrozenClock(ts.T0)
    folder = FolderStore(root / "bucket", ts.BUCKET)
    facts = ts.build_trail(folder, ts.make_signing_keys(root, clock), clock)
    return Built(facts, ts.snapshot(folder), folder)


def _copy(built: Built) -> ts.Objects:
    return {k: ts.Obj(v.data, dict(v.metadata)) for k, v in built.objects.items()}


def _store(objects: ts.Objects) -> MemoryStore:
    store = MemoryStore(ts.BUCKET)
    ts.restore(objects, store)
    return store


def _run(store: ObjectStore, facts: ts.TrailFacts, **kw: Any) -> ValidationReport:
    keys = kw.pop("keys", facts.public_keys)
    now = kw.pop("now", facts.now)
    return validate_trail(store, facts.trail, keys, facts.start, facts.end, now, **kw)


# ---------------------------------------------------------------- untouched trail


def test_untouched_trail_in_a_folder_is_valid(built: Built) -> None:
    report = _run(built.folder, built.facts)
    assert report.ok and exit_code(report) == 0
    assert (report.digests_valid, report.digests_invalid) == (len(built.facts.digests), 0)
    assert report.logs_valid == sum(len(d.log_keys) for d in built.facts.digests) == 15
    assert [(g.start, g.end) for g in report.gaps] == [(ts.STOP, ts.RESTART)]
    assert (report.found_start, report.found_end) == (ts.T0, built.facts.digests[-1].end)
    assert report.heads[ts.REGION].digest_key == built.facts.digests[-1].key


def test_key_rotation_exactly_at_a_digest_boundary_validates(built: Built) -> None:
    """Row 24, complete history: the old key retires at 14:00, the 14:00 digest uses the new one."""
    facts = built.facts
    old, new = facts.public_keys[0], facts.public_keys[1]
    boundary = next(d for d in facts.digests if d.fingerprint == new.fingerprint)
    assert old.valid_to == new.valid_from == boundary.end == _t("14:00")
    assert _run(built.folder, facts).ok


# ---------------------------------------------------------------- the tamper table


@pytest.mark.parametrize("scenario", ts.SCENARIOS, ids=[s.name for s in ts.SCENARIOS])
def test_tamper_scenario(built: Built, scenario: ts.Scenario) -> None:
    facts = built.facts
    keys = scenario.keys(list(facts.public_keys), facts) if scenario.keys else facts.public_keys
    untouched = _run(_store(_copy(built)), facts)
    assert untouched.ok and exit_code(untouched) == 0

    objects = _copy(built)
    scenario.tamper(objects, facts)
    report = _run(_store(objects), facts, keys=keys)

    assert ts.counts(report.codes()) == ts.nonzero(scenario.expected(facts))
    assert exit_code(report) == 1 and not report.ok


def test_scenario_table_covers_every_applicable_catalogue_row() -> None:
    rows = {s.row for s in ts.SCENARIOS}
    assert set(range(1, 17)) | {22, 23, 24} <= rows
    assert len({s.name for s in ts.SCENARIOS}) == len(ts.SCENARIOS)


def test_each_missing_digest_is_named_once(built: Built) -> None:
    facts = built.facts
    first = facts.run_of(3)
    gone = [facts.digests[first + k].key for k in range(3)]
    objects = _copy(built)
    ts._delete(objects, gone)
    report = _run(_store(objects), facts)
    missing = [e.key for e in report.entries if e.code is Code.DIGEST_MISSING]
    assert sorted(missing) == sorted(gone)


def test_logs_of_an_open_window_are_not_flagged(built: Built) -> None:
    report = _run(built.folder, built.facts)
    keys = {e.key for e in report.entries}
    assert built.facts.pending_log_keys and not keys & set(built.facts.pending_log_keys)


def test_unreferenced_log_becomes_an_error_once_its_digest_is_due(built: Built) -> None:
    facts = built.facts
    objects = _copy(built)
    last = facts.digests[-1]  # written, but not yet required at NOW
    ts._plant_log(objects, facts, last.start + timedelta(minutes=45))
    report = _run(_store(objects), facts)
    assert ts.counts(report.codes()) == {Code.LOG_UNREFERENCED: 1}


def test_log_in_a_window_whose_digest_is_not_due_is_pending(built: Built) -> None:
    facts = built.facts
    objects = _copy(built)
    ts._delete(objects, [facts.digests[-1].key])
    ts._plant_log(objects, facts, facts.digests[-1].start + timedelta(minutes=45))
    assert _run(_store(objects), facts).ok


def test_valid_backfill_digest_is_counted_separately(built: Built) -> None:
    facts = built.facts
    objects = _copy(built)
    ts._backfill(objects, facts, facts.middle(), with_timestamp=True)
    report = _run(_store(objects), facts)
    assert report.ok and report.count("digest", True, backfill=True) == 1
    out, _ = render_cli(report)
    assert "\n1/1 backfill digest files valid" in out


def test_backfill_digest_stands_in_for_a_deleted_one(built: Built) -> None:
    facts = built.facts
    i = facts.middle()
    objects = _copy(built)
    ts._backfill(objects, facts, i, with_timestamp=True)
    ts._delete(objects, [facts.digests[i].key])
    assert ts.counts(_run(_store(objects), facts).codes()) == {}


# ---------------------------------------------------------------- verified state


def _state_after_clean_run(built: Built, tmp_path: Path) -> VerifiedState:
    state = VerifiedState.load(tmp_path / "verified.json")
    report = _run(built.folder, built.facts, state=state)
    assert state.advance(report)
    state.save()
    return VerifiedState.load(tmp_path / "verified.json")


def test_tail_truncation_behind_the_verified_state(built: Built, tmp_path: Path) -> None:
    """The newest digest is not due yet, so only the saved state can tell it was deleted; that
    state makes its window due at once, so its logs are reported too."""
    facts = built.facts
    state = _state_after_clean_run(built, tmp_path)
    assert state.head(facts.trail.arn, ts.REGION) is not None
    objects = _copy(built)
    ts._delete(objects, [facts.digests[-1].key])
    without_state = _run(_store(objects), facts)
    assert without_state.ok  # indistinguishable from "not written yet"
    assert facts.digests[-1].key in [p.key for p in without_state.pending]
    report = _run(_store(objects), facts, state=state)
    assert ts.counts(report.codes()) == {Code.CHAIN_TRUNCATED: 1, Code.DIGEST_MISSING: 1,
                                         Code.LOG_UNREFERENCED: facts.logs(len(facts.digests) - 1)}
    assert facts.digests[-1].key not in [p.key for p in report.pending]
    assert not state.advance(report)


def test_rewritten_head_digest_differs_from_the_verified_state(built: Built, tmp_path: Path) -> None:
    facts = built.facts
    state = _state_after_clean_run(built, tmp_path)
    objects = _copy(built)
    ts.resign(objects, facts, len(facts.digests) - 1, ts._set("newestEventTime", None))
    report = _run(_store(objects), facts, state=state)
    assert ts.counts(report.codes()) == {Code.CHAIN_LINK_MISMATCH: 1}


def test_state_round_trip_and_compare_and_swap(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "verified.json"
    first = VerifiedState.load(path)
    second = VerifiedState.load(path)
    report = _run(built.folder, built.facts)
    assert first.advance(report) and second.advance(report)
    first.save()
    with pytest.raises(StateConflictError):
        second.save()
    reloaded = VerifiedState.load(path)
    assert reloaded.heads == first.heads
    assert not reloaded.advance(report)  # already at this head


def test_state_does_not_advance_on_an_invalid_run(built: Built, tmp_path: Path) -> None:
    state = VerifiedState.load(tmp_path / "verified.json")
    objects = _copy(built)
    ts._delete(objects, [built.facts.log_key(built.facts.middle())])
    assert not state.advance(_run(_store(objects), built.facts))
    assert state.heads == {}


def test_head_tracking_ignores_runs_that_end_before_the_head(built: Built, tmp_path: Path) -> None:
    facts = built.facts
    state = _state_after_clean_run(built, tmp_path)
    early = validate_trail(built.folder, facts.trail, facts.public_keys, facts.start, _t("12:30"), facts.now, state=state)
    assert early.ok


# ---------------------------------------------------------------- stored mode


def _no_decompression(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes) -> tuple[str, int]:
        raise AssertionError("stored mode must not decompress log files")

    monkeypatch.setattr(gzipio, "gunzip_strict_sha256", refuse)


def test_stored_mode_validates_without_decompressing(built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_decompression(monkeypatch)
    report = _run(built.folder, built.facts, mode="stored")
    assert report.ok and report.logs_valid == 15


def test_stored_mode_detects_a_modified_stored_log(built: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = built.facts
    objects = _copy(built)
    ts.regzip(objects, facts.log_key(facts.middle()), ts._edit_log)
    _no_decompression(monkeypatch)
    report = _run(_store(objects), facts, mode="stored")
    assert ts.counts(report.codes()) == {Code.STORED_HASH_MISMATCH: 1}


# ---------------------------------------------------------------- windows


def test_expected_windows_follow_the_grid_and_the_logging_history() -> None:
    periods = [(_t("09:17"), _t("12:20")), (_t("13:10"), None)]
    got = expected_windows(periods, H, _t("00:00"), _t("15:30"))
    assert got == [
        Window(_t("09:17"), _t("10:00"), starting=True, final=False),
        Window(_t("10:00"), _t("11:00"), starting=False, final=False),
        Window(_t("11:00"), _t("12:00"), starting=False, final=False),
        Window(_t("12:00"), _t("12:20"), starting=False, final=True),
        Window(_t("13:10"), _t("14:00"), starting=True, final=False),
        Window(_t("14:00"), _t("15:00"), starting=False, final=False),
        Window(_t("15:00"), _t("16:00"), starting=False, final=False),
    ]


def test_expected_windows_skip_ahead_over_long_history() -> None:
    periods = [(datetime(2020, 1, 1, 0, 30, tzinfo=UTC), None)]
    got = expected_windows(periods, H, _t("10:00"), _t("11:30"))
    assert [(w.start, w.end, w.starting) for w in got] == [
        (_t("10:00"), _t("11:00"), False),
        (_t("11:00"), _t("12:00"), False),
    ]


def test_stop_on_a_boundary_gives_no_empty_final_window() -> None:
    got = expected_windows([(_t("09:00"), _t("11:00"))], H, _t("00:00"), _t("23:00"))
    assert [(w.start, w.end, w.final) for w in got] == [(_t("09:00"), _t("10:00"), False), (_t("10:00"), _t("11:00"), True)]


def test_final_digest_written_shortly_after_the_stop_is_accepted(built: Built) -> None:
    """The delivery pipeline ends the final window when it finishes the stop, not at StopLogging."""
    facts = built.facts
    early_stop = [(ts.T0, ts.STOP - timedelta(minutes=2)), (ts.RESTART, None)]
    trail = replace(facts.trail, logging_periods=early_stop)
    report = validate_trail(built.folder, trail, facts.public_keys, facts.start, facts.end, facts.now)
    assert report.ok


def test_digest_written_while_logging_was_off_is_flagged(built: Built) -> None:
    facts = built.facts
    trail = replace(facts.trail, logging_periods=[(ts.T0, ts.STOP), (ts.RESTART + H, None)])
    report = validate_trail(built.folder, trail, facts.public_keys, facts.start, facts.end, facts.now)
    assert Code.CHAIN_GAP in report.codes()


def test_each_source_region_has_its_own_chain(built: Built) -> None:
    facts = built.facts
    trail = replace(facts.trail, regions=(ts.REGION, "eu-west-1"))
    report = validate_trail(built.folder, trail, facts.public_keys, facts.start, facts.end, facts.now)
    required = sum(1 for i in range(len(facts.digests)) if facts.required(i))
    assert ts.counts(report.codes()) == {Code.DIGEST_MISSING: required, Code.CHAIN_TRUNCATED: 1}
    assert {e.region for e in report.entries if e.code is not None} == {"eu-west-1"}


def test_validating_an_earlier_range_does_not_report_later_windows(built: Built) -> None:
    facts = built.facts
    report = validate_trail(built.folder, facts.trail, facts.public_keys, facts.start, _t("11:30"), facts.now)
    assert report.ok and report.digests_valid == 3  # windows ending 10:00, 11:00 and 12:00 (starts 11:00)
    assert report.logs_valid == 4
    assert report.found_end == _t("11:30")


# ---------------------------------------------------------------- progress, workers, arguments


def test_progress_reaches_the_total_and_workers_do_not_change_the_result(built: Built) -> None:
    calls: list[tuple[int, int]] = []
    one = _run(built.folder, built.facts, workers=1, progress=lambda d, t: calls.append((d, t)))
    two = _run(built.folder, built.facts, workers=2)
    assert calls[-1] == (24, 24)  # 9 digests + 15 logs
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert sorted(one.entries, key=str) == sorted(two.entries, key=str)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"start": ts.NOW + H}, "is after end"),
        ({"mode": "quick"}, "mode"),
        ({"workers": 0}, "workers"),
        ({"now": datetime(2024, 3, 10, 18, 5)}, "timezone"),
        ({"trail": "no-periods"}, "no logging periods"),
    ],
)
def test_bad_arguments_are_refused(built: Built, change: dict[str, Any], match: str) -> None:
    f = built.facts
    args: dict[str, Any] = {"start": f.start, "end": f.end, "now": f.now, "mode": "full", "workers": 2, "trail": f.trail}
    args.update(change)
    if args["trail"] == "no-periods":
        args["trail"] = replace(f.trail, logging_periods=[])
    with pytest.raises(ConfigError, match=match):
        validate_trail(built.folder, args["trail"], f.public_keys, args["start"], args["end"], args["now"],
                       mode=args["mode"], workers=args["workers"])


# ---------------------------------------------------------------- rendering


def test_cli_text_for_a_valid_trail(built: Built) -> None:
    facts = built.facts
    out, err = render_cli(_run(built.folder, facts))
    arn = facts.trail.arn
    open_key = facts.digests[-1].key.replace("20240310T180000Z", "20240310T190000Z")
    assert out == (
        f"Validating log files for trail {arn} between 2024-03-10T09:17:00Z and 2024-03-10T18:05:00Z\n\n"
        f"Digest file\ts3://{ts.BUCKET}/{open_key}\tPENDING: not due until 2024-03-10T19:10:00Z "
        "(window 2024-03-10T18:00:00Z to 2024-03-10T19:00:00Z, still open; 1 log file waits for it)\n"
        "Results requested for 2024-03-10T09:17:00Z to 2024-03-10T18:05:00Z\n"
        "Results found for 2024-03-10T09:17:00Z to 2024-03-10T18:00:00Z:\n"
        "\n9/9 digest files valid"
        "\n15/15 log files valid\n"
    )
    assert err == "No log files were delivered by CloudTrail between 2024-03-10T12:20:00Z and 2024-03-10T13:10:00Z\n\n"


def test_cli_text_verbose_lines_and_spacing(built: Built) -> None:
    facts = built.facts
    objects = _copy(built)
    ts._delete(objects, [facts.log_key(facts.middle())])
    out, err = render_cli(_run(_store(objects), facts), verbose=True)
    newest = facts.digests[-1]
    assert "\tPENDING: not due until " in out.splitlines()[2]  # the open window, newest of all
    assert out.splitlines()[3] == f"Digest file\ts3://{ts.BUCKET}/{newest.key}\tvalid"
    assert f"Log file\ts3://{ts.BUCKET}/{newest.log_keys[0]}\tvalid\n" in out
    # After a verbose stdout line, the CLI starts the next problem with a blank line.
    assert f"\nLog file\ts3://{ts.BUCKET}/{facts.log_key(facts.middle())}\tINVALID: not found\n\n" in err
    assert out.endswith("\n\n9/9 digest files valid\n14/15 log files valid, 1/15 log files INVALID\n")


@pytest.mark.parametrize(
    ("scenario", "line"),
    [
        ("digest_deleted_middle", "INVALID: not found"),
        ("log_modified", "INVALID: hash value doesn't match"),
        ("digest_moved", "INVALID: has been moved from its original location"),
        ("bad_signature", "INVALID: signature verification failed"),
        ("uppercase_signature_metadata", "INVALID: signature verification failed"),
        ("unknown_fingerprint", f"INVALID: public key not found in region {ts.REGION} for fingerprint {'0' * 32}"),
        ("key_published_as_spki", "INVALID: Unable to load PKCS #1 key with fingerprint "),
        ("digest_bad_json", "INVALID: invalid format"),
        ("log_trailing_data", "INVALID: unexpected data after end of compressed stream"),
        ("log_unreferenced", "INVALID: LOG_UNREFERENCED: "),
        ("chain_previous_hash_mismatch", "INVALID: CHAIN_LINK_MISMATCH: previousDigestHashValue"),
        ("newest_digests_deleted", "INVALID: CHAIN_TRUNCATED: digests are due through"),
    ],
)
def test_cli_problem_lines(built: Built, scenario: str, line: str) -> None:
    sc = next(s for s in ts.SCENARIOS if s.name == scenario)
    facts = built.facts
    objects = _copy(built)
    sc.tamper(objects, facts)
    keys = sc.keys(list(facts.public_keys), facts) if sc.keys else facts.public_keys
    _, err = render_cli(_run(_store(objects), facts, keys=keys))
    assert f"\t{line}" in err
    assert all(block.count("\n") == 0 for block in err.split("\n\n") if block)


def test_cli_summary_when_every_digest_is_invalid(built: Built) -> None:
    facts = built.facts
    report = _run(built.folder, facts, keys=[])
    out, _ = render_cli(report)
    assert "No valid digests found in range\n" in out
    assert "\n0/9 digest files valid, 9/9 digest files INVALID" in out


def test_cli_summary_without_digests() -> None:
    facts_trail = TrailInfo(ts.TRAIL_NAME, ts.ACCOUNT, ts.REGION, ts.BUCKET, logging_periods=[(ts.NOW, None)])
    report = validate_trail(MemoryStore(ts.BUCKET), facts_trail, [], ts.T0, ts.NOW, ts.NOW)
    out, err = render_cli(report)
    assert out.endswith("Results requested for 2024-03-10T09:17:00Z to 2024-03-10T18:05:00Z\nNo digests found\n")
    assert err == "" and exit_code(report) == 0


def test_json_report(built: Built) -> None:
    facts = built.facts
    objects = _copy(built)
    ts._delete(objects, [facts.digests[facts.middle()].key])
    doc = render_json(_run(_store(objects), facts))
    assert doc["ok"] is False and doc["mode"] == "full"
    assert doc["counts"]["digestsInvalid"] == 1 and doc["counts"]["digestsValid"] == 8
    missing = [e for e in doc["entries"] if e["code"] == "DIGEST_MISSING"]
    assert missing == [{
        "kind": "digest", "bucket": ts.BUCKET, "key": facts.digests[facts.middle()].key, "status": "INVALID",
        "code": "DIGEST_MISSING", "message": "not found", "region": ts.REGION, "backfill": False,
    }]
    assert doc["gaps"] == [{"region": ts.REGION, "start": "2024-03-10T12:20:00Z", "end": "2024-03-10T13:10:00Z"}]
    assert all(e["status"] in (Status.VALID, Status.INVALID) for e in doc["entries"])


# ---------------------------------------------------------------- cross-check with the AWS CLI


class _Pages:
    def __init__(self, keys: list[str]) -> None:
        self._keys = keys

    def search(self, expression: str) -> Iterator[str]:
        assert expression == "Contents[*].Key"
        return iter(self._keys)


class _FakeS3:
    """Just enough of an S3 client for awscli's DigestProvider and traverser."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def get_paginator(self, name: str) -> _FakeS3:
        assert name == "list_objects"
        return self

    def paginate(self, Bucket: str, Marker: str, Prefix: str) -> _Pages:
        return _Pages([o.key for o in self._store.list(Prefix, start_after=Marker)])

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        try:
            obj = self._store.get(Key)
        except Exception as e:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": str(e)}}, "GetObject") from e
        return {"Body": io.BytesIO(obj.data), "Metadata": dict(obj.metadata)}


class _FakeProvider:
    def __init__(self, store: ObjectStore) -> None:
        self._client = _FakeS3(store)

    def get_client(self, bucket: str) -> _FakeS3:
        return self._client


class _FakeCloudTrail:
    def __init__(self, facts: ts.TrailFacts) -> None:
        self._facts = facts

    def list_public_keys(self, StartTime: datetime, EndTime: datetime) -> dict[str, Any]:
        return {"PublicKeyList": [{"Fingerprint": k.fingerprint, "Value": k.value_b64} for k in self._facts.public_keys]}


def _aws_cli_walk(store: ObjectStore, facts: ts.TrailFacts) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"valid": [], "missing": [], "invalid": [], "gap": []}
    traverser = create_digest_traverser(
        cloudtrail_client=_FakeCloudTrail(facts), organization_client=None, s3_client_provider=_FakeProvider(store),
        trail_arn=facts.trail.arn, trail_source_region=ts.REGION, bucket=ts.BUCKET, prefix="",
        on_invalid=lambda **kw: seen["invalid"].append(kw["message"]),
        on_gap=lambda **kw: seen["gap"].append(kw["next_end_date"]),
        on_missing=lambda **kw: seen["missing"].append(kw["last_key"]),
    )
    seen["valid"] = [d["digestS3Object"] for d in traverser.traverse_digests(facts.start, facts.end)]
    return seen


def test_aws_cli_traverser_accepts_the_untouched_trail(built: Built) -> None:
    seen = _aws_cli_walk(built.folder, built.facts)
    assert sorted(seen["valid"]) == sorted(d.key for d in built.facts.digests)
    assert seen["missing"] == [] and seen["invalid"] == [] and len(seen["gap"]) == 1


def test_aws_cli_names_one_of_two_deleted_digests_where_we_name_both(built: Built) -> None:
    """aws-cli#7054: consecutive deletions collapse into one 'not found'."""
    facts = built.facts
    first = facts.run_of(2)
    objects = _copy(built)
    ts._delete(objects, [facts.digests[first].key, facts.digests[first + 1].key])
    store = _store(objects)
    assert len(_aws_cli_walk(store, facts)["missing"]) == 1
    assert _run(store, facts).codes().count(Code.DIGEST_MISSING) == 2

