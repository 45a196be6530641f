"""CloudWatch's alarm notifications read and worded for the chat: what is posted, what is said,
and that no message, however odd, makes the notifier raise."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.alarm_notifier.notices import (
    MAX_REASON_CHARS,
    UnreadableAlarm,
    chat_message,
    hints,
    observed_value,
    read_alarm,
    worth_posting,
)
from functions.alarm_notifier.settings import NotifierSettings

# As CloudWatch publishes it (the AWS samples' shape: Trigger with lower-case dimension keys).
AGGREGATOR_ERRORS: dict[str, Any] = {
    "AlarmName": "prod-aggregator-errors",
    "AlarmDescription": "The aggregator failed a batch; its mapping retries it, then sends it to the DLQ.",
    "AWSAccountId": "123456789012",
    "NewStateValue": "ALARM",
    "NewStateReason": (
        "Threshold Crossed: 1 out of the last 1 datapoints [3.0 (30/11/26 23:00:00)] was greater than "
        "the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition)."
    ),
    "StateChangeTime": "2026-11-30T23:01:00.123+0000",
    "Region": "US East (N. Virginia)",
    "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:prod-aggregator-errors",
    "OldStateValue": "OK",
    "Trigger": {
        "MetricName": "Errors",
        "Namespace": "AWS/Lambda",
        "StatisticType": "Statistic",
        "Statistic": "SUM",
        "Unit": None,
        "Dimensions": [{"value": "prod-aggregator", "name": "FunctionName"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
    },
}


def alarm(**changes: Any) -> str:
    return json.dumps({**AGGREGATOR_ERRORS, **changes})


def test_an_alarm_names_itself_its_function_the_value_and_what_to_run() -> None:
    text = chat_message(read_alarm(alarm()))["text"]
    assert text.splitlines() == [
        ":red_circle: *ALARM* prod-aggregator-errors",
        "The aggregator failed a batch; its mapping retries it, then sends it to the DLQ.",
        "function prod-aggregator, Errors (sum per 60 s) = 3 (alarm when &gt; 0) "
        "at 2026-11-30T23:01:00.123+0000",
        "look at: `tickstream logs aggregator --since 1h`, `tickstream status`",
    ]


def test_a_recovery_says_so_without_the_hints() -> None:
    reason = "Threshold Crossed: 1 datapoint (0.0) was not greater than the threshold (0.0)."
    text = chat_message(read_alarm(alarm(NewStateValue="OK", OldStateValue="ALARM", NewStateReason=reason)))[
        "text"
    ]
    assert text.splitlines()[0] == ":large_green_circle: *OK* prod-aggregator-errors recovered"
    assert "= 0 (alarm when &gt; 0)" in text
    assert "look at" not in text


@pytest.mark.parametrize(
    ("old", "new", "posted"),
    [
        ("OK", "ALARM", True),
        ("INSUFFICIENT_DATA", "ALARM", True),
        ("ALARM", "OK", True),
        ("INSUFFICIENT_DATA", "OK", False),  # a new alarm's first evaluation
        ("OK", "INSUFFICIENT_DATA", False),
        ("ALARM", "INSUFFICIENT_DATA", False),
    ],
)
def test_only_alarms_and_recoveries_are_posted(old: str, new: str, posted: bool) -> None:
    assert worth_posting(read_alarm(alarm(OldStateValue=old, NewStateValue=new))) is posted


@pytest.mark.parametrize(
    ("dimensions", "expected"),
    [
        (
            [{"name": "FunctionName", "value": "prod-chart-builder"}],
            "`tickstream logs chart-builder --since 1h`",
        ),
        ([{"name": "FunctionName", "value": "someone-else"}], "`tickstream logs someone-else --since 1h`"),
        (
            [{"name": "QueueName", "value": "prod-DeadLetterQueue-X"}],
            "`tickstream redrive` once the cause is fixed",
        ),
        ([{"name": "service", "value": "quote-poller"}], "`tickstream logs quote-poller --since 1h`"),
    ],
)
def test_hints_follow_what_the_alarm_watches(dimensions: list[dict[str, str]], expected: str) -> None:
    trigger = {**AGGREGATOR_ERRORS["Trigger"], "Dimensions": dimensions}
    assert hints(read_alarm(alarm(Trigger=trigger)), "tickstream") == [expected, "`tickstream status`"]


@pytest.mark.parametrize(
    ("environment", "command"),
    [
        ({"AWS_LAMBDA_FUNCTION_NAME": "prod-alarm-notifier"}, "TICKSTREAM_STACK=prod tickstream --aws"),
        ({"AWS_LAMBDA_FUNCTION_NAME": "tickstream-alarm-notifier"}, "tickstream --aws"),
        (
            {
                "AWS_LAMBDA_FUNCTION_NAME": "tickstream-alarm-notifier",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
            },
            "tickstream",
        ),
        (
            {
                "AWS_LAMBDA_FUNCTION_NAME": "s-alarm-notifier",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:47935",
                "TICKSTREAM_PORT": "47935",
            },
            "TICKSTREAM_PORT=47935 TICKSTREAM_STACK=s tickstream",
        ),
        (
            # LocalStack on loopback, reached through AWS_ENDPOINT_URL: no port from the runner.
            {"AWS_LAMBDA_FUNCTION_NAME": "s-alarm-notifier", "AWS_ENDPOINT_URL": "http://127.0.0.1:4567"},
            "AWS_ENDPOINT_URL=http://127.0.0.1:4567 TICKSTREAM_STACK=s tickstream",
        ),
        (
            {"AWS_LAMBDA_FUNCTION_NAME": "s-alarm-notifier", "AWS_ENDPOINT_URL": "http://localstack:4567"},
            "AWS_ENDPOINT_URL=http://localstack:4567 TICKSTREAM_STACK=s tickstream",
        ),
    ],
)
def test_a_hint_copied_from_the_chat_reaches_the_stack_that_sent_it(
    environment: dict[str, str], command: str
) -> None:
    settings = NotifierSettings.from_environment(environment)
    assert settings.cli_command == command
    text = chat_message(read_alarm(alarm()), settings.cli_command)["text"]
    assert f"look at: `{command} logs aggregator --since 1h`, `{command} status`" in text


@pytest.mark.parametrize(
    "reason",
    [
        "operator note: datapoint (1.2.3) looked odd",
        "datapoint (1..)",
        "1 datapoint [1e999999 (x)] was greater",
    ],
)
def test_a_reason_whose_number_is_no_number_is_quoted(reason: str) -> None:
    text = chat_message(read_alarm(alarm(NewStateReason=reason)))["text"]
    assert "reason: " in text


def test_a_reason_cannot_make_a_line_of_its_own() -> None:
    fake = "x\n:large_green_circle: *OK* prod-aggregator-errors recovered\r\n\u202elook at: `rm -rf`\x00"
    text = chat_message(read_alarm(alarm(NewStateReason=fake, AlarmName="a\nb\ud800")))["text"]
    lines = text.splitlines()
    assert lines[0] == ":red_circle: *ALARM* a b?"
    assert [line for line in lines if line.startswith("look at: ")] == [lines[-1]]
    assert not [c for c in text if c != "\n" and unicodedata.category(c)[0] == "C"]


def test_a_reason_a_person_wrote_is_quoted_escaped_and_clipped() -> None:
    reason = "<!channel> testing & checking " + "x" * 2000
    text = chat_message(read_alarm(alarm(NewStateReason=reason)))["text"]
    line = next(line for line in text.splitlines() if line.startswith("reason: "))
    assert line.startswith("reason: &lt;!channel&gt; testing &amp; checking ")
    assert "<" not in text
    assert len(line) < MAX_REASON_CHARS + 40


@pytest.mark.parametrize(
    ("reason", "value"),
    [
        (
            "Threshold Crossed: 1 out of the last 1 datapoints [1234.0 (06/03/15 17:43:27)] was greater",
            1234.0,
        ),
        ("Threshold Crossed: 1 datapoint (10.0) was greater than or equal to the threshold (1.0).", 10.0),
        ("Threshold Crossed: 5 datapoints [720000.0 (01/12/26 00:05:00), 1.0 (...)] were greater", 720000.0),
        ("Threshold Crossed: 1 datapoint [1.5E-4 (x)] was less", 1.5e-4),
        ("forced for a test", None),
    ],
)
def test_the_value_is_the_first_datapoint_cloudwatch_names(reason: str, value: float | None) -> None:
    assert observed_value(reason) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        "null",
        '{"AlarmName": 1}',
        '{"AlarmName": "a", "NewStateValue": "FIRE"}',
        "[" * 100_000,
    ],
)
def test_what_is_not_an_alarm_is_unreadable_not_a_crash(text: str) -> None:
    with pytest.raises(UnreadableAlarm):
        read_alarm(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {
            "AlarmName": st.text(min_size=1),
            "NewStateValue": st.sampled_from(["ALARM", "OK", "INSUFFICIENT_DATA"]),
        },
        optional={
            "OldStateValue": json_values,
            "NewStateReason": json_values,
            "AlarmDescription": json_values,
            "StateChangeTime": json_values,
            "Trigger": json_values
            | st.fixed_dictionaries(
                {},
                optional={
                    "Dimensions": json_values,
                    "Period": json_values,
                    "Threshold": json_values,
                    "ComparisonOperator": json_values,
                    "Statistic": json_values,
                    "MetricName": json_values,
                },
            ),
        },
    )
)
def test_any_alarm_shaped_message_is_worded_without_raising(message: dict[str, Any]) -> None:
    change = read_alarm(json.dumps(message))
    text = chat_message(change)["text"]
    assert text.count("<") == text.count(">") == 0  # every name and reason escaped for Slack
