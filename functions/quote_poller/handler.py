"""Lambda entry point of the scheduled quote poller, invoked by its EventBridge rule.

The slot comes from the scheduled event's time, so every poll of one period fetches the same
symbols, and consecutive periods take the next ones when the provider's calls per minute do not
cover them all. The API key is read from SSM or Secrets Manager (cached by Powertools for five
minutes) and the poller is rebuilt when it changes, so a rotated key needs no redeploy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.quote_poller.polling import QuotePoller, QuoteSourceConfig
from functions.quote_poller.quote_state_table import QuoteStateTable
from functions.quote_poller.service import PollReport, ScheduledPoll
from functions.quote_poller.settings import PollerSettings
from market.ticks import Tick
from producer.kinesis_writer import KinesisStreamWriter
from producer.pace import Pace
from producer.pipeline import ProduceOptions, Producer, ProduceStats

logger = Logger(service="quote-poller")
# The namespace comes from POWERTOOLS_METRICS_NAMESPACE, which the template sets per stack.
metrics = Metrics(service="quote-poller")
tracer = Tracer(service="quote-poller")
# Kept back from the function's timeout: time to put the ticks and save the marks after the fetches.
RESERVED_FOR_SENDING_S = 15.0


class _KeyedPoll:
    """The scheduled poll with the API key it was built with: settings, clients, the poller.

    Clients come from boto3's default session, the key's too (Powertools would otherwise build
    a session of its own).
    """

    def __init__(self, settings: PollerSettings) -> None:
        self.settings = settings
        self._read_key: Callable[[], str] | None = None
        if settings.api_key_parameter:
            ssm, name = parameters.SSMProvider(boto3_client=boto3.client("ssm")), settings.api_key_parameter
            self._read_key = lambda: str(ssm.get(name, decrypt=True))
        elif settings.api_key_secret:
            secrets = parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))
            secret = settings.api_key_secret
            self._read_key = lambda: str(secrets.get(secret))
        self._key: str | None = None
        self._poll: ScheduledPoll | None = None

    def poll(self) -> ScheduledPoll:
        """The poller, built again when the key it was built with has changed."""
        key = self._read_key() if self._read_key is not None else None
        if self._poll is None or key != self._key:
            self._poll, self._key = self._build(key), key
        return self._poll

    def _build(self, key: str | None) -> ScheduledPoll:
        config = QuoteSourceConfig.from_file(self.settings.sources_file, os.environ, key)
        writer = KinesisStreamWriter(boto3.client("kinesis"), self.settings.stream_name)

        def send(ticks: Iterable[Tick]) -> ProduceStats:
            return Producer(writer, ProduceOptions(pace=Pace.MAX)).run(ticks)

        return ScheduledPoll(
            QuotePoller.for_config(config),
            QuoteStateTable(boto3.client("dynamodb"), self.settings.state_table),
            send,
            config.calls_per_minute,
        )


# Built at the first invocation and reused while the execution environment lives.
_built: _KeyedPoll | None = None


def _environment() -> _KeyedPoll:
    global _built  # noqa: PLW0603 - the cold-start cache Lambda reuses between invocations
    if _built is None:
        _built = _KeyedPoll(PollerSettings.from_environment(os.environ))
    return _built


def slot_of(event: dict[str, Any], poll_minutes: int, now_s: float) -> int:
    """The schedule period the event belongs to: its `time`, or now for an event without one."""
    stamp = event.get("time")
    seconds = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else now_s
    return int(seconds // 60) // poll_minutes


def _report(report: PollReport) -> None:
    metrics.add_metric("QuoteSymbolsPolled", MetricUnit.Count, len(report.symbols))
    metrics.add_metric("QuoteTicksSent", MetricUnit.Count, report.ticks_sent)
    metrics.add_metric("QuotePollFailures", MetricUnit.Count, len(report.failures))
    for reason, count in report.failures_by_reason.items():
        with single_metric(
            name="QuotePollFailuresByReason",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as by_reason:
            by_reason.add_dimension("reason", reason)
    for failure in report.failures:
        logger.error(
            "no tick",
            extra={"symbol": failure.symbol, "reason": failure.reason, "detail": failure.message},
        )


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    environment = _environment()
    poll = environment.poll()
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVED_FOR_SENDING_S
    slot = slot_of(event, environment.settings.poll_minutes, time.time())
    report = poll.run(slot, deadline)
    _report(report)
    summary = {
        "symbols": list(report.symbols),
        "ticks_sent": report.ticks_sent,
        "failures": dict(report.failures_by_reason),
    }
    logger.info("poll", extra={"slot": slot, **summary})
    return summary
