"""Checking the rules against the series a batch of bar changes touched, and notifying.

Runs inside the chart builder, after the charts are drawn, so a message links a chart that
already shows the move. The cooldown is claimed in the alert-state table before the message is
posted: of two invocations that see the same move, one claims it and the other stays quiet.
A webhook that fails is retried, then reported; the bar pipeline never fails because of it.
Without a webhook the alerts are still evaluated and claimed, and reported as not posted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from alerts.rules import Alert, Close, RuleConfigError, RuleSet, evaluate, message, parse_rules
from alerts.slack_webhook import Delivery
from market.bars import StoredBar


class CooldownUnavailable(RuntimeError):
    """The cooldown could not be read or claimed: the alert is reported, not sent."""


def rules_from_file(path: Path) -> RuleSet:
    try:
        return parse_rules(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleConfigError(f"{path}: {exc}") from exc


class BarsSource(Protocol):
    def query_bars(self, symbol: str, interval: str, newest: int) -> list[StoredBar]: ...


class Cooldowns(Protocol):
    def claim(self, rule: str, symbol: str, now_ms: int, cooldown_ms: int) -> bool: ...


class Notifier(Protocol):
    def post(self, body: dict[str, Any], deadline: float | None = None) -> Delivery: ...


@dataclass
class AlertReport:
    sent: list[Alert] = field(default_factory=list)
    failed: list[tuple[Alert, str]] = field(default_factory=list)
    cooling: list[Alert] = field(default_factory=list)
    unposted: list[Alert] = field(default_factory=list)  # no webhook configured: a setting, not a failure


class AlertService:
    def __init__(
        self,
        rules: RuleSet,
        bars: BarsSource,
        cooldowns: Cooldowns,
        notifier: Notifier | None,
        chart_url: Callable[[str, str], str],
    ) -> None:
        self._rules = rules
        self._bars = bars
        self._cooldowns = cooldowns
        self._notifier = notifier
        self._chart_url = chart_url

    def check(
        self, series: Iterable[tuple[str, str]], now_ms: int, deadline: float | None = None
    ) -> AlertReport:
        """`deadline` (time.monotonic) is when posting must stop, for the invocation to end in
        time: an alert whose post is cut off by Lambda would be retried with its cooldown claimed."""
        report = AlertReport()
        for symbol, interval in sorted(series):
            rules = self._rules.for_series(symbol, interval)
            if not rules:
                continue
            needed = max(r.closes_needed for r in rules)
            stored = self._bars.query_bars(symbol, interval, needed)
            closes = [Close(b.start * 1000, b.acc.close) for b in stored if b.acc is not None]
            for rule in rules:
                alert = evaluate(rule, symbol, closes[-rule.closes_needed :])
                if alert is None:
                    continue
                try:
                    claimed = self._cooldowns.claim(rule.name, symbol, now_ms, self._rules.cooldown_ms)
                except CooldownUnavailable as exc:
                    report.failed.append((alert, str(exc)))
                    continue
                if not claimed:
                    report.cooling.append(alert)
                    continue
                if self._notifier is None:
                    report.unposted.append(alert)
                    continue
                delivery = self._notifier.post(message(alert, self._chart_url(symbol, interval)), deadline)
                if delivery.delivered:
                    report.sent.append(alert)
                else:
                    report.failed.append((alert, delivery.detail))
        return report
