"""`trailkeeper init`: a new account, root credentials and the first signing key."""

from __future__ import annotations

from pathlib import Path

from trailkeeper.clock import Clock, SystemClock
from trailkeeper.config import Config, load_config
from trailkeeper.errors import IdentityError
from trailkeeper.identity import IdentityStore, RootCredentials, read_account
from trailkeeper.keys.roots import open_root_of_trust
from trailkeeper.keys.signing import SigningKeys


def init_data_dir(data_dir: Path, region: str | None = None, config_path: Path | None = None) -> RootCredentials:
    config = load_config(data_dir, config_path, region=region)
    return init_with_config(config)


def init_with_config(config: Config, clock: Clock | None = None) -> RootCredentials:
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    clock = clock or SystemClock()
    # The configured root of trust seals the root's secret and the first signing key.
    keyring = open_root_of_trust(config.root_of_trust, config.keyring_dir)
    identity = IdentityStore(config.state_db, keyring, clock)
    creds = identity.init_account(config.region)
    SigningKeys(config.state_db, keyring, clock, config.key_rotation).current()
    return creds


def is_initialised(config: Config) -> bool:
    if not config.state_db.exists():
        return False
    try:
        read_account(config.state_db)
    except IdentityError:
        return False
    return True
