"""The one ingest path: admit → normalise → spool, whoever calls it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trailkeeper.clock import FrozenClock
from trailkeeper.errors import BacklogFullError, RecordError, SpoolError
from trailkeeper.ingest import Ingest
from trailkeeper.records import Caller
from trailkeeper.spool import Spool

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WRITER = Caller("111122223333", "IAMUser", "app", "AIDAAPP", "arn:aws:iam::111122223333:user/app", "AKIAAPP", "writer")
SRC = Path(__file__).resolve().parents[2] / "src" / "trailkeeper"


def _event(name: str = "Login") -> dict[str, object]:
    return {"eventName": name, "eventSource": "app.example.com", "eventTime": "2026-12-01T11:59:00Z",
            "requestParameters": None}


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool") as s:
        yield s


class _Admission:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse

    def admit(self) -> None:
        if self.refuse:
            raise BacklogFullError("backlog full", "wait")


def _ingest(spool: Spool, refuse: bool = False) -> Ingest:
    return Ingest(spool, "eu-west-1", FrozenClock(NOW), timedelta(days=7), _Admission(refuse))


def test_record_stamps_and_stores_a_batch_and_answers_its_ids(spool: Spool) -> None:
    ids = _ingest(spool).record([_event(), _event("Logout")], WRITER, source_ip="192.0.2.1", user_agent="t")
    assert len(ids) == 2 and spool.next_seq() == 3
    assert _ingest(spool).stored_ids(1, 2) == ids


def test_a_retry_with_the_same_key_answers_the_first_ids_and_stores_nothing(spool: Spool) -> None:
    first = _ingest(spool).record([_event()], WRITER, idem_key="k1")
    again = _ingest(spool).record([_event()], WRITER, idem_key="k1")
    assert again == first and spool.next_seq() == 2
    with pytest.raises(SpoolError, match="reused with a different request"):
        _ingest(spool).record([_event("Other")], WRITER, idem_key="k1")


@pytest.mark.parametrize("refuse, batch, error", [
    (True, [_event()], BacklogFullError),
    (False, [_event(), {"eventName": "NoSource"}], RecordError),
])
def test_a_refused_batch_stores_nothing(spool: Spool, refuse: bool, batch: list[dict[str, object]],
                                        error: type[Exception]) -> None:
    with pytest.raises(error):
        _ingest(spool, refuse).record(batch, WRITER)
    assert spool.next_seq() == 1


def test_only_the_ingest_path_and_the_services_own_records_append_to_the_spool() -> None:
    # New ways in must use Ingest (admission, one normalisation, idempotency), not the spool.
    appends = {str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
               if re.search(r"spool\.(append|submit)\(", path.read_text())}
    assert appends == {"ingest.py", "service.py"}, appends
    service = (SRC / "service.py").read_text()
    own = re.findall(r"def (\w+)\([^)]*\)[^:]*:(?:(?!\n    def ).)*?self\.spool\.(?:append|submit)\(", service, re.S)
    assert set(own) <= {"emit", "submit"}, own  # the service's own records: never refused
