"""Trails, their storage, their validation, and the server's status."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from trailkeeper._internal.output import (
    print_json,
    print_mapping,
    print_message,
    print_note,
    print_table,
)
from trailkeeper.cli.parsing import DURATION, TIME
from trailkeeper.cli.root import (
    _client_options,
    _config_option,
    _config_path,
    _data_dir,
    _data_dir_option,
    _json_option,
    _make_client,
    main,
)
from trailkeeper.config import load_config

READ_WRITE_TYPES = ("All", "ReadOnly", "WriteOnly")
_F = TypeVar("_F", bound=Callable[..., Any])


@main.command()
@_data_dir_option
@_config_option
@click.option("--trail", required=True, help="Name of the trail to validate (also a deleted one).")
@click.option("--start-time", required=True, type=TIME, help="ISO 8601 or epoch seconds.")
@click.option("--end-time", type=TIME, help="ISO 8601 or epoch seconds (default: now).")
@click.option("--verbose", is_flag=True, help="Report every file, not only the problems.")
@click.option("--mode", type=click.Choice(["full", "stored"]), default="full", show_default=True)
@click.option("--s3-bucket", help="Only the trail's files in this bucket (as aws cloudtrail validate-logs).")
@click.option("--s3-prefix", help="Only the trail's files under this key prefix.")
@click.option("--account-id", help="The account that wrote the files (this installation's).")
@_json_option
@click.pass_context
def validate(
    ctx: click.Context,
    trail: str,
    start_time: datetime,
    end_time: datetime | None,
    verbose: bool,
    mode: str,
    s3_bucket: str | None,
    s3_prefix: str | None,
    account_id: str | None,
    as_json: bool,
) -> None:
    """Validate a trail's logs and digests offline, straight from the data directory: every
    place it delivered to, each against its own chain, also after the trail was deleted."""
    from trailkeeper.validate.command import Selection, validate_command

    data_dir, config_path = _data_dir(ctx), _config_path(ctx)
    selection = Selection(trail, s3_bucket, s3_prefix, account_id)
    code = validate_command(
        data_dir, selection, start_time, end_time, verbose, as_json, mode, config_path=config_path
    )
    ctx.exit(code)


@main.command("public-keys")
@_client_options
@click.option("--start-time", type=TIME, help="Keys valid after this time.")
@click.option("--end-time", type=TIME, help="Keys valid before this time.")
@_json_option
@click.pass_context
def public_keys(
    ctx: click.Context, start_time: datetime | None, end_time: datetime | None, as_json: bool
) -> None:
    """List the digest-signing public keys (ListPublicKeys)."""
    keys = _make_client(ctx).list_public_keys(start_time, end_time)
    if as_json:
        print_json({"PublicKeyList": keys})
        return
    print_table(["Fingerprint", "ValidityStartTime", "ValidityEndTime"], keys, title="Public keys")


@main.command()
@_client_options
@_json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the server's spool, history and trail health (GetServerStatus)."""
    answer = _make_client(ctx).get_server_status()
    if as_json:
        print_json(answer)
        return
    print_mapping(answer, title="Server status")



# -- trails ------------------------------------------------------------------------------


def _trail_settings_options(f: _F) -> _F:
    options = [
        click.option("--destination", help="Folder, or s3://bucket[/prefix], the trail delivers files to."),
        click.option("--kms-key-id", help="KMS key (id, ARN or alias) encrypting the log files; '' for none."),
        click.option("--object-lock-days", type=click.IntRange(0, 36500),
                     help="COMPLIANCE retention on every file (s3:// destinations with Object Lock)."),
        click.option("--prefix", help="Key prefix inside the destination (S3KeyPrefix)."),
        click.option(
            "--validation/--no-validation",
            default=None,
            help="Write signed digest files (EnableLogFileValidation).",
        ),
        click.option(
            "--flush-interval", type=DURATION, help="How often logs are delivered: 90, 30s, 1m."
        ),
        click.option(
            "--digest-interval", type=DURATION, help="How often digests are written: 1m, 1h."
        ),
        click.option(
            "--read-write-type",
            type=click.Choice(READ_WRITE_TYPES, case_sensitive=False),
            help="Which events the trail keeps (set with PutEventSelectors).",
        ),
        _json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _absolute_destination(destination: str) -> str:
    from trailkeeper.storage.destinations import is_s3

    return destination if is_s3(destination) else os.path.abspath(destination)


def _save_trail(
    ctx: click.Context, operation: str, name: str, options: dict[str, Any], as_json: bool,
    log_group: str | None = None,
) -> None:
    client = _make_client(ctx)
    destination = options["destination"]
    settings: dict[str, Any] = {
        # The server may run in another working directory: send an unambiguous path.
        "destination": _absolute_destination(destination) if destination else None,
        "s3_key_prefix": options["prefix"],
        "enable_log_file_validation": options["validation"],
        "flush_interval_seconds": options["flush_interval"],
        "digest_interval_seconds": options["digest_interval"],
        "kms_key_id": options["kms_key_id"],
        "object_lock_days": options["object_lock_days"],
    }
    save = client.create_trail if operation == "create" else client.update_trail
    answer = save(name, **settings)
    if options["read_write_type"]:
        selectors = client.put_event_selectors(name, options["read_write_type"])
        answer["EventSelectors"] = selectors.get("EventSelectors")
    if log_group is not None:
        answer = _forward(client, name, log_group or None, answer, as_json)
    if as_json:
        print_json(answer)
        return
    print_mapping(answer, title=f"trail {name} {operation}d")


@main.group()
def trail() -> None:
    """Manage trails."""


@trail.command("create")
@_client_options
@click.argument("name")
@_trail_settings_options
@click.pass_context
def trail_create(ctx: click.Context, /, name: str, as_json: bool, **options: Any) -> None:
    """Create a trail (CreateTrail; --read-write-type adds PutEventSelectors)."""
    _save_trail(ctx, "create", name, options, as_json)


def _forward(client: Any, name: str, group: str | None, answer: dict[str, Any], as_json: bool) -> dict[str, Any]:
    from trailkeeper.monitoring.forwarder import set_up_forwarding

    done = set_up_forwarding(client.call, name, group, lambda e: str(getattr(e, "code", "")))
    if not as_json:
        if done.group_created:
            print_note(f"created log group {done.group}")
        if done.role_created:
            print_note(f"created role {done.role_arn}")
        print_note(f"role policy {done.role_arn}: logs:CreateLogStream and logs:PutLogEvents on the trail's stream")
    return {**answer, **done.trail}


@trail.command("update")
@_client_options
@click.argument("name")
@_trail_settings_options
@click.option("--log-group", is_flag=False, flag_value="", default=None, metavar="[NAME]",
              help="Forward the trail's events to this CloudWatch Logs group, created if missing; without "
                   "NAME, the default group aws-cloudtrail-logs-{account}-{suffix}. Creates the role "
                   "CloudTrailRoleForCloudWatchLogs_{trail} with the minimal policy, as the CloudTrail console does.")
@click.pass_context
def trail_update(ctx: click.Context, /, name: str, as_json: bool, log_group: str | None, **options: Any) -> None:
    """Change a trail's settings; options left out stay as they are (UpdateTrail)."""
    _save_trail(ctx, "update", name, options, as_json, log_group)


@trail.command("delete")
@_client_options
@click.argument("name")
@click.pass_context
def trail_delete(ctx: click.Context, name: str) -> None:
    """Delete a trail; delivered files stay where they are."""
    _make_client(ctx).delete_trail(name)
    print_message(f"trail {name} deleted")


@trail.command("start")
@_client_options
@click.argument("name")
@click.pass_context
def trail_start(ctx: click.Context, name: str) -> None:
    """Start logging (StartLogging)."""
    _make_client(ctx).start_logging(name)
    print_message(f"trail {name}: logging started")


@trail.command("stop")
@_client_options
@click.argument("name")
@click.pass_context
def trail_stop(ctx: click.Context, name: str) -> None:
    """Stop logging (StopLogging)."""
    _make_client(ctx).stop_logging(name)
    print_message(f"trail {name}: logging stopped")


@trail.command("describe")
@_client_options
@click.argument("names", nargs=-1)
@_json_option
@click.pass_context
def trail_describe(ctx: click.Context, names: tuple[str, ...], as_json: bool) -> None:
    """Show the settings of the named trails, or of all trails (DescribeTrails)."""
    trails = _make_client(ctx).describe_trails(list(names))
    if as_json:
        print_json({"trailList": trails})
        return
    columns = [
        "Name",
        "Destination",
        "S3KeyPrefix",
        "LogFileValidationEnabled",
        "FlushIntervalSeconds",
        "DigestIntervalSeconds",
        "TrailARN",
    ]
    print_table(columns, trails, title="Trails")


@trail.command("status")
@_client_options
@click.argument("name")
@_json_option
@click.pass_context
def trail_status(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show whether a trail is logging and its latest deliveries (GetTrailStatus)."""
    answer = _make_client(ctx).get_trail_status(name)
    if as_json:
        print_json(answer)
        return
    print_mapping(answer, title=f"trail {name}")


@trail.command("list")
@_client_options
@_json_option
@click.pass_context
def trail_list(ctx: click.Context, as_json: bool) -> None:
    """List trail names and ARNs (ListTrails)."""
    trails = _make_client(ctx).list_trails()
    if as_json:
        print_json({"Trails": trails})
        return
    print_table(["Name", "HomeRegion", "TrailARN"], trails, title="Trails")


# -- storage --------------------------------------------------------------------------------


@main.group()
def storage() -> None:
    """Check S3-compatible destinations."""


@storage.command("probe")
@_data_dir_option
@_config_option
@click.option("--bucket", required=True, help="Bucket to probe (Object Lock must be enabled on it).")
@_json_option
@click.pass_context
def storage_probe(ctx: click.Context, bucket: str, as_json: bool) -> None:
    """Run the WORM conformance probe; exit 0 only if the bucket behaves as WORM storage.

    Writes only under trailkeeper-probe/<uuid>/ in the bucket; versions locked by the probe
    stay for one day (they cannot be removed: that is what is being tested).
    """
    from trailkeeper.storage.probe import run_probe
    from trailkeeper.storage.s3 import S3Settings, s3_client

    config = load_config(_data_dir(ctx), _config_path(ctx))
    report = run_probe(s3_client(config.s3 or S3Settings()), bucket, datetime.now(UTC))
    rows = [{"Step": s.name, "Result": ("PASS" if s.passed else "FAIL") + ("" if s.required else " (info)"),
             "Detail": s.detail} for s in report.steps]
    if as_json:
        print_json({"Bucket": bucket, "Worm": report.worm, "Steps": rows, "Leftovers": report.leftovers})
    else:
        print_table(["Step", "Result", "Detail"], rows, title=f"WORM probe of {bucket}")
        for left in report.leftovers:
            print_note(f"kept (locked by the probe): {left}")
        print_message("WORM verified" if report.worm else "NOT WORM: do not rely on this bucket to refuse deletion")
    ctx.exit(0 if report.worm else 1)


if __name__ == "__main__":
    main()
