"""Turns encoded ticks into Kinesis records and PutRecords requests, within Kinesis's limits.

Pure: no clock of its own and no AWS calls, so the rules are unit-testable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from market.kpl_records import DEFAULT_MAX_AGGREGATE_BYTES, AggregateBuilder
from producer.shard_map import ShardMap

# Kinesis PutRecords limits (Kinesis API reference, PutRecords): 500 records per call, 5 MiB
# per call and 1 MiB per record, counting data plus partition key.
MAX_RECORDS_PER_PUT = 500
MAX_BYTES_PER_PUT = 5 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One Kinesis record: an aggregate of `tick_count` ticks (or one plain tick) meant for `shard_id`."""

    shard_id: str
    partition_key: str
    explicit_hash_key: str | None
    data: bytes
    tick_count: int

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


class ShardAggregators:
    """One KPL aggregate per open shard, so each record lands whole on the shard its keys hash to."""

    def __init__(self, shard_map: ShardMap, max_bytes: int = DEFAULT_MAX_AGGREGATE_BYTES) -> None:
        if not 0 < max_bytes <= MAX_BYTES_PER_RECORD:
            raise ValueError(f"aggregate size must be 1..{MAX_BYTES_PER_RECORD} bytes")
        self.shard_map = shard_map
        self._max_bytes = max_bytes
        self._open: dict[str, tuple[AggregateBuilder, float]] = {}

    def add(self, partition_key: str, data: bytes, now: float) -> OutgoingRecord | None:
        """Adds one user record; returns the shard's previous aggregate when this one did not fit."""
        shard_id = self.shard_map.shard_for(partition_key).shard_id
        entry = self._open.get(shard_id)
        if entry is None:
            entry = self._open[shard_id] = (AggregateBuilder(self._max_bytes), now)
        if entry[0].try_add(partition_key, data):
            return None
        full = self._finish(shard_id)
        fresh = AggregateBuilder(self._max_bytes)
        fresh.try_add(partition_key, data)
        self._open[shard_id] = (fresh, now)
        return full

    def due(self, now: float, linger_s: float) -> list[OutgoingRecord]:
        """Aggregates opened at least `linger_s` ago: they go out even when not full."""
        return [
            self._finish(shard_id)
            for shard_id, (_, opened) in list(self._open.items())
            if now - opened >= linger_s
        ]

    def drain(self) -> list[OutgoingRecord]:
        return [self._finish(shard_id) for shard_id in list(self._open)]

    def _finish(self, shard_id: str) -> OutgoingRecord:
        builder, _ = self._open.pop(shard_id)
        start = self.shard_map.by_id[shard_id].starting_hash_key
        return OutgoingRecord(shard_id, builder.partition_key, str(start), builder.build(), len(builder))


def plain_record(shard_map: ShardMap, partition_key: str, data: bytes) -> OutgoingRecord:
    """A non-aggregated record, routed by Kinesis from its partition key alone."""
    return OutgoingRecord(shard_map.shard_for(partition_key).shard_id, partition_key, None, data, 1)


def put_requests(records: Iterable[OutgoingRecord]) -> Iterator[list[OutgoingRecord]]:
    """Groups records into PutRecords calls of at most 500 records and 5 MiB."""
    batch: list[OutgoingRecord] = []
    size = 0
    for record in records:
        if record.size > MAX_BYTES_PER_RECORD:
            raise ValueError(f"a record of {record.size} bytes exceeds Kinesis's 1 MiB limit")
        if batch and (len(batch) == MAX_RECORDS_PER_PUT or size + record.size > MAX_BYTES_PER_PUT):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += record.size
    if batch:
        yield batch
