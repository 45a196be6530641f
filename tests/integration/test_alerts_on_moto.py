"""Price alerts end to end on a real moto server: ticks with a jump, bars, one webhook POST (or,
without a webhook, log lines and no ERROR)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from tests.support.local_stack import LocalStack, run_cli

pytestmark = pytest.mark.integration

WEBHOOK = "/services/T000/B000/alerts-token"
START = "2026-11-20T15:00:00"


@pytest.fixture
def webhook(http_server: HTTPServer) -> HTTPServer:
    http_server.expect_request(WEBHOOK, method="POST").respond_with_data("ok")
    return http_server


def posted(server: HTTPServer) -> list[dict[str, Any]]:
    return [request.get_json() for request, _ in server.log]


def test_a_jump_sends_one_message_and_the_cooldown_holds_the_next(
    local_stack: LocalStack, webhook: HTTPServer
) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": "alerts", "ALERT_WEBHOOK_URL": webhook.url_for(WEBHOOK)}
    outputs = local_stack.deploy("alerts", 1, env=env)
    # 7 minutes of ticks; ALR trades 8 % higher from minute 5 on, QUIET does nothing unusual.
    produce = ["produce", "--symbols", "ALR,QUIET", "--rate", "10", "--pace", "max", "--seed", "3"]
    produced = run_cli([*produce, "--count", "4200", "--start", START, "--jump", "ALR:8:300"], env)
    assert produced.returncode == 0, produced.stderr
    consumed = run_cli(["consume", "--until-idle"], env)
    assert consumed.returncode == 0, consumed.stderr

    messages = posted(webhook)
    assert len(messages) == 1, messages
    text = messages[0]["text"]
    assert "ALR moved +" in text
    assert "on its 1m bars [rule big-move]" in text
    assert f"/{outputs.SiteBucketName}/charts/ALR/1m.png|chart>" in text

    # A later minute of ALR still 8 % up: the rule triggers again, and the cooldown keeps it quiet.
    again = ["--count", "300", "--start", "2026-11-20T15:07:00", "--symbols", "ALR", "--jump", "ALR:8:0"]
    later = run_cli([*produce, *again], env)
    assert later.returncode == 0, later.stderr
    assert run_cli(["consume", "--until-idle"], env).returncode == 0
    assert len(posted(webhook)) == 1
    logs = run_cli(["logs", "charts", "--filter", "AlertsCoolingDown", "--since", "1h"], env)
    assert '"AlertsCoolingDown":[1.0]' in logs.stdout, logs.stdout[-2000:]


def test_without_a_webhook_alerts_are_logged_not_posted_and_nothing_at_error(local_stack: LocalStack) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": "nohook"}
    env.pop("ALERT_WEBHOOK_URL", None)
    local_stack.deploy("nohook", 1, env=env)
    # 7 minutes of NOH ticks, 8 % higher from minute 5 on: the big-move rule triggers.
    produce = ["produce", "--symbols", "NOH", "--rate", "2", "--pace", "max", "--seed", "3", "--count", "840"]
    produced = run_cli([*produce, "--start", START, "--jump", "NOH:8:300"], env)
    assert produced.returncode == 0, produced.stderr
    consumed = run_cli(["consume", "--until-idle"], env)
    assert consumed.returncode == 0, consumed.stderr

    shown = run_cli(["logs", "charts", "--since", "1h"], env)
    assert shown.returncode == 0, shown.stderr
    records = [
        json.loads(line[line.index("{") :]) for line in shown.stdout.splitlines() if '"level":' in line
    ]
    warnings = [r for r in records if r["level"] == "WARNING" and "no alert webhook" in r["message"]]
    assert len(warnings) == 1, shown.stdout[-3000:]
    unposted = [r for r in records if r["message"] == "alert not posted (no webhook)"]
    assert [(r["level"], r["symbol"], r["rule"]) for r in unposted] == [("INFO", "NOH", "big-move")]
    assert not [r for r in records if r["level"] == "ERROR"]
