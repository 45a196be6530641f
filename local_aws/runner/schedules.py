"""EventBridge schedules run locally: rate rules that target the stack's functions, invoked as
EventBridge and Lambda's asynchronous invocation do.

What AWS documents, and what the runner does:
- A rate expression is `rate(N unit)`, with `minute`, `hour`, `day` for N = 1 and the plural
  for N > 1; anything else is refused (EventBridge user guide, schedule expressions). Cron
  expressions are refused here with a clear error: the template uses rates only.
- EventBridge starts a rate when the rule is created, with a precision of a minute; the runner
  does not know when moto created the rule and fires at whole multiples of the period since the
  epoch instead, from when it starts. A period that passes while a handler runs still fires (in
  AWS its event would wait in the function's queue); periods before the runner started do not.
- The event is a "Scheduled Event" from aws.events with the rule's ARN in `resources` and the
  scheduled time in `time`, unless the target has a constant `Input`, which is sent instead.
- EventBridge invokes the function asynchronously. A function error is retried
  MaximumRetryAttempts times (default 2), one minute after the first attempt and two minutes
  after the second; an event older than MaximumEventAgeInSeconds (default 6 hours) is dropped.
  A dropped event goes to the OnFailure destination when there is one
  (Lambda developer guide, "How Lambda handles errors and retries with asynchronous invocation").
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_aws.runner.events import FunctionConfig, iso_millis, iso_seconds

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}
# Asynchronous invocation defaults (Lambda developer guide, asynchronous invocation).
DEFAULT_ASYNC_RETRIES = 2
DEFAULT_MAX_EVENT_AGE_S = 21_600
RETRY_DELAYS_S = (60.0, 120.0)


class UnsupportedSchedule(ValueError):
    """A schedule expression EventBridge would refuse, or one the local runner does not run."""


def rate_seconds(expression: str) -> int:
    """The period of a rate expression; refuses `rate(1 minutes)` and `rate(5 minute)` as EventBridge does."""
    if expression.startswith("cron("):
        raise UnsupportedSchedule(f"{expression}: the local runner runs rate() schedules only")
    match = _RATE.match(expression)
    if match is None:
        raise UnsupportedSchedule(f"{expression!r} is not a rate expression")
    value, unit = int(match.group(1)), match.group(2)
    if value < 1 or (value == 1) != (not unit.endswith("s")):
        raise UnsupportedSchedule(
            f"{expression!r}: a value of 1 takes '{unit.rstrip('s')}', others the plural"
        )
    return value * _UNIT_SECONDS[unit.rstrip("s")]


def next_fire(period_s: int, after_s: float) -> float:
    """The first whole multiple of the period (since the epoch) after a time."""
    return (int(after_s // period_s) + 1) * period_s


@dataclass(frozen=True)
class ScheduledTarget:
    """A rule's schedule and its Lambda target, with the function's settings."""

    rule_arn: str
    period_s: int
    constant_input: str | None  # the target's Input, sent instead of the event
    function: FunctionConfig
    max_retries: int = DEFAULT_ASYNC_RETRIES
    max_event_age_s: int = DEFAULT_MAX_EVENT_AGE_S
    on_failure_arn: str | None = None

    def event(self, at_s: float) -> dict[str, Any]:
        if self.constant_input is not None:
            given: dict[str, Any] = json.loads(self.constant_input)
            return given
        _, _, _, region, account, _ = self.rule_arn.split(":", 5)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": iso_seconds(at_s),
            "region": region,
            "resources": [self.rule_arn],
            "detail": {},
        }


@dataclass
class PendingInvoke:
    event: dict[str, Any]
    scheduled_s: float  # when the event was created: its age counts from here
    due_s: float
    attempts: int = 0


def failure_record(
    target: ScheduledTarget, pending: PendingInvoke, condition: str, error: str | None, now_s: float
) -> dict[str, Any]:
    """The invocation record Lambda sends to an asynchronous OnFailure destination."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_millis(now_s),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{target.function.arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": pending.attempts,
        },
        "requestPayload": pending.event,
        "responseContext": response_context,
    }
    if error is not None:
        response_context["functionError"] = "Unhandled"
        record["responsePayload"] = {"errorMessage": error}
    return record


@dataclass
class ScheduleStats:
    fired: int = 0
    invokes: int = 0
    errors: int = 0
    retried: int = 0
    dropped: int = 0


@dataclass
class ScheduleRun:
    """One rule's clock and its queue of asynchronous invocations (first tries and retries)."""

    target: ScheduledTarget
    next_fire_s: float
    pending: list[PendingInvoke] = field(default_factory=list)
    stats: ScheduleStats = field(default_factory=ScheduleStats)

    @classmethod
    def starting(cls, target: ScheduledTarget, now_s: float) -> ScheduleRun:
        return cls(target, next_fire(target.period_s, now_s))

    def step(
        self,
        now_s: float,
        invoke: Callable[[dict[str, Any]], str | None],
        on_failure: Callable[[dict[str, Any]], None] | None,
    ) -> bool:
        """Fires the schedule if due and runs the invocations due; True if anything ran."""
        ran = False
        while self.next_fire_s <= now_s:
            fired_at = self.next_fire_s
            self.pending.append(PendingInvoke(self.target.event(fired_at), fired_at, fired_at))
            self.stats.fired += 1
            self.next_fire_s = fired_at + self.target.period_s
        for pending in [p for p in self.pending if p.due_s <= now_s]:
            self.pending.remove(pending)
            ran = True
            if now_s - pending.scheduled_s > self.target.max_event_age_s:
                self._drop(pending, "EventAgeExceeded", None, now_s, on_failure)
                continue
            pending.attempts += 1
            self.stats.invokes += 1
            error = invoke(pending.event)
            if error is None:
                continue
            self.stats.errors += 1
            retries_done = pending.attempts - 1
            if retries_done < self.target.max_retries:
                pending.due_s = now_s + RETRY_DELAYS_S[min(retries_done, len(RETRY_DELAYS_S) - 1)]
                self.pending.append(pending)
                self.stats.retried += 1
            else:
                self._drop(pending, "RetriesExhausted", error, now_s, on_failure)
        return ran

    def _drop(
        self,
        pending: PendingInvoke,
        condition: str,
        error: str | None,
        now_s: float,
        on_failure: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.stats.dropped += 1
        if on_failure is not None:
            on_failure(failure_record(self.target, pending, condition, error, now_s))
