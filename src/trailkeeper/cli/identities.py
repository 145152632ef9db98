"""Users and their access keys."""

from __future__ import annotations

import click

from trailkeeper._internal.output import (
    print_json,
    print_mapping,
    print_message,
    print_table,
)
from trailkeeper.cli.root import (
    _client_options,
    _exports_option,
    _json_option,
    _make_client,
    _print_exports,
    main,
)

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
