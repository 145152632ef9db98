"""`trailkeeper monitoring`: the CIS monitoring pack, installed and checked over the API."""

from __future__ import annotations

from typing import Any

import click

from trailkeeper._internal.output import (
    print_json,
    print_message,
    print_note,
    print_table,
    stderr_console,
)
from trailkeeper.cli.root import _client_options, _json_option, _make_client, main
from trailkeeper.monitoring import cis_pack
from trailkeeper.monitoring.cis import CONTROLS
from trailkeeper.monitoring.compliance import PASS


@main.group()
def monitoring() -> None:
    """CloudWatch-style monitoring: the CIS metric filters, alarms and their check."""


def _code_of(error: Exception) -> str:
    return str(getattr(error, "code", ""))


@monitoring.command("install-cis")
@_client_options
@click.option("--log-group", help="The log group for the filters (default: the group a logging trail already "
                                   "forwards to, else aws-cloudtrail-logs-{account}-{suffix}).")
@click.option("--topic", default=cis_pack.DEFAULT_TOPIC, show_default=True, help="The SNS topic the alarms notify.")
@click.option("--trail", "trails", multiple=True,
              help="Forward this trail to the group (repeatable; default: every trail that forwards nowhere).")
@click.option("--subscribe", "endpoints", multiple=True, metavar="PROTOCOL:ENDPOINT",
              help="Subscribe someone to the topic, e.g. email:soc@example.com or https://hooks.example/sns.")
@_json_option
@click.pass_context
def install_cis(ctx: click.Context, log_group: str | None, topic: str, trails: tuple[str, ...],
                endpoints: tuple[str, ...], as_json: bool) -> None:
    """Install the 15 CIS monitoring filters (exact CIS 5.0 texts), trailkeeper's own three (failed
    authentication, identity deletions, monitoring weakened) and their alarms (Sum over 300 s
    >= 1), notifying a topic; point trails at the log group."""
    client = _make_client(ctx)
    forwarding = cis_pack.forwarded_groups(client.call)
    group = log_group or (forwarding[0] if forwarding else None)
    described = client.call("DescribeTrails").get("trailList", [])
    targets = list(trails) or [t["Name"] for t in described if not t.get("CloudWatchLogsLogGroupArn")]
    forwarded = []
    if group is None and targets:
        from trailkeeper.monitoring.forwarder import set_up_forwarding

        # The first trail's set-up names the default group; the others join it.
        first = set_up_forwarding(client.call, targets[0], None, _code_of)
        group, targets, forwarded = first.group, targets[1:], [targets[0]]
    if group is None:
        from trailkeeper.monitoring.forwarding import default_log_group

        group = default_log_group(str(client.call("GetServerStatus")["AccountId"]))
    installed = _install(client.call, group, topic, as_json)
    for name in targets:
        from trailkeeper.monitoring.forwarder import set_up_forwarding

        set_up_forwarding(client.call, name, group, _code_of)
        forwarded.append(name)
    subscriptions = [_subscribe(client.call, installed.topic_arn, endpoint) for endpoint in endpoints]
    answer = {"LogGroup": installed.log_group, "LogGroupCreated": installed.created_group,
              "TopicArn": installed.topic_arn, "Controls": list(installed.controls),
              "ForwardedTrails": forwarded, "Subscriptions": subscriptions}
    if as_json:
        print_json(answer)
        return
    print_message(f"CIS monitoring pack installed: {len(installed.controls)} CIS and "
                  f"{len(cis_pack.OWN_FILTERS)} trailkeeper filters and alarms on log group "
                  f"{installed.log_group}, notifying {installed.topic_arn}")
    for name in forwarded:
        print_note(f"trail {name} forwards to {installed.log_group}")
    if not endpoints:
        print_note("nobody is subscribed yet: add --subscribe email:you@example.com (the check fails until a "
                   "subscription is confirmed)")


def _install(call: Any, group: str, topic: str, quiet: bool) -> cis_pack.Installed:
    if quiet:
        return cis_pack.install(call, group, topic)
    from rich.progress import Progress

    with Progress(console=stderr_console(), transient=True) as bar:
        task = bar.add_task("installing CIS controls", total=len(CONTROLS) + len(cis_pack.OWN_FILTERS))
        return cis_pack.install(call, group, topic, lambda _: bar.advance(task))


def _subscribe(call: Any, topic_arn: str, endpoint: str) -> dict[str, Any]:
    protocol, _, address = endpoint.partition(":")
    if protocol in ("http", "https"):
        address = endpoint  # the URL is the endpoint, scheme included
    if not address:
        raise click.BadParameter(f"{endpoint!r}: write PROTOCOL:ENDPOINT, e.g. email:soc@example.com",
                                 param_hint="--subscribe")
    answer = call("Subscribe", TopicArn=topic_arn, Protocol=protocol, Endpoint=address)
    return {"Protocol": protocol, "Endpoint": address, "SubscriptionArn": answer.get("SubscriptionArn")}


@monitoring.command("check")
@_client_options
@_json_option
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check each CIS monitoring control as compliance scanners do: a forwarded log group, a
    filter with the exact text, an alarm on its metric, an action on a topic with a confirmed
    subscription. Exits 1 when a control fails."""
    results = cis_pack.run_check(_make_client(ctx).call)
    if as_json:
        print_json({"Controls": [r.to_dict() for r in results]})
    else:
        rows = [{"Control": r.control.cis_number, "SecurityHub": r.control.security_hub_id or "-",
                 "Topic": r.control.topic, "Status": r.status, "Alarms": ", ".join(r.alarms) or "-",
                 "Findings": "; ".join(r.findings) or "-"} for r in results]
        passed = sum(r.status == PASS for r in results)
        print_table(["Control", "SecurityHub", "Topic", "Status", "Alarms", "Findings"], rows,
                    title=f"CIS monitoring controls: {passed} of {len(results)} pass")
    if any(r.status != PASS for r in results):
        ctx.exit(1)
