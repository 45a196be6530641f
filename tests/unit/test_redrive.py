"""A redrive of records Lambda discarded brings exactly their ticks into the bars.

The records of a batch given up on sit below the watermarks that later records of the same
minutes left in the 1m bars, so a plain replay skips them; the redrive takes each tick whose
id the bar does not hold, once, whatever crashes in between. The oracle is the pandas reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import pytest

from functions.aggregator.logic import MAX_IDS_PER_BAR, RawRecord, WindowState
from functions.aggregator.service import Aggregator, AggregatorConfig
from market.bars import DEFAULT_INTERVALS
from market.kpl_records import AggregateBuilder
from market.ticks import Tick, encode_tick
from stores.shard_reader import ShardReader, StreamReadError, StreamRecord
from tests.support.memory_stores import MemoryDataLake, MemoryLedger, ProcessKilled, WriteCounter
from tickstream.demo.bars_reference import ReferenceBar, ReferenceTick, public_values, reference_bars
from tickstream.ops.redrive import DeadLetter, DeadLetterQueue, redrive

BASE_MS = 1_795_000_020_000
SHARD = "shardId-000000000000"
ARRIVAL_MS = BASE_MS + 10 * 60_000
ARRIVAL = datetime.fromtimestamp(ARRIVAL_MS / 1000, UTC)


def _records(with_ids: bool = True) -> tuple[list[RawRecord], list[ReferenceTick]]:
    """Nine records, three ticks each, over three minutes: every record shares minutes with others."""
    records, reference = [], []
    for r in range(9):
        builder = AggregateBuilder(1024 * 1024)
        sequence = 1000 + r * 10
        for s in range(3):
            n = r * 3 + s
            tick = Tick(
                ("AAA", "BBB")[n % 2],
                Decimal(100 + n % 5),
                Decimal(1 + n % 4),
                BASE_MS + n * 6_000,
                f"t{n}" if with_ids else None,
            )
            builder.try_add(tick.symbol, encode_tick(tick))
            reference.append((tick.symbol, tick.price, tick.size, tick.ts_ms, sequence, s))
        records.append(RawRecord(SHARD, str(sequence), ARRIVAL_MS, "k", builder.build()))
    return records, reference


def _aggregator(table: MemoryLedger, lake: MemoryDataLake) -> Aggregator:
    return Aggregator(table, table.projections, lake, AggregatorConfig(DEFAULT_INTERVALS, 60_000))


def _consume_discarding(
    records: list[RawRecord], discarded: set[int], table: MemoryLedger, lake: MemoryDataLake
) -> None:
    """Window 0: each batch written as it comes; the discarded ones never reach the function."""
    for index, record in enumerate(records):
        if index in discarded:
            continue
        state = WindowState()
        aggregator = _aggregator(table, lake)
        aggregator.take(SHARD, [record], state)
        assert aggregator.flush(SHARD, state).failed_minutes == []


def _bars(table: MemoryLedger) -> dict[tuple[str, str, int], ReferenceBar]:
    return {key: public_values(b.acc) for key, b in table.projections.items.items() if b.acc is not None}


def test_a_replay_skips_a_discarded_record_and_a_redrive_brings_it_back_once() -> None:
    records, reference = _records()
    expected = reference_bars(reference, DEFAULT_INTERVALS)
    table, lake = MemoryLedger(), MemoryDataLake()
    _consume_discarding(records, {4}, table, lake)
    assert _bars(table) != expected

    replay = WindowState()
    assert _aggregator(table, lake).take(SHARD, [records[4]], replay).counts.taken == 0

    taken, flushed = _aggregator(table, lake).redrive(SHARD, [records[4]])
    assert (taken.counts.taken, taken.counts.unknowable, flushed.failed_minutes) == (3, 0, [])
    assert _bars(table) == expected
    again, _ = _aggregator(table, lake).redrive(SHARD, records)
    assert again.counts.taken == 0
    assert again.counts.duplicates == len(reference)
    assert _bars(table) == expected
    assert lake.latest_rows().keys() == expected.keys()


def test_a_kill_at_every_write_of_a_redrive_then_a_second_redrive_gives_the_reference() -> None:
    records, reference = _records()
    expected = reference_bars(reference, DEFAULT_INTERVALS)
    discarded = {1, 4, 5}
    lost = [records[i] for i in sorted(discarded)]
    counter = WriteCounter()
    table, lake = MemoryLedger(counter), MemoryDataLake(counter)
    _consume_discarding(records, discarded, table, lake)
    before = counter.writes
    _aggregator(table, lake).redrive(SHARD, lost)
    writes = counter.writes - before
    assert writes > 5
    for k in range(writes):
        counter = WriteCounter()
        table, lake = MemoryLedger(counter), MemoryDataLake(counter)
        _consume_discarding(records, discarded, table, lake)
        counter.kill_at = counter.writes + k
        with pytest.raises(ProcessKilled):
            _aggregator(table, lake).redrive(SHARD, lost)
        _aggregator(table, lake).redrive(SHARD, lost)
        assert _bars(table) == expected, f"killed at redrive write {k} of {writes}"
        rows = {
            key: (r["open"], r["high"], r["low"], r["close"], r["trades"])
            for key, r in lake.latest_rows().items()
        }
        assert rows == {key: (v[0], v[1], v[2], v[3], v[5]) for key, v in expected.items()}


def test_ticks_without_ids_below_the_watermark_are_left_out_and_counted() -> None:
    """Nothing says whether the bar holds them: counted as unknowable, never risked twice."""
    records, _ = _records(with_ids=False)
    table, lake = MemoryLedger(), MemoryDataLake()
    _consume_discarding(records, {4}, table, lake)
    before = _bars(table)
    taken, _ = _aggregator(table, lake).redrive(SHARD, [records[4]])
    assert (taken.counts.taken, taken.counts.unknowable) == (0, 3)
    assert _bars(table) == before


def test_a_discarded_last_record_is_above_every_watermark_and_taken_without_ids() -> None:
    records, reference = _records(with_ids=False)
    table, lake = MemoryLedger(), MemoryDataLake()
    _consume_discarding(records, {8}, table, lake)
    taken, _ = _aggregator(table, lake).redrive(SHARD, [records[8]])
    assert (taken.counts.taken, taken.counts.unknowable) == (3, 0)
    assert _bars(table) == reference_bars(reference, DEFAULT_INTERVALS)


def test_a_bar_whose_id_set_is_full_cannot_say_and_its_ticks_are_unknowable() -> None:
    records, _ = _records()
    table, lake = MemoryLedger(), MemoryDataLake()
    _consume_discarding(records, {4}, table, lake)
    for bar in table.items.values():
        if bar.interval == "1m":
            bar.id_hashes |= {i.to_bytes(8, "big") for i in range(MAX_IDS_PER_BAR)}
    taken, _ = _aggregator(table, lake).redrive(SHARD, [records[4]])
    assert (taken.counts.taken, taken.counts.unknowable) == (0, 3)


class _Queue:
    """The dead-letter queue's adapter, in memory: messages in, deletions recorded."""

    def __init__(self, bodies: list[dict[str, object]]) -> None:
        self.letters = [DeadLetter(str(n), body) for n, body in enumerate(bodies)]
        self.deleted: list[str] = []

    def messages(self) -> Iterator[DeadLetter]:
        yield from self.letters

    def delete(self, letter: DeadLetter) -> None:
        self.deleted.append(letter.receipt)


class _Reader:
    def __init__(self, records: list[RawRecord]) -> None:
        self.records = {r.sequence_number: r for r in records}

    def read_range(self, shard_id: str, first: str, last: str) -> list[StreamRecord]:
        if first not in self.records:
            raise StreamReadError(f"{shard_id} no longer holds record {first}")
        chosen = [r for r in self.records.values() if int(first) <= r.sequence <= int(last)]
        return [StreamRecord(r.shard_id, r.sequence_number, r.partition_key, r.data, ARRIVAL) for r in chosen]


def _kinesis_letter(first: str, last: str, stream: str = "arn:stream") -> dict[str, object]:
    return {
        "KinesisBatchInfo": {
            "shardId": SHARD,
            "startSequenceNumber": first,
            "endSequenceNumber": last,
            "streamArn": stream,
        }
    }


def test_only_ranges_in_the_bars_leave_the_queue_and_chart_batches_are_drawn_again() -> None:
    records, reference = _records()
    table, lake = MemoryLedger(), MemoryDataLake()
    _consume_discarding(records, {4}, table, lake)
    queue = _Queue(
        [
            _kinesis_letter(records[4].sequence_number, records[4].sequence_number),
            _kinesis_letter("1", "2"),  # trimmed from the stream
            _kinesis_letter("5", "6", stream="arn:another-stream"),
            {"requestContext": {"condition": "RetriesExhausted"}},
            {"DDBStreamBatchInfo": {"streamArn": "arn:bars-stream"}},
        ]
    )
    drawn: list[int] = []

    def draw() -> int:
        drawn.append(1)
        return 7

    summary = redrive(
        cast(DeadLetterQueue, queue),
        cast(ShardReader, _Reader(records)),
        _aggregator(table, lake),
        "arn:stream",
        "arn:bars-stream",
        draw,
        lambda line: None,
    )
    assert queue.deleted == ["0", "4"]
    assert (summary.ranges, summary.recovered, summary.chart_batches, summary.charts_drawn) == (2, 3, 1, 7)
    assert len(summary.left) == 3
    assert drawn == [1]
    assert "no longer holds record 1" in summary.left[0]
    assert _bars(table) == reference_bars(reference, DEFAULT_INTERVALS)
