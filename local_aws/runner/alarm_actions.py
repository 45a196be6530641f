"""CloudWatch alarm actions run locally: a change of an alarm's state published to the SNS topics
of its actions, and SNS's delivery to the Lambda functions subscribed to them.

moto keeps alarms and their states (set-alarm-state changes them) but publishes nothing, and its
SNS cannot invoke a function without Docker. What AWS documents, and what the runner does:
- "When the updated state differs from the previous value, the action configured for the
  appropriate state is invoked" (CloudWatch API reference, SetAlarmState): AlarmActions on a
  change into ALARM, OKActions into OK, InsufficientDataActions into INSUFFICIENT_DATA. Every
  alarm is created in INSUFFICIENT_DATA, so an alarm the runner has never seen changed from it.
  The runner reads the states once a second; a state it last saw is kept in its checkpoints
  table, so a change made while no runner ran is delivered by the next one, and none twice.
- The message is CloudWatch's JSON (AlarmName, NewStateValue, OldStateValue, NewStateReason,
  StateChangeTime, Trigger with the metric, its dimensions, statistic, period and threshold).
  CloudWatch writes the region's long name in `Region` ("US East (N. Virginia)"); the runner
  writes its code.
- SNS invokes a subscribed function asynchronously with one record per message ("Invoking
  Lambda functions with Amazon SNS notifications"), which Lambda retries as
  local_aws.runner.async_invocations says.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local_aws.runner.events import iso_millis

INITIAL_STATE = "INSUFFICIENT_DATA"
ACTIONS_OF_STATE = {
    "ALARM": "AlarmActions",
    "OK": "OKActions",
    "INSUFFICIENT_DATA": "InsufficientDataActions",
}


@dataclass(frozen=True)
class AlarmChange:
    alarm: Mapping[str, Any]  # as DescribeAlarms gives it
    old_state: str

    @property
    def name(self) -> str:
        return str(self.alarm["AlarmName"])

    @property
    def new_state(self) -> str:
        return str(self.alarm["StateValue"])

    def topics(self) -> list[str]:
        """The SNS topics among the actions of the new state."""
        return [arn for arn in self.alarm.get(ACTIONS_OF_STATE[self.new_state], []) if ":sns:" in arn]


def changes(alarms: Iterable[Mapping[str, Any]], last_seen: Mapping[str, str]) -> list[AlarmChange]:
    """The alarms whose state differs from the one last seen (INSUFFICIENT_DATA if never seen)."""
    found = []
    for alarm in alarms:
        old = last_seen.get(alarm["AlarmName"], INITIAL_STATE)
        if alarm.get("StateValue") in ACTIONS_OF_STATE and alarm["StateValue"] != old:
            found.append(AlarmChange(alarm, old))
    return found


def _cloudwatch_time(moment: Any) -> str:
    """CloudWatch's StateChangeTime: "2026-11-30T23:01:00.123+0000"."""
    if isinstance(moment, datetime):
        return (
            moment.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{moment.microsecond // 1000:03d}"
            + moment.strftime("%z")
        )
    return str(moment)


def notification(change: AlarmChange, region: str, account: str) -> tuple[str, str]:
    """The subject and the JSON message CloudWatch publishes for the change."""
    alarm = change.alarm
    trigger = {
        "MetricName": alarm.get("MetricName"),
        "Namespace": alarm.get("Namespace"),
        "StatisticType": "Statistic",
        "Statistic": str(alarm.get("Statistic", "")).upper(),
        "Unit": alarm.get("Unit"),
        "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", [])],
        "Period": alarm.get("Period"),
        "EvaluationPeriods": alarm.get("EvaluationPeriods"),
        "ComparisonOperator": alarm.get("ComparisonOperator"),
        "Threshold": alarm.get("Threshold"),
        "TreatMissingData": alarm.get("TreatMissingData", ""),
        "EvaluateLowSampleCountPercentile": "",
    }
    message = {
        "AlarmName": change.name,
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": account,
        "NewStateValue": change.new_state,
        "NewStateReason": alarm.get("StateReason", ""),
        "StateChangeTime": _cloudwatch_time(alarm.get("StateUpdatedTimestamp")),
        "Region": region,
        "AlarmArn": alarm.get("AlarmArn"),
        "OldStateValue": change.old_state,
        "OKActions": alarm.get("OKActions", []),
        "AlarmActions": alarm.get("AlarmActions", []),
        "InsufficientDataActions": alarm.get("InsufficientDataActions", []),
        "Trigger": trigger,
    }
    return f'{change.new_state}: "{change.name}" in {region}', json.dumps(message)


def sns_event(
    topic_arn: str, subscription_arn: str, subject: str, message: str, now_s: float
) -> dict[str, Any]:
    """The event SNS invokes a subscribed function with: one record per message."""
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "EventSource": "aws:sns",
                "Sns": {
                    "SignatureVersion": "1",
                    "Timestamp": iso_millis(now_s),
                    "Signature": "",
                    "SigningCertUrl": "",
                    "MessageId": str(uuid.uuid4()),
                    "Message": message,
                    "MessageAttributes": {},
                    "Type": "Notification",
                    "UnsubscribeUrl": "",
                    "TopicArn": topic_arn,
                    "Subject": subject[:100],  # SNS subjects are at most 100 characters
                },
            }
        ]
    }
