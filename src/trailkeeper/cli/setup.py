"""Setting an installation up: init, the server, root recovery, the roles table."""

from __future__ import annotations

from typing import Any

import click

from trailkeeper._internal.output import (
    print_json,
    print_mapping,
    print_message,
    print_table,
)
from trailkeeper.cli.root import (
    _config_option,
    _config_path,
    _data_dir,
    _data_dir_option,
    _exports_option,
    _json_option,
    _print_exports,
    main,
)
from trailkeeper.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, load_config


@main.command()
@_data_dir_option
@_config_option
@click.option(
    "--region", "account_region", help="Region of the new account (default: the server's)."
)
@click.option("--cis-pack/--no-cis-pack", default=True, show_default=True,
              help="Install the CIS monitoring pack: the default log group new trails forward to, the 15 CIS "
                   "filters and trailkeeper's own, their alarms and a topic (subscribe to it to be told).")
@_json_option
@_exports_option
@click.pass_context
def init(ctx: click.Context, account_region: str | None, cis_pack: bool, as_json: bool, exports: bool) -> None:
    """Create a data directory, its account and the root access key; and, unless told not to,
    the CIS monitoring pack."""
    from trailkeeper.bootstrap import init_data_dir, install_pack_in

    data_dir = _data_dir(ctx) or DEFAULT_DATA_DIR
    root = init_data_dir(data_dir, account_region, config_path=_config_path(ctx))
    pack = install_pack_in(data_dir, config_path=_config_path(ctx)) if cis_pack else None
    if exports:
        _print_exports(root.access_key_id, root.secret_access_key, AWS_DEFAULT_REGION=root.region)
        return
    document: dict[str, Any] = {
        "accountId": root.account_id,
        "region": root.region,
        "rootAccessKeyId": root.access_key_id,
        "rootSecretAccessKey": root.secret_access_key,
    }
    if pack is not None:
        document["monitoringLogGroup"], document["monitoringTopicArn"] = pack["logGroupName"], pack["topicArn"]
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
