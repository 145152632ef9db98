"""Sigma detections inside the service: the shipped rules run on every acknowledged event (a real
StopLogging call through botocore raises the SigmaHQ rule's alert), the installation's folder is
hot-reloaded with each load and refusal recorded, an opened alert reaches its severity's topic,
and a crash between the match and the notification still notifies exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.pipeline import Pipeline, botocore_client, open_pipeline

from trailkeeper.api.app import App
from trailkeeper.config import load_config
from trailkeeper.rules.detections import LOADED_EVENT, REFUSED_EVENT
from trailkeeper.service import Service

OWN_RULE = """title: Ops deploy from a laptop
id: 0b7c5a57-1f35-4a8b-9d36-1f7a7d1f4e01
status: test
description: a deploy that did not come from the CI network
author: trailkeeper tests
logsource:
  product: aws
  service: cloudtrail
detection:
  selection:
    eventSource: ops.example.com
    eventName: Deploy
  filter_ci:
    sourceIPAddress|cidr: 10.0.0.0/8
  condition: selection and not filter_ci
level: critical
"""
BROKEN_RULE = OWN_RULE.replace("0b7c5a57-1f35-4a8b-9d36-1f7a7d1f4e01", "0b7c5a57-1f35-4a8b-9d36-1f7a7d1f4e02") \
    .replace("eventName: Deploy", "eventName|base64: Deploy")


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[Pipeline, App]]:
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=2)
        yield pipeline, app
        app.pool.shutdown()


def _records(pipeline: Pipeline) -> list[dict[str, Any]]:
    spool = pipeline.service.spool
    return [orjson.loads(body) for _, body in spool.read(1, 1_000_000, 1 << 28)]


def _topic(pipeline: Pipeline, app: App) -> str:
    sns = botocore_client(pipeline, app, "sns")
    arn = str(sns.create_topic(Name="alerts")["TopicArn"])
    sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="soc@example.com")
    [token] = [s.token for s in pipeline.service.runtime.notifications.repo.subscriptions(arn)]
    sns.confirm_subscription(TopicArn=arn, Token=token)
    return arn


def _alert_messages(service: Service) -> list[dict[str, Any]]:
    due = service.runtime.notifications.repo.due(1e12, 10_000)
    return [json.loads(d.message["Message"]) for d in due if d.message.get("Type") == "Notification"]


def test_a_real_stop_logging_call_raises_the_shipped_sigmahq_alert(desk: tuple[Pipeline, App]) -> None:
    pipeline, app = desk
    topic = _topic(pipeline, app)
    pipeline.service.runtime.alerts.update_settings({"default_topic": topic}, "test")
    cloudtrail = botocore_client(pipeline, app, "cloudtrail")
    cloudtrail.create_trail(Name="main", S3BucketName="sigma-bucket")
    cloudtrail.start_logging(Name="main")
    cloudtrail.stop_logging(Name="main")
    pipeline.service.pump()
    page = pipeline.service.runtime.alerts.list_alerts()
    titles = {a.rule_title for a in page.items}
    assert "AWS CloudTrail Important Change" in titles, titles
    [alert] = [a for a in page.items if a.rule_title == "AWS CloudTrail Important Change"]
    [stop] = [r for r in _records(pipeline) if r.get("eventName") == "StopLogging"]
    assert pipeline.service.runtime.alerts.event_ids(alert.id) == [stop["eventID"]]
    assert pipeline.service.alert_sender.send_pending() >= 1
    sent = [m for m in _alert_messages(pipeline.service) if m.get("alertId") == alert.id]
    assert len(sent) == 1 and sent[0]["severity"] == alert.severity


def test_the_rules_folder_is_hot_reloaded_and_each_load_and_refusal_recorded(desk: tuple[Pipeline, App]) -> None:
    pipeline, _ = desk
    service = pipeline.service
    detections = service.rules.detections
    assert detections is not None
    shipped = len(detections.current().rules)
    assert shipped >= 57
    folder = service.config.detection_rules_dir
    folder.mkdir(exist_ok=True)
    (folder / "deploy.yml").write_text(OWN_RULE)
    (folder / "broken.yml").write_text(BROKEN_RULE)
    detections._checked = float("-inf")  # as if RELOAD_CHECK_S had passed
    current = detections.current()
    assert len(current.rules) == shipped + 1
    [refused] = [r for r in current.refusals if "broken.yml" in r.source]
    assert "base64" in refused.reason
    service.pump()
    loads = [r for r in _records(pipeline) if r.get("eventName") == LOADED_EVENT]
    refusals = [r for r in _records(pipeline) if r.get("eventName") == REFUSED_EVENT]
    assert any(r["serviceEventDetails"]["directory"] == str(folder) and r["serviceEventDetails"]["loaded"] == 1
               for r in loads)
    assert any("base64" in r["serviceEventDetails"]["reason"] for r in refusals)

    base = {"eventSource": "ops.example.com", "eventName": "Deploy", "eventTime": "2026-12-06T05:00:00Z",
            "requestParameters": {"app": "web"}}
    pipeline.ingest([{**base, "sourceIPAddress": "10.1.2.3"}, {**base, "sourceIPAddress": "198.51.100.7"}])
    service.pump()
    [alert] = service.runtime.alerts.list_alerts(rule="0b7c5a57-1f35-4a8b-9d36-1f7a7d1f4e01").items
    assert (alert.severity, alert.count) == ("critical", 1)

    (folder / "deploy.yml").unlink()
    detections._checked = float("-inf")
    assert len(detections.current().rules) == shipped


def test_a_crash_between_the_match_and_the_notification_still_notifies_once(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as pipeline:
        app = App(pipeline.service, workers=2)
        topic = _topic(pipeline, app)
        app.pool.shutdown()
        service = pipeline.service
        service.runtime.alerts.update_settings({"default_topic": topic}, "test")
        folder = service.config.detection_rules_dir
        folder.mkdir(exist_ok=True)
        (folder / "deploy.yml").write_text(OWN_RULE)
        assert service.rules.detections is not None
        service.rules.detections._checked = float("-inf")  # as if RELOAD_CHECK_S had passed
        pipeline.ingest([{"eventSource": "ops.example.com", "eventName": "Deploy", "sourceIPAddress": "192.0.2.9",
                          "eventTime": "2026-12-06T05:00:00Z", "requestParameters": {"app": "web"}}])
        service.pump()  # matched: the alert and its notification are stored, nothing sent (no sender ran)
        owed = [n for n in service.runtime.alerts.pending_notifications() if "[critical]" in n.subject]
        assert len(owed) == 1 and _alert_messages(service) == []
        data_dir, clock = pipeline.data_dir, pipeline.clock
    # "Restart": a new service on the same data directory sends what was owed, once.
    config = load_config(data_dir, default_bucket_root=tmp_path / "buckets")
    for _ in range(2):
        again = Service(config, clock=clock, background=False)
        again.start()
        again.alert_sender.send_pending()
        again.pump()
        critical = [m for m in _alert_messages(again) if m.get("severity") == "critical"]
        assert len(critical) == 1
        again.close(flush_timeout=1)
