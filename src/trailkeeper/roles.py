"""IAM roles with inline policies, as IAM keeps them (kept in a RoleRepository: state.roles).

trailkeeper does not issue role sessions: a role exists so that a trail can name the role
CloudTrail would assume to write to CloudWatch Logs (`CloudWatchLogsRoleArn`), and so that the
recipe's `aws iam create-role` / `put-role-policy` steps work unchanged. What the role's
policies allow is evaluated where it matters (monitoring.forwarding.forwarding_denials), at
UpdateTrail and on every forwarded batch. Policy documents are stored exactly as given; the
Query adapter URL-encodes them in answers, as IAM does.

Names are unique without regard to case, as in IAM; a role keeps the spelling it was created with.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from trailkeeper.clock import Clock
from trailkeeper.errors import IdentityError

ROLE_ID_PREFIX = "AROA"  # IAM's unique-id prefix for roles
MAX_POLICY_CHARS = 131_072  # botocore's policyDocumentType
MAX_DESCRIPTION_CHARS = 1000
MAX_SESSION_DURATION_S = 3600  # answered as IAM's default; no sessions are issued
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ID_SUFFIX_LEN = 17
_NAME_RE = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_POLICY_NAME_RE = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_PATH_RE = re.compile(r"/|/[\x21-\x7e]+/")
_POLICY_CHARS_RE = re.compile(r"[\t\n\r\x20-\xff]+")


@dataclass(frozen=True)
class StoredRole:
    """A role as its repository keeps it."""

    name: str
    role_id: str
    path: str
    assume_role_policy: str
    description: str | None
    created_us: int


@dataclass(frozen=True)
class Role:
    name: str
    role_id: str
    arn: str
    path: str
    assume_role_policy: str  # the document as given
    description: str | None
    created: datetime


@dataclass(frozen=True)
class RolePolicy:
    role_name: str
    policy_name: str
    document: str  # as given


class RoleRepository(Protocol):
    """Where roles and their inline policies are kept; each write is one transaction."""

    def add_role(self, role: StoredRole) -> bool:
        """False (nothing written) when a role of that name (in any case) exists."""
        ...

    def role(self, name: str) -> StoredRole | None:
        """The role named `name`, compared without regard to case."""
        ...

    def roles(self) -> list[StoredRole]:
        """Every role, by name."""
        ...

    def remove_role(self, role_id: str) -> bool:
        """Remove a role that has no inline policy left; False when it has one (or is gone)."""
        ...

    def put_policy(self, role_id: str, name: str, document: str) -> None:
        """Add or replace (same name in any case) an inline policy."""
        ...

    def policies(self, role_id: str) -> list[tuple[str, str]]:
        """(name, document) of the role's inline policies, by name."""
        ...

    def remove_policy(self, role_id: str, name: str) -> bool: ...

    def close(self) -> None: ...


def role_arn(account_id: str, path: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:role{path}{name}"


def parse_policy(document: str, what: str = "policy document") -> dict[str, Any]:
    """The policy as JSON, or MalformedPolicyDocument saying what is wrong with it."""
    if not 1 <= len(document) <= MAX_POLICY_CHARS or not _POLICY_CHARS_RE.fullmatch(document):
        raise _malformed(f"The {what} must be 1 to {MAX_POLICY_CHARS} characters of tab, newline and "
                         "U+0020-U+00FF.")
    try:
        parsed = json.loads(document)
    except ValueError as e:
        raise _malformed(f"The {what} is not JSON: {e}.") from e
    if not isinstance(parsed, dict):
        raise _malformed(f"The {what} must be a JSON object with a Statement.")
    statements = parsed.get("Statement")
    items = statements if isinstance(statements, list) else [statements]
    if statements is None or not items or not all(isinstance(s, dict) for s in items):
        raise _malformed(f"The {what} needs a Statement: an object or a non-empty list of objects.")
    for i, statement in enumerate(items):
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise _malformed(f"Statement {i} of the {what} needs Effect \"Allow\" or \"Deny\".")
    return parsed


def _malformed(message: str) -> IdentityError:
    return IdentityError("MalformedPolicyDocument", message)


def _invalid(message: str) -> IdentityError:
    return IdentityError("ValidationError", message)


def _no_such_role(name: str) -> IdentityError:
    return IdentityError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)


def _new_role_id() -> str:
    return ROLE_ID_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_SUFFIX_LEN))


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise _invalid(f"The role name {name!r} is not valid: use 1 to 64 letters, digits and +=,.@_-.")


def _check_policy_name(name: str) -> None:
    if not _POLICY_NAME_RE.fullmatch(name):
        raise _invalid(f"The policy name {name!r} is not valid: use 1 to 128 letters, digits and +=,.@_-.")


class Roles:
    """The roles of the installation's one account."""

    def __init__(self, repository: RoleRepository, clock: Clock, account_id: str) -> None:
        self.repository = repository
        self.clock = clock
        self.account_id = account_id

    def close(self) -> None:
        self.repository.close()

    def _role(self, found: StoredRole) -> Role:
        return Role(found.name, found.role_id, role_arn(self.account_id, found.path, found.name), found.path,
                    found.assume_role_policy, found.description,
                    datetime.fromtimestamp(found.created_us / 1_000_000, UTC))

    def _stored(self, name: str) -> StoredRole:
        found = self.repository.role(name)
        if found is None:
            raise _no_such_role(name)
        return found

    def create_role(self, name: str, assume_role_policy: str, path: str = "/", description: str | None = None) -> Role:
        _check_name(name)
        if not 1 <= len(path) <= 512 or not _PATH_RE.fullmatch(path):
            raise _invalid(f"The path {path!r} is not valid: use '/' or '/segments/' (printable ASCII, "
                           "at most 512 characters, starting and ending with '/').")
        if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
            raise _invalid(f"The description has {len(description)} characters; at most {MAX_DESCRIPTION_CHARS} "
                           "are allowed.")
        parse_policy(assume_role_policy, "trust policy (AssumeRolePolicyDocument)")
        created = self.clock.now()
        stored = StoredRole(name, _new_role_id(), path, assume_role_policy, description or None,
                            int(created.timestamp() * 1_000_000))
        if not self.repository.add_role(stored):
            raise IdentityError("EntityAlreadyExists", f"Role with name {name} already exists.", 409)
        return self._role(stored)

    def get_role(self, name: str) -> Role:
        return self._role(self._stored(name))

    def list_roles(self) -> list[Role]:
        return [self._role(r) for r in self.repository.roles()]

    def delete_role(self, name: str) -> None:
        found = self._stored(name)
        if not self.repository.remove_role(found.role_id):
            if self.repository.policies(found.role_id):
                raise IdentityError("DeleteConflict", f"Cannot delete entity, must delete policies first: role "
                                    f"{found.name} still has inline policies (aws iam list-role-policies; "
                                    "aws iam delete-role-policy).", 409)
            raise _no_such_role(name)

    def put_role_policy(self, role_name: str, policy_name: str, document: str) -> None:
        _check_policy_name(policy_name)
        parse_policy(document)
        self.repository.put_policy(self._stored(role_name).role_id, policy_name, document)

    def get_role_policy(self, role_name: str, policy_name: str) -> RolePolicy:
        found = self._stored(role_name)
        for name, document in self.repository.policies(found.role_id):
            if name.lower() == policy_name.lower():
                return RolePolicy(found.name, name, document)
        raise IdentityError("NoSuchEntity", f"The role policy with name {policy_name} cannot be found.", 404)

    def delete_role_policy(self, role_name: str, policy_name: str) -> None:
        if not self.repository.remove_policy(self._stored(role_name).role_id, policy_name):
            raise IdentityError("NoSuchEntity", f"The role policy with name {policy_name} cannot be found.", 404)

    def list_role_policies(self, role_name: str) -> list[str]:
        return [name for name, _ in self.repository.policies(self._stored(role_name).role_id)]

    # ---- for the services that act as a role ----
    def role_of_arn(self, arn: str) -> Role | None:
        """The role `arn` names in this account (None: no such role, or not a role ARN of it)."""
        prefix = f"arn:aws:iam::{self.account_id}:role/"
        if not arn.startswith(prefix):
            return None
        name = arn.rsplit("/", 1)[1]
        found = self.repository.role(name) if _NAME_RE.fullmatch(name) else None
        if found is None or role_arn(self.account_id, found.path, found.name) != arn:
            return None  # ARNs compare exactly: another path or spelling is another role
        return self._role(found)

    def policy_documents(self, role: Role) -> list[dict[str, Any]]:
        """The role's inline policies, parsed (each was checked when it was put)."""
        return [json.loads(document) for _, document in self.repository.policies(role.role_id)]
