"""Lambda's asynchronous invocation, run locally: the queue of events a function was sent by
EventBridge or SNS, their retries, and what is given up.

What AWS documents ("How Lambda handles errors and retries with asynchronous invocation"):
- A function error is retried MaximumRetryAttempts times (default 2), one minute after the first
  attempt and two minutes after the second.
- An event older than MaximumEventAgeInSeconds (default 6 hours) is dropped.
- A dropped event goes to the OnFailure destination when there is one, as an invocation record.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_aws.runner.events import FunctionConfig, iso_millis

DEFAULT_ASYNC_RETRIES = 2
DEFAULT_MAX_EVENT_AGE_S = 21_600
RETRY_DELAYS_S = (60.0, 120.0)


@dataclass(frozen=True)
class AsyncTarget:
    """A function invoked asynchronously, with its invoke config (or Lambda's defaults)."""

    function: FunctionConfig
    max_retries: int = DEFAULT_ASYNC_RETRIES
    max_event_age_s: int = DEFAULT_MAX_EVENT_AGE_S
    on_failure_arn: str | None = None


@dataclass
class PendingInvoke:
    event: dict[str, Any]
    scheduled_s: float  # when the event was created: its age counts from here
    due_s: float
    attempts: int = 0


def failure_record(
    function_arn: str, pending: PendingInvoke, condition: str, error: str | None, now_s: float
) -> dict[str, Any]:
    """The invocation record Lambda sends to an asynchronous OnFailure destination."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_millis(now_s),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function_arn}:$LATEST",
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
class AsyncStats:
    invokes: int = 0
    errors: int = 0
    retried: int = 0
    dropped: int = 0


@dataclass
class AsyncQueue:
    """One function's queue of asynchronous events: first tries and retries, in due order."""

    target: AsyncTarget
    pending: list[PendingInvoke] = field(default_factory=list)
    stats: AsyncStats = field(default_factory=AsyncStats)

    def put(self, event: dict[str, Any], at_s: float) -> None:
        self.pending.append(PendingInvoke(event, at_s, at_s))

    def run_due(
        self,
        now_s: float,
        invoke: Callable[[dict[str, Any]], str | None],
        on_failure: Callable[[dict[str, Any]], None] | None,
    ) -> bool:
        """Runs the invocations due at `now_s`; True if any ran. `invoke` answers the error, if any."""
        ran = False
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
            on_failure(failure_record(self.target.function.arn, pending, condition, error, now_s))
