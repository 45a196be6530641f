"""What Lambda sends and what it makes of the answer, for Kinesis and DynamoDB Streams event
source mappings.

Shapes follow the Lambda developer guide ("Using Lambda with Kinesis" and "Using Lambda with
DynamoDB": example events, tumbling windows, partial batch responses, on-failure
destinations). Where the guide is silent, the choice is written beside the code and tested.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A stream record: for Kinesis its data; for DynamoDB Streams the record's JSON as Lambda sends it."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival: float  # approximateArrivalTimestamp / ApproximateCreationDateTime, epoch seconds

    @property
    def sequence(self) -> int:
        """Sequence numbers compare as integers, never as strings (moto's are short)."""
        return int(self.sequence_number)


@dataclass(frozen=True)
class FunctionConfig:
    """What the runner needs of a function to invoke it, as GetFunctionConfiguration gives it."""

    name: str
    arn: str
    handler: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]


@dataclass(frozen=True)
class Mapping:
    """An event source mapping as the Lambda API describes it, with its function's settings."""

    uuid: str
    function: FunctionConfig
    source_arn: str
    region: str
    starting_position: str
    batch_size: int
    batching_window_s: int
    tumbling_window_s: int
    report_item_failures: bool
    bisect: bool
    max_retries: int  # -1: until the record expires
    max_record_age_s: int  # -1: never
    destination_arn: str | None

    @property
    def from_dynamodb(self) -> bool:
        return ":dynamodb:" in self.source_arn


def kinesis_event(mapping: Mapping, records: Sequence[SourceRecord]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64.b64encode(r.data).decode(),
                    "approximateArrivalTimestamp": r.arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{r.shard_id}:{r.sequence_number}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{_account(mapping)}:role/{mapping.function.name}-role",
                "awsRegion": mapping.region,
                "eventSourceARN": mapping.source_arn,
            }
            for r in records
        ]
    }


def dynamodb_event(mapping: Mapping, records: Sequence[SourceRecord]) -> dict[str, Any]:
    return {"Records": [{**json.loads(r.data), "eventSourceARN": mapping.source_arn} for r in records]}


def batch_event(mapping: Mapping, records: Sequence[SourceRecord]) -> dict[str, Any]:
    return dynamodb_event(mapping, records) if mapping.from_dynamodb else kinesis_event(mapping, records)


def window_event(
    mapping: Mapping,
    shard_id: str,
    records: Sequence[SourceRecord],
    window_start: int,
    state: dict[str, Any],
    final: bool,
    terminated_early: bool,
) -> dict[str, Any]:
    event = batch_event(mapping, records)
    event.update(
        {
            "window": {
                "start": iso_seconds(window_start),
                "end": iso_seconds(window_start + mapping.tumbling_window_s),
            },
            "state": state,
            "shardId": shard_id,
            "eventSourceARN": mapping.source_arn,
            "isFinalInvokeForWindow": final,
            "isWindowTerminatedEarly": terminated_early,
        }
    )
    return event


class Outcome(Enum):
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILURE = "failure"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    failed_from: int | None = None  # index of the first record to retry, for PARTIAL
    state: dict[str, Any] | None = None
    reason: str = ""


def judge(
    mapping: Mapping,
    records: Sequence[SourceRecord],
    response: Any,
    error: str | None,
    windowed: bool,
) -> Verdict:
    """Lambda's reading of an invocation's result."""
    if error is not None:
        return Verdict(Outcome.FAILURE, reason=error)
    state: dict[str, Any] | None = None
    if windowed:
        # "If the response does not contain a state property, Lambda considers this a failed invocation."
        if not isinstance(response, dict) or not isinstance(response.get("state"), dict):
            return Verdict(Outcome.FAILURE, reason="tumbling-window response without a state object")
        state = response["state"]
    if not mapping.report_item_failures:
        return Verdict(Outcome.SUCCESS, state=state)
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if not failures:  # null or empty list, null or empty response: complete success
        return Verdict(Outcome.SUCCESS, state=state)
    index_of = {r.sequence_number: i for i, r in enumerate(records)}
    indexes = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in index_of:
            # Empty, null or unknown itemIdentifier: Lambda treats the batch as a complete failure.
            return Verdict(Outcome.FAILURE, reason=f"invalid itemIdentifier {identifier!r}")
        indexes.append(index_of[identifier])
    return Verdict(Outcome.PARTIAL, failed_from=min(indexes), state=state)


def on_failure_message(
    mapping: Mapping,
    shard_id: str,
    records: Sequence[SourceRecord],
    condition: str,
    invoke_count: int,
    function_error: str | None,
    now: float,
) -> dict[str, Any]:
    """The metadata record Lambda sends to an OnFailure destination for discarded Kinesis records."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error is not None:
        response_context["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": mapping.function.arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response_context,
        "version": "1.0",
        "timestamp": iso_millis(now),
        ("DDBStreamBatchInfo" if mapping.from_dynamodb else "KinesisBatchInfo"): {
            "shardId": shard_id,
            "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records[-1].sequence_number,
            "approximateArrivalOfFirstRecord": iso_millis(records[0].arrival),
            "approximateArrivalOfLastRecord": iso_millis(records[-1].arrival),
            "batchSize": len(records),
            "streamArn": mapping.source_arn,
        },
    }


def payload_size(record: SourceRecord) -> int:
    """Bytes a record adds to the invoke payload: its base64 data plus the event's fixed fields."""
    return (len(record.data) + 2) // 3 * 4 + len(record.partition_key) + 2 * len(record.sequence_number) + 420


def _account(mapping: Mapping) -> str:
    return mapping.function.arn.split(":")[4]


def iso_seconds(epoch_s: float) -> str:
    """The times of Lambda's and EventBridge's events: UTC, whole seconds."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(epoch_s: float) -> str:
    """The times of Lambda's invocation records: UTC, milliseconds."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
