"""How the pipeline is doing, from the metrics and logs every function leaves in CloudWatch.

The same metrics exist on AWS (Lambda's own, and the functions' EMF) and locally (the runner
publishes both), so `tickstream status` reads them the same way in either place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tickstream.ops.log_tail import LogEvent, LogGroupMissing, LogReadError, LogTail

# CloudWatch's standard resolution is one minute; five of them smooth a bursty producer.
HEALTH_WINDOW_S = 300
LAST_ERROR_LOOKBACK_MS = 24 * 3_600_000
ERROR_MARKERS = ("[ERROR]", '"level":"ERROR"')
# The word both markers share: CloudWatch returns only lines containing it.
ERROR_WORD = "ERROR"


class HealthReadError(RuntimeError):
    """CloudWatch metrics or logs could not be read."""


@dataclass(frozen=True)
class QuotePolling:
    """What the scheduled quote poller did in the window."""

    symbols_polled: int
    ticks_sent: int
    failures: dict[str, int]  # reason -> symbols that gave no tick


@dataclass(frozen=True)
class Health:
    ticks_per_second: float
    rejected: int  # ticks quarantined to rejected/ in the window
    iterator_age_ms: float | None
    errors: int
    last_error: LogEvent | None
    alarms: dict[str, str]  # alarm name -> OK, ALARM or INSUFFICIENT_DATA
    quotes: QuotePolling | None = None  # only where the stack has a quote poller

    @property
    def alarms_firing(self) -> list[str]:
        return sorted(name for name, state in self.alarms.items() if state == "ALARM")


class HealthReader:
    def __init__(self, cloudwatch: Any, logs: Any) -> None:
        self._cloudwatch = cloudwatch
        self._logs = logs

    def read(
        self,
        namespace: str,
        aggregator: str,
        chart_builder: str,
        alarm_topic: str,
        now: float,
        quote_poller: str | None = None,
    ) -> Health:
        """`namespace` is the functions' metrics namespace: tickstream/<stack name>; the stack's
        alarms are the ones that notify `alarm_topic`."""
        functions = (aggregator, chart_builder, *((quote_poller,) if quote_poller else ()))
        aggregator_service = (("service", "aggregator"),)
        ticks = self._statistic(namespace, "TicksProcessed", aggregator_service, "Sum", now)
        rejected = self._statistic(namespace, "TicksRejected", aggregator_service, "Sum", now)
        age = self._statistic("AWS/Lambda", "IteratorAge", (("FunctionName", aggregator),), "Maximum", now)
        errors = sum(
            self._statistic("AWS/Lambda", "Errors", (("FunctionName", name),), "Sum", now) or 0
            for name in functions
        )
        return Health(
            (ticks or 0) / HEALTH_WINDOW_S,
            int(rejected or 0),
            age,
            int(errors),
            self._last_error(functions, int(now * 1000)),
            self._alarms(alarm_topic),
            self._quote_polling(namespace, now) if quote_poller else None,
        )

    def _quote_polling(self, namespace: str, now: float) -> QuotePolling:
        service = ("service", "quote-poller")
        polled = self._statistic(namespace, "QuoteSymbolsPolled", (service,), "Sum", now)
        sent = self._statistic(namespace, "QuoteTicksSent", (service,), "Sum", now)
        try:
            pages = self._cloudwatch.get_paginator("list_metrics").paginate(
                Namespace=namespace,
                MetricName="QuotePollFailuresByReason",
                Dimensions=[{"Name": service[0], "Value": service[1]}],
            )
            reasons = sorted(
                {
                    d["Value"]
                    for page in pages
                    for metric in page["Metrics"]
                    for d in metric["Dimensions"]
                    if d["Name"] == "reason"
                }
            )
        except (ClientError, BotoCoreError) as exc:
            raise HealthReadError(f"listing the quote poller's failure reasons: {exc}") from exc
        failures = {
            reason: int(
                self._statistic(
                    namespace, "QuotePollFailuresByReason", (service, ("reason", reason)), "Sum", now
                )
                or 0
            )
            for reason in reasons
        }
        return QuotePolling(int(polled or 0), int(sent or 0), {r: n for r, n in failures.items() if n})

    def _alarms(self, topic_arn: str) -> dict[str, str]:
        try:
            pages = self._cloudwatch.get_paginator("describe_alarms").paginate(
                ActionPrefix=topic_arn, AlarmTypes=["MetricAlarm"]
            )
            return {a["AlarmName"]: a["StateValue"] for page in pages for a in page["MetricAlarms"]}
        except (ClientError, BotoCoreError) as exc:
            raise HealthReadError(f"reading the alarms of {topic_arn}: {exc}") from exc

    def _statistic(
        self,
        namespace: str,
        name: str,
        dimensions: tuple[tuple[str, str], ...],
        statistic: str,
        now: float,
    ) -> float | None:
        """The statistic over the last HEALTH_WINDOW_S, or None when nothing was published."""
        try:
            points = self._cloudwatch.get_metric_statistics(
                Namespace=namespace,
                MetricName=name,
                Dimensions=[{"Name": key, "Value": value} for key, value in dimensions],
                StartTime=datetime.fromtimestamp(now - HEALTH_WINDOW_S, UTC),
                EndTime=datetime.fromtimestamp(now + 1, UTC),
                Period=HEALTH_WINDOW_S,
                Statistics=[statistic],
            )["Datapoints"]
        except (ClientError, BotoCoreError) as exc:
            raise HealthReadError(f"reading metric {namespace}/{name}: {exc}") from exc
        values = [float(p[statistic]) for p in points]
        if not values:
            return None
        return max(values) if statistic == "Maximum" else sum(values)

    def _last_error(self, functions: tuple[str, ...], now_ms: int) -> LogEvent | None:
        newest: LogEvent | None = None
        for function in functions:
            tail = LogTail(self._logs, f"/aws/lambda/{function}")
            try:
                for event in tail.events(now_ms - LAST_ERROR_LOOKBACK_MS, ERROR_WORD):
                    if any(marker in event.message for marker in ERROR_MARKERS) and (
                        newest is None or event.timestamp_ms >= newest.timestamp_ms
                    ):
                        newest = event
            except LogGroupMissing:
                continue
            except LogReadError as exc:
                raise HealthReadError(str(exc)) from exc
        return newest
