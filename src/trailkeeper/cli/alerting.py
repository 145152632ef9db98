"""`trailkeeper rules` (detection rules: test a folder offline, list what the server runs) and
`trailkeeper alerts` (list, show, acknowledge, close, suppress, settings), over the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trailkeeper._internal.output import print_json, print_message, print_note, print_table
from trailkeeper.cli.parsing import parse_duration
from trailkeeper.cli.root import _client_options, _json_option, _make_client, main


# ---- rules ----------------------------------------------------------------------------------------
@main.group()
def rules() -> None:
    """Detection rules (Sigma): test a folder of rules offline, list the rules the server runs."""


@rules.command("test")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--placeholder", "placeholders", multiple=True, metavar="NAME=V1,V2",
              help="Values of an `expand` placeholder (repeatable), as the server's sigma_placeholders.")
@_json_option
@click.pass_context
def test_rules(ctx: click.Context, directory: Path, placeholders: tuple[str, ...], as_json: bool) -> None:
    """Run each rule's positive and negative sample events (its `tests:` block, or
    NAME.positive.json / NAME.negative.json beside it) and report coverage. Exits 1 when a
    sample fails, a rule is refused, or a rule has no positive and negative sample."""
    from trailkeeper.rules.sigma import COLUMNS, run_rule_tests

    report = run_rule_tests(directory, _placeholders(placeholders))
    if as_json:
        print_json({"Loaded": report.loaded, "Covered": report.covered, "Coverage": report.coverage,
                    "Failed": report.failed,
                    "Rules": [dict(zip(COLUMNS, row, strict=True)) for row in report.rows()],
                    "Refusals": [{"Source": r.source, "Rule": r.rule, "Reason": r.reason} for r in report.refusals]})
    else:
        print_table(list(COLUMNS), [dict(zip(COLUMNS, row, strict=True)) for row in report.rows()],
                    title=f"{report.loaded} rules, {report.covered} covered ({report.coverage:.0%}), "
                          f"{report.failed} failing")
        for refusal in report.refusals:
            print_note(f"refused: {refusal}")
        for result in report.results:
            for failure in (*result.failures, *result.problems):
                print_note(f"{result.title}: {failure}")
    if not report.ok or report.refusals or report.covered < report.loaded:
        ctx.exit(1)


def _placeholders(given: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in given:
        name, sep, values = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE1,VALUE2", param_hint="--placeholder")
        out[name] = tuple(v for v in values.split(",") if v)
    return out


@rules.command("list")
@_client_options
@_json_option
@click.pass_context
def list_rules(ctx: click.Context, as_json: bool) -> None:
    """The detection rules the server runs, and those it refused with the reason."""
    answer = _make_client(ctx).call("ListDetectionRules")
    if as_json:
        print_json(answer)
        return
    print_table(["Level", "Title", "Id", "Source"], [{**r, "Source": Path(r["Source"]).name}
                                                     for r in answer["Rules"]],
                title=f"{len(answer['Rules'])} detection rules ({answer.get('RulesDirectory', '')} and shipped)")
    for refusal in answer["Refusals"]:
        print_note(f"refused: {refusal['Source']}: {refusal.get('Rule') or ''}: {refusal['Reason']}")


# ---- alerts ---------------------------------------------------------------------------------------
@main.group()
def alerts() -> None:
    """Alerts raised by detection rules: list, show, acknowledge, close, suppress, settings."""


_ALERT_COLUMNS = ["alertId", "severity", "state", "ruleTitle", "count", "firstSeen", "lastSeen", "principal"]


@alerts.command("list")
@_client_options
@click.option("--state", type=click.Choice(["open", "acknowledged", "closed"]))
@click.option("--severity", type=click.Choice(["informational", "low", "medium", "high", "critical"]))
@click.option("--rule", "rule_id", help="Only this rule's alerts (its id).")
@click.option("--max", "limit", type=int, default=50, show_default=True)
@_json_option
@click.pass_context
def list_alerts(ctx: click.Context, state: str | None, severity: str | None, rule_id: str | None, limit: int,
                as_json: bool) -> None:
    """Alerts, newest first."""
    params: dict[str, Any] = {"MaxResults": limit, "State": state, "Severity": severity, "RuleId": rule_id}
    answer = _make_client(ctx).call("ListAlerts", **{k: v for k, v in params.items() if v is not None})
    if as_json:
        print_json(answer)
        return
    rows = [{**a, "principal": a.get("trigger", {}).get("principal", "")} for a in answer["Alerts"]]
    print_table(_ALERT_COLUMNS, rows, title=f"{len(rows)} alerts")


@alerts.command("show")
@_client_options
@click.argument("alert_id")
@_json_option
@click.pass_context
def show(ctx: click.Context, alert_id: str, as_json: bool) -> None:
    """One alert: what triggered it, its history and the event IDs behind it."""
    answer = _make_client(ctx).call("GetAlert", AlertId=alert_id)
    if as_json:
        print_json(answer)
        return
    alert = answer["Alert"]
    print_message(f"{alert['alertId']} [{alert['severity']}] {alert['ruleTitle']}: {alert['state']}, "
                  f"{alert['count']} matches {alert['firstSeen']} .. {alert['lastSeen']}")
    print_message(json.dumps(alert.get("trigger", {}), indent=2))
    print_table(["time", "actor", "action", "fromState", "toState", "comment"], answer["History"], title="history")
    print_message("event IDs: " + " ".join(answer["EventIds"]))


@alerts.command("ack")
@_client_options
@click.argument("alert_id")
@click.option("--comment", default="", help="Why, or what is being done.")
@_json_option
@click.pass_context
def acknowledge(ctx: click.Context, alert_id: str, comment: str, as_json: bool) -> None:
    """Acknowledge an open alert (recorded with you as the actor)."""
    _answer(_make_client(ctx).call("AcknowledgeAlert", AlertId=alert_id, Comment=comment), as_json)


@alerts.command("close")
@_client_options
@click.argument("alert_id")
@click.option("--comment", required=True, help="How it was resolved, or why it is a false positive.")
@_json_option
@click.pass_context
def close(ctx: click.Context, alert_id: str, comment: str, as_json: bool) -> None:
    """Close an alert with a comment (recorded with you as the actor)."""
    _answer(_make_client(ctx).call("CloseAlert", AlertId=alert_id, Comment=comment), as_json)


def _answer(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(answer)
    else:
        alert = answer["Alert"]
        print_message(f"alert {alert['alertId']} is {alert['state']}")


@alerts.command("suppress")
@_client_options
@click.option("--field", "fields", multiple=True, required=True, metavar="PATH=VALUE",
              help="A field the match must have (repeatable, up to 3; `*` in VALUE matches anything).")
@click.option("--for", "duration", required=True, help="How long, e.g. 2h or 7d.")
@click.option("--reason", required=True)
@click.option("--rule", "rule_id", help="Only this rule (its id); default every rule.")
@_json_option
@click.pass_context
def suppress(ctx: click.Context, fields: tuple[str, ...], duration: str, reason: str, rule_id: str | None,
             as_json: bool) -> None:
    """Keep matching events from raising alerts for a while (counted on the suppression)."""
    pairs: dict[str, str] = {}
    for item in fields:
        path, sep, value = item.partition("=")
        if not sep or not path:
            raise click.BadParameter(f"{item!r}: write PATH=VALUE", param_hint="--field")
        pairs[path] = value
    params: dict[str, Any] = {"Fields": pairs, "DurationSeconds": parse_duration(duration),
                              "Reason": reason, **({"RuleId": rule_id} if rule_id else {})}
    answer = _make_client(ctx).call("PutAlertSuppression", **params)
    if as_json:
        print_json(answer)
    else:
        made = answer["Suppression"]
        print_message(f"suppression {made['suppressionId']} until {made['expires']}")


@alerts.command("suppressions")
@_client_options
@click.option("--all", "every", is_flag=True, help="Also expired and lifted ones.")
@_json_option
@click.pass_context
def suppressions(ctx: click.Context, every: bool, as_json: bool) -> None:
    """Suppressions in force (or all of them)."""
    answer = _make_client(ctx).call("ListAlertSuppressions", ActiveOnly=not every)
    if as_json:
        print_json(answer)
        return
    print_table(["suppressionId", "fields", "ruleId", "reason", "actor", "expires", "suppressed"],
                answer["Suppressions"], title="suppressions")


@alerts.command("unsuppress")
@_client_options
@click.argument("suppression_id")
@_json_option
@click.pass_context
def unsuppress(ctx: click.Context, suppression_id: str, as_json: bool) -> None:
    """Lift a suppression now."""
    answer = _make_client(ctx).call("DeleteAlertSuppression", SuppressionId=suppression_id)
    if as_json:
        print_json(answer)
    else:
        print_message(f"suppression {suppression_id} lifted")


@alerts.command("settings")
@_client_options
@click.option("--set", "changes", multiple=True, metavar="NAME=JSON",
              help='Change a setting, e.g. --set ignore_failed_calls=true --set \'topics={"high": "arn:..."}\'.')
@_json_option
@click.pass_context
def settings(ctx: click.Context, changes: tuple[str, ...], as_json: bool) -> None:
    """Show the alert settings (false-positive switches, topics per severity, defaults), or change them."""
    client = _make_client(ctx)
    if changes:
        answer = client.call("UpdateAlertSettings", Changes=dict(_setting(item) for item in changes))
    else:
        answer = client.call("GetAlertSettings")
    if as_json:
        print_json(answer)
        return
    print_table(["setting", "value"], [{"setting": k, "value": json.dumps(v)} for k, v in answer["Settings"].items()],
                title="alert settings")


def _setting(item: str) -> tuple[str, Any]:
    name, sep, text = item.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{item!r}: write NAME=JSON", param_hint="--set")
    try:
        return name, json.loads(text)
    except ValueError:
        return name, text  # a bare string (a topic ARN, say)
