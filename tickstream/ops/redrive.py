"""`tickstream redrive`: the ticks of batches Lambda gave up on, brought into the bars once.

For a Kinesis or DynamoDB Streams source, Lambda's OnFailure destination receives a record of
the batch, not the batch: the shard and the first and last sequence numbers (AWS Lambda
developer guide, "Retaining discarded batches for a Kinesis event source"). The records stay in
the stream until its retention ends, so a redrive reads that range again and hands it to the
aggregator's redrive path, which takes what the bars lack by tick id (see
functions.aggregator.logic.accumulate). A message is deleted only once its range is in the bars;
a failed one stays in the queue for the next run. Batches of the chart builder (bars stream)
are recovered by drawing every chart again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.aggregator.logic import RawRecord
from functions.aggregator.service import Aggregator
from stores.shard_reader import ShardReader, StreamReadError

# ReceiveMessage returns at most 10 messages per call (Amazon SQS API reference, MaxNumberOfMessages).
MAX_MESSAGES_PER_RECEIVE = 10
# Long enough to read a range and write its bars; a message not deleted by then shows again later.
VISIBILITY_TIMEOUT_S = 900


class RedriveError(RuntimeError):
    """The dead-letter queue could not be read or acknowledged."""


@dataclass(frozen=True)
class DeadLetter:
    receipt: str
    body: dict[str, Any]


class DeadLetterQueue:
    """The OnFailure queue: the only code of the redrive that talks to SQS."""

    def __init__(self, client: Any, url: str) -> None:
        self._client = client
        self.url = url

    def messages(self) -> Iterator[DeadLetter]:
        """Every message visible now, each once: those not deleted stay hidden for the visibility timeout."""
        while True:
            try:
                answer = self._client.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=MAX_MESSAGES_PER_RECEIVE,
                    VisibilityTimeout=VISIBILITY_TIMEOUT_S,
                    WaitTimeSeconds=0,
                )
            except (ClientError, BotoCoreError) as exc:
                raise RedriveError(f"reading {self.url}: {exc}") from exc
            received = answer.get("Messages", [])
            if not received:
                return
            for message in received:
                try:
                    body = json.loads(message["Body"])
                except ValueError:
                    body = {}
                yield DeadLetter(message["ReceiptHandle"], body if isinstance(body, dict) else {})

    def delete(self, letter: DeadLetter) -> None:
        try:
            self._client.delete_message(QueueUrl=self.url, ReceiptHandle=letter.receipt)
        except (ClientError, BotoCoreError) as exc:
            raise RedriveError(f"deleting a message of {self.url}: {exc}") from exc


@dataclass(frozen=True)
class DiscardedRange:
    shard_id: str
    first: str
    last: str

    def __str__(self) -> str:
        return f"{self.shard_id} {self.first}..{self.last}"


@dataclass
class RedriveSummary:
    ranges: int = 0
    records: int = 0
    recovered: int = 0
    already_held: int = 0
    unknowable: int = 0
    rejected: int = 0
    chart_batches: int = 0
    charts_drawn: int = 0
    left: list[str] = field(default_factory=list)  # messages kept in the queue, with the reason


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def discarded_range(body: dict[str, Any], stream_arn: str) -> DiscardedRange | None:
    """The tick stream's range a message names; None for any other message."""
    info = body.get("KinesisBatchInfo")
    if not isinstance(info, dict) or info.get("streamArn") != stream_arn:
        return None
    try:
        return DiscardedRange(
            str(info["shardId"]), str(info["startSequenceNumber"]), str(info["endSequenceNumber"])
        )
    except KeyError:
        return None


def redrive(
    queue: DeadLetterQueue,
    reader: ShardReader,
    aggregator: Aggregator,
    stream_arn: str,
    bars_stream_arn: str,
    draw_charts: Callable[[], int],
    report: Callable[[str], None],
) -> RedriveSummary:
    summary = RedriveSummary()
    chart_letters: list[DeadLetter] = []
    for letter in queue.messages():
        batch = letter.body.get("DDBStreamBatchInfo")
        if isinstance(batch, dict) and batch.get("streamArn") == bars_stream_arn:
            chart_letters.append(letter)
            continue
        discarded = discarded_range(letter.body, stream_arn)
        if discarded is None:
            summary.left.append("a message that names no range of the tick stream")
            continue
        summary.ranges += 1
        try:
            records = reader.read_range(discarded.shard_id, discarded.first, discarded.last)
        except StreamReadError as exc:
            summary.left.append(f"{discarded}: {exc}")
            continue
        raw = [
            RawRecord(
                r.shard_id, r.sequence_number, int(r.arrival.timestamp() * 1000), r.partition_key, r.data
            )
            for r in records
        ]
        taken, flushed = aggregator.redrive(discarded.shard_id, raw)
        if flushed.failed_minutes:
            summary.left.append(f"{discarded}: bars not written, run the redrive again")
            continue
        queue.delete(letter)
        counts = taken.counts
        rejected = sum(taken.rejected.values())
        summary.records += len(records)
        summary.recovered += counts.taken
        summary.already_held += counts.duplicates
        summary.unknowable += counts.unknowable
        summary.rejected += rejected
        report(
            f"{discarded}: {len(records)} records, {counts.taken} ticks recovered, "
            f"{counts.duplicates} already in the bars, {counts.unknowable} unknowable, {rejected} rejected"
        )
    if chart_letters:
        summary.charts_drawn = draw_charts()
        for letter in chart_letters:
            queue.delete(letter)
        summary.chart_batches = len(chart_letters)
    return summary
