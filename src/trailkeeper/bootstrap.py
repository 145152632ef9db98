"""`trailkeeper init`: a new account, root credentials and the first signing key, and the CIS
monitoring pack; and `trailkeeper recover-root`, the break-glass way back in when the root's
keys are lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from trailkeeper.clock import Clock
from trailkeeper.config import Config, load_config
from trailkeeper.errors import IdentityError
from trailkeeper.identity import RootCredentials, read_account
from trailkeeper.runtime import Runtime


def init_data_dir(data_dir: Path, region: str | None = None, config_path: Path | None = None) -> RootCredentials:
    config = load_config(data_dir, config_path, region=region)
    return init_with_config(config)


def init_with_config(config: Config, clock: Clock | None = None) -> RootCredentials:
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The configured root of trust seals the root's secret and the first signing key.
    runtime = Runtime(config, clock)
    try:
        creds = runtime.identity.init_account(config.region)
        runtime.signing_keys.current()
    finally:
        runtime.close()
    return creds


def install_pack_in(data_dir: Path, config_path: Path | None = None) -> dict[str, Any]:
    """`trailkeeper init`'s second step: the monitoring pack in the account `data_dir` holds."""
    return install_monitoring_pack(load_config(data_dir, config_path))


def install_monitoring_pack(config: Config, clock: Clock | None = None) -> dict[str, Any]:
    """The CIS monitoring pack on a new account (issue #11: on by default): the default log
    group with the 15 CIS filters and trailkeeper's own, their alarms, the topic, and the role
    new trails forward as. Each step is the API operation's own handler, run as the root on the
    data directory before any server; the whole is recorded (`MonitoringPackInstalled`) through
    the inbox the server appends at its start."""
    from trailkeeper import audit
    from trailkeeper.monitoring.cis_pack import install_default
    from trailkeeper.validate.command import local_identity, write_inbox

    runtime = Runtime(config, clock)
    try:
        account = runtime.identity.account()
        done = install_default(_as_root(runtime), account.account_id, account.region)
    finally:
        runtime.close()
    details = {"logGroupName": done.log_group, "topicArn": done.topic_arn, "cisControls": list(done.controls)}
    record = audit.service_event_record(account.account_id, account.region, runtime.clock.now(),
                                        "MonitoringPackInstalled", details)
    record["userIdentity"] = local_identity(account.account_id)
    write_inbox(config.data_dir / "inbox", record)
    return details


def _as_root(runtime: Runtime) -> Callable[..., dict[str, Any]]:
    """`call(operation, **params)` through the registry's handlers, each given its service's
    domain from `runtime`: the same validation and answers as the API, without a server."""
    from trailkeeper.api.operations import IamDomain
    from trailkeeper.api.services import DEFAULT_REGISTRY
    from trailkeeper.identity import Principal, root_arn

    account = runtime.identity.account()
    root = Principal(account.account_id, True, None, account.account_id, root_arn(account.account_id), None,
                     "", "Active")  # no access key: the data directory's owner, on this machine
    domains: dict[str, Any] = {"logs": runtime.log_groups, "monitoring": runtime.cloudwatch,
                               "sns": runtime.notifications, "iam": IamDomain(runtime.identity, runtime.roles)}

    def call(operation: str, **params: Any) -> dict[str, Any]:
        # By the services built here: a name two services share (TagResource) is the one here.
        found = next((f for spec in DEFAULT_REGISTRY.services if spec.signing_name in domains
                      and (f := DEFAULT_REGISTRY.find(operation, spec.name)) is not None), None)
        if found is None:
            raise ValueError(f"{operation} cannot run before the server starts")
        return found.operation.handler(domains[found.service.signing_name], root, params)

    return call


def is_initialised(config: Config) -> bool:
    if not config.state_db.exists():
        return False
    try:
        read_account(config.state_db)
    except IdentityError:
        return False
    return True


def recover_root(config: Config, clock: Clock | None = None) -> tuple[RootCredentials, list[str]]:
    """Revoke every root key and issue a new one. Needs the data directory and its root of
    trust on this machine, no server: whoever has both owns the account anyway. The recovery
    is recorded (`RootCredentialsRecovered`) through the inbox the server appends."""
    from trailkeeper import audit
    from trailkeeper.validate.command import local_identity, write_inbox

    if not is_initialised(config):
        raise IdentityError("NoSuchEntity", f"no trailkeeper account in {config.data_dir}", 404)
    runtime = Runtime(config, clock)
    try:
        account = runtime.identity.account()
        key, revoked = runtime.identity.recover_root()
    finally:
        runtime.close()
    record = audit.service_event_record(
        account.account_id, account.region, runtime.clock.now(), "RootCredentialsRecovered",
        {"newAccessKeyId": key.access_key_id, "revokedAccessKeyIds": revoked, "dataDir": str(config.data_dir)},
        event_source=audit.IAM_SOURCE,
        resources=[{"ARN": f"arn:aws:iam::{account.account_id}:root", "accountId": account.account_id,
                    "type": "AWS::IAM::Root"}])
    record["userIdentity"] = local_identity(account.account_id)
    write_inbox(config.data_dir / "inbox", record)
    return RootCredentials(account.account_id, account.region, key.access_key_id, key.secret_access_key), revoked
