"""Amazon SNS over the Query protocol (form-encoded `Action=...`, XML answers, SigV4 service
`sns`, API version 2010-03-31) onto `notify.topics.Notifications`.

Eleven operations of botocore's `sns` model: topics (CreateTopic, DeleteTopic, ListTopics,
GetTopicAttributes, SetTopicAttributes), subscriptions (Subscribe, ConfirmSubscription,
Unsubscribe, ListSubscriptions, ListSubscriptionsByTopic) and Publish. Handlers read and
answer the model's member names; this module also decodes the Query encoding of maps
(`Attributes.entry.N.key`) and encodes answers as SNS's XML.

Two requests need no signature, as on AWS: the SubscribeURL a subscriber fetches to confirm
(`GET /?Action=ConfirmSubscription&TopicArn=...&Token=...`) and the UnsubscribeURL of every
notification (which here also carries the subscription's token). `link_call` answers them; the
app records each as an audit event of an unknown caller.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from trailkeeper.api.iam_query import (
    Call,
    QueryDialect,
    QueryError,
    Refused,
    error_xml,
    parse_query,
    serialise,
)
from trailkeeper.api.registry import OperationSpec, ServiceSpec
from trailkeeper.errors import TrailkeeperError
from trailkeeper.identity import Principal
from trailkeeper.notify.topics import (
    PENDING,
    PENDING_ANSWER,
    SNS_SOURCE,
    Notifications,
    SnsError,
    invalid,
)
from trailkeeper.notify.transports import redacted_endpoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from trailkeeper.api.registry import AuditShape
    from trailkeeper.service import Service

Params = dict[str, Any]
SNS_VERSION = "2010-03-31"
SNS_NAMESPACE = f"http://sns.amazonaws.com/doc/{SNS_VERSION}/"
CONTENT_TYPE = "text/xml"
HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"  # what CloudTrail records instead of a message body
LINK_ACTIONS = ("ConfirmSubscription", "Unsubscribe")

# Query members of each action (the model's input shape); maps are decoded from `.entry.N.key`.
_MEMBERS: Mapping[str, frozenset[str]] = {
    "CreateTopic": frozenset({"Name", "Attributes", "Tags", "DataProtectionPolicy"}),
    "DeleteTopic": frozenset({"TopicArn"}),
    "ListTopics": frozenset({"NextToken"}),
    "Subscribe": frozenset({"TopicArn", "Protocol", "Endpoint", "Attributes", "ReturnSubscriptionArn"}),
    "ConfirmSubscription": frozenset({"TopicArn", "Token", "AuthenticateOnUnsubscribe"}),
    "Unsubscribe": frozenset({"SubscriptionArn"}),
    "ListSubscriptions": frozenset({"NextToken"}),
    "ListSubscriptionsByTopic": frozenset({"TopicArn", "NextToken"}),
    "Publish": frozenset({"TopicArn", "TargetArn", "PhoneNumber", "Message", "Subject", "MessageStructure",
                          "MessageAttributes", "MessageDeduplicationId", "MessageGroupId"}),
    "GetTopicAttributes": frozenset({"TopicArn"}),
    "SetTopicAttributes": frozenset({"TopicArn", "AttributeName", "AttributeValue"}),
}
_MAP_MEMBERS = frozenset({"Attributes", "MessageAttributes"})
_LIST_MEMBERS = frozenset({"Tags"})
_NESTED_RE = re.compile(r"([A-Za-z]+)\.(entry|member)\.([1-9][0-9]*)\.(.+)")


# ---- request parameters ---------------------------------------------------------------------
def _str(params: Params, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"{name}: the request must contain the parameter {name}.")
    return value


def _opt_str(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name}: must be a string.")
    return value


def _opt_bool(params: Params, name: str) -> bool:
    value = params.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"{name}: must be true or false.")


def _attributes(params: Params) -> dict[str, str] | None:
    value = params.get("Attributes")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid("Attributes: must map attribute names to string values.")
    return value


def _refuse(params: Params, *names: str, why: str) -> None:
    for name in names:
        if params.get(name) not in (None, "", [], {}):
            raise invalid(f"{name}: {why}")


# ---- handlers -------------------------------------------------------------------------------
def _create_topic(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    _refuse(params, "Tags", "DataProtectionPolicy", why="not supported by trailkeeper; create the topic without it.")
    return {"TopicArn": n.create_topic(_str(params, "Name"), _attributes(params)).arn}


def _delete_topic(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    n.delete_topic(_str(params, "TopicArn"))
    return {}


def _list_topics(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    page = n.list_topics(_opt_str(params, "NextToken"))
    answer: dict[str, Any] = {"Topics": [{"TopicArn": t.arn} for t in page.items]}
    if page.next_token:
        answer["NextToken"] = page.next_token
    return answer


def _subscribe(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    sub = n.subscribe(_str(params, "TopicArn"), _str(params, "Protocol"), _opt_str(params, "Endpoint"),
                      _attributes(params))
    shown = sub.arn if sub.confirmed or _opt_bool(params, "ReturnSubscriptionArn") else PENDING_ANSWER
    return {"SubscriptionArn": shown}


def _confirm_subscription(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    sub = n.confirm(_str(params, "TopicArn"), _str(params, "Token"), _opt_str(params, "AuthenticateOnUnsubscribe"))
    return {"SubscriptionArn": sub.arn}


def _unsubscribe(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    n.unsubscribe(_str(params, "SubscriptionArn"))
    return {}


def _subscriptions(n: Notifications, topic_arn: str | None, params: Params) -> dict[str, Any]:
    page = n.subscription_page(topic_arn, _opt_str(params, "NextToken"))
    answer: dict[str, Any] = {"Subscriptions": [
        {"SubscriptionArn": s.arn if s.confirmed else PENDING, "Owner": n.account_id, "Protocol": s.protocol,
         "Endpoint": s.endpoint, "TopicArn": s.topic_arn} for s in page.items]}
    if page.next_token:
        answer["NextToken"] = page.next_token
    return answer


def _list_subscriptions(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    return _subscriptions(n, None, params)


def _list_subscriptions_by_topic(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    return _subscriptions(n, _str(params, "TopicArn"), params)


def _publish(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    _refuse(params, "PhoneNumber", why="SMS is not supported by trailkeeper; publish to a topic.")
    _refuse(params, "MessageAttributes", why="message attributes are not supported by trailkeeper; put what the "
            "receiver needs in the Message.")
    _refuse(params, "MessageDeduplicationId", "MessageGroupId",
            why="only FIFO topics take it, and trailkeeper's topics are standard topics.")
    topic, target = _opt_str(params, "TopicArn"), _opt_str(params, "TargetArn")
    if topic and target and topic != target:
        raise invalid("TopicArn or TargetArn: give one of them, not two different ARNs.")
    arn = topic or target
    if not arn:
        raise invalid("TopicArn or TargetArn Reason: no value for required parameter.")
    message = params.get("Message")
    if not isinstance(message, str):
        raise invalid("Message: the request must contain the parameter Message.")
    return {"MessageId": n.publish(arn, message, _opt_str(params, "Subject"), _opt_str(params, "MessageStructure"))}


def _get_topic_attributes(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    return {"Attributes": n.topic_attributes(_str(params, "TopicArn"))}


def _set_topic_attributes(n: Notifications, _: Principal, params: Params) -> dict[str, Any]:
    n.set_topic_attribute(_str(params, "TopicArn"), _str(params, "AttributeName"),
                          _opt_str(params, "AttributeValue"))
    return {}


# ---- the audit record -----------------------------------------------------------------------
def _audit(n: Notifications, name: str, params: Params, response: dict[str, Any] | None) -> AuditShape:
    """What a call's record keeps: never a message body (CloudTrail hides it too) nor a token,
    and an endpoint without credentials; the topic acted on as the resource."""
    request = dict(params)
    if "Message" in request:
        request["Message"] = HIDDEN
    if "Token" in request:
        request["Token"] = HIDDEN
    protocol, endpoint = request.get("Protocol"), request.get("Endpoint")
    if isinstance(protocol, str) and isinstance(endpoint, str):
        request["Endpoint"] = redacted_endpoint(protocol, endpoint)
    if response is None:
        return request, None, None
    topic = params.get("TopicArn") or params.get("TargetArn") or response.get("TopicArn")
    resources = ([{"ARN": topic, "accountId": n.account_id, "type": "AWS::SNS::Topic"}]
                 if isinstance(topic, str) else None)
    kept = {k: v for k, v in response.items() if k not in ("Subscriptions", "Topics", "Attributes")}
    return request, kept, resources


def _op(handler: Callable[[Notifications, Principal, Params], dict[str, Any]], permission: str,
        read_only: bool = False) -> OperationSpec[Notifications]:
    return OperationSpec(handler, permission, read_only, auditor=_audit)


def notifications_of(service: Service) -> Notifications:
    return service.runtime.notifications


# ---- the Query exchange ---------------------------------------------------------------------
def to_native(action: str, params: Mapping[str, str], actions: Collection[str]) -> dict[str, Any]:
    """The operation's parameters from the Query form: maps (`X.entry.N.key`/`.value`, or
    `.Name`/`.Value.*` for MessageAttributes) become dicts, lists (`X.member.N.*`) lists."""
    if action not in actions:
        raise QueryError("InvalidAction", f"The action {action} is not valid for this endpoint; "
                         f"supported: {', '.join(sorted(actions))}.")
    members = _MEMBERS.get(action, frozenset())
    native: dict[str, Any] = {}
    nested: dict[str, dict[int, dict[str, str]]] = {}
    for key, value in params.items():
        match = _NESTED_RE.fullmatch(key)
        if match and match[1] in members and (match[1] in _MAP_MEMBERS or match[1] in _LIST_MEMBERS):
            nested.setdefault(match[1], {}).setdefault(int(match[3]), {})[match[4]] = value
        elif key in members and key not in _MAP_MEMBERS and key not in _LIST_MEMBERS:
            native[key] = value
        else:
            raise QueryError("InvalidParameter", f"Invalid parameter: {action} has no parameter {key}.")
    for name, entries in nested.items():
        ordered = [entries[i] for i in sorted(entries)]
        if name in _LIST_MEMBERS:
            native[name] = ordered
            continue
        key_name = "Name" if name == "MessageAttributes" else "key"
        out: dict[str, Any] = {}
        for entry in ordered:
            if key_name not in entry:
                raise QueryError("InvalidParameter", f"Invalid parameter: {name} has an entry without a {key_name}.")
            out[entry[key_name]] = entry.get("value") if name == "Attributes" else {
                k.removeprefix("Value."): v for k, v in entry.items() if k != key_name}
        native[name] = out
    return native


def success_xml(action: str, response: Mapping[str, Any], request_id: str) -> bytes:
    root = ET.Element(f"{action}Response", xmlns=SNS_NAMESPACE)
    if response:
        result = ET.SubElement(root, f"{action}Result")
        for name, value in response.items():
            _append(result, name, value)
    meta = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(meta, "RequestId").text = request_id
    return serialise(root)


def _append(parent: ET.Element, name: str, value: Any) -> None:
    node = ET.SubElement(parent, name)
    if name == "Attributes" and isinstance(value, Mapping):  # a map: <entry><key/><value/></entry>
        for key, item in value.items():
            entry = ET.SubElement(node, "entry")
            ET.SubElement(entry, "key").text = str(key)
            ET.SubElement(entry, "value").text = str(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _append(node, str(key), item)
    elif isinstance(value, list):
        for item in value:
            member = ET.SubElement(node, "member")
            for key, inner in (item.items() if isinstance(item, Mapping) else ()):
                _append(member, str(key), inner)
    else:
        node.text = "true" if value is True else "false" if value is False else str(value)


def handle_sns(body: bytes, query: str, call: Call, request_id: str, actions: Collection[str],
               refused: Refused | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """Answer one SNS Query request: (HTTP status, headers, XML body). A request refused before
    it reaches an operation (an action or parameter this subset lacks) goes to `refused`."""
    headers = [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", request_id)]
    try:
        action, params = parse_query(body, query, SNS_VERSION)
        try:
            native = to_native(action, params, actions)
        except QueryError as e:
            if refused is not None:
                refused(action, {k: v for k, v in params.items() if k not in ("Message", "Token")}, e.code, str(e))
            raise
        response = call(action, native)
    except TrailkeeperError as e:
        code = getattr(e, "code", None)
        if not isinstance(code, str):
            raise
        status = getattr(e, "status", 400)
        status = status if isinstance(status, int) else 400
        return status, headers, error_xml(code, str(e), request_id, sender=status < 500, namespace=SNS_NAMESPACE)
    return 200, headers, success_xml(action, response, request_id)


SNS_DIALECT = QueryDialect(SNS_VERSION, SNS_NAMESPACE, "AuthorizationError", handle_sns)


# ---- the unsigned links in messages ---------------------------------------------------------
@dataclass(frozen=True)
class LinkOutcome:
    """The answer to a SubscribeURL or UnsubscribeURL, and what its audit record keeps."""

    status: int
    body: bytes
    action: str
    request: dict[str, Any]
    response: dict[str, Any] | None
    error_code: str | None = None
    error_message: str | None = None


def is_link(method: str, path: str, query: str, headers: Mapping[str, str]) -> bool:
    """Whether a request is an unsigned SubscribeURL or UnsubscribeURL."""
    if method != "GET" or path != "/" or "authorization" in headers or "X-Amz-Credential=" in query:
        return False
    return dict(parse_qsl(query)).get("Action") in LINK_ACTIONS


def link_call(n: Notifications, query: str, request_id: str) -> LinkOutcome:
    params = dict(parse_qsl(query, keep_blank_values=True))
    action = params.get("Action", "")
    kept = {k: (HIDDEN if k == "Token" else v) for k, v in params.items() if k != "Action"}
    try:
        if action == "ConfirmSubscription":
            sub = n.confirm(params.get("TopicArn", ""), params.get("Token", ""))
            response: dict[str, Any] = {"SubscriptionArn": sub.arn}
        else:
            n.unsubscribe(params.get("SubscriptionArn", ""), token=params.get("Token", ""))
            response = {}
    except SnsError as e:
        body = error_xml(e.code, str(e), request_id, namespace=SNS_NAMESPACE)
        return LinkOutcome(e.status, body, action, kept, None, e.code, str(e))
    return LinkOutcome(200, success_xml(action, response, request_id), action, kept, response)


SNS: ServiceSpec[Notifications] = ServiceSpec(
    name="sns", title="SNS", signing_name="sns", protocol="query", event_source=SNS_SOURCE,
    api_version=SNS_VERSION, context=notifications_of,
    operations={
        "CreateTopic": _op(_create_topic, "topics:write"),
        "DeleteTopic": _op(_delete_topic, "topics:write"),
        "ListTopics": _op(_list_topics, "topics:read", read_only=True),
        "GetTopicAttributes": _op(_get_topic_attributes, "topics:read", read_only=True),
        "SetTopicAttributes": _op(_set_topic_attributes, "topics:write"),
        "Subscribe": _op(_subscribe, "topics:write"),
        "ConfirmSubscription": _op(_confirm_subscription, "topics:write"),
        "Unsubscribe": _op(_unsubscribe, "topics:write"),
        "ListSubscriptions": _op(_list_subscriptions, "topics:read", read_only=True),
        "ListSubscriptionsByTopic": _op(_list_subscriptions_by_topic, "topics:read", read_only=True),
        "Publish": _op(_publish, "topics:publish"),
    })

