"""The root `trailkeeper` group and the settings every command shares (endpoint, region,
config file, data directory, credentials).

Errors raised on purpose (TrailkeeperError) are caught once, here, printed as
`error: <diagnostics>` on stderr, and end the process with exit code 1; click's usage
errors keep exit code 2.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from trailkeeper._internal.output import (
    print_error,
)
from trailkeeper.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, load_config
from trailkeeper.errors import ConfigError, TrailkeeperError

DEFAULT_ENDPOINT = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
_META_PREFIX = "trailkeeper."
_F = TypeVar("_F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from trailkeeper.client import Client



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

def _print_exports(key_id: str, secret: str, **more: str) -> None:
    """Shell lines that sign the next commands with this key: `eval "$(trailkeeper ... --exports)"`."""
    for variable, value in {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret, **more}.items():
        click.echo(f"export {variable}={shlex.quote(value)}")
