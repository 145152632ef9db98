"""The default event bus's rules and targets (the EventBridge API subset of spec monitoring.md §8).

    bus = EventBus(repo, clock, account, region)
    bus.put_rule("stop-logging", pattern_text)            # its ARN; the pattern is checked first
    bus.put_targets("stop-logging", [Target("t1", topic_arn)])
    bus.routing().matching(record)                        # [(rule, targets)] for one record

Only the default bus exists, and only event patterns route (no schedules): a request naming
another bus or a ScheduleExpression is refused with the reason. Only SNS topics of this
account and region are targets. `routing()` is an immutable snapshot rebuilt after each change,
so the rules consumer reads it without locks.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from trailkeeper.clock import Clock
from trailkeeper.errors import TrailkeeperError
from trailkeeper.rules import eventpattern
from trailkeeper.rules.envelope import RuleState, offered, read_only_management
from trailkeeper.rules.eventpattern import EventPattern
from trailkeeper.rules.index import RuleIndex
from trailkeeper.rules.store import EventRule, SqliteRuleRepository
from trailkeeper.rules.targets import Target, TargetError, check_target

DEFAULT_BUS: Final = "default"
MAX_RULES: Final = 2_000  # AWS's default quota is 300 per bus; trailkeeper allows more (docs/event-rules.md)
MAX_TARGETS_PER_RULE: Final = 5
MAX_TARGETS_PER_CALL: Final = 10
MAX_DESCRIPTION: Final = 512
MAX_PAGE: Final = 100
_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
REQUIRED_EVENT_FIELDS: Final = ("id", "account", "source", "time", "region", "resources", "detail-type")
_READ_ONLY_PROBE: Final = {"eventName": "DescribeTrails", "readOnly": True}  # what `offered` calls read-only


class EventsError(TrailkeeperError):
    """An EventBridge request was refused; `code` is AWS's exception name."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


def validation(message: str) -> EventsError:
    return EventsError("ValidationException", message)


@dataclass(frozen=True)
class FailedEntry:
    target_id: str
    code: str
    message: str


@dataclass(frozen=True)
class RoutedRule:
    rule: EventRule
    arn: str
    pattern: EventPattern
    targets: tuple[Target, ...]


class Routing:
    """The enabled rules with targets, compiled and indexed, as of one moment. A read-only
    management event is offered only to the rules that ask for those (`offered`), so they have
    an index of their own and the others are not even looked at."""

    def __init__(self, rules: Sequence[RoutedRule]) -> None:
        self.rules = tuple(r for r in rules if r.rule.state != RuleState.DISABLED)
        self._index = RuleIndex([r.pattern for r in self.rules])
        self._with_reads = [i for i, r in enumerate(self.rules)
                            if offered(_READ_ONLY_PROBE, r.rule.state)]
        self._reads_index = RuleIndex([self.rules[i].pattern for i in self._with_reads])

    def matching(self, record: Mapping[str, Any], event: Mapping[str, Any]) -> list[RoutedRule]:
        """The rules that `event` (the bus envelope of `record`) matches, in name order."""
        if read_only_management(record):
            positions = [self._with_reads[p] for p in self._reads_index.candidates(event)]
        else:
            positions = self._index.candidates(event)
        return [routed for p in positions if (routed := self.rules[p]).pattern.matches(event)]


class EventBus:
    def __init__(self, repo: SqliteRuleRepository, clock: Clock, account_id: str, region: str) -> None:
        self.repo = repo
        self.clock = clock
        self.account_id = account_id
        self.region = region
        self._lock = threading.Lock()
        self._routing: Routing | None = None

    def rule_arn(self, name: str) -> str:
        return f"arn:aws:events:{self.region}:{self.account_id}:rule/{name}"

    # ---- rules ----
    def put_rule(self, name: str, pattern: str | None, *, state: str | None = None, description: str | None = None,
                 tags: Mapping[str, str] | None = None, schedule: str | None = None, bus: str | None = None) -> str:
        self._check_bus(bus)
        _check_name(name, "Name")
        if schedule is not None:
            raise validation("ScheduleExpression is not supported: trailkeeper's bus routes events by pattern only.")
        if not pattern:
            raise validation("Parameter(s) EventPattern or ScheduleExpression must be specified.")
        eventpattern.parse(pattern)
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise validation(f"Description must be at most {MAX_DESCRIPTION} characters.")
        with self._lock:
            current = self.repo.get(name)
            if current is None and len(self.repo.rules()) >= MAX_RULES:
                raise EventsError("LimitExceededException", f"The default bus already has {MAX_RULES} rules.")
            # As EventBridge: PutRule replaces what it is not given (State back to ENABLED, no
            # description); tags, which it only adds, are kept.
            rule = EventRule(name=name, pattern=pattern, state=_state(state) if state else RuleState.ENABLED,
                             description=description or "", tags={**(current.tags if current else {}), **(tags or {})},
                             managed_by="", created=current.created if current else self.clock.now().timestamp())
            self.repo.put(rule)
            self._routing = None
        return self.rule_arn(name)

    def rule(self, name: str, bus: str | None = None) -> EventRule:
        self._check_bus(bus)
        found = self.repo.get(name)
        if found is None:
            raise EventsError("ResourceNotFoundException", f"Rule {name} does not exist on EventBus default.")
        return found

    def list_rules(self, prefix: str | None, limit: int | None, token: str | None,
                   bus: str | None = None) -> tuple[list[EventRule], str | None]:
        self._check_bus(bus)
        rules = [r for r in self.repo.rules() if r.name.startswith(prefix or "")]
        return _page(rules, [r.name for r in rules], limit, token)

    def delete_rule(self, name: str, force: bool = False, bus: str | None = None) -> EventRule | None:
        self._check_bus(bus)
        with self._lock:
            found = self.repo.get(name)
            if found is None:
                return None  # as EventBridge: deleting a rule that is not there succeeds
            if self.repo.targets(name):
                raise validation("Rule can't be deleted since it has targets.")
            self.repo.delete(name)
            self._routing = None
        return found

    def set_state(self, name: str, state: RuleState, bus: str | None = None) -> EventRule:
        with self._lock:
            rule = self.rule(name, bus)
            if state == RuleState.ENABLED and rule.state != RuleState.DISABLED:
                return rule  # EnableRule keeps ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS
            updated = replace(rule, state=state)
            self.repo.put(updated)
            self._routing = None
        return updated

    # ---- targets ----
    def put_targets(self, rule_name: str, targets: Sequence[Target], bus: str | None = None) -> list[FailedEntry]:
        if not 1 <= len(targets) <= MAX_TARGETS_PER_CALL:
            raise validation(f"Targets must hold 1 to {MAX_TARGETS_PER_CALL} targets.")
        for target in targets:
            _check_name(target.id, "Targets.Id")
            try:
                check_target(target)
            except TargetError as e:
                raise validation(str(e)) from None
        with self._lock:
            self.rule(rule_name, bus)
            failed = [FailedEntry(t.id, "ValidationException", why) for t in targets
                      if (why := self._target_problem(t.arn)) is not None]
            good = [t for t in targets if t.id not in {f.target_id for f in failed}]
            current = {t.id for t in self.repo.targets(rule_name).get(rule_name, [])}
            if len(current | {t.id for t in good}) > MAX_TARGETS_PER_RULE:
                raise EventsError("LimitExceededException",
                                  f"Rule {rule_name} can have at most {MAX_TARGETS_PER_RULE} targets.")
            self.repo.put_targets(rule_name, good)
            self._routing = None
        return failed

    def remove_targets(self, rule_name: str, ids: Sequence[str], bus: str | None = None) -> None:
        if not ids:
            raise validation("Ids must hold at least one target id.")
        with self._lock:
            self.rule(rule_name, bus)
            self.repo.remove_targets(rule_name, ids)
            self._routing = None

    def targets(self, rule_name: str, limit: int | None, token: str | None,
                bus: str | None = None) -> tuple[list[Target], str | None]:
        self.rule(rule_name, bus)
        targets = self.repo.targets(rule_name).get(rule_name, [])
        return _page(targets, [t.id for t in targets], limit, token)

    # ---- tags ----
    def tag(self, arn: str, tags: Mapping[str, str]) -> None:
        with self._lock:
            rule = self._rule_of(arn)
            self.repo.put(replace(rule, tags={**rule.tags, **tags}))

    def untag(self, arn: str, keys: Sequence[str]) -> None:
        with self._lock:
            rule = self._rule_of(arn)
            self.repo.put(replace(rule, tags={k: v for k, v in rule.tags.items() if k not in keys}))

    def tags(self, arn: str) -> Mapping[str, str]:
        return self._rule_of(arn).tags

    # ---- matching ----
    def routing(self) -> Routing:
        routing = self._routing
        if routing is None:
            with self._lock:
                targets = self.repo.targets()
                routing = Routing([RoutedRule(r, self.rule_arn(r.name), eventpattern.parse(r.pattern),
                                              tuple(targets.get(r.name, ())))
                                   for r in self.repo.rules()
                                   if r.state != RuleState.DISABLED and targets.get(r.name)])
                self._routing = routing
        return routing

    @staticmethod
    def test_event_pattern(pattern: str, event_text: str) -> bool:
        compiled = eventpattern.parse(pattern)
        try:
            event = json.loads(event_text)
        except ValueError:
            raise validation("Parameter Event is not valid: it is not JSON.") from None
        if not isinstance(event, dict):
            raise validation("Parameter Event is not valid: it must be a JSON object.")
        missing = [f for f in REQUIRED_EVENT_FIELDS if f not in event]
        if missing:
            raise validation(f"Parameter Event is not valid: missing {', '.join(missing)}.")
        return compiled.matches(event)

    # ---- helpers ----
    def _check_bus(self, bus: str | None) -> None:
        if bus not in (None, "", DEFAULT_BUS, f"arn:aws:events:{self.region}:{self.account_id}:event-bus/default"):
            raise EventsError("ResourceNotFoundException", f"Event bus {bus} does not exist: trailkeeper has only "
                                                           "the default bus.")

    def _target_problem(self, arn: str) -> str | None:
        prefix = f"arn:aws:sns:{self.region}:{self.account_id}:"
        if not arn.startswith(prefix) or not arn[len(prefix):]:
            return f"{arn} is not an SNS topic of this account and region: trailkeeper delivers to SNS topics only."
        return None

    def _rule_of(self, arn: str) -> EventRule:
        prefix = self.rule_arn("")
        if not arn.startswith(prefix):
            raise EventsError("ResourceNotFoundException", f"Resource {arn} does not exist: only rules of the "
                                                           "default bus are tagged here.")
        return self.rule(arn[len(prefix):])


def _state(value: str) -> RuleState:
    try:
        return RuleState(value)
    except ValueError:
        raise validation(f"State must be one of {', '.join(s.value for s in RuleState)}.") from None


def _check_name(name: str, field: str) -> None:
    if not _NAME.fullmatch(name):
        raise validation(f"{field} {name!r} must be 1 to 64 letters, digits, '.', '-' or '_'.")


def _page(items: list[Any], keys: list[str], limit: int | None, token: str | None) -> tuple[list[Any], str | None]:
    if limit is not None and not 1 <= limit <= MAX_PAGE:
        raise validation(f"Limit must be 1 to {MAX_PAGE}.")
    size = limit or MAX_PAGE
    start = 0
    if token:
        start = next((i for i, key in enumerate(keys) if key > token), len(keys))
    chunk = items[start:start + size]
    more = start + size < len(items)
    return chunk, keys[start + size - 1] if more else None
