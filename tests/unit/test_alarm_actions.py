"""The runner's CloudWatch alarm actions: which changes are published, to which topics, in the
message and event shapes AWS documents, and readable by the alarm notifier."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from functions.alarm_notifier.notices import read_alarm, worth_posting
from local_aws.runner.alarm_actions import changes, notification, sns_event

TOPIC = "arn:aws:sns:us-east-1:123456789012:s-AlarmTopic-X"
OTHER = "arn:aws:sns:us-east-1:123456789012:other"


def described(name: str, state: str, **extra: Any) -> dict[str, Any]:
    """An alarm as DescribeAlarms answers it."""
    return {
        "AlarmName": name,
        "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}",
        "AlarmDescription": "Batches wait in the dead-letter queue.",
        "StateValue": state,
        "StateReason": "Threshold Crossed: 1 datapoint [2.0 (01/12/26 00:00:00)] was greater than 0.",
        "StateUpdatedTimestamp": datetime(2026, 12, 1, 0, 0, 1, 250_000, tzinfo=UTC),
        "AlarmActions": [TOPIC],
        "OKActions": [OTHER],
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Namespace": "AWS/SQS",
        "Statistic": "Maximum",
        "Dimensions": [{"Name": "QueueName", "Value": "s-DeadLetterQueue-Y"}],
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
        **extra,
    }


def test_a_change_is_a_state_other_than_the_last_seen_and_never_seen_is_insufficient_data() -> None:
    alarms = [
        described("a", "ALARM"),
        described("b", "OK"),
        described("c", "OK"),
        described("d", "INSUFFICIENT_DATA"),
    ]
    found = changes(alarms, {"a": "ALARM", "b": "ALARM"})
    assert [(c.name, c.old_state, c.new_state) for c in found] == [
        ("b", "ALARM", "OK"),
        ("c", "INSUFFICIENT_DATA", "OK"),
    ]


def test_each_state_publishes_to_its_own_actions_topics() -> None:
    (alarm,) = changes([described("a", "ALARM", AlarmActions=[TOPIC, "arn:aws:automate:x"])], {})
    (ok,) = changes([described("a", "OK")], {"a": "ALARM"})
    (no_data,) = changes([described("a", "INSUFFICIENT_DATA")], {"a": "OK"})
    assert (alarm.topics(), ok.topics(), no_data.topics()) == ([TOPIC], [OTHER], [])


def test_the_message_is_cloudwatchs_and_the_notifier_reads_it() -> None:
    (change,) = changes([described("s-dead-letter-queue", "ALARM")], {"s-dead-letter-queue": "OK"})
    subject, message = notification(change, "us-east-1", "123456789012")
    assert subject == 'ALARM: "s-dead-letter-queue" in us-east-1'
    body = json.loads(message)
    assert body["StateChangeTime"] == "2026-12-01T00:00:01.250+0000"
    assert body["Trigger"]["Statistic"] == "MAXIMUM"
    assert body["Trigger"]["Dimensions"] == [{"value": "s-DeadLetterQueue-Y", "name": "QueueName"}]
    read = read_alarm(message)
    assert (read.name, read.old_state, read.new_state, read.period_s) == (
        "s-dead-letter-queue",
        "OK",
        "ALARM",
        300,
    )
    assert worth_posting(read)


def test_sns_invokes_with_one_record_per_message() -> None:
    event = sns_event(TOPIC, TOPIC + ":sub", "x" * 300, "{}", 0.0)
    (record,) = event["Records"]
    assert (record["EventSource"], record["EventSubscriptionArn"]) == ("aws:sns", TOPIC + ":sub")
    assert (record["Sns"]["TopicArn"], record["Sns"]["Message"], record["Sns"]["Type"]) == (
        TOPIC,
        "{}",
        "Notification",
    )
    assert len(record["Sns"]["Subject"]) == 100
