"""CloudWatch alarm notifications read and worded for a chat channel.

No boto3 and no event shapes: the handler hands in the text SNS delivered (CloudWatch's JSON
message) and posts what this module returns. What is said, and what is left out:
- every change into ALARM, from any state;
- a change from ALARM into OK, as a recovery;
- nothing else: a new alarm's first evaluation (INSUFFICIENT_DATA to OK) and missing data are
  not news, and the team would learn to ignore a channel that says them.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass

# The states of a metric alarm (CloudWatch API reference, MetricAlarm.StateValue).
ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
_STATES = frozenset({ALARM, OK, INSUFFICIENT_DATA})
# Function names end in the template's short names, as `tickstream logs` takes them.
FUNCTION_ALIASES = ("aggregator", "chart-builder", "quote-poller", "alarm-notifier")
# CloudWatch writes the datapoints that crossed in its reason: "... 1 datapoint [2.0 (30/11/26
# 23:00:00)] was greater ..." or, for one datapoint, "... 1 datapoint (10.0) was ...".
_DATAPOINT = re.compile(r"datapoints? (?:\[|\()(-?[0-9][0-9.]*(?:E[-+]?[0-9]+)?)[ )]")
_COMPARISONS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}
# A reason or description may be long (set-alarm-state takes 1,023 characters); a chat line
# should not be.
MAX_REASON_CHARS = 300


class UnreadableAlarm(ValueError):
    """The message is not a CloudWatch alarm notification; the reason says what is missing."""


@dataclass(frozen=True)
class AlarmChange:
    name: str
    description: str
    old_state: str
    new_state: str
    reason: str
    changed_at: str
    metric: str
    statistic: str
    period_s: int | None
    comparison: str
    threshold: float | None
    dimensions: tuple[tuple[str, str], ...]


def _text(message: dict[str, object], key: str) -> str:
    """A string field, lone surrogates (which JSON allows and no log can write) replaced."""
    value = message.get(key)
    return value.encode("utf-8", "replace").decode() if isinstance(value, str) else ""


def _number(value: object) -> float | None:
    """A finite JSON number; None for anything else, 10**400 and NaN included."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def read_alarm(text: str) -> AlarmChange:
    """The alarm change in an SNS message from CloudWatch, or UnreadableAlarm."""
    if not text.strip():
        raise UnreadableAlarm("no message: an event without SNS records, or an empty Message")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnreadableAlarm(f"not JSON: {str(exc)[:80]}") from exc
    if not isinstance(message, dict):
        raise UnreadableAlarm("not a JSON object")
    name, new_state = _text(message, "AlarmName"), _text(message, "NewStateValue")
    if not name or new_state not in _STATES:
        raise UnreadableAlarm("no AlarmName, or a NewStateValue that is not ALARM, OK or INSUFFICIENT_DATA")
    trigger = message.get("Trigger")
    trigger = trigger if isinstance(trigger, dict) else {}
    dimensions = trigger.get("Dimensions")
    pairs = tuple(
        (_text(d, "name"), _text(d, "value"))
        for d in (dimensions if isinstance(dimensions, list) else [])
        if isinstance(d, dict)
    )
    period = _number(trigger.get("Period"))
    return AlarmChange(
        name=name,
        description=_text(message, "AlarmDescription"),
        old_state=_text(message, "OldStateValue") or INSUFFICIENT_DATA,
        new_state=new_state,
        reason=_text(message, "NewStateReason"),
        changed_at=_text(message, "StateChangeTime"),
        metric=_text(trigger, "MetricName"),
        statistic=_text(trigger, "Statistic").lower(),
        period_s=int(period) if period is not None and period.is_integer() else None,
        comparison=_COMPARISONS.get(_text(trigger, "ComparisonOperator"), ""),
        threshold=_number(trigger.get("Threshold")),
        dimensions=pairs,
    )


def worth_posting(change: AlarmChange) -> bool:
    return change.new_state == ALARM or (change.new_state == OK and change.old_state == ALARM)


def observed_value(reason: str) -> float | None:
    """The first datapoint CloudWatch names in its reason; None for a reason a person wrote."""
    match = _DATAPOINT.search(reason)
    if match is None:
        return None
    try:
        return _number(float(match.group(1)))
    except ValueError:  # "datapoint (1.2.3)" in a reason a person wrote
        return None


def _figure(value: float) -> str:
    return f"{int(value):,}" if value.is_integer() and abs(value) < 1e15 else f"{value:,.6g}"


def _escaped(text: str) -> str:
    """On one line, and as text: Slack's mrkdwn reads &, < and > as markup (a reason naming
    `<!channel>` must not call the channel), and a line break or a control character in a reason
    could make a line of its own that looks like the notifier's."""
    flat = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    return " ".join(flat.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clipped(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "\u2026"


def hints(change: AlarmChange, command: str) -> list[str]:
    """What to run first, each a command given whole (`command` is how the CLI reaches this
    stack): the logs of the function the alarm watches, the stack's status, and for the
    dead-letter queue, the redrive once the cause is fixed."""
    found = []
    for name, value in change.dimensions:
        if name == "FunctionName":
            alias = next((a for a in FUNCTION_ALIASES if value.endswith("-" + a)), value)
            found.append(f"`{command} logs {alias} --since 1h`")
        elif name == "service" and value in FUNCTION_ALIASES:
            found.append(f"`{command} logs {value} --since 1h`")
        elif name == "QueueName":
            found.append(f"`{command} redrive` once the cause is fixed")
    return [*found, f"`{command} status`"]


def _watched(change: AlarmChange) -> str:
    """Which function or queue, and the metric: "function x-aggregator, Errors (sum per 60 s)"."""
    kinds = {"FunctionName": "function", "QueueName": "queue", "service": "service"}
    what = ", ".join(f"{kinds.get(n, n)} {v}" for n, v in change.dimensions)
    metric = change.metric
    if metric and change.statistic and change.period_s:
        metric += f" ({change.statistic} per {change.period_s} s)"
    return ", ".join(part for part in (what, metric) if part)


def chat_message(change: AlarmChange, command: str = "tickstream") -> dict[str, str]:
    """A Slack-compatible incoming-webhook body: the alarm, what it watches, the value, what to run."""
    value = observed_value(change.reason)
    measured = "" if value is None else f" = {_figure(value)}"
    if change.comparison and change.threshold is not None:
        measured += f" (alarm when {change.comparison} {_figure(change.threshold)})"
    if change.new_state == ALARM:
        head = f":red_circle: *ALARM* {_escaped(change.name)}"
    else:
        head = f":large_green_circle: *OK* {_escaped(change.name)} recovered"
    lines = [head]
    if change.description and change.new_state == ALARM:
        lines.append(_escaped(_clipped(change.description)))
    when = f" at {change.changed_at}" if change.changed_at else ""
    lines.append(_escaped(_watched(change) + measured + when))
    if value is None and change.reason:
        lines.append("reason: " + _escaped(_clipped(change.reason)))
    if change.new_state == ALARM:
        lines.append("look at: " + ", ".join(_escaped(hint) for hint in hints(change, command)))
    return {"text": "\n".join(lines)}
