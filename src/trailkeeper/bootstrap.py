"""`trailkeeper init`: a new account, root credentials and the first signing key; and
`trailkeeper recover-root`, the break-glass way back in when the root's keys are lost."""

from __future__ import annotations

from pathlib import Path

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
