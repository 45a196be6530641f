"""The alarm notifier's handler fed SNS events in the shape Lambda sends them, posting to a real
local HTTP receiver: alarms and recoveries posted, failures retried then counted, never raised,
and the webhook's URL (its secret) in no log line."""

from __future__ import annotations

import io
import json
import logging
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities import parameters
from pytest_httpserver import HTTPServer

import functions.alarm_notifier.handler as notifier_handler
from local_aws.runner.alarm_actions import sns_event
from local_aws.runner.invoker import LocalContext
from tests.unit.test_alarm_notices import alarm

PATH = "/services/T000/B000/alarm-secret-token"
TOPIC = "arn:aws:sns:us-east-1:123456789012:prod-AlarmTopic-X"


def event(*messages: str) -> dict[str, Any]:
    records = [sns_event(TOPIC, TOPIC + ":sub", "ALARM", m, 0.0)["Records"][0] for m in messages]
    return {"Records": records}


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A cold start for each test: settings read again from the environment."""
    monkeypatch.setattr(notifier_handler.metrics, "namespace", "tickstream/test")  # the template sets it
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setattr(notifier_handler, "_built", None)
    return monkeypatch


class Printed:
    """What an invocation printed: the log lines (the logger keeps the stream it was created
    with, so it is pointed at a buffer of the test's own) and the EMF metrics (printed)."""

    def __init__(self, logs: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
        self._logs = logs
        self._capsys = capsys

    def read(self) -> str:
        text = self._logs.getvalue() + self._capsys.readouterr().out
        self._logs.seek(0)
        self._logs.truncate()
        return text


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Printed:
    handler = notifier_handler.logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        raise TypeError(f"the notifier logs through {handler!r}, not a stream")
    logs = io.StringIO()
    monkeypatch.setattr(handler, "stream", logs)
    return Printed(logs, capsys)


def invoke(request: dict[str, Any], timeout_s: int = 60) -> dict[str, int]:
    context = LocalContext("prod-alarm-notifier", "arn:aws:lambda:us-east-1:1:function:x", 256, timeout_s)
    answer: dict[str, int] = notifier_handler.handler(request, context)
    return answer


def metrics_of(output: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    found[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return found


def test_an_alarm_and_its_recovery_are_two_messages(
    configured: pytest.MonkeyPatch, http_server: HTTPServer, printed: Printed
) -> None:
    configured.setenv("ALERT_WEBHOOK_URL", http_server.url_for(PATH))
    http_server.expect_request(PATH, method="POST").respond_with_data("ok")
    recovered = alarm(NewStateValue="OK", OldStateValue="ALARM")
    assert invoke(event(alarm())) == {"sent": 1, "failed": 0, "skipped": 0, "unreadable": 0}
    assert invoke(event(recovered))["sent"] == 1
    texts = [json.loads(request.data)["text"] for request, _ in http_server.log]
    assert [t.splitlines()[0] for t in texts] == [
        ":red_circle: *ALARM* prod-aggregator-errors",
        ":large_green_circle: *OK* prod-aggregator-errors recovered",
    ]
    output = printed.read()
    assert "alarm-secret-token" not in output
    assert metrics_of(output)["AlarmNotificationsSent"] == 1


def test_a_first_ok_and_a_message_that_is_no_alarm_are_not_posted_nor_raised(
    configured: pytest.MonkeyPatch, http_server: HTTPServer, printed: Printed
) -> None:
    configured.setenv("ALERT_WEBHOOK_URL", http_server.url_for(PATH))
    first_ok = alarm(NewStateValue="OK", OldStateValue="INSUFFICIENT_DATA")
    answer = invoke(event(first_ok, "{not json", json.dumps({"AlarmName": "x"})))
    assert answer == {"sent": 0, "failed": 0, "skipped": 1, "unreadable": 2}
    assert invoke({"Records": [{"EventSource": "aws:sns"}]})["unreadable"] == 1
    assert invoke({"not": "sns"})["unreadable"] == 1
    odd_events: list[object] = [None, [], "text"]
    for odd in odd_events:
        assert invoke(cast(dict[str, Any], odd))["unreadable"] == 1
    assert http_server.log == []
    assert metrics_of(printed.read())["AlarmMessagesUnreadable"] == 1


def test_a_webhook_that_stays_down_is_retried_then_counted_and_its_url_never_logged(
    configured: pytest.MonkeyPatch, http_server: HTTPServer, printed: Printed
) -> None:
    configured.setenv("ALERT_WEBHOOK_URL", http_server.url_for(PATH))
    configured.setattr("webclients.retrying_http.BACKOFF_S", 0.01)
    http_server.expect_request(PATH).respond_with_data("down", status=500)
    assert invoke(event(alarm())) == {"sent": 0, "failed": 1, "skipped": 0, "unreadable": 0}
    assert len(http_server.log) > 1  # retried
    output = printed.read()
    assert metrics_of(output)["AlarmNotificationsFailed"] == 1
    assert "alarm not delivered" in output
    assert "alarm-secret-token" not in output
    assert http_server.url_for(PATH) not in output


def test_an_unreadable_webhook_parameter_counts_the_alarm_as_failed(
    configured: pytest.MonkeyPatch, printed: Printed
) -> None:
    configured.setenv("ALERT_WEBHOOK_PARAMETER", "/prod/alert-webhook")

    def denied(*_: Any, **__: Any) -> str:
        raise parameters.exceptions.GetParameterError("AccessDeniedException: not allowed")

    configured.setattr(parameters, "get_parameter", denied)
    assert invoke(event(alarm())) == {"sent": 0, "failed": 1, "skipped": 0, "unreadable": 0}
    output = printed.read()
    assert "alarm webhook unreadable" in output
    assert metrics_of(output)["AlarmNotificationsFailed"] == 1


def test_without_a_webhook_alarms_are_logged_not_posted(
    configured: pytest.MonkeyPatch, printed: Printed
) -> None:
    configured.delenv("ALERT_WEBHOOK_URL", raising=False)
    configured.delenv("ALERT_WEBHOOK_PARAMETER", raising=False)
    assert invoke(event(alarm())) == {"sent": 0, "failed": 0, "skipped": 1, "unreadable": 0}
    assert "alarm not posted (no webhook)" in printed.read()


def test_a_webhook_that_asks_to_wait_past_the_timeout_is_given_up_in_time(
    configured: pytest.MonkeyPatch, http_server: HTTPServer, printed: Printed
) -> None:
    """Lambda would end the invocation and retry it, uncounted: the post is given up before."""
    configured.setenv("ALERT_WEBHOOK_URL", http_server.url_for(PATH))
    http_server.expect_request(PATH).respond_with_data("slow down", status=429, headers={"Retry-After": "30"})
    assert invoke(event(alarm()), timeout_s=15)["failed"] == 1
    output = printed.read()
    assert "no time left for a 30 s wait" in output
    assert len(http_server.log) == 1


def test_a_webhook_url_that_is_no_url_counts_the_alarm_as_failed_and_is_not_logged(
    configured: pytest.MonkeyPatch, printed: Printed
) -> None:
    configured.setenv("ALERT_WEBHOOK_URL", "http://[hooks/services/T0/B0/typo-token")
    assert invoke(event(alarm())) == {"sent": 0, "failed": 1, "skipped": 0, "unreadable": 0}
    output = printed.read()
    assert "the webhook URL is not a URL" in output
    assert "typo-token" not in output
