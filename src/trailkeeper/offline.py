"""`trailkeeper validate`: validate a trail straight from its storage, with no server running."""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trailkeeper import audit, validate_report
from trailkeeper._internal.fsutil import fsync_dir
from trailkeeper._internal.sqlite import Database
from trailkeeper.clock import SystemClock, iso_seconds
from trailkeeper.config import Config, load_config
from trailkeeper.errors import ValidationRunError
from trailkeeper.identity import read_account
from trailkeeper.keys.signing import load_public_keys
from trailkeeper.storage.destinations import open_destination
from trailkeeper.trails import Trail, TrailStore
from trailkeeper.validate import TrailInfo, ValidationReport, VerifiedState, validate_trail

if TYPE_CHECKING:
    from rich.progress import Progress

    from trailkeeper.kms import Kms

INBOX_DIR = "inbox"
PROGRESS_MIN_FILES = 200


def trail_info(store: TrailStore, trail: Trail, account_id: str, region: str) -> TrailInfo:
    periods = [(p.started, p.final_digest_end) for p in store.periods(trail.config.name)]
    allowance = max(timedelta(minutes=1), trail.config.flush_interval * 2 + timedelta(seconds=30))
    return TrailInfo(
        name=trail.config.name, account_id=account_id, home_region=region, bucket=trail.config.bucket,
        prefix=trail.config.prefix, digest_interval=trail.config.digest_interval,
        logging_periods=periods, delivery_allowance=allowance,
    )


def state_path(config: Config, trail_name: str) -> Path:
    return config.validation_state_dir / f"{trail_name}.json"


def run_validation(config: Config, trail_name: str, start: datetime, end: datetime | None,
                   mode: str = "full", show_progress: bool = False,
                   now: datetime | None = None) -> tuple[ValidationReport, TrailInfo]:
    if not config.state_db.exists():
        raise ValidationRunError(f"no trailkeeper data in {config.data_dir}", "pass --data-dir pointing at the server's data directory")
    account = read_account(config.state_db)
    db = Database(config.state_db)
    try:
        trails = TrailStore(db)
        trail = trails.find(trail_name)
        if trail is None:
            raise ValidationRunError(f"A trail could not be found for {trail_name}", "list trails with `trailkeeper trail describe`")
        info = trail_info(trails, trail, account.account_id, account.region)
    finally:
        db.close()
    store = open_destination(trail.config.destination, trail.config.bucket, 0, config.s3, SystemClock())
    now = now or datetime.now(UTC)
    state = VerifiedState.load(state_path(config, trail_name))
    keys = load_public_keys(config.state_db)
    data_keys = _kms(config, account.account_id, account.region) if trail.config.kms_key_id and mode == "full" else None
    with _progress(show_progress) as progress:
        report = validate_trail(store, info, keys, start, end or now, now, mode=mode,  # type: ignore[arg-type]
                                state=state, workers=max(2, os.cpu_count() or 2), progress=progress,
                                data_keys=data_keys)
    if state.advance(report):
        config.validation_state_dir.mkdir(parents=True, exist_ok=True)
        state.save()
    record_validation_run(config, account.account_id, account.region, info, start, end or now, report, mode)
    return report, info


def _kms(config: Config, account_id: str, region: str) -> Kms:
    """The installation's KMS, opened with its root of trust: full mode decrypts encrypted logs
    (stored mode never needs it, so an auditor without key access can still prove them unchanged)."""
    from trailkeeper.keys.roots import open_root_of_trust
    from trailkeeper.kms import Kms

    return Kms(config.state_db, open_root_of_trust(config.root_of_trust, config.keyring_dir), SystemClock(),
               account_id, region)


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
    tmp = directory / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(record))
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, directory / name)
    fsync_dir(directory)


def validate_command(data_dir: Path | None, trail: str, start: datetime, end: datetime | None, verbose: bool,
                     as_json: bool, mode: str, config_path: Path | None = None) -> int:
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
