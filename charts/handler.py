"""Lambda entry point of the chart builder, triggered by the bars table's stream (NEW_IMAGE).

A batch names the (symbol, interval) series whose bars changed; each is drawn once.
"""

from __future__ import annotations

import os
import time
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from charts.builder import ChartBuilder
from charts.settings import ChartSettings
from charts.site_bucket import SiteBucket
from consumers.aggregate.bars_table import BarsTable
from market.bars import INTERVAL_SECONDS
from market.ticks import InvalidTick, validate_symbol

logger = Logger(service="charts")
# The namespace comes from POWERTOOLS_METRICS_NAMESPACE, which the template sets per stack.
metrics = Metrics(service="charts")
tracer = Tracer(service="charts")
_builder: ChartBuilder | None = None


def _build() -> ChartBuilder:
    settings = ChartSettings.from_environment(os.environ)
    return ChartBuilder(
        BarsTable(boto3.client("dynamodb"), settings.bars_table),
        SiteBucket(boto3.client("s3"), settings.site_bucket),
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


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _builder  # noqa: PLW0603 - the cold-start cache Lambda reuses between invocations
    if _builder is None:
        _builder = _build()
    series = changed_series(DynamoDBStreamEvent(event))
    drawn = _builder.rebuild(series, int(time.time())) if series else 0
    metrics.add_metric("ChartsRendered", MetricUnit.Count, drawn)
    logger.info(
        "charts", extra={"records": len(event.get("Records", [])), "series": len(series), "charts": drawn}
    )
    return {"batchItemFailures": []}
