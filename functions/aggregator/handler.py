"""Lambda entry point of the aggregator: parse the event, call the service, shape the response.

With a tumbling window, partial bars travel in `state` and are written once, at the final
invoke of the window; without one, each batch is written as it comes.
"""

from __future__ import annotations

import os
import time
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.aggregator.data_lake import DataLake
from functions.aggregator.ledger import Ledger
from functions.aggregator.logic import RawRecord, WindowState
from functions.aggregator.service import Aggregator, AggregatorConfig, item_failures
from functions.aggregator.settings import AggregatorSettings
from stores.bars_table import BarsTable

logger = Logger(service="aggregator")
# The namespace comes from POWERTOOLS_METRICS_NAMESPACE, which the template sets per stack.
metrics = Metrics(service="aggregator")
tracer = Tracer(service="aggregator")
# Built at the first invocation and reused while the execution environment lives.
_built: Aggregator | None = None


def _environment() -> Aggregator:
    global _built  # noqa: PLW0603 - the cold-start cache Lambda reuses between invocations
    if _built is None:
        _built = _build(AggregatorSettings.from_environment(os.environ))
    return _built


def _build(settings: AggregatorSettings) -> Aggregator:
    dynamodb = boto3.client("dynamodb")
    return Aggregator(
        Ledger(dynamodb, settings.ledger_table),
        BarsTable(dynamodb, settings.bars_table),
        DataLake(boto3.client("s3"), settings.data_bucket),
        AggregatorConfig(settings.intervals, settings.late_after_ms),
    )


def raw_records(event: KinesisStreamEvent) -> list[RawRecord]:
    return [
        RawRecord(
            record.event_id.split(":", 1)[0],
            record.kinesis.sequence_number,
            int(record.kinesis.approximate_arrival_timestamp * 1000),
            record.kinesis.partition_key,
            record.kinesis.data_as_bytes(),
        )
        for record in event.records
    ]


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    aggregator = _environment()
    kinesis_event = KinesisStreamEvent(event)
    records = raw_records(kinesis_event)
    windowed = "window" in event
    shard_id = event.get("shardId") or (records[0].shard_id if records else "unknown")
    tracer.put_annotation("shard_id", shard_id)
    state = WindowState.from_json(event.get("state")) if windowed else WindowState()
    report = aggregator.take(shard_id, records, state)
    metrics.add_metric("TicksProcessed", MetricUnit.Count, report.counts.taken)
    metrics.add_metric("DuplicateTicksDropped", MetricUnit.Count, report.counts.duplicates)
    metrics.add_metric("RedeliveredTicksSkipped", MetricUnit.Count, report.counts.redelivered)
    metrics.add_metric("LateTicks", MetricUnit.Count, report.counts.late)
    metrics.add_metric("TicksRejected", MetricUnit.Count, sum(report.rejected.values()))
    for reason, count in report.rejected.items():
        with single_metric(
            name="TicksRejectedByReason",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as by_reason:
            by_reason.add_dimension("reason", reason)
    if records:
        # Lambda's IteratorAge: how old the batch's last record was when it was processed.
        age_ms = max(0, int(time.time() * 1000) - records[-1].arrival_ms)
        metrics.add_metric("IteratorAgeMilliseconds", MetricUnit.Milliseconds, age_ms)
    response: dict[str, Any] = {"batchItemFailures": []}
    final = not windowed or bool(event.get("isFinalInvokeForWindow"))
    if final:
        flushed = aggregator.flush(shard_id, state)
        metrics.add_metric("BarsWritten", MetricUnit.Count, flushed.bars_written)
        beyond = sum(flushed.ids_beyond_cap.values())
        metrics.add_metric("TickIdsBeyondCap", MetricUnit.Count, beyond)
        if beyond:
            logger.warning(
                "tick ids beyond the per-bar cap: later copies of these ticks would be counted again",
                extra={
                    "ids_beyond_cap": beyond,
                    "minutes": [f"{s} {m}" for s, m in sorted(flushed.ids_beyond_cap)[:10]],
                },
            )
        failed = item_failures(flushed, state, windowed)
        response["batchItemFailures"] = [{"itemIdentifier": sequence} for sequence in failed]
        state = WindowState()
    logger.info(
        "batch",
        extra={
            "shard_id": shard_id,
            "records": len(records),
            "first_sequence": records[0].sequence_number if records else None,
            "last_sequence": records[-1].sequence_number if records else None,
            "window": event.get("window"),
            "final": final,
            "ticks": report.ticks,
            "taken": report.counts.taken,
            "duplicates": report.counts.duplicates,
            "redelivered": report.counts.redelivered,
            "rejected": sum(report.rejected.values()),
        },
    )
    if windowed:
        response["state"] = state.to_json()
    return response
