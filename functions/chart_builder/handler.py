"""Lambda entry point of the chart builder: the bars table's stream (NEW_IMAGE) and a one-minute schedule.

A stream batch names the (symbol, interval) series whose bars changed; each is drawn at most once
per its interval (functions.chart_builder.cadence) and otherwise waits in the manifest, which the one-minute
schedule sweeps, so the last change of a series is drawn even when no other batch follows.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from alerts.cooldown_table import CooldownTable
from alerts.service import AlertReport, AlertService, rules_from_file
from alerts.webhook_config import WebhookUnavailable, configured_webhook
from functions.chart_builder.service import ChartBuilder, Rebuilt
from functions.chart_builder.settings import ChartSettings
from market.bars import INTERVAL_SECONDS
from market.ticks import InvalidTick, validate_symbol
from stores.bars_table import BarsTable
from stores.site_bucket import SiteBucket
from stores.site_content import LAST_SECOND, chart_key

logger = Logger(service="charts")
# The namespace comes from POWERTOOLS_METRICS_NAMESPACE, which the template sets per stack.
metrics = Metrics(service="charts")
tracer = Tracer(service="charts")
# Built at the first invocation and reused while the execution environment lives.
_built: tuple[ChartBuilder, AlertService | None] | None = None
MANIFEST_PROBLEMS_LOGGED = 20
# Drawing stops with this much of the invocation left, for the manifest, the page and the alerts;
# what was not drawn stays pending for the next invocation (a chart takes about 0.2 s).
TIME_KEPT_MS = 20_000
# Alert posts stop this long before the timeout, so their failures are logged and counted.
ALERTS_STOP_BEFORE_S = 5.0


def _environment() -> tuple[ChartBuilder, AlertService | None]:
    global _built  # noqa: PLW0603 - the cold-start cache Lambda reuses between invocations
    if _built is None:
        _built = _build(ChartSettings.from_environment(os.environ))
    return _built


def _build(settings: ChartSettings) -> tuple[ChartBuilder, AlertService | None]:
    bars = BarsTable(boto3.client("dynamodb"), settings.bars_table)
    builder = ChartBuilder(
        bars, SiteBucket(boto3.client("s3"), settings.site_bucket), refresh_floor_s=settings.refresh_floor_s
    )
    if settings.alert_table is None:
        return builder, None
    try:
        webhook = configured_webhook(settings.alert_webhook_url, settings.alert_webhook_parameter)
    except WebhookUnavailable:
        # The charts matter more than the alerts: drawn, with the alerts logged, not posted.
        logger.exception("alert webhook unreadable: alerts are logged, not posted")
        webhook = None
    else:
        if webhook is None:
            # A choice of the deployment, not a failure: said once per cold start, each alert at INFO.
            logger.warning(
                "no alert webhook configured (ALERT_WEBHOOK_URL or AlertWebhookParameter): "
                "alerts are logged, not posted"
            )
    alerts = AlertService(
        rules_from_file(settings.alert_rules_file),
        bars,
        CooldownTable(boto3.client("dynamodb"), settings.alert_table),
        webhook,
        lambda symbol, interval: settings.site_url + chart_key(symbol, interval),
    )
    return builder, alerts


def _report(report: AlertReport) -> None:
    metrics.add_metric("AlertsSent", MetricUnit.Count, len(report.sent))
    metrics.add_metric("AlertsFailed", MetricUnit.Count, len(report.failed))
    metrics.add_metric("AlertsCoolingDown", MetricUnit.Count, len(report.cooling))
    for alert in report.sent:
        logger.info(
            "alert sent", extra={"rule": alert.rule, "symbol": alert.symbol, "price": str(alert.price)}
        )
    for alert, detail in report.failed:
        logger.error(
            "alert not delivered", extra={"rule": alert.rule, "symbol": alert.symbol, "detail": detail}
        )
    for alert in report.unposted:
        logger.info(
            "alert not posted (no webhook)",
            extra={"rule": alert.rule, "symbol": alert.symbol, "price": str(alert.price)},
        )


def changed_series(event: DynamoDBStreamEvent) -> set[tuple[str, str]]:
    """(symbol, interval) of every new image; anything that is not a valid bar key is skipped and logged."""
    series = set()
    for record in event.records:
        image = record.dynamodb.raw_event.get("NewImage") if record.dynamodb else None
        if not image:
            continue
        symbol = image.get("symbol", {}).get("S")
        interval = image.get("interval", {}).get("S")
        try:
            validate_symbol(symbol)
        except InvalidTick:
            logger.warning("skipping a record that is not a bar", extra={"event_id": record.event_id})
            continue
        if interval in INTERVAL_SECONDS:
            series.add((str(symbol), str(interval)))
    return series


def is_sweep(event: dict[str, Any]) -> bool:
    """EventBridge's scheduled event, as the template's Sweep rule sends it."""
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def event_time(event: dict[str, Any]) -> int:
    """The event's own time, so the cadence is the same in a replay as live.

    The schedule's `time`; for a stream batch, its newest record's creation time (epoch seconds).
    A time missing or past what the page can print is replaced by this clock's.
    """
    if is_sweep(event):
        try:
            when = datetime.fromisoformat(str(event.get("time")).replace("Z", "+00:00"))
        except ValueError:
            return int(time.time())
        return _plausible((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
    created = []
    for record in event.get("Records", []):
        stream = record.get("dynamodb") if isinstance(record, dict) else None
        if isinstance(stream, dict) and isinstance(stream.get("ApproximateCreationDateTime"), int | float):
            created.append(float(stream["ApproximateCreationDateTime"]))
    return _plausible(max(created)) if created else int(time.time())


def _plausible(epoch_s: float) -> int:
    return int(epoch_s) if 0 <= epoch_s <= LAST_SECOND else int(time.time())


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    builder, alerts = _environment()
    sweep = is_sweep(event)
    if not sweep and not isinstance(event.get("Records"), list):
        logger.warning("not a bars stream batch nor the sweep: ignored", extra={"keys": sorted(event)[:20]})
        metrics.add_metric("EventsIgnored", MetricUnit.Count, 1)
        return {"batchItemFailures": []}
    series = set() if sweep else changed_series(DynamoDBStreamEvent(event))

    def out_of_time() -> bool:
        return bool(context.get_remaining_time_in_millis() < TIME_KEPT_MS)

    rebuilt = (
        builder.rebuild(series, event_time(event), out_of_time=out_of_time)
        if series or sweep
        else Rebuilt(0, {})
    )
    drawn = rebuilt.drawn
    metrics.add_metric("ChartsRendered", MetricUnit.Count, drawn)
    metrics.add_metric("ChartsFailed", MetricUnit.Count, len(rebuilt.failed))
    metrics.add_metric("ChartsWaiting", MetricUnit.Count, rebuilt.waiting)
    for problem in rebuilt.manifest_problems[:MANIFEST_PROBLEMS_LOGGED]:
        # Rewritten without it: each symbol left out returns with its next change.
        logger.error("manifest.json not fully readable", extra={"problem": problem})
    for (symbol, interval), reason in sorted(rebuilt.failed.items()):
        # Skipped, not retried: the same bars would fail the same way and block the stream.
        logger.error("chart not drawn", extra={"symbol": symbol, "interval": interval, "reason": reason})
    # After the charts, so that an alert's link shows the move.
    if alerts is not None and series:
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - ALERTS_STOP_BEFORE_S
        _report(alerts.check(series, int(time.time() * 1000), deadline))
    logger.info(
        "charts",
        extra={
            "trigger": "sweep" if sweep else "stream",
            "records": len(event.get("Records", [])),
            "series": len(series),
            "charts": drawn,
            "waiting": rebuilt.waiting,
        },
    )
    return {"batchItemFailures": []}
