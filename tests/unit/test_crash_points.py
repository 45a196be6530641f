"""A crash at any write of a run, then Lambda's redelivery, gives the bars and S3 rows of no crash.

The writes of a run (ledger and bar puts, S3 row objects, quarantine puts) are counted; for every k the
process is killed at the k-th write, losing what a killed process loses (the window's state in
memory), and the runner resumes from its last checkpoint: the start of the window that was not
finished. Windowed and window-0 mappings alike; the oracle is the pandas reference.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from functions.aggregator.logic import RawRecord, WindowState
from functions.aggregator.service import Aggregator, AggregatorConfig, item_failures
from market.bars import DEFAULT_INTERVALS
from market.kpl_records import AggregateBuilder
from market.ticks import Tick, encode_tick
from tests.support.memory_stores import MemoryDataLake, MemoryLedger, ProcessKilled, WriteCounter
from tickstream.demo.bars_reference import ReferenceBar, ReferenceTick, public_values, reference_bars

BASE_MS = 1_795_000_020_000  # 00:47:00 on a day: windows cross a 5m and a 1h boundary below
SHARD = "shardId-000000000000"
ARRIVAL_MS = BASE_MS + 10 * 60_000  # after every tick's event time
CONFIG = AggregatorConfig(DEFAULT_INTERVALS, 60_000)


def _dataset() -> tuple[list[list[RawRecord]], dict[tuple[str, str, int], ReferenceBar]]:
    """Three windows of two batches; two symbols over seven minutes, one poison record."""
    windows: list[list[RawRecord]] = []
    reference: list[ReferenceTick] = []
    sequence = 100
    n = 0
    for window in range(3):
        records = []
        for batch in range(2):
            builder = AggregateBuilder(1024 * 1024)
            ticks = []
            for i in range(6):
                symbol = ("AAA", "BBB")[i % 2]
                ts = BASE_MS + (window * 2 + batch) * 70_000 + i * 1000
                tick = Tick(symbol, Decimal(100 + n % 7) / 4, Decimal(1 + n % 3), ts, f"t{n}")
                n += 1
                ticks.append(tick)
                builder.try_add(symbol, encode_tick(tick))
            sequence += 10
            records.append(RawRecord(SHARD, str(sequence), ARRIVAL_MS, "k", builder.build()))
            reference += [(t.symbol, t.price, t.size, t.ts_ms, sequence, s) for s, t in enumerate(ticks)]
        sequence += 1
        records.append(RawRecord(SHARD, str(sequence), ARRIVAL_MS, "k", b"{poison"))
        windows.append(records)
    return windows, reference_bars(reference, DEFAULT_INTERVALS)


def _run(
    windows: list[list[RawRecord]], windowed: bool, counter: WriteCounter
) -> tuple[MemoryLedger, MemoryDataLake]:
    """Delivers the windows as the runner does, restarting from the checkpoint after a kill."""
    table, lake = MemoryLedger(counter), MemoryDataLake(counter)
    done = 0  # the checkpoint: windows finished (window 0: batches finished)
    units = windows if windowed else [[r] for w in windows for r in w]
    while done < len(units):
        aggregator = Aggregator(
            table, table.projections, lake, AggregatorConfig(DEFAULT_INTERVALS, 60_000)
        )  # a cold start
        try:
            for unit in units[done:]:
                state = WindowState()
                for record in unit:
                    aggregator.take(SHARD, [record], state)
                assert aggregator.flush(SHARD, state).failed_minutes == []
                done += 1
        except ProcessKilled:
            continue
    return table, lake


@pytest.mark.parametrize("windowed", [True, False], ids=["tumbling-window", "window-0"])
def test_a_kill_at_every_write_then_redelivery_gives_the_bars_of_no_kill(windowed: bool) -> None:
    windows, expected = _dataset()
    counter = WriteCounter()
    _run(windows, windowed, counter)
    writes = counter.writes
    assert writes > 20
    for k in range(writes):
        table, lake = _run(windows, windowed, WriteCounter(kill_at=k))
        stored = {
            key: public_values(b.acc) for key, b in table.projections.items.items() if b.acc is not None
        }
        assert stored == expected, f"killed at write {k} of {writes}"
        rows = lake.latest_rows()
        assert {
            key: (r["open"], r["high"], r["low"], r["close"], r["trades"]) for key, r in rows.items()
        } == {key: (v[0], v[1], v[2], v[3], v[5]) for key, v in expected.items()}, (
            f"S3 rows after a kill at write {k} of {writes}"
        )
        versions = {key: b.version for key, b in table.projections.items.items()}
        assert {key: r["version"] for key, r in rows.items()} == versions, f"S3 versions, kill at {k}"
        assert len(lake.quarantined) == 3


def test_a_full_replay_writes_the_longer_bars_and_rows_a_store_lacks() -> None:
    """A store where only the 1m bars landed (as an older version's crash left it) is healed by
    reading the stream again from the start: every redelivered minute is folded once more."""
    windows, expected = _dataset()
    table, lake = MemoryLedger(), MemoryDataLake()
    only_minutes = Aggregator(table, table.projections, lake, AggregatorConfig(("1m",), 60_000))
    for window in windows:
        state = WindowState()
        only_minutes.take(SHARD, window, state)
        only_minutes.flush(SHARD, state)
    assert {key[1] for key in table.items} == {"1m"}
    replay = Aggregator(table, table.projections, lake, AggregatorConfig(DEFAULT_INTERVALS, 60_000))
    for window in windows:
        state = WindowState()
        replay.take(SHARD, window, state)
        replay.flush(SHARD, state)
    stored = {key: public_values(b.acc) for key, b in table.projections.items.items() if b.acc is not None}
    assert stored == expected
    assert lake.latest_rows().keys() == expected.keys()


def test_a_final_invoke_retried_with_the_state_before_it_gives_the_bars_of_no_kill() -> None:
    """Lambda retries a failed final invoke of a window with the state the invoke before it
    returned: minutes that state calls absent may have been written by the killed attempt."""
    windows, expected = _dataset()
    config = AggregatorConfig(DEFAULT_INTERVALS, 60_000)

    def first_batches(table: MemoryLedger, lake: MemoryDataLake, window: list[RawRecord]) -> dict[str, Any]:
        state = WindowState()
        for record in window[:-1]:
            Aggregator(table, table.projections, lake, config).take(SHARD, [record], state)
        return state.to_json()

    counter = WriteCounter()
    table, lake = MemoryLedger(counter), MemoryDataLake(counter)
    for window in windows:
        state = WindowState.from_json(first_batches(table, lake, window))
        aggregator = Aggregator(table, table.projections, lake, config)
        aggregator.take(SHARD, window[-1:], state)
        aggregator.flush(SHARD, state)
    writes = counter.writes
    for k in range(writes):
        counter = WriteCounter(kill_at=k)
        table, lake = MemoryLedger(counter), MemoryDataLake(counter)
        for window in windows:
            before_final = first_batches(table, lake, window)
            while True:
                state = WindowState.from_json(before_final)  # what Lambda hands the final invoke
                aggregator = Aggregator(table, table.projections, lake, config)
                try:
                    aggregator.take(SHARD, window[-1:], state)
                    assert aggregator.flush(SHARD, state).failed_minutes == []
                except ProcessKilled:
                    continue
                break
        projected = table.projections.items
        stored = {key: public_values(b.acc) for key, b in projected.items() if b.acc is not None}
        assert stored == expected, f"final invoke killed at write {k} of {writes}"
        rows = lake.latest_rows()
        assert {key: r["trades"] for key, r in rows.items()} == {key: v[5] for key, v in expected.items()}


def _handle_window0(aggregator: Aggregator, records: list[RawRecord]) -> None:
    """One batch as a window-0 mapping handles it: the service names the record to retry from
    (item_failures), and Lambda retries from there to the same last record."""
    while records:
        state = WindowState()
        aggregator.take(SHARD, records, state)
        failed = item_failures(aggregator.flush(SHARD, state), state, windowed=False)
        if not failed:
            return
        records = [r for r in records if r.sequence >= int(failed[0])]


def test_a_batch_retried_from_its_first_failed_record_keeps_the_rows_written_before_it() -> None:
    """The retry ends at the same last record, so its S3 objects carry the same window position
    as the first attempt's; the rows that attempt wrote for earlier records must not be replaced."""
    windows, expected = _dataset()
    clean = MemoryLedger()
    for window in windows:
        _handle_window0(Aggregator(clean, clean.projections, MemoryDataLake(), CONFIG), window)
    for k in range(clean.puts):
        table, lake = MemoryLedger(), MemoryDataLake()
        table.fail_after = k
        aggregator = Aggregator(table, table.projections, lake, CONFIG)
        for window in windows:
            _handle_window0(aggregator, window)
        stored = {
            key: public_values(b.acc) for key, b in table.projections.items.items() if b.acc is not None
        }
        assert stored == expected, f"ledger put {k} failed"
        rows = lake.latest_rows()
        assert {key: r["trades"] for key, r in rows.items()} == {key: v[5] for key, v in expected.items()}, (
            f"S3 rows after ledger put {k} failed"
        )
