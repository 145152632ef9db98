"""`trailkeeper init`: a new account, root credentials and the first signing key."""

from __future__ import annotations

from pathlib import Path

from trailkeeper.clock import Clock, SystemClock
from trailkeeper.config import Config, load_config
from trailkeeper.errors import IdentityError
from trailkeeper.identity import IdentityStore, RootCredentials
from trailkeeper.keys.keyring import LocalKeyring
from trailkeeper.keys.signing import SigningKeys


def init_data_dir(data_dir: Path, region: str | None = None, config_path: Path | None = None) -> RootCredentials:
    config = load_config(data_dir, config_path, region=region)
    return init_with_config(config)


def init_with_config(config: Config, clock: Clock | None = None) -> RootCredentials:
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    clock = clock or SystemClock()
    keyring = LocalKeyring.open_or_create(config.keyring_dir)
    identity = IdentityStore(config.state_db, keyring, clock)
    creds = identity.init_account(config.region)
    SigningKeys(config.state_db, keyring, clock, config.key_rotation).current()
    return creds


def is_initialised(config: Config) -> bool:
    if not config.state_db.exists():
        return False
    try:
        IdentityStore(config.state_db, LocalKeyring.open_or_create(config.keyring_dir), SystemClock()).account()
    except IdentityError:
        return False
    return True
