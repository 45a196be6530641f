"""The stack's alarms in the team's chat, end to end on a real moto server: an alarm forced to
ALARM and back to OK (as `aws cloudwatch set-alarm-state` does) reaches a local HTTP receiver
through the alarm topic, the runner's SNS delivery and the alarm notifier, once per change; a
webhook that stays down is retried, then counted, and its URL is in no log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.support.local_stack import LocalStack, run_cli

pytestmark = pytest.mark.integration

WEBHOOK = "/services/T000/B000/alarms-token"
CROSSED = (
    "Threshold Crossed: 1 out of the last 1 datapoints [3.0 (01/12/26 00:00:00)] was greater than the "
    "threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition)."
)
CLEARED = "Threshold Crossed: 1 datapoint (0.0) was not greater than the threshold (0.0)."


def texts(server: HTTPServer) -> list[str]:
    return [request.get_json()["text"] for request, _ in server.log]


def consume(env: dict[str, str]) -> None:
    done = run_cli(["consume", "--until-idle"], env)
    assert done.returncode == 0, done.stderr


def test_an_alarm_and_its_recovery_post_one_message_each(
    local_stack: LocalStack, http_server: HTTPServer
) -> None:
    http_server.expect_request(WEBHOOK, method="POST").respond_with_data("ok")
    env = {**local_stack.env, "TICKSTREAM_STACK": "alarms", "ALERT_WEBHOOK_URL": http_server.url_for(WEBHOOK)}
    local_stack.deploy("alarms", 1, env=env)
    cloudwatch = local_stack.client("cloudwatch")
    consume(env)  # every alarm's first state (from INSUFFICIENT_DATA): delivered, none of it news
    assert texts(http_server) == []

    cloudwatch.set_alarm_state(AlarmName="alarms-aggregator-errors", StateValue="ALARM", StateReason=CROSSED)
    consume(env)
    consume(env)  # a runner started again does not deliver the same change again
    stamp = cloudwatch.describe_alarms(AlarmNames=["alarms-aggregator-errors"])["MetricAlarms"][0]
    local_stack.deploy("alarms", 1, env=env)  # `up` again keeps the alarm's state, as CloudFormation does
    again = cloudwatch.describe_alarms(AlarmNames=["alarms-aggregator-errors"])["MetricAlarms"][0]
    # Not even for a moment elsewhere: a runner following meanwhile would read a recovery.
    assert again["StateUpdatedTimestamp"] == stamp["StateUpdatedTimestamp"]
    consume(env)
    (alarm,) = texts(http_server)
    assert alarm.splitlines()[0] == ":red_circle: *ALARM* alarms-aggregator-errors"
    assert "function alarms-aggregator, Errors (sum per 60 s) = 3 (alarm when &gt; 0)" in alarm
    # Commands to paste: this stack, on this endpoint (not the default port).
    port = local_stack.endpoint.rsplit(":", 1)[1]
    endpoint = f"TICKSTREAM_PORT={port} TICKSTREAM_STACK=alarms tickstream"
    assert f"look at: `{endpoint} logs aggregator --since 1h`, `{endpoint} status`" in alarm

    cloudwatch.set_alarm_state(AlarmName="alarms-aggregator-errors", StateValue="OK", StateReason=CLEARED)
    consume(env)
    assert [t.splitlines()[0] for t in texts(http_server)] == [
        ":red_circle: *ALARM* alarms-aggregator-errors",
        ":large_green_circle: *OK* alarms-aggregator-errors recovered",
    ]
    logs = run_cli(["logs", "alarm-notifier", "--since", "1h"], env)
    assert logs.stdout.count('"message":"alarm posted"') == 2, logs.stdout[-2000:]
    assert "alarms-token" not in logs.stdout


def test_a_webhook_that_stays_down_is_retried_counted_and_never_logged(
    local_stack: LocalStack, http_server: HTTPServer
) -> None:
    http_server.expect_request(WEBHOOK).respond_with_data("down", status=500)
    env = {
        **local_stack.env,
        "TICKSTREAM_STACK": "alarmdown",
        "ALERT_WEBHOOK_URL": http_server.url_for(WEBHOOK),
    }
    local_stack.deploy("alarmdown", 1, env=env)
    consume(env)
    local_stack.client("cloudwatch").set_alarm_state(
        AlarmName="alarmdown-dead-letter-queue", StateValue="ALARM", StateReason=CROSSED
    )
    consume(env)  # the notifier gives up after its retries and still ends well: nothing blocks
    assert len(http_server.log) > 1
    assert len({request.get_json()["text"] for request, _ in http_server.log}) == 1  # one message, retried

    now = datetime.now(UTC)
    statistics: dict[str, Any] = local_stack.client("cloudwatch").get_metric_statistics(
        Namespace="tickstream/alarmdown",
        MetricName="AlarmNotificationsFailed",
        Dimensions=[{"Name": "service", "Value": "alarm-notifier"}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Sum"],
    )
    assert sum(point["Sum"] for point in statistics["Datapoints"]) == 1
    logs = run_cli(["logs", "alarm-notifier", "--since", "1h"], env)
    assert '"message":"alarm not delivered"' in logs.stdout, logs.stdout[-2000:]
    assert "HTTP 500" in logs.stdout
    assert "alarms-token" not in logs.stdout
