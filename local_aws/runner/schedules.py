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
- EventBridge invokes the function asynchronously: retried, aged and dropped as
  local_aws.runner.async_invocations says.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_aws.runner.async_invocations import (
    DEFAULT_ASYNC_RETRIES,
    DEFAULT_MAX_EVENT_AGE_S,
    AsyncQueue,
    AsyncTarget,
)
from local_aws.runner.events import FunctionConfig, iso_seconds

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


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

    @property
    def async_target(self) -> AsyncTarget:
        return AsyncTarget(self.function, self.max_retries, self.max_event_age_s, self.on_failure_arn)

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
class ScheduleRun:
    """One rule's clock and its function's queue of asynchronous invocations."""

    target: ScheduledTarget
    next_fire_s: float
    queue: AsyncQueue
    fired: int = 0

    @classmethod
    def starting(cls, target: ScheduledTarget, now_s: float) -> ScheduleRun:
        return cls(target, next_fire(target.period_s, now_s), AsyncQueue(target.async_target))

    def step(
        self,
        now_s: float,
        invoke: Callable[[dict[str, Any]], str | None],
        on_failure: Callable[[dict[str, Any]], None] | None,
    ) -> bool:
        """Fires the schedule if due and runs the invocations due; True if anything ran."""
        while self.next_fire_s <= now_s:
            fired_at = self.next_fire_s
            self.queue.put(self.target.event(fired_at), fired_at)
            self.fired += 1
            self.next_fire_s = fired_at + self.target.period_s
        return self.queue.run_due(now_s, invoke, on_failure)
