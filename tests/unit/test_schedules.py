"""The local runner's EventBridge schedules against what AWS documents: rate expressions,
the Scheduled Event, and asynchronous invocation's retries, event age and OnFailure record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local_aws.runner.events import FunctionConfig
from local_aws.runner.schedules import (
    ScheduledTarget,
    ScheduleRun,
    UnsupportedSchedule,
    next_fire,
    rate_seconds,
)

RULE = "arn:aws:events:eu-west-1:111122223333:rule/tickstream-poll"


def target(**changes: Any) -> ScheduledTarget:
    settings: dict[str, Any] = {
        "rule_arn": RULE,
        "period_s": 60,
        "constant_input": None,
        "function": FunctionConfig(
            "tickstream-quote-poller",
            "arn:aws:lambda:eu-west-1:111122223333:function:tickstream-quote-poller",
            "functions.quote_poller.handler.handler",
            150,
            256,
            {},
        ),
    }
    return ScheduledTarget(**{**settings, **changes})


class Invocations:
    """An invoke that fails the first `failures` calls and records every event and time."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[float, dict[str, Any]]] = []
        self.now = 0.0

    def __call__(self, event: dict[str, Any]) -> str | None:
        self.calls.append((self.now, event))
        if len(self.calls) <= self.failures:
            return "RuntimeError: provider down"
        return None


def run_until(run: ScheduleRun, invoke: Invocations, until_s: float, sent: list[dict[str, Any]]) -> None:
    """Steps the schedule every 10 s of simulated time."""
    now = 0.0
    while now <= until_s:
        invoke.now = now
        run.step(now, invoke, sent.append)
        now += 10


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 days)", 172_800)],
)
def test_rate_expressions_give_their_period(expression: str, seconds: int) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression",
    ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(5 seconds)", "rate(5minutes)", "every 5m"],
)
def test_expressions_eventbridge_refuses_are_refused(expression: str) -> None:
    with pytest.raises(UnsupportedSchedule):
        rate_seconds(expression)


def test_cron_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(UnsupportedSchedule, match="rate\\(\\) schedules only"):
        rate_seconds("cron(0 12 * * ? *)")


def test_fires_at_whole_periods_after_the_start() -> None:
    assert next_fire(60, 0.0) == 60
    assert next_fire(60, 59.9) == 60
    assert next_fire(60, 60.0) == 120
    assert next_fire(300, 1_000.0) == 1_200


def test_the_event_is_a_scheduled_event_of_the_rule_at_the_scheduled_time() -> None:
    event = target().event(1_795_500_060.0)
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [RULE]
    assert (event["account"], event["region"]) == ("111122223333", "eu-west-1")
    assert event["time"] == "2026-11-24T06:01:00Z"
    assert event["detail"] == {}
    assert event["version"] == "0"
    assert event["id"] != target().event(1_795_500_060.0)["id"]


def test_a_constant_input_is_sent_instead_of_the_event() -> None:
    assert target(constant_input='{"symbols": ["IBM"]}').event(0.0) == {"symbols": ["IBM"]}


def test_each_period_fires_once_and_periods_before_the_start_never() -> None:
    invoke = Invocations()
    sent: list[dict[str, Any]] = []
    run = ScheduleRun.starting(target(), 30.0)
    run_until(run, invoke, 200, sent)
    assert [at for at, _ in invoke.calls] == [60, 120, 180]
    assert [e["time"][-9:] for _, e in invoke.calls] == ["00:01:00Z", "00:02:00Z", "00:03:00Z"]
    assert run.fired == 3


def test_periods_that_pass_while_a_handler_runs_still_fire() -> None:
    invoke = Invocations()
    sent: list[dict[str, Any]] = []
    run = ScheduleRun.starting(target(), 0.0)
    run.step(185.0, invoke, sent.append)
    assert [e["time"][-9:] for _, e in invoke.calls] == ["00:01:00Z", "00:02:00Z", "00:03:00Z"]


def test_a_failed_invocation_is_retried_twice_after_one_then_two_minutes_by_default() -> None:
    invoke = Invocations(failures=10)
    sent: list[dict[str, Any]] = []
    run = ScheduleRun.starting(target(period_s=3600), 0.0)
    run_until(run, invoke, 3600 + 200, sent)
    assert [at for at, _ in invoke.calls] == [3600, 3660, 3780]
    assert len({e["id"] for _, e in invoke.calls}) == 1  # the same event each time
    (record,) = sent
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"] == invoke.calls[0][1]
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"] == {"errorMessage": "RuntimeError: provider down"}
    assert (
        run.queue.stats.invokes,
        run.queue.stats.errors,
        run.queue.stats.retried,
        run.queue.stats.dropped,
    ) == (3, 3, 2, 1)
    json.dumps(record)


def test_a_retry_that_succeeds_ends_the_event() -> None:
    invoke = Invocations(failures=1)
    sent: list[dict[str, Any]] = []
    run = ScheduleRun.starting(target(period_s=3600), 0.0)
    run_until(run, invoke, 3600 + 300, sent)
    assert [at for at, _ in invoke.calls] == [3600, 3660]
    assert sent == []


def test_no_retries_when_maximum_retry_attempts_is_zero() -> None:
    invoke = Invocations(failures=10)
    sent: list[dict[str, Any]] = []
    run = ScheduleRun.starting(target(period_s=3600, max_retries=0), 0.0)
    run_until(run, invoke, 3600 + 300, sent)
    assert [at for at, _ in invoke.calls] == [3600]
    assert [r["requestContext"]["condition"] for r in sent] == ["RetriesExhausted"]


def test_an_event_older_than_its_maximum_age_is_dropped_without_an_invoke() -> None:
    invoke = Invocations(failures=10)
    sent: list[dict[str, Any]] = []
    run = ScheduleRun.starting(target(period_s=3600, max_event_age_s=90), 0.0)
    run_until(run, invoke, 3600 + 300, sent)
    # The first retry (60 s) is within 90 s; the second (180 s) is not.
    assert [at for at, _ in invoke.calls] == [3600, 3660]
    (record,) = sent
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert "responsePayload" not in record
