"""Roots of trust: what seals trailkeeper's own key material (KMS key versions, digest signing keys).

Every root implements `trailkeeper.keys.keyring.KeyProvider`; `open_root_of_trust` picks one
from the `[root_of_trust]` settings:

- ``local`` — **the development default.** A 256-bit master secret in ``<data dir>/keyring/
  master.key`` (refused unless only its owner can read it, i.e. mode 0600 or 0400), or, when
  ``TRAILKEEPER_MASTER_KEY`` is set, that secret instead (64 hex characters or base64 of 32
  bytes, optionally ``<key-id>:<secret>``; use the key id of ``master.key`` to read what the
  file sealed). Whoever can read the data directory or the process environment holds every
  key, so production deployments should use one of the remote roots below.
- ``openbao`` / ``vault`` — a Transit key (aes256-gcm96 or another AEAD type) on an OpenBao or
  HashiCorp Vault server. The master key never leaves the server; the context is bound as
  Transit ``associated_data`` (OpenBao 2.7.2 enforces it: decrypting with other associated data
  fails), or, with ``transit_derived = true`` for servers without associated-data support, as
  the key-derivation context of a ``derived`` key. Least-privilege token policy::

      path "transit/encrypt/<key>" { capabilities = ["update"] }
      path "transit/decrypt/<key>" { capabilities = ["update"] }
      path "transit/keys/<key>"    { capabilities = ["read"] }

  Without ``create`` a hard-deleted key cannot be silently re-created by an encrypt call.
- ``aws-kms`` — a symmetric AWS KMS key through boto3, the context passed as the
  encryption context ``{"trailkeeper-context": base64(context)}``.

A remote root that is unreachable or refuses (sealed, permission denied, key disabled or
soft-deleted) raises `KeyProviderUnavailableError`, which delivery treats as an outage: wait,
retry, report. A ciphertext that fails authentication raises `SigningKeyError`.

Envelopes of remote roots name the key that sealed them: ``TKT1`` + key id + the Transit
``vault:vN:...`` string (so the key version is visible), ``TKK1`` + key ARN + the KMS blob.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trailkeeper.errors import ConfigError, KeyProviderUnavailableError, SigningKeyError
from trailkeeper.keys.keyring import MASTER_KEY_FILE, KeyProvider, LocalKeyring

KIND_LOCAL = "local"
KIND_OPENBAO = "openbao"
KIND_VAULT = "vault"
KIND_AWS_KMS = "aws-kms"
KINDS = (KIND_LOCAL, KIND_OPENBAO, KIND_VAULT, KIND_AWS_KMS)
DEFAULT_KIND = KIND_LOCAL
DEFAULT_TRANSIT_MOUNT = "transit"
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 300.0
ENV_MASTER_KEY = "TRAILKEEPER_MASTER_KEY"
TOKEN_ENV_VARS = ("BAO_TOKEN", "VAULT_TOKEN")
MASTER_KEY_BYTES = 32
_KEY_ID_DOMAIN = b"trailkeeper master key id\x00"
AWS_CONTEXT_KEY = "trailkeeper-context"
TRANSIT_MAGIC = b"TKT1"
AWS_KMS_MAGIC = b"TKK1"
_TRANSIT_CIPHERTEXT = re.compile(r"vault:v([1-9][0-9]{0,9}):([A-Za-z0-9+/=]+)")
_HEX_KEY = re.compile(f"[0-9a-fA-F]{{{2 * MASTER_KEY_BYTES}}}")
_PRIVATE_MODE_BITS = 0o077  # any group/other permission bit
_SECTION = "root_of_trust"
# Transit answers 400 both for a bad ciphertext and for an unusable key; only these mean the
# ciphertext itself is wrong (tampered, truncated, other context).
_TRANSIT_TAMPER_MARKERS = ("message authentication failed", "invalid ciphertext")
_AWS_TAMPER_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
_AWS_HINTS = {
    "DisabledException": "enable the key (aws kms enable-key --key-id {key})",
    "KMSInvalidStateException": "the key is pending deletion or not usable: cancel the deletion "
    "(aws kms cancel-key-deletion --key-id {key}) and enable it",
    "AccessDeniedException": "grant kms:Encrypt and kms:Decrypt on {key} to trailkeeper's credentials",
    "NotFoundException": "check root_of_trust.key_id ({key}) and the region",
}


# --- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class RootOfTrustConfig:
    """The `[root_of_trust]` settings; `check()` rejects inconsistent combinations."""

    kind: str = DEFAULT_KIND
    address: str | None = None
    token: str | None = field(default=None, repr=False)  # a credential: keep it out of logs
    token_file: Path | None = None
    transit_mount: str = DEFAULT_TRANSIT_MOUNT
    transit_key: str | None = None
    transit_derived: bool = False
    aws_key_id: str | None = None
    aws_region: str | None = None
    aws_endpoint_url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    ca_cert: Path | None = None

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None) -> RootOfTrustConfig:
        """Build from the `[root_of_trust]` TOML table (keys as in docs) and check it."""
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _TOML_FIELDS:
                raise ConfigError(f"{_SECTION}.{key}: unknown setting",
                                  f"known settings: {', '.join(sorted(_TOML_FIELDS))}")
            name, convert = _TOML_FIELDS[key]
            values[name] = convert(key, value)
        return cls(**values).check(env)

    def check(self, env: Mapping[str, str] | None = None) -> RootOfTrustConfig:
        """Refuse a setting that is missing, malformed or does not fit `kind`."""
        environ = os.environ if env is None else env
        if self.kind not in KINDS:
            raise ConfigError(f"{_SECTION}.kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ConfigError(f"{_SECTION}.timeout: must be in (0, {MAX_TIMEOUT_S:g}] seconds, got {self.timeout_s:g}")
        if self.kind == KIND_LOCAL:
            self._forbid(_TRANSIT_SETTINGS + _AWS_SETTINGS)
        elif self.kind == KIND_AWS_KMS:
            self._forbid(_TRANSIT_SETTINGS)
            self._require("aws_key_id")
        else:
            self._forbid(_AWS_SETTINGS)
            self._check_transit(environ)
        return self

    def _check_transit(self, env: Mapping[str, str]) -> None:
        self._require("address")
        self._require("transit_key")
        assert self.address is not None
        if not self.address.startswith(("http://", "https://")):
            raise ConfigError(f"{_SECTION}.address: {self.address!r} is not an http:// or https:// URL")
        mount = self.transit_mount
        if not mount or mount != mount.strip("/"):
            raise ConfigError(f"{_SECTION}.transit_mount: {mount!r} must be a mount path without leading or trailing '/'")
        if self.token and self.token_file:
            raise ConfigError(f"{_SECTION}.token and {_SECTION}.token_file are both set", "keep one of them")
        if not (self.token or self.token_file or any(env.get(name) for name in TOKEN_ENV_VARS)):
            raise ConfigError(f"{_SECTION}.token: no token for {self.kind} at {self.address}",
                              f"set token_file (mode 0600) or the environment variable {' or '.join(TOKEN_ENV_VARS)}")

    def _require(self, name: str) -> None:
        if not getattr(self, name):
            raise ConfigError(f"{_SECTION}.{_toml_name(name)}: required when kind = {self.kind!r}")

    def _forbid(self, names: tuple[str, ...]) -> None:
        for name in names:
            if getattr(self, name) != _DEFAULTS[name]:
                raise ConfigError(f"{_SECTION}.{_toml_name(name)} is set but kind = {self.kind!r} does not use it",
                                  "remove the setting or change root_of_trust.kind")


_TRANSIT_SETTINGS = ("address", "token", "token_file", "transit_mount", "transit_key", "transit_derived", "ca_cert")
_AWS_SETTINGS = ("aws_key_id", "aws_region", "aws_endpoint_url")
_DEFAULTS: dict[str, object] = {name: getattr(RootOfTrustConfig(), name) for name in _TRANSIT_SETTINGS + _AWS_SETTINGS}


def _as_str(key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{_SECTION}.{key}: expected a non-empty string, got {value!r}")
    return value


def _as_path(key: str, value: object) -> Path:
    return Path(_as_str(key, value))


def _as_bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{_SECTION}.{key}: expected true or false, got {value!r}")
    return value


def _as_seconds(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{_SECTION}.{key}: expected a number of seconds, got {value!r}")
    return float(value)


_TOML_FIELDS: dict[str, tuple[str, Callable[[str, object], Any]]] = {
    "kind": ("kind", _as_str),
    "address": ("address", _as_str),
    "token": ("token", _as_str),
    "token_file": ("token_file", _as_path),
    "transit_mount": ("transit_mount", _as_str),
    "transit_key": ("transit_key", _as_str),
    "transit_derived": ("transit_derived", _as_bool),
    "key_id": ("aws_key_id", _as_str),
    "region": ("aws_region", _as_str),
    "endpoint_url": ("aws_endpoint_url", _as_str),
    "timeout": ("timeout_s", _as_seconds),
    "ca_cert": ("ca_cert", _as_path),
}
_FIELD_TO_TOML = {name: key for key, (name, _) in _TOML_FIELDS.items()}


def _toml_name(field_name: str) -> str:
    return _FIELD_TO_TOML.get(field_name, field_name)


# --- opening a root ------------------------------------------------------------------------


def open_root_of_trust(config: RootOfTrustConfig, keyring_dir: Path,
                       env: Mapping[str, str] | None = None) -> KeyProvider:
    """The configured root of trust. Makes no network call: a remote outage shows on first use."""
    environ = os.environ if env is None else env
    config.check(environ)
    if config.kind == KIND_LOCAL:
        return open_local_root(keyring_dir, environ)
    if config.kind == KIND_AWS_KMS:
        return _open_aws_kms(config)
    return _open_transit(config, environ)


def open_local_root(keyring_dir: Path, env: Mapping[str, str]) -> LocalKeyring:
    """`TRAILKEEPER_MASTER_KEY` if set, else the 0600 master key file (created on first use)."""
    value = env.get(ENV_MASTER_KEY, "").strip()
    if value:
        key_id, key = parse_master_key(value)
        return LocalKeyring(key_id, {1: key})
    path = keyring_dir / MASTER_KEY_FILE
    if path.exists():
        check_private_file(path, "master key file")
    return LocalKeyring.open_or_create(keyring_dir)


def parse_master_key(value: str) -> tuple[str, bytes]:
    """`[<key-id>:]<64 hex | base64 of 32 bytes>` → (key id, key). Never echoes the secret."""
    key_id, sep, secret = value.strip().rpartition(":")
    key = _decode_master_secret(secret.strip())
    if not sep:
        # Derived from the key, so two different secrets never share a key id.
        return "local-env-" + hashlib.sha256(_KEY_ID_DOMAIN + key).hexdigest()[:16], key
    if not key_id or any(ch.isspace() for ch in key_id) or not key_id.isprintable():
        raise ConfigError(f"{ENV_MASTER_KEY}: the key id before ':' must be non-empty printable text without spaces")
    return key_id, key


def _decode_master_secret(secret: str) -> bytes:
    if _HEX_KEY.fullmatch(secret):
        return bytes.fromhex(secret)
    try:
        key = base64.b64decode(secret, validate=True)
    except binascii.Error:
        key = b""
    if len(key) == MASTER_KEY_BYTES:
        return key
    raise ConfigError(
        f"{ENV_MASTER_KEY}: expected 64 hex characters or base64 of 32 bytes, optionally "
        f"prefixed by '<key-id>:' (got {len(secret)} characters that are neither)",
        "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'")


def check_private_file(path: Path, what: str) -> None:
    """Refuse a secret file that group or other may read or write."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise SigningKeyError(f"cannot check {what} {path}: {e}") from e
    if mode & _PRIVATE_MODE_BITS:
        raise SigningKeyError(
            f"{what} {path} has mode {mode & 0o777:04o}: group or other may access it; refusing to use it",
            f"run `chmod 600 {path}`, and treat the secret as exposed if others could read it")


def read_token(config: RootOfTrustConfig, env: Mapping[str, str]) -> str:
    """The Transit token: `token`, else `token_file` (0600), else BAO_TOKEN / VAULT_TOKEN."""
    if config.token:
        return config.token
    if config.token_file is not None:
        check_private_file(config.token_file, "token file")
        try:
            token = config.token_file.read_text().strip()
        except OSError as e:
            raise ConfigError(f"{_SECTION}.token_file: cannot read {config.token_file}: {e}") from e
        if not token:
            raise ConfigError(f"{_SECTION}.token_file: {config.token_file} is empty")
        return token
    for name in TOKEN_ENV_VARS:
        if env.get(name, "").strip():
            return env[name].strip()
    raise ConfigError(f"{_SECTION}.token: no token set", f"set token_file or {' or '.join(TOKEN_ENV_VARS)}")


def _open_transit(config: RootOfTrustConfig, env: Mapping[str, str]) -> TransitRoot:
    import hvac  # imported on use: ~0.1 s that local roots and the offline validator never need

    verify: bool | str = str(config.ca_cert) if config.ca_cert is not None else True
    client = hvac.Client(url=config.address, token=read_token(config, env), timeout=config.timeout_s, verify=verify)
    assert config.transit_key is not None
    return TransitRoot(client, config.transit_mount, config.transit_key, derived=config.transit_derived)


def _open_aws_kms(config: RootOfTrustConfig) -> AwsKmsRoot:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    timeouts = Config(connect_timeout=config.timeout_s, read_timeout=config.timeout_s,
                      retries={"max_attempts": 2, "mode": "standard"})
    try:
        client = boto3.session.Session().client("kms", region_name=config.aws_region,
                                                endpoint_url=config.aws_endpoint_url, config=timeouts)
    except BotoCoreError as e:
        raise ConfigError(f"{_SECTION}: cannot create the AWS KMS client: {e}",
                          "set root_of_trust.region or AWS_DEFAULT_REGION") from e
    assert config.aws_key_id is not None
    return AwsKmsRoot(client, config.aws_key_id)


# --- envelopes (pure) ----------------------------------------------------------------------


def _pack_named(magic: bytes, name: str, body: bytes) -> bytes:
    raw = name.encode()
    return magic + struct.pack(">H", len(raw)) + raw + body


def _unpack_named(magic: bytes, envelope: bytes, what: str) -> tuple[str, bytes]:
    if not envelope.startswith(magic) or len(envelope) < len(magic) + 2:
        raise SigningKeyError(f"encrypted value is not a trailkeeper {what} envelope",
                              "it was sealed by another root of trust, or is corrupt; restore it from backup")
    (size,) = struct.unpack(">H", envelope[4:6])
    name, body = envelope[6 : 6 + size], envelope[6 + size :]
    if len(name) != size or not body:
        raise SigningKeyError(f"{what} envelope is truncated", "restore the stored secret from backup")
    try:
        return name.decode(), body
    except UnicodeDecodeError as e:
        raise SigningKeyError(f"{what} envelope names its key in invalid UTF-8") from e


@dataclass(frozen=True)
class TransitEnvelope:
    key_id: str  # "<mount>/<key name>"
    ciphertext: str  # Transit's "vault:v<N>:<base64>"

    @property
    def version(self) -> int:
        """The Transit key version that sealed it."""
        return transit_version(self.ciphertext)


def pack_transit(key_id: str, ciphertext: str) -> bytes:
    transit_version(ciphertext)
    return _pack_named(TRANSIT_MAGIC, key_id, ciphertext.encode("ascii"))


def unpack_transit(envelope: bytes) -> TransitEnvelope:
    key_id, body = _unpack_named(TRANSIT_MAGIC, envelope, "Transit")
    try:
        ciphertext = body.decode("ascii")
    except UnicodeDecodeError as e:
        raise SigningKeyError("Transit envelope holds a non-ASCII ciphertext", "restore it from backup") from e
    transit_version(ciphertext)
    return TransitEnvelope(key_id, ciphertext)


def transit_version(ciphertext: str) -> int:
    """N of "vault:vN:..."; SigningKeyError for anything else."""
    match = _TRANSIT_CIPHERTEXT.fullmatch(ciphertext)
    if match is None:
        raise SigningKeyError("Transit ciphertext is not of the form vault:v<N>:<data>", "restore it from backup")
    return int(match.group(1))


def pack_aws_kms(key_arn: str, blob: bytes) -> bytes:
    return _pack_named(AWS_KMS_MAGIC, key_arn, blob)


def unpack_aws_kms(envelope: bytes) -> tuple[str, bytes]:
    """(key ARN, KMS ciphertext blob)."""
    return _unpack_named(AWS_KMS_MAGIC, envelope, "AWS KMS")


def aws_encryption_context(context: bytes) -> dict[str, str]:
    """KMS encryption context for a KeyProvider context (arbitrary bytes → one string value)."""
    return {AWS_CONTEXT_KEY: base64.b64encode(context).decode("ascii")}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- OpenBao / Vault Transit ---------------------------------------------------------------


class TransitRoot:
    """Seals with a Transit key of an OpenBao or Vault server (`client` is an `hvac.Client`).

    Calls are not serialised: threads share the client's connection pool, so one slow call
    during an outage does not queue every other thread behind it.
    """

    def __init__(self, client: Any, mount: str, key_name: str, *, derived: bool = False) -> None:
        self._client = client
        self._mount = mount
        self._key = key_name
        self._derived = derived

    @property
    def key_id(self) -> str:
        return f"{self._mount}/{self._key}"

    @property
    def address(self) -> str:
        return str(getattr(self._client, "url", "?"))

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        data = self._call("encrypt", lambda: self._client.secrets.transit.encrypt_data(
            self._key, plaintext=_b64(plaintext), mount_point=self._mount, **self._binding(context)))
        ciphertext = data.get("ciphertext")
        if not isinstance(ciphertext, str):
            raise self._unavailable("encrypt", "answered without a ciphertext", f"fields {sorted(data)}", "check the server version")
        return pack_transit(self.key_id, ciphertext)

    def decrypt(self, envelope: bytes, context: bytes) -> bytes:
        sealed = unpack_transit(envelope)
        if sealed.key_id != self.key_id:
            raise SigningKeyError(f"secret was sealed by Transit key {sealed.key_id}, this root uses {self.key_id}",
                                  "point root_of_trust at the mount and key that sealed it")
        data = self._call("decrypt", lambda: self._client.secrets.transit.decrypt_data(
            self._key, ciphertext=sealed.ciphertext, mount_point=self._mount, **self._binding(context)))
        try:
            return base64.b64decode(data["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error) as e:
            raise self._unavailable("decrypt", "answered without a valid plaintext", type(e).__name__, "check the server version") from e

    def key_version(self) -> int:
        """The latest version of the Transit key (needs `read` on <mount>/keys/<key>)."""
        data = self._call("read", lambda: self._client.secrets.transit.read_key(self._key, mount_point=self._mount))
        return int(data["latest_version"])

    def rotate(self) -> int:
        """New key material on the server (needs `update` on <mount>/keys/<key>/rotate); old versions still decrypt."""
        self._call("rotate", lambda: self._client.secrets.transit.rotate_key(self._key, mount_point=self._mount))
        return self.key_version()

    def self_test(self) -> int:
        """Prove the server binds the context (a server that ignores it fails closed); the key version."""
        sealed = self.encrypt(b"trailkeeper root-of-trust self test", b"self-test:a")
        try:
            self.decrypt(sealed, b"self-test:b")
        except SigningKeyError:
            return unpack_transit(sealed).version
        raise ConfigError(
            f"Transit key {self.key_id} at {self.address} decrypted under another context: the server ignores associated_data",
            "use an AEAD key type (aes256-gcm96) on a newer server, or a derived key with root_of_trust.transit_derived = true")

    def _binding(self, context: bytes) -> dict[str, str]:
        if not self._derived:
            return {"associated_data": _b64(context)}
        if not context:
            raise SigningKeyError("a derived Transit key needs a non-empty context")
        return {"context": _b64(context)}

    def _call(self, operation: str, request: Callable[[], Any]) -> dict[str, Any]:
        import hvac.exceptions as hv  # already loaded: the caller built an hvac.Client

        try:
            response = request()
        except hv.InvalidRequest as e:
            if operation == "decrypt" and any(marker in str(e) for marker in _TRANSIT_TAMPER_MARKERS):
                raise SigningKeyError(f"secret sealed by Transit key {self.key_id} failed authentication: {_first_line(e)}",
                                      "it was tampered with, or is being opened under another context") from e
            raise self._unavailable(operation, "refused the key", _first_line(e), self._key_state_hint()) from e
        except hv.VaultDown as e:
            raise self._unavailable(operation, "is sealed", _first_line(e),
                                    "unseal the server (bao operator unseal); trailkeeper retries") from e
        except (hv.Forbidden, hv.Unauthorized) as e:
            raise self._unavailable(operation, "denied permission", _first_line(e), self._permission_hint()) from e
        except hv.VaultError as e:
            raise self._unavailable(operation, "failed", f"{type(e).__name__}: {_first_line(e)}",
                                    "check the server's log; trailkeeper retries") from e
        except OSError as e:  # requests' connection errors and timeouts are OSErrors
            raise self._unavailable(operation, "is unreachable", type(e).__name__,
                                    "check that the server is running and reachable; trailkeeper retries") from e
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, dict):
            raise self._unavailable(operation, "answered without data", type(response).__name__, "check the server version")
        return data

    def _key_state_hint(self) -> str:
        return (f"restore or re-enable the key (bao write -f {self._mount}/keys/{self._key}/soft-delete-restore), "
                "check its min_decryption_version; trailkeeper retries")

    def _permission_hint(self) -> str:
        return (f"renew the token or grant it update on {self._mount}/encrypt/{self._key} and "
                f"{self._mount}/decrypt/{self._key}; trailkeeper retries")

    def _unavailable(self, operation: str, what: str, detail: str, hint: str) -> KeyProviderUnavailableError:
        return KeyProviderUnavailableError(
            f"root of trust: OpenBao/Vault at {self.address} (Transit key {self.key_id}) {what} during {operation}: {detail}",
            hint)


def _first_line(error: BaseException) -> str:
    text = str(error).replace("1 error occurred:", "").strip(" \n\t*")
    return text.splitlines()[0].strip(" \t*") if text else type(error).__name__


# --- AWS KMS -------------------------------------------------------------------------------


class AwsKmsRoot:
    """Seals with a symmetric AWS KMS key (`client` is a boto3 KMS client)."""

    def __init__(self, client: Any, key_id: str) -> None:
        self._client = client
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        response = self._call("Encrypt", self._key_id, lambda: self._client.encrypt(
            KeyId=self._key_id, Plaintext=plaintext, EncryptionContext=aws_encryption_context(context)))
        return pack_aws_kms(str(response["KeyId"]), bytes(response["CiphertextBlob"]))

    def decrypt(self, envelope: bytes, context: bytes) -> bytes:
        key_arn, blob = unpack_aws_kms(envelope)
        # Naming the key makes KMS refuse a blob of any other key (IncorrectKeyException).
        response = self._call("Decrypt", key_arn, lambda: self._client.decrypt(
            CiphertextBlob=blob, KeyId=key_arn, EncryptionContext=aws_encryption_context(context)))
        if response.get("KeyId") not in (None, key_arn):
            raise SigningKeyError(f"AWS KMS decrypted with {response['KeyId']}, the envelope names {key_arn}")
        return bytes(response["Plaintext"])

    def _call(self, operation: str, key: str, request: Callable[[], Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response: dict[str, Any] = request()
            return response
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", "Unknown"))
            if operation == "Decrypt" and code in _AWS_TAMPER_CODES:
                raise SigningKeyError(f"secret sealed by AWS KMS key {key} failed authentication ({code})",
                                      "it was tampered with, or is being opened under another context") from e
            hint = _AWS_HINTS.get(code, "check the key and AWS KMS status; trailkeeper retries").format(key=key)
            raise KeyProviderUnavailableError(f"root of trust: AWS KMS refused {operation} with key {key}: {code}", hint) from e
        except BotoCoreError as e:
            raise KeyProviderUnavailableError(
                f"root of trust: AWS KMS unreachable for {operation} with key {key}: {type(e).__name__}: {e}",
                "check the endpoint, network and credentials; trailkeeper retries") from e


__all__ = [
    "AWS_CONTEXT_KEY", "DEFAULT_KIND", "DEFAULT_TIMEOUT_S", "DEFAULT_TRANSIT_MOUNT", "ENV_MASTER_KEY", "KINDS",
    "TOKEN_ENV_VARS", "AwsKmsRoot", "RootOfTrustConfig", "TransitEnvelope", "TransitRoot", "aws_encryption_context",
    "check_private_file", "open_local_root", "open_root_of_trust", "pack_aws_kms", "pack_transit", "parse_master_key",
    "read_token", "transit_version", "unpack_aws_kms", "unpack_transit",
]
