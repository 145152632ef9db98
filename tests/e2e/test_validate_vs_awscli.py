"""`trailkeeper validate` is never weaker than `aws cloudtrail validate-logs`.

Every tamper scenario of the catalogue (and the young-window cases) is applied to one trail
written by the real pipeline and served by a real server; the unmodified AWS CLI validates it
through our S3 gateway and CloudTrail API, and our validator checks the same stored files
twice: as if run right after the trail was written (every window younger than its allowance)
and once every window is due. For each file the AWS CLI calls INVALID, ours must call that
file INVALID with the same verdict; whatever ours reports beyond that is named per scenario
in EXTRA below, with the reason the AWS CLI cannot see it.

Tampering with the key list (rows 9, 10, 24) is done where the AWS CLI reads it: the
server's signing-key table, which ListPublicKeys serves.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests import tamper_trail
from tests.e2e.harness import Server
from tests.pipeline import open_pipeline
from tests.tamper_trail import Built, ts

from trailkeeper.keys.signing import PublicKeyInfo, load_public_keys
from trailkeeper.storage.folder import FolderStore
from trailkeeper.validate import Code, Status, ValidationReport, validate_trail

WORKER = Path(__file__).with_name("awscli_worker.py")
AWS_TIMEOUT_S = 10.0  # a normal run takes well under a second here

# The AWS CLI's verdict texts (cloudtrail-formats.md §10.4) and the codes of ours that say the same.
VERDICTS: tuple[tuple[str, frozenset[Code]], ...] = (
    ("not found", frozenset({Code.DIGEST_MISSING, Code.LOG_MISSING, Code.DELETE_MARKER})),
    # The CLI hashes whatever a truncated gzip stream inflates to; ours says the stream ends early.
    ("hash value doesn't match", frozenset({Code.LOG_HASH_MISMATCH, Code.INVALID_FORMAT})),
    ("has been moved from its original location", frozenset({Code.DIGEST_MOVED})),
    ("signature verification failed", frozenset({Code.DIGEST_BAD_SIGNATURE, Code.DIGEST_NO_SIGNATURE})),
    ("invalid format", frozenset({Code.INVALID_FORMAT, Code.TRAILING_DATA, Code.MULTI_MEMBER_GZIP})),
    ("unexpected data after end of compressed stream", frozenset({Code.TRAILING_DATA, Code.MULTI_MEMBER_GZIP})),
    ("public key not found in region", frozenset({Code.KEY_UNKNOWN})),
    ("Unable to load PKCS #1 key", frozenset({Code.KEY_FORMAT})),
)
_LINE = re.compile(r"^(?:\(backfill\) )?(Digest|Log) file\ts3://([^/\s]+)/(\S+)\tINVALID: (.*)$")


@dataclass(frozen=True)
class AwsFinding:
    kind: str
    bucket: str
    key: str
    verdict: str


def aws_findings(stderr: str) -> list[AwsFinding]:
    found = []
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m:
            found.append(AwsFinding(m[1].lower(), m[2], m[3], m[4]))
        else:
            assert "INVALID" not in line, f"an AWS CLI line this test cannot read: {line!r}"
    return found


def _allowed(verdict: str) -> frozenset[Code]:
    for prefix, codes in VERDICTS:
        if verdict.startswith(prefix):
            return codes
    raise AssertionError(f"an AWS CLI verdict this test does not know: {verdict!r}")


class AwsCli:
    """The worker process running the unmodified AWS CLI; restarted if a call hangs."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        return self._proc

    def run(self, args: list[str], env: dict[str, str]) -> dict[str, Any] | None:
        """The CLI's answer, or None when it did not finish within AWS_TIMEOUT_S."""
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"args": args, "env": env}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], AWS_TIMEOUT_S)
        if not ready:
            self.close()
            return None
        reply: dict[str, Any] = json.loads(proc.stdout.readline())
        return reply

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


@dataclass
class Lab:
    server: Server
    built: Built
    dest: Path
    key_rows: list[tuple[Any, ...]]
    aws: AwsCli = field(default_factory=AwsCli)

    @property
    def state_db(self) -> Path:
        return self.server.data_dir / "state.db"

    def store(self, objects: ts.Objects) -> None:
        shutil.rmtree(self.dest / "AWSLogs", ignore_errors=True)
        ts.restore(objects, FolderStore(self.dest, tamper_trail.BUCKET))

    def publish_keys(self, keys: list[PublicKeyInfo]) -> None:
        """Make the server's ListPublicKeys answer exactly `keys` (fingerprints of the originals)."""
        wanted = {k.fingerprint: k for k in keys}
        with sqlite3.connect(self.state_db, timeout=30) as db:
            for fp, *_ in db.execute("SELECT fingerprint FROM signing_keys").fetchall():
                key = wanted.get(fp)
                if key is None:
                    db.execute("DELETE FROM signing_keys WHERE fingerprint = ?", (fp,))
                    continue
                db.execute("UPDATE signing_keys SET public_der = ?, valid_from_us = ?, valid_to_us = ? "
                           "WHERE fingerprint = ?", (key.der_pkcs1, _us(key.valid_from), _us(key.valid_to), fp))

    def restore_keys(self) -> None:
        with sqlite3.connect(self.state_db, timeout=30) as db:
            db.execute("DELETE FROM signing_keys")
            db.executemany(f"INSERT INTO signing_keys VALUES ({','.join('?' * len(self.key_rows[0]))})", self.key_rows)

    def aws_validate(self) -> dict[str, Any] | None:
        f = tamper_trail.due(self.built).facts
        env = {"AWS_ENDPOINT_URL": self.server.endpoint, "AWS_DEFAULT_REGION": f.trail.home_region,
               "AWS_ACCESS_KEY_ID": self.server.creds["rootAccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": self.server.creds["rootSecretAccessKey"],
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        return self.aws.run(["cloudtrail", "validate-logs", "--trail-arn", f.trail.arn,
                             "--start-time", _iso(f.start), "--end-time", _iso(f.end)], env)

    def ours(self, built: Built) -> ValidationReport:
        f = built.facts
        keys = load_public_keys(self.state_db)
        return validate_trail(FolderStore(self.dest, tamper_trail.BUCKET), f.trail, keys, f.start, f.end, f.now)


def _us(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1_000_000)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("vs-awscli")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=40)
    dest = tmp / "dest"
    with open_pipeline(tmp, start=start, key_rotation="4m") as p:
        built = tamper_trail.build(p, dest, stop_at_end=True)
        creds = p.creds
    server = Server.for_data(tmp / "data", creds)
    server.start()
    with sqlite3.connect(server.data_dir / "state.db") as db:
        rows = db.execute("SELECT * FROM signing_keys").fetchall()
    lab = Lab(server, built, dest, rows)
    try:
        yield lab
    finally:
        lab.aws.close()
        assert server.terminate() == 0


@dataclass(frozen=True)
class Comparison:
    aws: list[AwsFinding]
    extra: dict[str, Counter[Code]]  # variant -> our findings beyond the AWS CLI's
    aws_finished: bool


def compare(lab: Lab, scenario: ts.Scenario) -> Comparison:
    built = lab.built
    objects = built.copy()
    scenario.tamper(objects, built.facts)
    lab.store(objects)
    if scenario.keys:
        lab.publish_keys(scenario.keys(list(built.facts.public_keys), built.facts))
    try:
        answer = lab.aws_validate()
        reports = {"young": lab.ours(tamper_trail.young(built)), "due": lab.ours(tamper_trail.due(built))}
    finally:
        lab.restore_keys()
        lab.store(built.copy())
    aws = aws_findings(answer["stderr"]) if answer is not None else []
    if answer is not None:
        assert answer["rc"] == (1 if aws else 0), answer
    extra = {variant: _beyond(report, aws) for variant, report in reports.items()}
    return Comparison(aws, extra, answer is not None)


def _beyond(report: ValidationReport, aws: list[AwsFinding]) -> Counter[Code]:
    """Check every AWS finding against ours (same file, same verdict); return the rest of ours."""
    ours: dict[tuple[str, str], list[Code]] = {}
    for e in report.entries:
        if e.status is Status.INVALID and e.code is not None:
            ours.setdefault((e.kind, e.key), []).append(e.code)
    for finding in aws:
        codes = ours.get((finding.kind, finding.key), [])
        same = [c for c in codes if c in _allowed(finding.verdict)]
        assert same, f"the AWS CLI says {finding}, ours says {codes or 'nothing'} for that file"
        codes.remove(same[0])
    return Counter(code for codes in ours.values() for code in codes)



_DIGEST_LOGS = "the AWS CLI does not look at the log files of a digest it rejects; ours reports each"
_LOST_LOGS = "logs whose digest is gone: the AWS CLI never lists log folders; ours names each with the lost digest"
_UNLISTED = "the AWS CLI never lists log folders, so a log file no digest names is invisible to it"
_COLLAPSE = "after a miss the AWS CLI jumps to the next digest it listed (aws-cli#7054); ours names every window"
_CHAIN = "the AWS CLI follows previousDigestS3Object only; ours checks hash, signature and window of every link"

# Per scenario: the codes ours reports beyond the AWS CLI (any variant not listed: none), and why.
EXTRA: dict[str, tuple[dict[str, frozenset[Code]], str]] = {
    "log_unreferenced": ({"*": frozenset({Code.LOG_UNREFERENCED})}, _UNLISTED),
    "log_planted_while_logging_off": ({"*": frozenset({Code.LOG_UNREFERENCED})}, _UNLISTED),
    "digest_content_modified": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "digest_deleted_middle": ({"*": frozenset({Code.LOG_UNREFERENCED})}, _LOST_LOGS),
    "two_consecutive_digests_deleted": ({"*": frozenset({Code.DIGEST_MISSING, Code.LOG_UNREFERENCED})}, _COLLAPSE),
    "three_consecutive_digests_deleted": ({"*": frozenset({Code.DIGEST_MISSING, Code.LOG_UNREFERENCED})}, _COLLAPSE),
    "newest_digests_deleted": (
        {"*": frozenset({Code.CHAIN_TRUNCATED, Code.DIGEST_MISSING, Code.LOG_UNREFERENCED})},
        "the AWS CLI starts at the newest digest left, so a cut-off tail looks complete to it"),
    "digest_moved": ({"*": frozenset({Code.DIGEST_MOVED, Code.LOG_UNREFERENCED})},
                     "the AWS CLI reports the slot the digest left; ours also finds where it went"),
    "old_digest_replayed_at_new_key": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "unknown_fingerprint": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "key_validity_window_excludes_digest": (
        {"due": frozenset({Code.KEY_UNKNOWN, Code.LOG_UNVERIFIABLE}), "young": frozenset()},
        "the AWS CLI ignores key validity times; ours tolerates a key only up to the delivery allowance "
        "(which the young run sets longer than the shift)"),
    "key_published_as_spki": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "bad_signature": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "signature_metadata_missing": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "signature_algorithm_metadata_missing": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "digest_trailing_data": ({"*": frozenset({Code.TRAILING_DATA, Code.LOG_UNVERIFIABLE})},
                             "the AWS CLI inflates digests with zlib.decompress, which ignores trailing bytes"),
    "digest_second_gzip_member": ({"*": frozenset({Code.MULTI_MEMBER_GZIP, Code.LOG_UNVERIFIABLE})},
                                  "the AWS CLI inflates only the first gzip member of a digest"),
    "digest_truncated_gzip": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "digest_bad_json": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "chain_previous_hash_mismatch": ({"*": frozenset({Code.CHAIN_LINK_MISMATCH})}, _CHAIN),
    "chain_previous_signature_mismatch": ({"*": frozenset({Code.CHAIN_LINK_MISMATCH})}, _CHAIN),
    "chain_previous_key_mismatch": ({"*": frozenset({Code.CHAIN_LINK_MISMATCH})}, _CHAIN),
    "window_gap": ({"*": frozenset({Code.CHAIN_GAP})}, _CHAIN),
    "window_overlap": ({"*": frozenset({Code.CHAIN_GAP})}, _CHAIN),
    "chain_restart_without_logged_stop": (
        {"*": frozenset({Code.CHAIN_GAP})}, "the AWS CLI takes null previous* fields as a gap, whatever the history"),
    "uppercase_signature_metadata": (
        {"*": frozenset({Code.DIGEST_NO_SIGNATURE, Code.LOG_UNVERIFIABLE})},
        "HTTP lowercases header names on the way to the AWS CLI; ours reads the stored metadata as stored"),
    "key_rotation_history_incomplete": ({"*": frozenset({Code.LOG_UNVERIFIABLE})}, _DIGEST_LOGS),
    "log_regzipped_stored_hash_mismatch": ({"*": frozenset({Code.STORED_HASH_MISMATCH})},
                                           "the AWS CLI hashes inflated bytes only; ours also checks the stored bytes"),
    "young_middle_digest_deleted": ({"*": frozenset({Code.LOG_UNREFERENCED})}, _LOST_LOGS),
    "young_newest_but_one_deleted": ({"*": frozenset({Code.LOG_UNREFERENCED})}, _LOST_LOGS),
    "young_two_consecutive_deleted": ({"*": frozenset({Code.DIGEST_MISSING, Code.LOG_UNREFERENCED})}, _COLLAPSE),
    "young_digest_moved_to_future_key": (
        {"*": frozenset({Code.DIGEST_MOVED, Code.LOG_UNREFERENCED})},
        "the AWS CLI lists only up to an hour past the range; ours finds a digest dated after its own clock"),
    "young_digest_renamed_to_future_time_in_its_folder": (
        {"*": frozenset({Code.DIGEST_MOVED, Code.LOG_UNREFERENCED})},
        "the AWS CLI lists only up to an hour past the range; ours finds a digest dated after its own clock"),
    "young_digest_moved_to_past_key": ({"*": frozenset({Code.LOG_UNREFERENCED})}, _LOST_LOGS),
    "young_digest_copied_to_second_key": (
        {"*": frozenset({Code.DIGEST_MOVED})}, "the AWS CLI never visits a listed digest its walk does not reach"),
}
# Scenarios the AWS CLI does not finish (its walk loops), and why; ours still reports them.
AWS_NEVER_FINISHES = {
    "chain_previous_key_mismatch": "a digest naming itself as its predecessor sends the walk round for ever",
}
ALL_SCENARIOS = ts.SCENARIOS + ts.YOUNG_SCENARIOS


def test_every_named_extra_belongs_to_a_scenario() -> None:
    names = {s.name for s in ALL_SCENARIOS}
    assert set(EXTRA) <= names and set(AWS_NEVER_FINISHES) <= names


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=[s.name for s in ALL_SCENARIOS])
def test_ours_flags_everything_the_aws_cli_flags(lab: Lab, scenario: ts.Scenario) -> None:
    result = compare(lab, scenario)
    assert result.aws_finished == (scenario.name not in AWS_NEVER_FINISHES)
    named, _why = EXTRA.get(scenario.name, ({}, ""))
    for variant, built in (("young", tamper_trail.young(lab.built)), ("due", tamper_trail.due(lab.built))):
        extra = result.extra[variant]
        assert set(extra) == named.get(variant, named.get("*", frozenset())), (variant, dict(extra))
        # And ours is exactly the catalogue's known answer for that trail at that time.
        aws_codes = Counter(next(iter(_allowed(f.verdict) & set(scenario.expected(built.facts)))) for f in result.aws)
        assert extra + aws_codes == Counter(ts.nonzero(scenario.expected(built.facts))), variant
