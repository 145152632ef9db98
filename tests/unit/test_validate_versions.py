"""Tamper catalogue rows 20-21 on a versioned store: delete markers and overwrites.

A plain GET cannot tell a delete marker from a deleted object, nor an overwrite with
identical bytes from the original; the validator lists versions to tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import tamper_scenarios as ts

from trailkeeper.clock import FrozenClock
from trailkeeper.storage.memory import VersionedMemoryStore
from trailkeeper.validate import Code, ReportEntry, Status, ValidationReport, validate_trail
from trailkeeper.validate.render import exit_code, render_cli


@pytest.fixture(scope="module")
def facts_and_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ts.TrailFacts, ts.Objects]:
    root = tmp_path_factory.mktemp("versioned")
    clock = FrozenClock(ts.T0)
    store = VersionedMemoryStore(ts.BUCKET, clock)
    facts = ts.build_trail(store, ts.make_signing_keys(root, clock), clock)
    return facts, ts.snapshot(store)


def _fresh(objects: ts.Objects) -> VersionedMemoryStore:
    store = VersionedMemoryStore(ts.BUCKET)
    ts.restore(objects, store)
    return store


def _validate(store: VersionedMemoryStore, facts: ts.TrailFacts) -> ValidationReport:
    return validate_trail(store, facts.trail, facts.public_keys, facts.start, facts.end, facts.now)


def _invalid(report: ValidationReport) -> list[ReportEntry]:
    return [e for e in report.entries if e.status is Status.INVALID]


def _digest(f: ts.TrailFacts) -> str:
    return f.digests[f.middle()].key


def _log(f: ts.TrailFacts) -> str:
    return f.log_key(f.middle())


# name -> (tampering, the key it targets, expected code, the "missing" code it replaces or None)
Tamper = Callable[[VersionedMemoryStore, ts.TrailFacts], None]
CASES: dict[str, tuple[Tamper, Callable[[ts.TrailFacts], str], Code]] = {
    "digest-behind-delete-marker": (lambda s, f: s.tamper_delete(_digest(f)), _digest, Code.DELETE_MARKER),
    "log-behind-delete-marker": (lambda s, f: s.tamper_delete(_log(f)), _log, Code.DELETE_MARKER),
    "log-overwritten-with-identical-bytes": (
        lambda s, f: s.tamper_overwrite(_log(f), s.get(_log(f)).data), _log, Code.OVERWRITTEN),
    "log-overwritten-with-other-bytes": (
        lambda s, f: s.tamper_overwrite(_log(f), s.get(_log(f)).data + b"\x00"), _log, Code.OVERWRITTEN),
    "digest-overwritten-with-identical-bytes": (
        lambda s, f: s.tamper_overwrite(_digest(f), s.get(_digest(f)).data), _digest, Code.OVERWRITTEN),
}


def test_untouched_versioned_trail_is_valid(facts_and_store: tuple[ts.TrailFacts, ts.Objects]) -> None:
    facts, objects = facts_and_store
    report = _validate(_fresh(objects), facts)
    assert _invalid(report) == [] and exit_code(report) == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_version_tampering_is_reported(facts_and_store: tuple[ts.TrailFacts, ts.Objects], name: str) -> None:
    facts, objects = facts_and_store
    tamper, target, code = CASES[name]
    store = _fresh(objects)
    tamper(store, facts)
    report = _validate(store, facts)
    hits = [e for e in _invalid(report) if e.key == target(facts) and e.code is code]
    assert len(hits) == 1, [(e.key, e.code) for e in _invalid(report)]
    assert exit_code(report) == 1
    # A delete marker is named as such, not as a plain "not found".
    assert not [e for e in _invalid(report) if e.key == target(facts) and e.code in (Code.DIGEST_MISSING, Code.LOG_MISSING)]
    _, err = render_cli(report, verbose=False)
    assert f"INVALID: {code}" in err


def test_delete_marker_message_says_the_locked_version_is_still_there(
        facts_and_store: tuple[ts.TrailFacts, ts.Objects]) -> None:
    facts, objects = facts_and_store
    store = _fresh(objects)
    store.tamper_delete(_digest(facts))
    entry = next(e for e in _invalid(_validate(store, facts)) if e.code is Code.DELETE_MARKER)
    assert "still present" in entry.message and "v1" in entry.message
