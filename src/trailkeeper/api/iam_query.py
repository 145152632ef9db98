"""The IAM subset over the AWS Query protocol (form-encoded request, XML response).

Only the user and access-key actions trailkeeper implements are accepted; each maps to the
native operation of the same name, so this module only translates the wire format and the
app's `call` does authorisation, auditing and the work.

Roles: IAM users have no role parameter, so CreateUser takes the role from the tag
`trailkeeper:role` (`--tags Key=trailkeeper:role,Value=auditor`); without it the user is a
"writer". Users are rendered with that tag so `list-users` shows every role. Any other tag,
a Path other than "/", or any parameter IAM has but trailkeeper does not implement is refused
rather than silently dropped.

IAM roles (CreateRole, GetRole, ListRoles, DeleteRole and their inline policies) are kept so
that a trail can name the role CloudTrail forwards to CloudWatch Logs as (roles.py). Policy
documents are stored as given and answered URL-encoded, as IAM answers them (botocore decodes
every member of shape policyDocumentType).

ListUsers, ListAccessKeys, ListRoles and ListRolePolicies page with MaxItems/Marker; the Marker
is the offset into the sorted list, so a page boundary may shift if entries change between pages.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from trailkeeper._internal.text import xml_safe
from trailkeeper.clock import iso_seconds
from trailkeeper.errors import TrailkeeperError

IAM_VERSION = "2010-05-08"
IAM_NAMESPACE = f"https://iam.amazonaws.com/doc/{IAM_VERSION}/"
CONTENT_TYPE = "text/xml"
ROLE_TAG_KEY = "trailkeeper:role"
DEFAULT_ROLE = "writer"
DEFAULT_MAX_ITEMS = 100
MAX_MAX_ITEMS = 1000

_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "CreateUser": ("UserName",),
    "DeleteUser": ("UserName",),
    "UpdateAccessKey": ("AccessKeyId", "Status"),
    "DeleteAccessKey": ("AccessKeyId",),
    "CreateRole": ("RoleName", "AssumeRolePolicyDocument"),
    "GetRole": ("RoleName",),
    "DeleteRole": ("RoleName",),
    "PutRolePolicy": ("RoleName", "PolicyName", "PolicyDocument"),
    "GetRolePolicy": ("RoleName", "PolicyName"),
    "DeleteRolePolicy": ("RoleName", "PolicyName"),
    "ListRolePolicies": ("RoleName",),
}
_OPTIONAL: Mapping[str, tuple[str, ...]] = {
    "CreateUser": ("Path",),
    "ListUsers": ("PathPrefix", "Marker", "MaxItems"),
    "CreateAccessKey": ("UserName",),
    "ListAccessKeys": ("UserName", "Marker", "MaxItems"),
    "UpdateAccessKey": ("UserName",),
    "DeleteAccessKey": ("UserName",),
    "CreateRole": ("Path", "Description"),
    "ListRoles": ("PathPrefix", "Marker", "MaxItems"),
    "ListRolePolicies": ("Marker", "MaxItems"),
}
# Parameters consumed here (paging, path) rather than by the native operation; a role's Path is
# the role's (users all have "/").
_ADAPTER_ONLY = frozenset({"Path", "PathPrefix", "Marker", "MaxItems"})
_NATIVE_PATH = frozenset({"CreateRole"})
_LIST_FIELDS: Mapping[str, str] = {"ListUsers": "Users", "ListAccessKeys": "AccessKeyMetadata", "ListRoles": "Roles",
                                   "ListRolePolicies": "PolicyNames"}
# Members of botocore's shape policyDocumentType: IAM answers them URL-encoded (RFC 3986).
_POLICY_FIELDS = frozenset({"AssumeRolePolicyDocument", "PolicyDocument"})
_TAG_RE = re.compile(r"Tags\.member\.([1-9][0-9]*)\.(Key|Value)")
_DATE_FIELDS = frozenset({"CreateDate"})
_USER_FIELDS = ("Path", "UserName", "UserId", "Arn", "CreateDate")


class QueryError(TrailkeeperError):
    """A Query-protocol request is malformed or asks for something this subset lacks."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


# ---- request ----
def parse_query(body: bytes, query: str, api_version: str = IAM_VERSION) -> tuple[str, dict[str, str]]:
    """Action and the other parameters from the URL query string and form-encoded body of a
    Query request to the service of `api_version` (IAM's unless another Query service says)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise QueryError("MalformedQueryString", "The request body is not UTF-8 form data.") from e
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True) + parse_qsl(text, keep_blank_values=True):
        if params.get(key, value) != value:
            raise QueryError("InvalidParameterValue", f"Parameter {key} is given twice with different values.")
        params[key] = value
    action = params.pop("Action", "")
    version = params.pop("Version", "")
    if not action:
        raise QueryError("MissingParameter", "The request must contain the parameter Action.")
    if not version:
        raise QueryError("MissingParameter", f"The request must contain the parameter Version ({api_version}).")
    if version != api_version:
        raise QueryError("InvalidParameterValue", f"Version {version!r} is not supported; use {api_version}.")
    return action, params


def to_native(action: str, params: Mapping[str, str], actions: Collection[str]) -> dict[str, Any]:
    """Native operation parameters for an IAM action's Query parameters; `actions` are the
    operations of the IAM spec (an action is answered by the operation of the same name)."""
    if action not in actions:
        raise QueryError("InvalidAction", f"The action {action} is not valid for this endpoint; "
                         f"supported: {', '.join(sorted(actions))}.")
    required = _REQUIRED.get(action, ())
    for name in required:
        if not params.get(name):
            raise QueryError("MissingParameter", f"The request must contain the parameter {name}.")
    allowed = set(required) | set(_OPTIONAL.get(action, ()))
    plain = {k: v for k, v in params.items() if not (action == "CreateUser" and _TAG_RE.fullmatch(k))}
    unknown = sorted(set(plain) - allowed)
    if unknown:
        raise QueryError("InvalidParameterValue", f"{action} does not support parameter(s) {', '.join(unknown)} "
                         "in trailkeeper.")
    if action not in _NATIVE_PATH and params.get("Path", "/") != "/":
        raise QueryError("InvalidParameterValue", "trailkeeper users all have Path '/'; omit Path.")
    native: dict[str, Any] = {k: v for k, v in plain.items()
                              if k not in _ADAPTER_ONLY or (k == "Path" and action in _NATIVE_PATH)}
    if action == "CreateUser":
        native["Role"] = _role_from_tags(params)
    return native


def _role_from_tags(params: Mapping[str, str]) -> str:
    tags: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        match = _TAG_RE.fullmatch(key)
        if match:
            tags.setdefault(int(match[1]), {})[match[2]] = value
    role = DEFAULT_ROLE
    for index in sorted(tags):
        tag = tags[index]
        if "Key" not in tag or "Value" not in tag:
            raise QueryError("MissingParameter", f"Tags.member.{index} needs both Key and Value.")
        if tag["Key"] != ROLE_TAG_KEY:
            raise QueryError("InvalidParameterValue", f"Tag {tag['Key']!r} is not supported; the only user tag "
                             f"is {ROLE_TAG_KEY} (its value is the user's role).")
        role = tag["Value"]
    return role


def _page_request(params: Mapping[str, str]) -> tuple[int, int]:
    """(offset, max items) from Marker and MaxItems."""
    marker, max_items = params.get("Marker"), params.get("MaxItems")
    if marker is not None and not marker.isdigit():
        raise QueryError("InvalidParameterValue", "Marker must be a value returned by a previous call.")
    if max_items is not None and not (max_items.isdigit() and 1 <= int(max_items) <= MAX_MAX_ITEMS):
        raise QueryError("ValidationError", f"MaxItems must be an integer from 1 to {MAX_MAX_ITEMS}.")
    return int(marker or 0), int(max_items or DEFAULT_MAX_ITEMS)


def _paginate(action: str, params: Mapping[str, str], response: dict[str, Any]) -> dict[str, Any]:
    field = _LIST_FIELDS.get(action)
    if field is None:
        return response
    items = list(response.get(field, []))
    prefix = params.get("PathPrefix")
    if prefix is not None:
        items = [i for i in items if isinstance(i, Mapping) and str(i.get("Path", "/")).startswith(prefix)]
    offset, max_items = _page_request(params)
    end = offset + max_items
    paged: dict[str, Any] = {**response, field: items[offset:end], "IsTruncated": end < len(items)}
    if end < len(items):
        paged["Marker"] = str(end)
    return paged


# ---- response ----
def success_xml(action: str, response: Mapping[str, Any], request_id: str) -> bytes:
    """The `<{action}Response>` document for a native operation's response."""
    root = ET.Element(f"{action}Response", xmlns=IAM_NAMESPACE)
    result = dict(response)
    if action in _LIST_FIELDS:
        result.setdefault("IsTruncated", False)
    if result:
        node = ET.SubElement(root, f"{action}Result")
        for name, value in result.items():
            _append(node, name, _iam_shape(name, value))
    _request_id(root, request_id)
    return _serialise(root)


def error_xml(code: str, message: str, request_id: str, sender: bool = True, namespace: str = IAM_NAMESPACE) -> bytes:
    root = ET.Element("ErrorResponse", xmlns=namespace)
    error = ET.SubElement(root, "Error")
    ET.SubElement(error, "Type").text = "Sender" if sender else "Receiver"
    ET.SubElement(error, "Code").text = code
    ET.SubElement(error, "Message").text = message
    ET.SubElement(root, "RequestId").text = request_id
    return _serialise(root)


def serialise(root: ET.Element) -> bytes:
    """The XML document of `root`, safe for XML 1.0 (any Query service's answers)."""
    return _serialise(root)


def _serialise(root: ET.Element) -> bytes:
    # XML 1.0 cannot carry most control characters: a name echoed in a message may hold one.
    return xml_safe(ET.tostring(root, encoding="unicode")).encode("utf-8")


def _request_id(root: ET.Element, request_id: str) -> None:
    meta = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(meta, "RequestId").text = request_id


def _iam_shape(name: str, value: Any) -> Any:
    """IAM's shape for native users: the role becomes the trailkeeper:role tag."""
    if name == "User":
        return _iam_user(value)
    if name == "Users":
        return [_iam_user(u) for u in value]
    if name == "Role":
        return _encoded_policies(value)
    if name == "Roles":
        return [_encoded_policies(r) for r in value]
    if name in _POLICY_FIELDS and isinstance(value, str):
        return quote(value, safe="")
    return value


def _encoded_policies(shape: Mapping[str, Any]) -> dict[str, Any]:
    return {k: quote(v, safe="") if k in _POLICY_FIELDS and isinstance(v, str) else v for k, v in shape.items()}


def _iam_user(user: Mapping[str, Any]) -> dict[str, Any]:
    shape = {k: user.get(k, "/" if k == "Path" else None) for k in _USER_FIELDS}
    if user.get("Role"):
        shape["Tags"] = [{"Key": ROLE_TAG_KEY, "Value": user["Role"]}]
    return {k: v for k, v in shape.items() if v is not None}


def _append(parent: ET.Element, name: str, value: Any) -> None:
    node = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _append(node, key, item)
    elif isinstance(value, list):
        for item in value:
            _append_member(node, item)
    else:
        node.text = _scalar(name, value)


def _append_member(parent: ET.Element, value: Any) -> None:
    if isinstance(value, Mapping):
        _append(parent, "member", value)
    else:
        ET.SubElement(parent, "member").text = _scalar("member", value)


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in _DATE_FIELDS and isinstance(value, int | float):
        return iso_seconds(datetime.fromtimestamp(value, UTC))
    return str(value)


# ---- the whole exchange ----
Call = Callable[[str, dict[str, Any]], dict[str, Any]]


Refused = Callable[[str, dict[str, Any], str, str], None]  # action, parameters, error code, message
Exchange = Callable[[bytes, str, Call, str, Collection[str], "Refused | None"], tuple[int, list[tuple[str, str]], bytes]]


@dataclass(frozen=True)
class QueryDialect:
    """What differs between the services spoken in the Query protocol (IAM, SNS): the API
    version requests carry, the XML namespace of answers, how a refused permission is spelled,
    and the exchange that translates one request (the app routes by the spec's service name)."""

    api_version: str
    namespace: str
    access_denied: str
    exchange: Exchange


def handle_iam(body: bytes, query: str, call: Call, request_id: str, actions: Collection[str],
               refused: Refused | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """Answer one IAM Query request: (HTTP status, headers, XML body).

    Errors that carry an AWS `code` (QueryError, IdentityError, AuthError, TrailError) become
    IAM error documents; any other exception propagates to the app's generic handler. A
    request refused before it reaches an operation (an action this subset lacks, such as
    TagUser, or a parameter it does not take) goes to `refused`, so that it is recorded too.
    """
    headers = [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
    action = "Unknown"
    try:
        action, params = parse_query(body, query)
        try:
            native = to_native(action, params, actions)
            _page_request(params)  # refuse bad paging before the operation runs and is audited
        except QueryError as e:
            if refused is not None:
                refused(action, {k: v for k, v in params.items() if "Secret" not in k}, e.code, str(e))
            raise
        response = _paginate(action, params, call(action, native))
    except TrailkeeperError as e:
        code = getattr(e, "code", None)
        if not isinstance(code, str):
            raise
        status = getattr(e, "status", 400)
        status = status if isinstance(status, int) else 400
        return status, headers, error_xml(code, str(e), request_id, sender=status < 500)
    return 200, headers, success_xml(action, response, request_id)


IAM_DIALECT = QueryDialect(IAM_VERSION, IAM_NAMESPACE, "AccessDenied", handle_iam)
