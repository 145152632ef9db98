"""`trailkeeper validate`: validate a trail straight from its storage, with no server running."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trailkeeper import audit
from trailkeeper._internal.fsutil import write_new
from trailkeeper.clock import SystemClock, iso_seconds
from trailkeeper.config import Config, load_config
from trailkeeper.errors import ValidationRunError
from trailkeeper.keys.signing import load_public_keys
from trailkeeper.runtime import Runtime
from trailkeeper.storage.destinations import open_destination
from trailkeeper.trails import Location, Trail, TrailConfig, TrailStore
from trailkeeper.validate import (
    TrailInfo,
    ValidationReport,
    VerifiedState,
    merge_reports,
    validate_trail,
)
from trailkeeper.validate import render as validate_report

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.progress import Progress

    from trailkeeper.envelope import DataKey, Unwrapped
    from trailkeeper.kms import Kms

INBOX_DIR = "inbox"
PROGRESS_MIN_FILES = 200


def trail_info(store: TrailStore, trail: Trail, account_id: str, region: str) -> TrailInfo:
    """The validator's facts for a trail's current location (all its periods there)."""
    [(info, _)] = [found for found in trail_infos(store, trail.config, trail.config.name, account_id, region)
                   if found[1] == trail.config.location] or [(_info(trail.config, trail.config.location, [],
                                                                    account_id, region), trail.config.location)]
    return info


def trail_infos(store: TrailStore, config: TrailConfig, history_key: str, account_id: str,
                region: str) -> list[tuple[TrailInfo, Location]]:
    """One TrailInfo per place the trail's files went: a logging period's chain lives in the
    bucket and prefix it was written to (the digests' own s3Bucket/s3Object say so), so each
    place is validated against its own periods. Periods recorded before locations were kept
    belong to the trail's current location (it could not change while logging)."""
    by_place: dict[Location, list[tuple[datetime, datetime | None]]] = {}
    for period in store.periods(history_key):
        by_place.setdefault(period.location or config.location, []).append((period.started, period.final_digest_end))
    return [(_info(config, place, periods, account_id, region), place) for place, periods in by_place.items()]


def _info(config: TrailConfig, place: Location, periods: list[tuple[datetime, datetime | None]], account_id: str,
          region: str) -> TrailInfo:
    allowance = max(timedelta(minutes=1), config.flush_interval * 2 + timedelta(seconds=30))
    return TrailInfo(name=config.name, account_id=account_id, home_region=region, bucket=place.bucket,
                     prefix=place.prefix, digest_interval=config.digest_interval, logging_periods=periods,
                     delivery_allowance=allowance)


@dataclass(frozen=True)
class Selection:
    """What to validate: a trail (live or deleted) by name, optionally narrowed as the AWS CLI's
    `--s3-bucket`, `--s3-prefix` and `--account-id` narrow `validate-logs`."""

    trail: str
    s3_bucket: str | None = None
    s3_prefix: str | None = None
    account_id: str | None = None


def _places(trails: TrailStore, selection: Selection, account_id: str,
            region: str) -> tuple[TrailConfig, list[tuple[TrailInfo, Location]]]:
    live = trails.find(selection.trail)
    if live is not None:
        config, key = live.config, live.config.name
    else:
        gone = [d for d in trails.deleted() if d.config.name == selection.trail]
        if not gone:
            raise ValidationRunError(f"A trail could not be found for {selection.trail}",
                                     "list trails with `trailkeeper trail describe`")
        config, key = gone[-1].config, gone[-1].key  # the most recently deleted trail of that name
    if selection.account_id is not None and selection.account_id != account_id:
        raise ValidationRunError(f"--account-id {selection.account_id} is not this installation's account "
                                 f"({account_id})", "omit --account-id, or pass this account's id")
    places = [(info, place) for info, place in trail_infos(trails, config, key, account_id, region)
              if (selection.s3_bucket is None or place.bucket == selection.s3_bucket)
              and (selection.s3_prefix is None or place.prefix == selection.s3_prefix)]
    if not places:
        where = f" in bucket {selection.s3_bucket}" if selection.s3_bucket else ""
        raise ValidationRunError(f"trail {selection.trail} has no logging history{where}",
                                 "check --s3-bucket and --s3-prefix, or start logging first")
    return config, places


def state_path(config: Config, trail_name: str) -> Path:
    return config.validation_state_dir / f"{trail_name}.json"


def run_validation(config: Config, trail_name: str | Selection, start: datetime, end: datetime | None,
                   mode: str = "full", show_progress: bool = False,
                   now: datetime | None = None) -> tuple[ValidationReport, TrailInfo]:
    """Validate every place a trail (live or deleted) delivered to, as one report."""
    selection = trail_name if isinstance(trail_name, Selection) else Selection(trail_name)
    if not config.state_db.exists():
        raise ValidationRunError(f"no trailkeeper data in {config.data_dir}", "pass --data-dir pointing at the server's data directory")
    runtime = Runtime(config)
    account = runtime.account()
    try:
        trail_config, places = _places(runtime.trails, selection, account.account_id, account.region)
    finally:
        runtime.close()
    now = now or datetime.now(UTC)
    state = VerifiedState.load(state_path(config, trail_config.name))
    keys = load_public_keys(config.state_db)
    data_keys = _LazyKms(config, account.account_id, account.region) if mode == "full" else None
    reports = []
    with _progress(show_progress) as progress:
        for info, place in places:
            store = open_destination(place.destination, place.bucket, 0, config.s3, SystemClock())
            reports.append(validate_trail(store, info, keys, start, end or now, now, mode=mode,  # type: ignore[arg-type]
                                          state=state, workers=max(2, os.cpu_count() or 2), progress=progress,
                                          data_keys=data_keys))
    report, info = merge_reports(reports), places[-1][0]
    if state.advance(report):
        config.validation_state_dir.mkdir(parents=True, exist_ok=True)
        state.save()
    record_validation_run(config, account.account_id, account.region, info, start, end or now, report, mode)
    return report, info


class _LazyKms:
    """The installation's KMS, opened (root of trust and all) only when a log file turns out to
    be encrypted: trails that never encrypted do not pay for it, and a trail that did encrypt
    some of its files, at any of its places, still gets them decrypted."""

    def __init__(self, config: Config, account_id: str, region: str) -> None:
        self._args = (config, account_id, region)
        self._kms: Kms | None = None

    def _open(self) -> Kms:
        if self._kms is None:
            self._kms = _kms(*self._args)
        return self._kms

    def generate_data_key(self, key_ref: str, context: Mapping[str, str], number_of_bytes: int = 32) -> DataKey:
        return self._open().generate_data_key(key_ref, context, number_of_bytes)

    def decrypt(self, blob: bytes, context: Mapping[str, str], key_ref: str | None = None) -> Unwrapped:
        return self._open().decrypt(blob, context, key_ref)


def _kms(config: Config, account_id: str, region: str) -> Kms:
    """The installation's KMS, opened with its root of trust: full mode decrypts encrypted logs
    (stored mode never needs it, so an auditor without key access can still prove them unchanged)."""
    return Runtime(config).kms(account_id, region)


class _progress:
    """A rich progress bar on stderr when asked for, a no-op callback otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        # Imported only for a terminal: scripted runs should not pay rich's start-up cost.
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("validating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("files", total=None)

        def update(done: int, total: int) -> None:
            if total >= PROGRESS_MIN_FILES and self._bar is not None:
                self._bar.update(self._task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def record_validation_run(config: Config, account_id: str, region: str, info: TrailInfo, start: datetime,
                          end: datetime, report: ValidationReport, mode: str) -> None:
    """Validation runs are audited too. With no server to append to the spool, the record is
    dropped (create-exclusive, fsynced) into the inbox; the server appends it when it next runs."""
    record = audit.service_event_record(
        account_id, region, datetime.now(UTC), "ValidateLogs",
        {"trailARN": info.arn, "startTime": iso_seconds(start), "endTime": iso_seconds(end),
         "mode": mode, "valid": report.ok, "digestsValid": report.digests_valid, "digestsInvalid": report.digests_invalid,
         "logsValid": report.logs_valid, "logsInvalid": report.logs_invalid, "pid": os.getpid()},
        event_source=audit.CLOUDTRAIL_SOURCE,
        resources=[{"ARN": info.arn, "accountId": account_id, "type": "AWS::CloudTrail::Trail"}],
    )
    record["userIdentity"] = local_identity(account_id)
    write_inbox(config.data_dir / INBOX_DIR, record)


def local_identity(account_id: str) -> dict[str, str]:
    """Who ran an offline command: the operating-system user on the server's machine."""
    return {"type": "Unknown", "accountId": account_id, "principalId": f"local:{_login()}"}


def _login() -> str:
    try:
        return os.getlogin()
    except OSError:
        return str(os.getuid())


def write_inbox(directory: Path, record: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex}.json"
    write_new(directory / name, orjson.dumps(record))  # a hidden temp name until whole: never half-read


def validate_command(data_dir: Path | None, trail: str | Selection, start: datetime, end: datetime | None,
                     verbose: bool, as_json: bool, mode: str, config_path: Path | None = None) -> int:
    config = load_config(data_dir, config_path)
    if end is not None and start > end:
        raise ValidationRunError("--start-time must not be after --end-time")
    report, _ = run_validation(config, trail, start, end, mode, show_progress=not as_json)
    if as_json:
        sys.stdout.write(orjson.dumps(validate_report.render_json(report), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out, err = validate_report.render_cli(report, verbose)
        sys.stdout.write(out)
        sys.stderr.write(err)
    return validate_report.exit_code(report)
