"""Render a ValidationReport as `aws cloudtrail validate-logs` text or as JSON.

The text form reproduces the AWS CLI's lines (formats spec §10.4) so scripts that
parse the CLI's output work unchanged; findings the CLI cannot make are printed
as `INVALID: <CODE>: <explanation>`.
"""

from __future__ import annotations

from typing import Any

from trailkeeper._internal.text import visible
from trailkeeper.clock import iso_seconds
from trailkeeper.validate import (
    Code,
    GapNotice,
    Kind,
    PendingNotice,
    ReportEntry,
    Status,
    ValidationReport,
)

EXIT_VALID = 0
EXIT_INVALID = 1

# Codes whose AWS CLI wording is fixed; the others keep their own message.
_CLI_TEXT: dict[Code, str] = {
    Code.DIGEST_MISSING: "not found",
    Code.LOG_MISSING: "not found",
    Code.LOG_HASH_MISMATCH: "hash value doesn't match",
    Code.DIGEST_MOVED: "has been moved from its original location",
    Code.DIGEST_BAD_SIGNATURE: "signature verification failed",
    Code.DIGEST_NO_SIGNATURE: "signature verification failed",
    Code.INVALID_FORMAT: "invalid format",
    Code.TRAILING_DATA: "unexpected data after end of compressed stream",
    # aws-cli develop reports any bytes after the first member with this line.
    Code.MULTI_MEMBER_GZIP: "unexpected data after end of compressed stream",
}
# The CLI prints these messages verbatim; trailkeeper's variants carry the code.
_CLI_VERBATIM_PREFIX: dict[Code, str] = {
    Code.KEY_UNKNOWN: "public key not found in region ",
    Code.KEY_FORMAT: "Unable to load PKCS #1 key with fingerprint ",
}
_RATIOS: tuple[tuple[str, Kind, bool], ...] = (
    ("digest", "digest", False),
    ("backfill digest", "digest", True),
    ("log", "log", False),
)


def exit_code(report: ValidationReport) -> int:
    """0 when every file is valid (explained gaps allowed), 1 otherwise."""
    return EXIT_VALID if report.ok else EXIT_INVALID


def problem_text(entry: ReportEntry) -> str:
    """What follows `INVALID: ` on the CLI line for an invalid entry."""
    assert entry.code is not None
    fixed = _CLI_TEXT.get(entry.code)
    if fixed is not None:
        return fixed
    prefix = _CLI_VERBATIM_PREFIX.get(entry.code)
    if prefix is not None and entry.message.startswith(prefix):
        return entry.message
    return f"{entry.code}: {entry.message}"


def _file_line(entry: ReportEntry) -> str:
    label = "Digest file" if entry.kind == "digest" else "Log file"
    if entry.backfill:
        label = f"(backfill) {label}"
    outcome = "valid" if entry.status is Status.VALID else f"INVALID: {problem_text(entry)}"
    # Keys and messages come from the store: escaped, so a crafted key cannot drive the terminal.
    return f"{label}\ts3://{visible(entry.bucket)}/{visible(entry.key)}\t{visible(outcome)}"


class _Writer:
    """The CLI's spacing rule: every problem line ends with a blank line, and a
    problem after a verbose line starts with one."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.out: list[str] = []
        self.err: list[str] = []
        self._double_spaced = True

    def notice(self, message: str) -> None:
        """A line that is not a problem but is never hidden (a digest not due yet). It leaves the
        spacing of stderr alone, so that stderr stays exactly what the AWS CLI would print."""
        self.out.append(f"{message}\n")

    def status(self, message: str, is_error: bool) -> None:
        if is_error:
            self.err.append(f"{message}\n\n" if self._double_spaced else f"\n{message}\n\n")
            self._double_spaced = True
        elif self.verbose:
            self._double_spaced = False
            self.out.append(f"{message}\n")

    def summary(self, report: ValidationReport) -> None:
        if not self._double_spaced:
            self.out.append("\n")
        self.out.append(f"Results requested for {iso_seconds(report.start)} to {iso_seconds(report.end)}\n")
        if not any(report.count("digest", valid, backfill) for valid in (True, False) for backfill in (True, False)):
            self.out.append("No digests found\n")
            return
        if report.found_start is None or report.found_end is None:
            self.out.append("No valid digests found in range\n")
        else:
            found = f"{iso_seconds(report.found_start)} to {iso_seconds(report.found_end)}"
            self.out.append(f"Results found for {found}:\n")
        for name, kind, backfill in _RATIOS:
            self._ratio(report.count(kind, True, backfill), report.count(kind, False, backfill), name)
        self.out.append("\n")

    def _ratio(self, valid: int, invalid: int, name: str) -> None:
        total = valid + invalid
        if total == 0:
            return
        line = f"\n{valid}/{total} {name} files valid"
        if invalid:
            line += f", {invalid}/{total} {name} files INVALID"
        self.out.append(line)


def render_cli(report: ValidationReport, verbose: bool = False) -> tuple[str, str]:
    """(stdout, stderr) exactly as `aws cloudtrail validate-logs` lays them out."""
    w = _Writer(verbose)
    w.out.append(
        f"Validating log files for trail {report.trail_arn} between "
        f"{iso_seconds(report.start)} and {iso_seconds(report.end)}\n\n"
    )
    for item in report.items:
        if isinstance(item, GapNotice):
            text = f"No log files were delivered by CloudTrail between {iso_seconds(item.start)} and {iso_seconds(item.end)}"
            w.status(text, True)
        elif isinstance(item, PendingNotice):
            w.notice(pending_line(item))
        else:
            w.status(_file_line(item), item.status is Status.INVALID)
    w.summary(report)
    return "".join(w.out), "".join(w.err)


def pending_line(p: PendingNotice) -> str:
    """`Digest file <uri> PENDING: ...`: the window's digest is not due yet, and what waits for it."""
    window = f"window {iso_seconds(p.start)} to {iso_seconds(p.end)}{', still open' if p.is_open else ''}"
    count = len(p.log_keys)
    waiting = f"; {count} log file{' waits' if count == 1 else 's wait'} for it" if count else ""
    return f"Digest file\ts3://{visible(p.bucket)}/{visible(p.key)}\tPENDING: not due until {iso_seconds(p.due)} ({window}{waiting})"


def render_json(report: ValidationReport) -> dict[str, Any]:
    """A JSON-ready document: counts, found window, every entry and gap."""

    def iso(when: Any) -> str | None:
        return None if when is None else iso_seconds(when)

    return {
        "trailARN": report.trail_arn,
        "requestedStart": iso(report.start),
        "requestedEnd": iso(report.end),
        "validatedAt": iso(report.now),
        "mode": report.mode,
        "ok": report.ok,
        "foundStart": iso(report.found_start),
        "foundEnd": iso(report.found_end),
        "counts": {
            "digestsValid": report.digests_valid,
            "digestsInvalid": report.digests_invalid,
            "backfillDigestsValid": report.count("digest", True, True),
            "backfillDigestsInvalid": report.count("digest", False, True),
            "logsValid": report.logs_valid,
            "logsInvalid": report.logs_invalid,
        },
        "entries": [e.to_dict() for e in report.entries],
        "gaps": [{"region": g.region, "start": iso(g.start), "end": iso(g.end)} for g in report.gaps],
        "pending": [
            {"region": p.region, "bucket": p.bucket, "digestKey": p.key, "windowStart": iso(p.start),
             "windowEnd": iso(p.end), "dueAt": iso(p.due), "open": p.is_open, "logFiles": list(p.log_keys)}
            for p in report.pending
        ],
        "heads": {
            region: {"digestKey": h.digest_key, "endTime": iso(h.end_time), "hashValue": h.hash_value}
            for region, h in report.heads.items()
        },
    }
