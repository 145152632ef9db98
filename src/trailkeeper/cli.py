"""The `trailkeeper` command: a thin layer over trailkeeper.client and the server/offline modules.

Errors raised on purpose (TrailkeeperError) are caught once, in the root group, printed as
`error: <diagnostics>` on stderr, and end the process with exit code 1; click's usage
errors keep exit code 2.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson
from click.core import ParameterSource

from trailkeeper._internal.output import (
    print_error,
    print_json,
    print_mapping,
    print_message,
    print_note,
    print_table,
    stderr_console,
)
from trailkeeper.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, load_config
from trailkeeper.errors import ConfigError, RecordError, TrailkeeperError
from trailkeeper.records import MAX_BATCH_RECORDS

DEFAULT_ENDPOINT = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
# Below this many records an upload is quick enough that a progress bar is only noise.
PROGRESS_BAR_MIN_RECORDS = 1000
READ_WRITE_TYPES = ("All", "ReadOnly", "WriteOnly")

_META_PREFIX = "trailkeeper."
__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_ENDPOINT",
    "load_records",
    "main",
    "parse_attribute",
    "parse_duration",
    "parse_time",
]
_F = TypeVar("_F", bound=Callable[..., Any])


# -- value parsers (pure) ---------------------------------------------------------------

_EPOCH_RE = re.compile(r"-?\d+(\.\d+)?")
_DURATION_RE = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str) -> datetime:
    """ISO 8601 (with Z or an offset; no offset means UTC), a date alone, or epoch seconds."""
    text = text.strip()
    if _EPOCH_RE.fullmatch(text):
        return datetime.fromtimestamp(float(text), UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2024-05-01T12:00:00Z, 2024-05-01) "
            "or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_duration(text: str) -> int:
    """Seconds in `90`, `30s`, `1m`, `2h` or `1d`; must be positive."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90, 30s, 1m or 2h")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return seconds


def parse_attribute(text: str) -> tuple[str, str]:
    """`Key=Value` of a LookupEvents attribute; the value may itself contain '='."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text!r} is not Key=Value (e.g. Username=alice, EventName=PutObject)")
    return key.strip(), value


def _input_error(message: str, index: int | None = None) -> RecordError:
    error = RecordError(message, index=index)
    error.hint = 'give a JSON array, {"Records": [...]}, or one JSON object per line'
    return error


def load_records(data: bytes, source: str) -> list[dict[str, Any]]:
    """Records of a JSON array, a `{"Records": [...]}` document, or NDJSON."""
    return load_records_placed(data, source)[0]


def load_records_placed(data: bytes, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The records and where each stands in the input ("line 7 of f.ndjson", "record 151 of
    f.json"), so that a refusal names the place in the file, not in a batch."""
    text = data.strip()
    if not text:
        raise _input_error(f"{source} holds no records")
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        return _load_ndjson(text, source), [f"line {n} of {source}" for n in lines]
    records = _load_document(text, source)
    return records, [f"record {i} of {source}" for i in range(1, len(records) + 1)]


def _load_document(text: bytes, source: str) -> list[dict[str, Any]]:
    document = orjson.loads(text)
    if isinstance(document, dict) and "Records" in document:
        document = document["Records"]
    elif isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise _input_error(f"{source} is JSON but neither an array nor an object")
    for index, record in enumerate(document):
        if not isinstance(record, dict):
            raise _input_error(f"is a {type(record).__name__}, not a JSON object", index)
    if not document:
        raise _input_error(f"{source} holds no records")
    return document


def _load_ndjson(text: bytes, source: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise _input_error(f"line {number} of {source} is not valid JSON: {e}") from e
        if not isinstance(record, dict):
            raise _input_error(f"line {number} of {source} is not a JSON object")
        records.append(record)
    return records


if TYPE_CHECKING:
    from trailkeeper.client import ApiError, Client
    _ParamBase = click.ParamType[Any]
else:
    # click < 8.4 has no subscriptable ParamType; pyproject allows click >= 8.1.
    _ParamBase = click.ParamType


class _ParsedParam(_ParamBase):
    """A click type around one of the pure parsers above (bad values are usage errors)."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


TIME = _ParsedParam("time", parse_time)
DURATION = _ParsedParam("duration", parse_duration)
ATTRIBUTE = _ParsedParam("key=value", parse_attribute)


# -- settings shared by the root group and the commands ----------------------------------


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> None:
    # ctx.meta is shared by the whole command chain. An option typed on the command line
    # wins; one from the environment only fills a gap, so `trailkeeper --endpoint-url X
    # trail list` is not undone by TRAILKEEPER_ENDPOINT seen again by the subcommand.
    if value is None or not param.name:
        return
    key = _META_PREFIX + param.name
    typed = ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE
    if typed or key not in ctx.meta:
        ctx.meta[key] = value


def _setting(ctx: click.Context, name: str) -> Any:
    return ctx.meta.get(_META_PREFIX + name)


def _endpoint_option(f: _F) -> _F:
    return click.option(
        "--endpoint-url",
        envvar="TRAILKEEPER_ENDPOINT",
        expose_value=False,
        callback=_remember,
        help=f"URL of the trailkeeper server [env TRAILKEEPER_ENDPOINT; default {DEFAULT_ENDPOINT}].",
    )(f)


def _region_option(f: _F) -> _F:
    return click.option(
        "--region",
        envvar="TRAILKEEPER_REGION",
        expose_value=False,
        callback=_remember,
        help="Region to sign requests for [env TRAILKEEPER_REGION; default: ask the server].",
    )(f)


def _config_option(f: _F) -> _F:
    return click.option(
        "--config",
        "config_path",
        envvar="TRAILKEEPER_CONFIG",
        type=click.Path(path_type=Path, dir_okay=False),
        expose_value=False,
        callback=_remember,
        help="TOML settings file [env TRAILKEEPER_CONFIG]; clients take the server's host and port from it.",
    )(f)


def _data_dir_option(f: _F) -> _F:
    return click.option(
        "--data-dir",
        envvar="TRAILKEEPER_DATA_DIR",
        type=click.Path(path_type=Path, file_okay=False),
        expose_value=False,
        callback=_remember,
        help=f"Server data directory [env TRAILKEEPER_DATA_DIR; default ./{DEFAULT_DATA_DIR}].",
    )(f)


def _client_options(f: _F) -> _F:
    return _endpoint_option(_region_option(_config_option(f)))


def _exports_option(command: _F) -> _F:
    return click.option("--exports", is_flag=True,
                        help='Print only shell export lines of the new key: eval "$(... --exports)".')(command)


def _json_option(f: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def _data_dir(ctx: click.Context) -> Path | None:
    """The data directory if given; None lets trailkeeper.config apply its own defaults."""
    value = _setting(ctx, "data_dir")
    return Path(value) if value is not None else None


def _config_path(ctx: click.Context) -> Path | None:
    value = _setting(ctx, "config_path")
    return Path(value) if value is not None else None


def _endpoint_from_config(path: Path | None) -> str | None:
    """The server's address (host, port) in the shared TOML settings file, as a URL."""
    if path is None:
        return None
    config = load_config(None, path)
    # A server listening on every interface is reached locally through loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.host, config.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


def _make_client(ctx: click.Context) -> Client:
    endpoint = (
        _setting(ctx, "endpoint_url")
        or _endpoint_from_config(_config_path(ctx))
        or DEFAULT_ENDPOINT
    )
    region = _setting(ctx, "region")
    key_id = os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    missing = [
        name
        for name, value in (("AWS_ACCESS_KEY_ID", key_id), ("AWS_SECRET_ACCESS_KEY", secret))
        if not value
    ]
    if missing:
        raise ConfigError(
            f"missing credentials: {' and '.join(missing)} not set",
            hint=(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a trailkeeper access key "
                "(`trailkeeper init` prints the root key; `trailkeeper key create` makes more)"
            ),
        )
    # Imported here: httpx and botocore cost ~90 ms that offline commands (validate) never need.
    from trailkeeper.client import Client

    client = Client(str(endpoint), key_id, secret, region=str(region) if region else None)
    ctx.call_on_close(client.close)
    return client


# -- root group --------------------------------------------------------------------------


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrailkeeperError as e:
            print_error(e.diagnostics())
            ctx.exit(1)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@_client_options
@_data_dir_option
@click.version_option(package_name="trailkeeper")
def main() -> None:
    """trailkeeper: a self-hosted, tamper-evident, CloudTrail-compatible audit trail.

    Client commands sign requests with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    """


@main.command()
@_data_dir_option
@_config_option
@click.option(
    "--region", "account_region", help="Region of the new account (default: the server's)."
)
@_json_option
@_exports_option
@click.pass_context
def init(ctx: click.Context, account_region: str | None, as_json: bool, exports: bool) -> None:
    """Create a data directory, its account and the root access key."""
    from trailkeeper.bootstrap import init_data_dir

    data_dir = _data_dir(ctx) or DEFAULT_DATA_DIR
    root = init_data_dir(data_dir, account_region, config_path=_config_path(ctx))
    if exports:
        _print_exports(root.access_key_id, root.secret_access_key, AWS_DEFAULT_REGION=root.region)
        return
    document = {
        "accountId": root.account_id,
        "region": root.region,
        "rootAccessKeyId": root.access_key_id,
        "rootSecretAccessKey": root.secret_access_key,
    }
    _show_root(document, as_json, f"trailkeeper account in {data_dir}",
               "The root secret access key is shown once, now: store it safely.")


def _show_root(document: dict[str, Any], as_json: bool, title: str, note: str) -> None:
    """Root credentials, as JSON or as a table with the export lines that use them."""
    if as_json:
        print_json(document)
        return
    print_mapping(document, title=title)
    print_message(note)
    print_message(f"export AWS_ACCESS_KEY_ID={document['rootAccessKeyId']}")
    print_message(f"export AWS_SECRET_ACCESS_KEY={document['rootSecretAccessKey']}")


@main.command()
@click.option("--markdown", is_flag=True, help="Print docs/roles.md (the table as Markdown).")
@_json_option
def roles(markdown: bool, as_json: bool) -> None:
    """What each role may do (from the permission table the server enforces)."""
    from trailkeeper.api import roles as role_table
    from trailkeeper.identity import ROLES

    if markdown:
        click.echo(role_table.markdown(), nl=False)
        return
    rows = role_table.permission_table()
    if as_json:
        print_json([{"Permission": r.permission, "Requests": list(r.requests), "Roles": sorted(r.roles)}
                    for r in rows])
        return
    print_table(["Permission", *ROLES], [{"Permission": r.permission, **{role: "yes" if role in r.roles else ""
                                                                        for role in ROLES}} for r in rows],
                title="what each role may do (the root may do everything; requests: --markdown)")


@main.command("recover-root")
@_data_dir_option
@_config_option
@_json_option
@click.pass_context
def recover_root(ctx: click.Context, as_json: bool) -> None:
    """Break glass: revoke every root access key and issue a new one (local, no server)."""
    from trailkeeper.bootstrap import recover_root as recover
    from trailkeeper.config import load_config

    config = load_config(_data_dir(ctx) or DEFAULT_DATA_DIR, _config_path(ctx))
    root, revoked = recover(config)
    document = {"accountId": root.account_id, "region": root.region, "rootAccessKeyId": root.access_key_id,
                "rootSecretAccessKey": root.secret_access_key, "revokedAccessKeyIds": revoked}
    _show_root(document, as_json, f"root credentials recovered in {config.data_dir}",
               "Every earlier root key is revoked; the new secret is shown once, now: store it safely.")


@main.command()
@_data_dir_option
@click.option("--host", help=f"Address to listen on [default: from --config, else {DEFAULT_HOST}].")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help=f"Port to listen on [default: from --config, else {DEFAULT_PORT}].",
)
@_config_option
@click.pass_context
def server(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the trailkeeper server in the foreground."""
    from trailkeeper.server import serve

    ctx.exit(serve(_data_dir(ctx), host, port, _config_path(ctx)))


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
    from trailkeeper.offline import Selection, validate_command

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


@main.command()
@_client_options
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    default="-",
    help="Records: a JSON array, {\"Records\": [...]} or NDJSON ('-' = stdin, the default).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_RECORDS),
    default=MAX_BATCH_RECORDS,
    show_default=True,
)
@click.option(
    "--idempotency-key-prefix",
    help="Send batch i with Idempotency-Key PREFIX-i, so a re-run stores nothing twice.",
)
@_json_option
@click.pass_context
def record(
    ctx: click.Context,
    file: str,
    batch_size: int,
    idempotency_key_prefix: str | None,
    as_json: bool,
) -> None:
    """Send audit records to the server (PutEvents), in batches of any number of records.

    Each batch carries an idempotency key made from the file and the batch's own records
    (or --idempotency-key-prefix and its number), so running the same command again, also
    after fixing a refused record, stores no batch twice."""
    source = "stdin" if file == "-" else file
    data = sys.stdin.buffer.read() if file == "-" else _read_file(Path(file))
    records, places = load_records_placed(data, source)
    origin = "stdin" if file == "-" else str(Path(file).resolve())
    client = _make_client(ctx)
    event_ids = _send_records(client, records, places, batch_size, idempotency_key_prefix, origin)
    if as_json:
        print_json({"Count": len(event_ids), "EventIds": event_ids})
        return
    batches = -(-len(records) // batch_size)
    print_message(f"recorded {len(event_ids)} events in {batches} batch(es)")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}", hint="check the --file path") from e


def _send_records(client: Client, records: Sequence[dict[str, Any]], places: Sequence[str], batch_size: int,
                  prefix: str | None, origin: str) -> list[str]:
    from trailkeeper.client import ApiError

    starts = range(0, len(records), batch_size)
    progress = _RecordProgress(len(records))
    event_ids: list[str] = []
    with progress:
        for number, start in enumerate(starts):
            batch = records[start:start + batch_size]
            key = f"{prefix}-{number}" if prefix else _batch_key(origin, number, batch)
            try:
                event_ids.extend(client.put_events(batch, idempotency_key=key))
            except ApiError as e:
                raise _partly_stored(e, len(event_ids), places, start) from e
            progress.advance(len(batch))
    return event_ids


def _batch_key(origin: str, number: int, batch: Sequence[dict[str, Any]]) -> str:
    """Same file, same batch, same records: same key (a fixed record changes only its batch's)."""
    digest = hashlib.sha256(origin.encode() + b"\0" + orjson.dumps(batch)).hexdigest()[:40]
    return f"record-{number}-{digest}"


def _partly_stored(error: ApiError, stored: int, places: Sequence[str], start: int) -> TrailkeeperError:
    where = f" at {places[start + error.index]}" if error.index is not None else ""
    refused = TrailkeeperError(
        f"{stored} record(s) stored; the batch from {places[start]} was refused{where}: {error.message}",
        "fix that record and run the same command again: batches already stored are not stored twice")
    return refused


class _RecordProgress:
    """A progress bar on stderr for long uploads to a terminal; nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _RecordProgress:
        if self.total > PROGRESS_BAR_MIN_RECORDS and sys.stdout.isatty():
            from rich.progress import Progress

            self._bar = Progress(console=stderr_console(), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("recording", total=self.total)
        return self

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@main.command()
@_client_options
@click.option(
    "--attribute", "attributes", multiple=True, type=ATTRIBUTE, help="e.g. Username=alice."
)
@click.option("--start-time", type=TIME, help="ISO 8601 or epoch seconds.")
@click.option("--end-time", type=TIME, help="ISO 8601 or epoch seconds.")
@click.option("--max-results", type=click.IntRange(min=1), help="Events per page.")
@click.option("--next-token", help="Continue from a previous page.")
@click.option("--all", "fetch_all", is_flag=True, help="Follow NextToken and print every page.")
@_json_option
@click.pass_context
def lookup(
    ctx: click.Context,
    attributes: tuple[tuple[str, str], ...],
    start_time: datetime | None,
    end_time: datetime | None,
    max_results: int | None,
    next_token: str | None,
    fetch_all: bool,
    as_json: bool,
) -> None:
    """Search the event history (LookupEvents)."""
    client = _make_client(ctx)
    if fetch_all:
        events = list(client.iter_lookup_events(attributes, start_time, end_time, max_results))
        token = None
    else:
        page = client.lookup_events(attributes, start_time, end_time, max_results, next_token)
        events, token = list(page.get("Events", [])), page.get("NextToken")
    if as_json:
        print_json({"Events": events, "NextToken": token})
        return
    columns = ["EventTime", "Received", "EventName", "Username", "EventSource", "EventId"]
    print_table(columns, [{**e, "Received": _received(e)} for e in events], title=f"{len(events)} event(s)")
    if token:
        print_note(f"more events: repeat with --next-token {token} (or use --all)")


def _received(event: dict[str, Any]) -> str:
    """When the server received the record (`metadata.ingestionTime`): eventTime is the writer's word."""
    try:
        record = orjson.loads(event.get("CloudTrailEvent") or "{}")
    except orjson.JSONDecodeError:
        return ""
    metadata = record.get("metadata") if isinstance(record, dict) else None
    received = metadata.get("ingestionTime") if isinstance(metadata, dict) else None
    return received if isinstance(received, str) else ""


# -- users -------------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Manage the users of the account."""


@user.command("create")
@_client_options
@click.argument("name")
@click.option(
    "--role",
    required=True,
    help="What the user may do: administrator, auditor, writer, forwarder or log-reader.",
)
@_json_option
@click.pass_context
def user_create(ctx: click.Context, name: str, role: str, as_json: bool) -> None:
    """Create a user (CreateUser)."""
    created = _make_client(ctx).create_user(name, role)
    if as_json:
        print_json(created)
        return
    print_mapping(created, title=f"user {name} created")


@user.command("list")
@_client_options
@_json_option
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List users (ListUsers)."""
    users = _make_client(ctx).list_users()
    if as_json:
        print_json({"Users": users})
        return
    print_table(["UserName", "Role", "UserId", "CreateDate", "Arn"], users, title="Users")


@user.command("delete")
@_client_options
@click.argument("name")
@click.pass_context
def user_delete(ctx: click.Context, name: str) -> None:
    """Delete a user (DeleteUser)."""
    _make_client(ctx).delete_user(name)
    print_message(f"user {name} deleted")


# -- access keys -------------------------------------------------------------------------

_user_option = click.option("--user", "user_name", help="Owner of the key (default: the caller).")


@main.group()
def key() -> None:
    """Manage access keys."""


@key.command("create")
@_client_options
@click.argument("name", required=False)
@_json_option
@_exports_option
@click.pass_context
def key_create(ctx: click.Context, name: str | None, as_json: bool, exports: bool) -> None:
    """Create an access key for user NAME (default: the caller's own)."""
    created = _make_client(ctx).create_access_key(name)
    if exports:
        _print_exports(created["AccessKeyId"], created["SecretAccessKey"])
        return
    if as_json:
        print_json(created)
        return
    print_mapping(created, title="access key created")
    print_message("The secret access key is shown once, now: store it safely.")


def _print_exports(key_id: str, secret: str, **more: str) -> None:
    """Shell lines that sign the next commands with this key: `eval "$(trailkeeper ... --exports)"`."""
    for variable, value in {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret, **more}.items():
        click.echo(f"export {variable}={shlex.quote(value)}")


@key.command("list")
@_client_options
@click.argument("name", required=False)
@_json_option
@click.pass_context
def key_list(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List the access keys of user NAME (default: the caller's own)."""
    keys = _make_client(ctx).list_access_keys(name)
    if as_json:
        print_json({"AccessKeyMetadata": keys})
        return
    print_table(["UserName", "AccessKeyId", "Status", "CreateDate"], keys, title="Access keys")


def _set_key_status(ctx: click.Context, key_id: str, user_name: str | None, status: str) -> None:
    _make_client(ctx).update_access_key(key_id, status, user_name)
    print_message(f"access key {key_id} is {status}")


@key.command("deactivate")
@_client_options
@click.argument("key_id", metavar="KEYID")
@_user_option
@click.pass_context
def key_deactivate(ctx: click.Context, key_id: str, user_name: str | None) -> None:
    """Mark an access key Inactive: requests signed with it are refused."""
    _set_key_status(ctx, key_id, user_name, "Inactive")


@key.command("activate")
@_client_options
@click.argument("key_id", metavar="KEYID")
@_user_option
@click.pass_context
def key_activate(ctx: click.Context, key_id: str, user_name: str | None) -> None:
    """Mark an access key Active again."""
    _set_key_status(ctx, key_id, user_name, "Active")


@key.command("delete")
@_client_options
@click.argument("key_id", metavar="KEYID")
@_user_option
@click.pass_context
def key_delete(ctx: click.Context, key_id: str, user_name: str | None) -> None:
    """Delete an access key for good."""
    _make_client(ctx).delete_access_key(key_id, user_name)
    print_message(f"access key {key_id} deleted")


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
    return destination if destination.startswith("s3://") else os.path.abspath(destination)


def _save_trail(
    ctx: click.Context, operation: str, name: str, options: dict[str, Any], as_json: bool
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


@trail.command("update")
@_client_options
@click.argument("name")
@_trail_settings_options
@click.pass_context
def trail_update(ctx: click.Context, /, name: str, as_json: bool, **options: Any) -> None:
    """Change a trail's settings; options left out stay as they are (UpdateTrail)."""
    _save_trail(ctx, "update", name, options, as_json)


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
