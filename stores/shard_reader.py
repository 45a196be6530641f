"""Data access for reading a Kinesis stream shard by shard, for the CLI, the local runner and the demo."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import takewhile
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from market.kpl_records import decode_aggregate, is_aggregated

# GetRecords returns at most 10,000 records per call (Kinesis API reference, GetRecords Limit).
MAX_RECORDS_PER_GET = 10_000


class StreamReadError(RuntimeError):
    """Reading the stream failed; the message names the shard and Kinesis's error."""


@dataclass(frozen=True, slots=True)
class ShardInfo:
    shard_id: str
    parent_shard_id: str | None
    adjacent_parent_shard_id: str | None
    starting_hash_key: int
    ending_hash_key: int
    is_open: bool


@dataclass(frozen=True, slots=True)
class StreamRecord:
    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival: datetime


@dataclass(frozen=True, slots=True)
class UserRecordView:
    """One user record with its place in the stream: sub_sequence is None for a plain record."""

    shard_id: str
    sequence_number: int
    sub_sequence: int | None
    partition_key: str
    data: bytes


class ShardReader:
    def __init__(self, client: Any, stream_name: str) -> None:
        self._client = client
        self.stream_name = stream_name

    def shards(self) -> list[ShardInfo]:
        result: list[ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        while True:
            page = self._call("list_shards", "-", **kwargs)
            for s in page["Shards"]:
                result.append(
                    ShardInfo(
                        s["ShardId"],
                        s.get("ParentShardId"),
                        s.get("AdjacentParentShardId"),
                        int(s["HashKeyRange"]["StartingHashKey"]),
                        int(s["HashKeyRange"]["EndingHashKey"]),
                        "EndingSequenceNumber" not in s["SequenceNumberRange"],
                    )
                )
            if not page.get("NextToken"):
                return result
            kwargs = {"NextToken": page["NextToken"]}

    def read_shard(self, shard_id: str) -> Iterator[StreamRecord]:
        """Every record of the shard from TRIM_HORIZON up to the tip as it is now."""
        return self._read_from(shard_id, ShardIteratorType="TRIM_HORIZON")

    def read_range(self, shard_id: str, first: str, last: str) -> list[StreamRecord]:
        """The records from sequence number `first` to `last`, both included, as Lambda delivered them.

        Raises StreamReadError when the stream no longer holds `first` (its retention ended).
        """
        start = {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": first}
        end = int(last)
        records = list(takewhile(lambda r: int(r.sequence_number) <= end, self._read_from(shard_id, **start)))
        if not records or records[0].sequence_number != first:
            raise StreamReadError(
                f"{self.stream_name}/{shard_id} no longer holds record {first}: its retention has ended"
            )
        return records

    def _read_from(self, shard_id: str, **start: str) -> Iterator[StreamRecord]:
        """The shard's records from where `start` says, up to the tip as it is now, page by page."""
        iterator = self._call(
            "get_shard_iterator", shard_id, StreamName=self.stream_name, ShardId=shard_id, **start
        )["ShardIterator"]
        while iterator:
            page = self._call("get_records", shard_id, ShardIterator=iterator, Limit=MAX_RECORDS_PER_GET)
            for r in page["Records"]:
                yield StreamRecord(
                    shard_id,
                    r["SequenceNumber"],
                    r["PartitionKey"],
                    r["Data"],
                    r["ApproximateArrivalTimestamp"],
                )
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                return
            iterator = page.get("NextShardIterator")

    def _call(self, operation: str, shard_id: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StreamReadError(f"{operation} on {self.stream_name}/{shard_id}: {exc}") from exc


def user_records(record: StreamRecord) -> list[UserRecordView]:
    """The user records a stream record carries; a corrupt aggregate raises CorruptAggregate."""
    sequence = int(record.sequence_number)
    if not is_aggregated(record.data):
        return [UserRecordView(record.shard_id, sequence, None, record.partition_key, record.data)]
    return [
        UserRecordView(record.shard_id, sequence, u.sub_sequence, u.partition_key, u.data)
        for u in decode_aggregate(record.data)
    ]
