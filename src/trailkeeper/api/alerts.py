"""trailkeeper's own API for alerts and detection rules (native protocol, `POST /v1/ops/<Op>`):
list, show, acknowledge and close alerts, suppress, and the alert settings; plus the detection
rules in force and those refused. Every call is recorded like any other (the comment of an
acknowledgement or a closing is in its requestParameters: PCI DSS 10.4.3), and each alert keeps
its own history of who changed it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from trailkeeper import audit
from trailkeeper.alerts import AlertError, Alerts, changed
from trailkeeper.api.params import Reader, ReadingHandler, reading
from trailkeeper.api.registry import OperationSpec, ServiceSpec
from trailkeeper.identity import Principal
from trailkeeper.rules.detections import Detections

if TYPE_CHECKING:

    from trailkeeper.service import Service

MAX_ALERTS_PAGE = 200


class AlertDesk(Protocol):
    """What the alert operations work on."""

    @property
    def alerts(self) -> Alerts: ...

    @property
    def detections(self) -> Detections | None: ...


class _Desk:
    def __init__(self, service: Service) -> None:
        self.alerts = service.runtime.alerts
        self.detections = service.rules.detections


def _invalid(message: str) -> AlertError:
    return AlertError("InvalidParameter", message)


def _list_alerts(desk: AlertDesk, _: Principal, read: Reader) -> dict[str, Any]:
    limit = read.opt_int("MaxResults") or 50
    if not 1 <= limit <= MAX_ALERTS_PAGE:
        raise _invalid(f"MaxResults must be 1 to {MAX_ALERTS_PAGE}.")
    page = desk.alerts.list_alerts(read.opt_string("State"), read.opt_string("Severity"), read.opt_string("RuleId"),
                                   limit, read.opt_string("NextToken"))
    return {"Alerts": [a.to_dict() for a in page.items], **({"NextToken": page.next_token} if page.next_token else {})}


def _get_alert(desk: AlertDesk, _: Principal, read: Reader) -> dict[str, Any]:
    alert_id = read.string("AlertId")
    return {"Alert": desk.alerts.get(alert_id).to_dict(),
            "History": [c.to_dict() for c in desk.alerts.history(alert_id)],
            "EventIds": desk.alerts.event_ids(alert_id)}


def _acknowledge(desk: AlertDesk, principal: Principal, read: Reader) -> dict[str, Any]:
    return {"Alert": desk.alerts.acknowledge(read.string("AlertId"), principal.arn,
                                             read.opt_string("Comment") or "").to_dict()}


def _close(desk: AlertDesk, principal: Principal, read: Reader) -> dict[str, Any]:
    return {"Alert": desk.alerts.close(read.string("AlertId"), principal.arn, read.string("Comment")).to_dict()}


def _suppress(desk: AlertDesk, principal: Principal, read: Reader) -> dict[str, Any]:
    fields = read.params.get("Fields")
    if not isinstance(fields, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise _invalid("Fields must map field paths to values, e.g. {\"userIdentity.arn\": \"arn:...:user/ci\"}.")
    duration = read.opt_int("DurationSeconds")
    if duration is None:
        raise _invalid("DurationSeconds is required.")
    made = desk.alerts.suppress(fields, duration, read.string("Reason"), principal.arn, read.opt_string("RuleId"))
    return {"Suppression": made.to_dict()}


def _list_suppressions(desk: AlertDesk, _: Principal, read: Reader) -> dict[str, Any]:
    active_only = read.opt_bool("ActiveOnly")
    return {"Suppressions": [s.to_dict() for s in desk.alerts.suppressions(active_only is not False)]}


def _lift_suppression(desk: AlertDesk, principal: Principal, read: Reader) -> dict[str, Any]:
    return {"Suppression": desk.alerts.lift_suppression(read.string("SuppressionId"),
                                                        principal.arn).to_dict()}


def _get_settings(desk: AlertDesk, _: Principal, read: Reader) -> dict[str, Any]:
    return {"Settings": desk.alerts.settings().to_dict()}


def _update_settings(desk: AlertDesk, principal: Principal, read: Reader) -> dict[str, Any]:
    changes = read.params.get("Changes")
    if not isinstance(changes, dict):
        raise _invalid("Changes must be an object of setting names to new values (GetAlertSettings lists them).")
    old, new = desk.alerts.update_settings(changes, principal.arn)
    return {"Settings": new.to_dict(),
            "Changed": {name: {"Old": before, "New": after} for name, (before, after) in changed(old, new).items()}}


def _list_detection_rules(desk: AlertDesk, _: Principal, read: Reader) -> dict[str, Any]:
    if desk.detections is None:
        return {"Rules": [], "Refusals": []}
    rules = desk.detections.current()
    return {"Rules": [{"Id": r.id, "Title": r.title, "Level": r.level, "Source": r.source, "Author": r.author,
                       "Tags": list(r.tags)} for r in rules.rules],
            "Refusals": [{"Source": f.source, "Rule": f.rule, "Reason": f.reason} for f in rules.refusals],
            "RulesDirectory": str(desk.detections.folder)}


def _op(handler: ReadingHandler[AlertDesk], permission: str, read_only: bool = False) -> OperationSpec[AlertDesk]:
    return OperationSpec(reading(handler, _invalid), permission, read_only)


def desk_of(service: Service) -> AlertDesk:
    return _Desk(service)


ALERTS: ServiceSpec[AlertDesk] = ServiceSpec(
    name="trailkeeper-alerts", title="trailkeeper alerts", signing_name="trailkeeper-alerts", protocol="native",
    event_source=audit.SERVICE_SOURCE, has_model=False, context=desk_of,
    operations={
        "ListAlerts": _op(_list_alerts, "alerts:read", read_only=True),
        "GetAlert": _op(_get_alert, "alerts:read", read_only=True),
        "AcknowledgeAlert": _op(_acknowledge, "alerts:triage"),
        "CloseAlert": _op(_close, "alerts:triage"),
        "PutAlertSuppression": _op(_suppress, "alerts:write"),
        "ListAlertSuppressions": _op(_list_suppressions, "alerts:read", read_only=True),
        "DeleteAlertSuppression": _op(_lift_suppression, "alerts:write"),
        "GetAlertSettings": _op(_get_settings, "alerts:read", read_only=True),
        "UpdateAlertSettings": _op(_update_settings, "alerts:write"),
        "ListDetectionRules": _op(_list_detection_rules, "rules:read", read_only=True),
    })
