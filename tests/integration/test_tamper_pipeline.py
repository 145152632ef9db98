"""The tamper catalogue again, this time on a trail written by the real delivery pipeline.

The scenario table (tests/unit/tamper_scenarios.py) only needs the facts of a trail; here
those facts are read back from what the service wrote: its digests, its keys, its
logging history. Each scenario is one named, data-driven case.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests import tamper_trail
from tests.pipeline import open_pipeline
from tests.tamper_trail import YOUNG_ALLOWANCE, Built, ts, young

from trailkeeper.storage.memory import MemoryStore
from trailkeeper.validate import validate_trail
from trailkeeper.validate.render import exit_code


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("pipeline-tamper")
    with open_pipeline(tmp, key_rotation="4m") as p:
        yield tamper_trail.build(p, tmp / "dest")


def _run(built: Built, objects: ts.Objects, keys: list | None = None) -> object:  # type: ignore[type-arg]
    store = MemoryStore(tamper_trail.BUCKET)
    ts.restore(objects, store)
    f = built.facts
    return validate_trail(store, f.trail, keys or f.public_keys, f.start, f.end, f.now)


def _copy(built: Built) -> ts.Objects:
    return built.copy()


def test_pipeline_trail_has_what_the_scenarios_need(built: Built) -> None:
    f = built.facts
    assert len({d.fingerprint for d in f.digests}) >= 2, "no key rotation happened"
    assert sum(d.starting for d in f.digests) == 2, "expected one restart"
    assert any(not d.log_keys for d in f.digests), "expected an empty digest"
    assert f.run_of(3) >= 1
    report = _run(built, _copy(built))
    assert report.ok, [e for e in report.entries if e.status != "VALID"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("scenario", ts.SCENARIOS, ids=[s.name for s in ts.SCENARIOS])
def test_tamper_scenario_on_pipeline_trail(built: Built, scenario: ts.Scenario) -> None:
    f = built.facts
    keys = scenario.keys(list(f.public_keys), f) if scenario.keys else f.public_keys
    objects = _copy(built)
    scenario.tamper(objects, f)
    report = _run(built, objects, keys)
    assert ts.counts(report.codes()) == ts.nonzero(scenario.expected(f))  # type: ignore[attr-defined]
    assert exit_code(report) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize("scenario", ts.YOUNG_SCENARIOS, ids=[s.name for s in ts.YOUNG_SCENARIOS])
def test_young_window_scenario_on_pipeline_trail(built: Built, scenario: ts.Scenario) -> None:
    fresh = young(built)
    untouched = _run(fresh, _copy(fresh))
    assert untouched.ok and all(p.is_open for p in untouched.pending)  # type: ignore[attr-defined]
    objects = _copy(fresh)
    scenario.tamper(objects, fresh.facts)
    report = _run(fresh, objects)
    assert ts.counts(report.codes()) == ts.nonzero(scenario.expected(fresh.facts))  # type: ignore[attr-defined]
    assert exit_code(report) == 1  # type: ignore[arg-type]


def test_young_newest_digest_deleted_is_pending_not_silent(built: Built) -> None:
    fresh = young(built)
    objects = _copy(fresh)
    ts._delete(objects, [fresh.facts.digests[-1].key])
    report = _run(fresh, objects)
    assert report.ok  # type: ignore[attr-defined]
    [pending] = [p for p in report.pending if not p.is_open]  # type: ignore[attr-defined]
    newest = fresh.facts.digests[-1]
    assert (pending.key, pending.end, pending.due) == (newest.key, newest.end,
                                                       newest.end + YOUNG_ALLOWANCE)
    assert sorted(pending.log_keys) == sorted(newest.log_keys)
