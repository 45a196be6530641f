"""One delivery of alarm notifications: read each, keep the news, post it.

Never raises for what it is given: a message that is not an alarm is reported as unreadable, a
webhook that fails (after its own retries) as failed. Raising would make Lambda retry the whole
delivery twice, posting the messages already sent again, and count an error against the
notifier, whose own alarm would then notify through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.slack_webhook import Delivery
from functions.alarm_notifier.notices import (
    AlarmChange,
    UnreadableAlarm,
    chat_message,
    read_alarm,
    worth_posting,
)


class Notifier(Protocol):
    def post(self, body: dict[str, Any], deadline: float | None = None) -> Delivery: ...


@dataclass
class NotifyReport:
    sent: list[AlarmChange] = field(default_factory=list)
    failed: list[tuple[AlarmChange, str]] = field(default_factory=list)
    skipped: list[AlarmChange] = field(default_factory=list)  # not news: a first OK, missing data
    unposted: list[AlarmChange] = field(default_factory=list)  # news, but no webhook configured
    unreadable: list[str] = field(default_factory=list)  # why each message could not be read


def notify(
    messages: Iterable[str], notifier: Notifier | None, command: str, deadline: float | None = None
) -> NotifyReport:
    """`command` is how the CLI reaches this stack, for the hints of each message; `deadline`
    (time.monotonic) is when posting must stop, for the invocation to end in time."""
    report = NotifyReport()
    for text in messages:
        try:
            change = read_alarm(text)
        except UnreadableAlarm as exc:
            report.unreadable.append(str(exc))
            continue
        if not worth_posting(change):
            report.skipped.append(change)
        elif notifier is None:
            report.unposted.append(change)
        else:
            delivery = notifier.post(chat_message(change, command), deadline)
            if delivery.delivered:
                report.sent.append(change)
            else:
                report.failed.append((change, delivery.detail))
    return report
