"""EventBridge over JSON 1.1 (`X-Amz-Target: AWSEvents.<Op>`, SigV4 service `events`) onto the
default bus of `rules.bus`: the rule and target operations of spec monitoring.md §8."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trailkeeper.api.params import Reader, ReadingHandler, reading
from trailkeeper.api.registry import OperationSpec, ServiceSpec
from trailkeeper.identity import Principal
from trailkeeper.rules.bus import EventBus, validation
from trailkeeper.rules.envelope import RuleState
from trailkeeper.rules.store import EventRule
from trailkeeper.rules.targets import (
    DEFAULT_MAX_AGE_S,
    DEFAULT_MAX_ATTEMPTS,
    InputTransformer,
    RetryPolicy,
    Target,
)

if TYPE_CHECKING:

    from trailkeeper.service import Service

EVENTS_TARGET_PREFIX = "AWSEvents"
EVENTS_SOURCE = "events.amazonaws.com"


def _rule_shape(bus: EventBus, rule: EventRule) -> dict[str, Any]:
    shape: dict[str, Any] = {"Name": rule.name, "Arn": bus.rule_arn(rule.name), "EventPattern": rule.pattern,
                             "State": rule.state.value, "EventBusName": "default"}
    if rule.description:
        shape["Description"] = rule.description
    return shape


def _put_rule(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    arn = bus.put_rule(read.string("Name"), read.opt_string("EventPattern"), state=read.opt_string("State"),
                       description=read.opt_string("Description"), tags=read.tags("Tags"),
                       schedule=read.opt_string("ScheduleExpression"), bus=read.opt_string("EventBusName"))
    return {"RuleArn": arn}


def _describe_rule(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    rule = bus.rule(read.string("Name"), read.opt_string("EventBusName"))
    return {**_rule_shape(bus, rule), "CreatedBy": bus.account_id}


def _list_rules(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    rules, token = bus.list_rules(read.opt_string("NamePrefix"), read.opt_int("Limit"), read.opt_string("NextToken"),
                                  read.opt_string("EventBusName"))
    return {"Rules": [_rule_shape(bus, r) for r in rules], **({"NextToken": token} if token else {})}


def _delete_rule(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    bus.delete_rule(read.string("Name"), bool(read.opt_bool("Force")), read.opt_string("EventBusName"))
    return {}


def _state_setter(state: RuleState) -> ReadingHandler[EventBus]:
    def handler(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
        bus.set_state(read.string("Name"), state, read.opt_string("EventBusName"))
        return {}
    return handler


def _target(raw: Mapping[str, Any]) -> Target:
    read = Reader(raw, validation)
    transformer = raw.get("InputTransformer")
    if transformer is not None and not isinstance(transformer, dict):
        raise validation("Targets.InputTransformer must be an object.")
    retry = raw.get("RetryPolicy") or {}
    if not isinstance(retry, dict):
        raise validation("Targets.RetryPolicy must be an object.")
    retry_read = Reader(retry, validation)
    return Target(
        id=read.string("Id"), arn=read.string("Arn"), input=read.opt_string("Input"), input_path=read.opt_string("InputPath"),
        transformer=_transformer(transformer) if transformer is not None else None,
        retry=RetryPolicy(retry_read.int_or("MaximumRetryAttempts", DEFAULT_MAX_ATTEMPTS),
                          retry_read.int_or("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE_S)))


def _transformer(raw: Mapping[str, Any]) -> InputTransformer:
    paths = raw.get("InputPathsMap") or {}
    if not isinstance(paths, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in paths.items()):
        raise validation("Targets.InputTransformer.InputPathsMap must map names to JSON paths.")
    return InputTransformer(Reader(raw, validation).string("InputTemplate"), paths)


def _target_shape(target: Target) -> dict[str, Any]:
    shape: dict[str, Any] = {"Id": target.id, "Arn": target.arn,
                             "RetryPolicy": {"MaximumRetryAttempts": target.retry.max_attempts,
                                             "MaximumEventAgeInSeconds": target.retry.max_age_s}}
    if target.input is not None:
        shape["Input"] = target.input
    if target.input_path is not None:
        shape["InputPath"] = target.input_path
    if target.transformer is not None:
        shape["InputTransformer"] = {"InputTemplate": target.transformer.template,
                                     **({"InputPathsMap": dict(target.transformer.paths)}
                                        if target.transformer.paths else {})}
    return shape


def _put_targets(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    targets = [_target(raw) for raw in read.objects("Targets")]
    failed = bus.put_targets(read.string("Rule"), targets, read.opt_string("EventBusName"))
    return {"FailedEntryCount": len(failed),
            "FailedEntries": [{"TargetId": f.target_id, "ErrorCode": f.code, "ErrorMessage": f.message}
                              for f in failed]}


def _remove_targets(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    bus.remove_targets(read.string("Rule"), read.strings("Ids"), read.opt_string("EventBusName"))
    return {"FailedEntryCount": 0, "FailedEntries": []}


def _list_targets(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    targets, token = bus.targets(read.string("Rule"), read.opt_int("Limit"), read.opt_string("NextToken"),
                                 read.opt_string("EventBusName"))
    return {"Targets": [_target_shape(t) for t in targets], **({"NextToken": token} if token else {})}


def _test_event_pattern(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    return {"Result": bus.test_event_pattern(read.string("EventPattern"), read.string("Event"))}


def _tag_resource(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    bus.tag(read.string("ResourceARN"), read.tags("Tags"))
    return {}


def _untag_resource(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    bus.untag(read.string("ResourceARN"), read.strings("TagKeys"))
    return {}


def _list_tags(bus: EventBus, _: Principal, read: Reader) -> dict[str, Any]:
    tags = bus.tags(read.string("ResourceARN"))
    return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def _op(handler: ReadingHandler[EventBus], permission: str, read_only: bool = False) -> OperationSpec[EventBus]:
    return OperationSpec(reading(handler, validation), permission, read_only)


def event_bus_of(service: Service) -> EventBus:
    return service.runtime.event_bus


EVENTS: ServiceSpec[EventBus] = ServiceSpec(
    name="events", title="EventBridge", signing_name="events", protocol="json", event_source=EVENTS_SOURCE,
    api_version="2015-10-07", target_prefix=EVENTS_TARGET_PREFIX, client_errors_as_400=True, context=event_bus_of,
    operations={
        "PutRule": _op(_put_rule, "rules:write"),
        "DescribeRule": _op(_describe_rule, "rules:read", read_only=True),
        "ListRules": _op(_list_rules, "rules:read", read_only=True),
        "DeleteRule": _op(_delete_rule, "rules:write"),
        "EnableRule": _op(_state_setter(RuleState.ENABLED), "rules:write"),
        "DisableRule": _op(_state_setter(RuleState.DISABLED), "rules:write"),
        "PutTargets": _op(_put_targets, "rules:write"),
        "RemoveTargets": _op(_remove_targets, "rules:write"),
        "ListTargetsByRule": _op(_list_targets, "rules:read", read_only=True),
        "TestEventPattern": _op(_test_event_pattern, "rules:read", read_only=True),
        "TagResource": _op(_tag_resource, "rules:write"),
        "UntagResource": _op(_untag_resource, "rules:write"),
        "ListTagsForResource": _op(_list_tags, "rules:read", read_only=True),
    })
