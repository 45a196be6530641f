"""Any batching, windowing, redelivery, crash or replay gives the bars of a pandas recomputation."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
from decimal import Decimal

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.aggregator.ledger import LedgerError
from functions.aggregator.logic import MAX_IDS_PER_BAR, RawRecord, WindowState, fold_children
from functions.aggregator.service import Aggregator, AggregatorConfig
from local_aws.runner.shard_processor import MAX_STATE_BYTES
from local_aws.stack import load_template
from market.bars import DEFAULT_INTERVALS, BarAccumulator, StoredBar, bucket_start
from market.kpl_records import AggregateBuilder
from market.ticks import Tick, encode_tick
from tests.support.memory_stores import MemoryDataLake, MemoryLedger
from tickstream.demo.bars_reference import ReferenceTick, public_values, reference_bars
from tickstream.settings import TEMPLATE_PATH

BASE_MS = 1_795_000_000_000
# Every record reaches the stream after the last tick's event time (tick_strategy's 3 hours).
ARRIVAL_MS = BASE_MS + 4 * 3_600_000
SHARD = "shardId-000000000000"
POISON = [
    b"{not json",
    b'{"symbol":"A/B","price":1,"ts":1}',
    b'{"symbol":"AAPL","price":-1,"ts":1}',
    b"\xff\xfe",
    # Records that parse inside a batch but not alone (a helper's attack on the msgspec batch):
    # bad UTF-8 in a field no tick reads, a 16-digit mantissa a double rounds to 8 decimals, and
    # nesting deeper than JSON parsers allow.
    b'{"symbol":"AAPL","price":1,"ts":1795000000000,"x":"\xff"}',
    b'{"symbol":"AAPL","price":9477255422360239e-9,"ts":1795000000000}',
    b'{"symbol":"AAPL","price":1,"ts":1795000000000,"x":' + b"[" * 1100 + b"]" * 1100 + b"}",
]

tick_strategy = st.builds(
    lambda symbol, cents, size, offset: (symbol, Decimal(cents) / 100, Decimal(size), BASE_MS + offset),
    st.sampled_from(["AAPL", "MSFT", "X.Y-Z"]),
    st.integers(min_value=1, max_value=50_000),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=3 * 3_600_000),
)


def cut(data: st.DataObject, items: list[object], max_parts: int) -> list[list[object]]:
    if not items:
        return []
    points = sorted(data.draw(st.sets(st.integers(1, max(1, len(items) - 1)), max_size=max_parts)))
    bounds = [0, *[p for p in points if p < len(items)], len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds) if a < b]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tick_strategy, min_size=1, max_size=120), st.data())
def test_any_delivery_gives_the_reference_bars(
    raw_ticks: list[tuple[str, Decimal, Decimal, int]], data: st.DataObject
) -> None:
    ticks = [Tick(s, p, z, ts, f"id-{i}") for i, (s, p, z, ts) in enumerate(raw_ticks)]
    # Some ticks are sent again later in another record, with the same id (a producer retry).
    resent = data.draw(st.lists(st.sampled_from(range(len(ticks))), max_size=10))
    payloads: list[bytes] = [encode_tick(t) for t in ticks] + [encode_tick(ticks[i]) for i in resent]
    for poison in data.draw(st.lists(st.sampled_from(POISON), max_size=4)):
        payloads.insert(data.draw(st.integers(0, len(payloads))), poison)

    # Group consecutive payloads into records: plain, or KPL aggregates of a few.
    records: list[RawRecord] = []
    reference: list[ReferenceTick] = []
    seen_ids: set[str] = set()
    sequence = 100
    for group in cut(data, list(payloads), 30):
        sequence += data.draw(st.integers(1, 1000))
        parts = [p for p in group if isinstance(p, bytes)]
        if len(parts) == 1 and data.draw(st.booleans()):
            records.append(RawRecord(SHARD, str(sequence), ARRIVAL_MS, "k", parts[0]))
            subs = [0]
        else:
            builder = AggregateBuilder(1024 * 1024)
            for part in parts:
                builder.try_add("k", part)
            records.append(RawRecord(SHARD, str(sequence), ARRIVAL_MS, "k", builder.build()))
            subs = list(range(len(parts)))
        for sub, part in zip(subs, parts, strict=True):
            if part in POISON:
                continue
            tick = next(t for t in ticks if encode_tick(t) == part)
            if tick.id not in seen_ids:
                seen_ids.add(tick.id or "")
                reference.append((tick.symbol, tick.price, tick.size, tick.ts_ms, sequence, sub))

    table, lake = MemoryLedger(), MemoryDataLake()
    aggregator = Aggregator(table, table.projections, lake, AggregatorConfig(DEFAULT_INTERVALS, 60_000))

    def deliver(record_list: list[RawRecord]) -> None:
        for window in cut(data, list(record_list), 5):
            state = WindowState()
            for batch in cut(data, window, 4):
                for _ in range(data.draw(st.integers(1, 2))):  # a retried batch arrives again
                    state = WindowState.from_json(state.to_json())  # as Lambda carries it
                    aggregator.take(SHARD, batch, state)  # type: ignore[arg-type]
            if data.draw(st.booleans()):
                table.fail_after = data.draw(st.integers(0, 6))  # crash between two writes
                with contextlib.suppress(LedgerError):  # reported or raised, the flush is retried
                    aggregator.flush(SHARD, state)
                table.fail_after = None
            assert aggregator.flush(SHARD, state).failed_minutes == []

    deliver(records)
    if data.draw(st.booleans()):
        deliver(records)  # replay from TRIM_HORIZON a day later

    expected = reference_bars(reference, DEFAULT_INTERVALS)
    stored = {key: public_values(b.acc) for key, b in table.projections.items.items() if b.acc is not None}
    assert stored == expected
    assert len(lake.quarantined) == sum(p in POISON for p in payloads)
    latest = lake.latest_rows()
    assert {k: (r["open"], r["close"], r["trades"]) for k, r in latest.items()} == {
        k: (v[0], v[3], v[5]) for k, v in expected.items()
    }
    assert {k: r["version"] for k, r in latest.items()} == {
        k: b.version for k, b in table.projections.items.items()
    }


def test_writes_per_window_are_the_bars_touched_whatever_the_tick_count() -> None:
    table, lake = MemoryLedger(), MemoryDataLake()
    aggregator = Aggregator(table, table.projections, lake, AggregatorConfig(DEFAULT_INTERVALS, 60_000))
    state = WindowState()
    records = [
        RawRecord(
            SHARD,
            str(1000 + i),
            BASE_MS,
            "k",
            encode_tick(Tick(sym, Decimal("10.5"), Decimal(1), BASE_MS + i, f"w{i}")),
        )
        for i, sym in enumerate(["AAPL", "MSFT"] * 5000)
    ]
    for start in range(0, len(records), 500):
        aggregator.take(SHARD, records[start : start + 500], state)
    report = aggregator.flush(SHARD, state)
    # 10,000 ticks of 2 symbols within one minute: 2 symbols x 4 intervals = 8 bars, 10 writes
    # (the two 1m bars' ledger items, then the 8 bars users read); in S3 one object per interval,
    # whatever the symbols; each minute's bookkeeping read once, not once per batch.
    assert table.bookkeeping_reads == 2
    assert table.puts == 2
    assert report.bars_written == len(table.projections.items) == 8
    assert table.counter.writes == 10
    assert len(lake.objects) == 4


def test_tick_ids_beyond_the_per_bar_cap_are_reported_not_silent() -> None:
    table, lake = MemoryLedger(), MemoryDataLake()
    aggregator = Aggregator(table, table.projections, lake, AggregatorConfig(("1m",), 60_000))

    def window(first: int, count: int) -> int:
        state = WindowState()
        records = [
            RawRecord(
                SHARD,
                str(first + i),
                BASE_MS,
                "k",
                encode_tick(Tick("CAP", Decimal(1), Decimal(1), BASE_MS + i % 1000, f"c{first + i}")),
            )
            for i in range(count)
        ]
        for start in range(0, count, 1000):
            aggregator.take(SHARD, records[start : start + 1000], state)
        return sum(aggregator.flush(SHARD, state).ids_beyond_cap.values())

    assert window(1, MAX_IDS_PER_BAR - 100) == 0
    # The bar has room for 100 more ids: of the next 300 new ones, 200 are not remembered.
    assert window(MAX_IDS_PER_BAR, 300) == 200
    assert window(MAX_IDS_PER_BAR + 300, 10) == 10


def test_a_1m_bar_remembers_each_tick_id_by_its_8_byte_blake2b() -> None:
    """The format of `_ids` in the bars already stored: another hash would miss their duplicates."""
    table, lake = MemoryLedger(), MemoryDataLake()
    aggregator = Aggregator(table, table.projections, lake, AggregatorConfig(("1m",), 60_000))
    ids = ["a", "p:1", "\u00e9t\u00e9", "x" * 128]
    state = WindowState()
    records = [
        RawRecord(
            SHARD, str(i + 1), BASE_MS, "k", encode_tick(Tick("ID", Decimal(1), Decimal(1), BASE_MS, tick_id))
        )
        for i, tick_id in enumerate(ids)
    ]
    aggregator.take(SHARD, records, state)
    aggregator.flush(SHARD, state)
    stored = table.get_bar("ID", "1m", bucket_start(BASE_MS, "1m"))
    assert stored.id_hashes == {hashlib.blake2b(i.encode(), digest_size=8).digest() for i in ids}


def test_a_fold_refused_by_one_from_an_interleaved_read_is_folded_again() -> None:
    """Two folds of one 5m bar whose reads of its 1m bars interleave can carry the same sum of
    versions and different bars; the refused writer reads again, so the 5m bar ends up holding
    every 1m bar's ticks, not the other writer's stale fold."""
    table, lake = MemoryLedger(), MemoryDataLake()
    aggregator = Aggregator(table, table.projections, lake, AggregatorConfig(("1m", "5m"), 60_000))
    five = bucket_start(BASE_MS, "5m") * 1000

    def window(first_sequence: int, *offsets_ms: int) -> None:
        state = WindowState()
        records = [
            RawRecord(
                SHARD,
                str(first_sequence + i),
                ARRIVAL_MS,
                "k",
                encode_tick(
                    Tick("AAPL", Decimal(10 + i), Decimal(1), five + offset, f"r{first_sequence + i}")
                ),
            )
            for i, offset in enumerate(offsets_ms)
        ]
        aggregator.take(SHARD, records, state)
        assert aggregator.flush(SHARD, state).failed_minutes == []

    window(1000, 0, 60_000)  # the 1m bars at 0 and 60 s, version 1 each; the 5m bar, version 2
    start = five // 1000
    bars = table.projections
    stale_second = copy.deepcopy(bars.items[("AAPL", "1m", start + 60)])
    # Another writer took a tick into the second minute and folded the 5m bar reading the first
    # minute before this writer's next window: its fold has versions 1 + 2 = 3.
    second = bars.items[("AAPL", "1m", start + 60)]
    assert second.acc is not None
    second.acc.merge(BarAccumulator.of_tick(Decimal(99), Decimal(1), (five + 61_000, 9, 0)))
    second.version = 2
    bars.items[("AAPL", "5m", start)] = fold_children(
        "AAPL", "5m", start, [bars.items[("AAPL", "1m", start)], second]
    )
    # This writer's fold reads the first minute after its own write (version 2) and the second
    # before the other writer's (version 1): 2 + 1 = 3 as well, refused.
    real_read = bars.bars_between
    reads: list[int] = []

    def interleaved(symbol: str, interval: str, first: int, last: int) -> list[StoredBar]:
        found = real_read(symbol, interval, first, last)
        if not reads:
            found = [b if b.start != start + 60 else stale_second for b in found]
        reads.append(sum(b.version for b in found))
        return found

    bars.bars_between = interleaved  # type: ignore[method-assign]
    window(2000, 1_000)
    folded = bars.items[("AAPL", "5m", start)]
    assert folded.acc is not None
    assert folded.acc.trades == 4
    assert folded.version == 4
    assert reads == [3, 4]


# DynamoDB's typical latency for a PutItem or Query from Lambda in the same region, a few ms.
REQUEST_S = 0.005


def test_the_fullest_window_a_final_invoke_writes_fits_the_aggregator_timeout() -> None:
    """Lambda ends a window whose state passes 1 MB, so that bounds what a final invoke writes.
    The costliest window (one tick in each minute, each minute in its own 5m, 1h and 1d bar as
    far as the calendar allows, as a backfill of sparse symbols gives) at REQUEST_S a request
    takes at most half the template's aggregator Timeout."""
    table, lake = MemoryLedger(), MemoryDataLake()
    aggregator = Aggregator(table, table.projections, lake, AggregatorConfig(DEFAULT_INTERVALS, 60_000))
    state = WindowState()
    sequence = 1000
    for _ in range(100):
        if len(orjson.dumps(state.to_json())) > MAX_STATE_BYTES:
            break
        records = []
        for _ in range(100):
            sequence += 1
            ts_ms = BASE_MS + sequence * 5 * 60_000  # every fifth minute: a 5m bar per minute
            tick = Tick(f"S{sequence % 50}", Decimal("12.34"), Decimal(7), ts_ms, f"f{sequence}")
            records.append(RawRecord(SHARD, str(sequence), ts_ms + 1000, "k", encode_tick(tick)))
        aggregator.take(SHARD, records, state)
    assert len(orjson.dumps(state.to_json())) > MAX_STATE_BYTES
    assert aggregator.flush(SHARD, state).failed_minutes == []
    requests = table.counter.writes + table.projections.queries + len(lake.objects)
    requests += -(-len(state.minutes) // 100) * 2  # the bookkeeping and bar reads, 100 keys a call
    timeout_s = load_template(TEMPLATE_PATH)["Resources"]["AggregatorFunction"]["Properties"]["Timeout"]
    assert len(state.minutes) > 2_000
    assert requests * REQUEST_S <= timeout_s / 2, (requests, timeout_s)
