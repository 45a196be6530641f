"""A day of the pipeline, simulated: the product's aggregator and chart builder on metered clients.

Ticks are generated as columns (numpy), not through the producer, at RATE ticks/s across the
symbols, with the synthetic market's model (Poisson arrivals, a weight per symbol, geometric
Brownian motion, log-normal sizes, stable ids). Every tick of the day is taken by the real
aggregator service (functions.aggregator.service.Aggregator, BarsTable, DataLake), so bars, id
sets, watermarks and bar rows, and with them every item size and request, are exact.

How the stream is cut, as the producer and Lambda cut it:
- Kinesis records: per shard (symbol partition keys over KINESIS_SHARDS even shards), a record opens with a
  tick and closes LINGER_MS later, as the producer's linger does; it arrives when it closes.
- Aggregator batches: per shard, the records that arrive within MaximumBatchingWindowInSeconds
  of the batch's first one (at most BatchSize records), never spanning two 60 s tumbling
  windows (by arrival); each window ends with a final invoke that writes the bars.
- The decode is skipped on most batches: their ticks are handed to the service already as
  columns (`Predecoded`). On a seeded sample of windows (SAMPLED_WINDOWS) the records are real
  KPL aggregates and the real Lambda handler is invoked with Lambda-shaped events; there the
  decoded columns are checked equal to the generated ones, and the decode's CPU time per tick
  is measured and added to the other batches' durations.
- The bars table's stream: each successful PutItem is one NEW_IMAGE record. Approximation: the
  table's stream has STREAM_SHARDS shards and a record goes to the shard its partition key
  hashes to (DynamoDB keeps one stream shard per table partition; a new on-demand table starts
  with a few partitions). All of a window's writes land within the chart builder's
  MaximumBatchingWindowInSeconds (5 s), so each stream shard gives one batch per window, cut at
  BatchSize records and the 6 MB invoke payload. The real chart handler runs once per batch.
- Charts: every render is counted; a seeded sample is drawn for real and timed, the others
  return a placeholder PNG. GB-seconds use this machine's CPU time: handler time without the
  placeholder renders, plus renders times the measured mean render time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd

import functions.aggregator.handler
import functions.aggregator.ledger
import functions.aggregator.service
import functions.chart_builder.handler
from alerts.cooldown_table import CooldownTable
from alerts.rules import DEFAULT_RULES_FILE
from alerts.service import AlertService, rules_from_file
from bench.aws_meter import Meter, MeteredDynamoDB, MeteredS3, StreamRecord, Usage
from functions.aggregator.data_lake import DataLake
from functions.aggregator.ledger import Ledger
from functions.aggregator.logic import RawRecord, ShardTicks, WindowState, explode
from functions.aggregator.service import Aggregator, AggregatorConfig
from functions.chart_builder.cadence import CHART_SECONDS, refresh_seconds
from functions.chart_builder.render import render_chart
from functions.chart_builder.service import CANDLES, WEEKS_OF_DAYS, ChartBuilder
from local_aws.runner.events import (
    FunctionConfig,
    Mapping,
    SourceRecord,
    dynamodb_event,
    window_event,
)
from local_aws.runner.invoker import LocalContext, captured_output
from local_aws.runner.schedules import ScheduledTarget
from local_aws.runner.shard_processor import MAX_STATE_BYTES
from market.bars import DEFAULT_INTERVALS, StoredBar
from market.kpl_records import AggregateBuilder
from market.tick_batches import TickColumns
from market.ticks import Tick, encode_tick
from producer.shard_map import MAX_HASH_KEY, ShardMap, ShardRange
from stores.bars_table import BarsTable
from stores.site_bucket import SiteBucket

DEMO_SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM"]
RATE = 1_000  # ticks per second, across all symbols
# The template's TumblingWindowSeconds (default 60), unless COST_WINDOW_SECONDS says otherwise.
WINDOW_S = int(os.environ.get("COST_WINDOW_SECONDS", "60"))
if WINDOW_S < 60 or WINDOW_S > 900 or WINDOW_S % 60:
    raise ValueError(f"COST_WINDOW_SECONDS={WINDOW_S}: whole minutes from 60 to 900 (the template's range)")
SWEEP_S = 60  # the chart builder's Sweep schedule, rate(1 minute)
DAY_WINDOWS = 86_400 // WINDOW_S
# The stream's shards (the template's ShardCount), 4 unless COST_SHARDS says otherwise.
KINESIS_SHARDS = int(os.environ.get("COST_SHARDS", "4"))
# producer.pipeline.DEFAULT_LINGER_S: an aggregate goes out 100 ms after it opened.
LINGER_MS = 100
# infra/template.yaml, AggregatorFunction's Kinesis mapping and function.
AGGREGATOR_BATCH_SIZE = 1_000
AGGREGATOR_BATCHING_WINDOW_MS = 1_000
AGGREGATOR_MEMORY_MB = 512
# infra/template.yaml, ChartBuilderFunction's DynamoDB stream mapping and function.
CHARTS_BATCH_SIZE = 2_000
CHARTS_MEMORY_MB = 1_024
# Lambda quotas (Lambda developer guide): a synchronous invoke's payload is at most 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
STREAM_SHARDS = 4  # approximation, see the module docstring
# Bytes a stream record adds to the chart builder's event beside its new image (ids, ARN, keys).
STREAM_RECORD_OVERHEAD = 400
# Kinesis sequence numbers are 56 digits; their length is what the stored watermarks weigh.
SEQUENCE_BASE = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000
SAMPLED_WINDOWS = 4  # windows run through the real handler on real KPL records
RENDER_SAMPLES = 40  # charts drawn for real and timed, per scale
# ChartRefreshMinutes, the template's default unless COST_CHART_REFRESH_MINUTES says otherwise.
CHART_REFRESH_MINUTES = int(os.environ.get("COST_CHART_REFRESH_MINUTES", "1"))
# The newest items kept per partition key: what the chart builder's longest read needs, with room.
KEEP_NEWEST = max(CANDLES, WEEKS_OF_DAYS) + 16
# Durations are this process's CPU time: on shared cores the wall clock also counts other
# processes' work, and nothing timed here waits (the clients are in memory).
cpu_seconds = time.process_time
DAY_START_MS = 1_795_046_400_000  # 2026-11-19 00:00 UTC: a whole UTC day
MS_PER_YEAR = 365.25 * 86_400 * 1000
BARS_TABLE, LEDGER_TABLE, ALERT_TABLE = "bars", "ledger", "alerts"
DATA_BUCKET, SITE_BUCKET = "data", "site"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/bars/stream/2026-11-19T00:00:00.000"
STREAM_ARN_KINESIS = "arn:aws:kinesis:us-east-1:123456789012:stream/ticks"


def symbols_for(count: int) -> list[str]:
    return DEMO_SYMBOLS[:count] if count <= len(DEMO_SYMBOLS) else [f"S{i:04d}" for i in range(count)]


def even_shards(count: int) -> ShardMap:
    step = (MAX_HASH_KEY + 1) // count
    return ShardMap(
        ShardRange(f"shardId-{i:012d}", i * step, MAX_HASH_KEY if i == count - 1 else (i + 1) * step - 1)
        for i in range(count)
    )


@dataclass
class TickChunk:
    """Ticks as numpy columns, in event-time order."""

    ts_ms: np.ndarray[Any, np.dtype[np.int64]]
    symbol: np.ndarray[Any, np.dtype[np.int64]]
    cents: np.ndarray[Any, np.dtype[np.int64]]
    size: np.ndarray[Any, np.dtype[np.int64]]
    serial: np.ndarray[Any, np.dtype[np.int64]]

    def take(self, mask: Any) -> TickChunk:
        return TickChunk(
            self.ts_ms[mask], self.symbol[mask], self.cents[mask], self.size[mask], self.serial[mask]
        )

    def join(self, other: TickChunk) -> TickChunk:
        return TickChunk(
            *(np.concatenate([a, b]) for a, b in zip(self.columns(), other.columns(), strict=True))
        )

    def columns(self) -> tuple[Any, ...]:
        return (self.ts_ms, self.symbol, self.cents, self.size, self.serial)

    def __len__(self) -> int:
        return len(self.ts_ms)


class Market:
    """The synthetic market's model (producer.sources.SyntheticMarket), one window at a time in numpy."""

    def __init__(self, symbols: Sequence[str], seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        count = len(symbols)
        self._log_price = np.log(self._rng.uniform(20.0, 600.0, count))
        weights = self._rng.uniform(0.5, 2.0, count)
        self._weights = weights / weights.sum()
        self._last_ms = np.full(count, float(DAY_START_MS))
        self._serial = 0
        self.run_id = hashlib.blake2b(f"{seed}|{DAY_START_MS}|{count}".encode(), digest_size=4).hexdigest()

    def window(self, index: int, sigma: float = 0.4, mu: float = 0.05) -> TickChunk:
        start = DAY_START_MS + index * WINDOW_S * 1000
        count = int(self._rng.poisson(RATE * WINDOW_S))
        times = np.sort(self._rng.uniform(start, start + WINDOW_S * 1000, count))
        symbol = self._rng.choice(len(self._weights), count, p=self._weights)
        order = np.lexsort((times, symbol))  # by symbol, then time
        by_symbol, at = symbol[order], times[order]
        first = np.ones(count, dtype=bool)
        first[1:] = by_symbol[1:] != by_symbol[:-1]
        previous = np.empty(count)
        previous[1:] = at[:-1]
        previous[first] = self._last_ms[by_symbol[first]]
        dt_years = (at - previous) / MS_PER_YEAR
        step = (mu - sigma * sigma / 2) * dt_years + sigma * np.sqrt(dt_years) * self._rng.standard_normal(
            count
        )
        running = np.cumsum(step)
        group_start = np.maximum.accumulate(np.where(first, np.arange(count), 0))
        offset = running[group_start] - step[group_start]
        log_price = self._log_price[by_symbol] + running - offset
        last = np.ones(count, dtype=bool)
        last[:-1] = by_symbol[1:] != by_symbol[:-1]
        self._log_price[by_symbol[last]] = log_price[last]
        self._last_ms[by_symbol[last]] = at[last]
        cents = np.empty(count, dtype=np.int64)
        cents[order] = np.maximum(np.round(np.exp(log_price) * 100), 1).astype(np.int64)
        sizes = np.maximum(1, np.round(self._rng.lognormal(4.0, 1.0, count))).astype(np.int64)
        serial = np.arange(self._serial, self._serial + count, dtype=np.int64)
        self._serial += count
        return TickChunk(times.astype(np.int64), symbol.astype(np.int64), cents, sizes, serial)


@dataclass
class KinesisRecord:
    shard_id: str
    sequence: int
    arrival_ms: int
    ticks: TickChunk


class Records:
    """Cuts each shard's ticks into records as the producer's linger does, one window at a time."""

    def __init__(self, symbols: Sequence[str]) -> None:
        shard_map = even_shards(KINESIS_SHARDS)
        self.shard_ids = [s.shard_id for s in shard_map.shards]
        self._shard_of = np.array([self.shard_ids.index(shard_map.shard_for(s).shard_id) for s in symbols])
        empty = np.zeros(0, dtype=np.int64)
        self._pending = {s: TickChunk(empty, empty, empty, empty, empty) for s in self.shard_ids}
        self._sequence = {s: SEQUENCE_BASE + i * 10**40 for i, s in enumerate(self.shard_ids)}

    def window(self, index: int, ticks: TickChunk) -> dict[str, list[KinesisRecord]]:
        """The records that arrive in window `index`, given the ticks of that window's event time."""
        end = DAY_START_MS + (index + 1) * WINDOW_S * 1000
        shards = self._shard_of[ticks.symbol]
        out: dict[str, list[KinesisRecord]] = {}
        for number, shard_id in enumerate(self.shard_ids):
            pending = self._pending[shard_id].join(ticks.take(shards == number))
            times = pending.ts_ms
            records = []
            i = 0
            while i < len(times) and times[i] + LINGER_MS < end:
                j = int(np.searchsorted(times, times[i] + LINGER_MS, "left"))
                self._sequence[shard_id] += 1000
                chunk = pending.take(slice(i, j))
                records.append(
                    KinesisRecord(shard_id, self._sequence[shard_id], int(times[i]) + LINGER_MS, chunk)
                )
                i = j
            self._pending[shard_id] = pending.take(slice(i, None))
            out[shard_id] = records
        return out


def batches(records: list[KinesisRecord]) -> Iterator[list[KinesisRecord]]:
    """Lambda's Kinesis batches in one window: BatchSize records, or what arrived in the batching window."""
    i = 0
    while i < len(records):
        opened = records[i].arrival_ms
        j = i
        while (
            j < len(records)
            and j - i < AGGREGATOR_BATCH_SIZE
            and records[j].arrival_ms < opened + AGGREGATOR_BATCHING_WINDOW_MS
        ):
            j += 1
        yield records[i:j]
        i = j


class Predecoded(list[RawRecord]):
    """A batch whose ticks are already columns: the patched explode hands them over undecoded."""

    def __init__(self, ticks: ShardTicks) -> None:
        super().__init__()
        self.ticks = ticks


_real_explode = explode


def _explode(records: Any) -> Any:
    if isinstance(records, Predecoded):
        return records.ticks, []
    return _real_explode(records)


class Columns:
    """Numpy tick columns as the Python values the product uses (Decimals and id strings, cached)."""

    def __init__(self, symbols: Sequence[str], run_id: str) -> None:
        self._symbols = np.array(symbols, dtype=object)
        self._run_id = run_id
        self._decimals: dict[int, Decimal] = {}

    def _cents(self, value: int) -> Decimal:
        found = self._decimals.get(value)
        if found is None:
            found = self._decimals[value] = Decimal(value) * Decimal("0.01")
        return found

    def tick_columns(self, chunk: TickChunk) -> TickColumns:
        cents = self._cents
        return TickColumns(
            self._symbols[chunk.symbol].tolist(),
            [cents(c) for c in chunk.cents.tolist()],
            [Decimal(s) for s in chunk.size.tolist()],
            chunk.ts_ms.tolist(),
            [f"{self._run_id}:{n:09d}" for n in chunk.serial.tolist()],
        )

    def shard_ticks(self, batch: list[KinesisRecord]) -> ShardTicks:
        ticks = ShardTicks()
        for record in batch:
            ticks.add_columns(self.tick_columns(record.ticks), record.sequence, record.arrival_ms)
        return ticks

    def kpl(self, record: KinesisRecord) -> bytes:
        columns = self.tick_columns(record.ticks)
        builder = AggregateBuilder()
        for index in range(len(columns)):
            tick: Tick = columns.tick(index)
            if not builder.try_add(tick.symbol, encode_tick(tick)):
                raise RuntimeError("a record outgrew a KPL aggregate: the linger model does not hold")
        return builder.build()


class SampledRenderer:
    """Counts every render; draws a seeded sample for real and times it."""

    def __init__(self, probability: float, seed: int) -> None:
        self._rng = random.Random(seed)
        self._probability = probability
        self.renders = 0
        self.drawn = 0
        self.drawn_seconds = 0.0

    def __call__(self, frame: pd.DataFrame, title: str, bar_seconds: int) -> bytes:
        self.renders += 1
        if self.drawn < RENDER_SAMPLES and self._rng.random() < self._probability:
            started = cpu_seconds()
            png = render_chart(frame, title, bar_seconds)
            self.drawn_seconds += cpu_seconds() - started
            self.drawn += 1
            return png
        return b"\x89PNG placeholder"

    @property
    def mean_seconds(self) -> float:
        return self.drawn_seconds / self.drawn if self.drawn else 0.0


def _bars_label(table: str, item: dict[str, Any]) -> str:
    """Item sizes by table and interval: `bars 1d`, `ledger 1m`."""
    return f"{table} {item['interval']['S']}" if table in (BARS_TABLE, LEDGER_TABLE) else table


# An 8-byte binary in a JSON binary set: 12 base64 characters, two quotes and a comma.
ID_HASH_JSON_BYTES = 15


def stream_payload(record: StreamRecord) -> int:
    """Bytes a stream record adds to the chart builder's event: its image as JSON, binaries in base64
    (the id hashes counted, not encoded: every one of them is 8 bytes)."""
    image = record.new_image
    hashes = image.get("_ids", {}).get("BS", [])
    rest = {k: v for k, v in image.items() if k != "_ids"}
    return len(orjson.dumps(rest)) + len(hashes) * ID_HASH_JSON_BYTES + STREAM_RECORD_OVERHEAD


def stream_batches(records: list[StreamRecord]) -> list[list[StreamRecord]]:
    """One batch per stream shard per window, cut at BatchSize records and the 6 MB payload."""
    by_shard: defaultdict[int, list[StreamRecord]] = defaultdict(list)
    for record in records:
        pk = record.keys["pk"]["S"]
        by_shard[int(hashlib.md5(pk.encode(), usedforsecurity=False).hexdigest(), 16) % STREAM_SHARDS].append(
            record
        )
    cut: list[list[StreamRecord]] = []
    for shard in sorted(by_shard):
        batch: list[StreamRecord] = []
        payload = 0
        for record in by_shard[shard]:
            size = stream_payload(record)
            if batch and (len(batch) == CHARTS_BATCH_SIZE or payload + size > MAX_PAYLOAD_BYTES):
                cut.append(batch)
                batch, payload = [], 0
            batch.append(record)
            payload += size
        cut.append(batch)
    return cut


def _stream_event(batch: list[StreamRecord], sequence: int, now_s: float) -> dict[str, Any]:
    source = [
        SourceRecord(
            "shardId-00000000000000000000-00000000",
            str(sequence + i),
            "",
            orjson.dumps(
                {
                    "eventID": f"{sequence + i:032x}",
                    "eventName": record.event_name,
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": "us-east-1",
                    "dynamodb": {
                        "ApproximateCreationDateTime": now_s,
                        "Keys": record.keys,
                        "NewImage": {
                            k: v for k, v in record.new_image.items() if k in ("symbol", "interval")
                        },
                        "SequenceNumber": str(sequence + i),
                        "SizeBytes": record.size,
                        "StreamViewType": "NEW_IMAGE",
                    },
                }
            ),
            now_s,
        )
        for i, record in enumerate(batch)
    ]
    return dynamodb_event(_mapping("charts", STREAM_ARN, 0), source)


def _function(function: str) -> FunctionConfig:
    return FunctionConfig(
        function, f"arn:aws:lambda:us-east-1:123456789012:function:{function}", "", 60, 512, {}
    )


# infra/template.yaml, ChartBuilderFunction's Sweep: rate(1 minute).
SWEEP = ScheduledTarget(
    "arn:aws:events:us-east-1:123456789012:rule/charts-sweep", 60, None, _function("charts")
)


def _mapping(function: str, source_arn: str, tumbling_s: int) -> Mapping:
    config = _function(function)
    return Mapping(
        "cost", config, source_arn, "us-east-1", "TRIM_HORIZON", 1000, 1, tumbling_s, True, True, 5, -1, None
    )


@dataclass
class DayResult:
    """What a day at one scale used, and what it took to simulate."""

    symbols: int
    ticks: int = 0
    kinesis_records: int = 0
    aggregator_invokes: int = 0
    aggregator_seconds: float = 0.0
    charts_invokes: int = 0
    charts_seconds: float = 0.0
    renders: int = 0
    render_seconds_mean: float = 0.0
    renders_drawn: int = 0
    stream_records: int = 0
    usage: dict[str, Usage] = field(default_factory=dict)
    max_item: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    windows: int = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Powertools prints a log line and metrics per invocation; Lambda would ship them to CloudWatch."""
    with captured_output():
        yield


def _memoised_item_to_bar() -> Any:
    """item_to_bar, remembered per stored item object: the stand-in hands back the very item it
    stored, which nobody changes, so the same item always parses to the same bar. A copy is
    returned, since the aggregator changes the bars it reads."""
    real = functions.aggregator.ledger.item_to_bar
    cache: dict[int, tuple[dict[str, Any], StoredBar]] = {}

    def item_to_bar(item: dict[str, Any]) -> StoredBar:
        found = cache.get(id(item))
        if found is None or found[0] is not item:
            if len(cache) > 400_000:
                cache.clear()
            found = cache[id(item)] = (item, real(item))
        bar = found[1]
        return StoredBar(
            bar.symbol,
            bar.interval,
            bar.start,
            replace(bar.acc) if bar.acc is not None else None,
            dict(bar.watermarks),
            set(bar.id_hashes),
            bar.version,
        )

    return item_to_bar


def metered_clients(meter: Meter) -> tuple[MeteredDynamoDB, MeteredS3]:
    dynamodb = MeteredDynamoDB(meter, keep_newest=KEEP_NEWEST)
    dynamodb.create_table(BARS_TABLE, "pk", "sk", stream=True)
    dynamodb.create_table(LEDGER_TABLE, "pk", "sk", stream=False)
    dynamodb.create_table(ALERT_TABLE, "pk", None, stream=False)
    dynamodb.size_label = _bars_label
    return dynamodb, MeteredS3(meter)


def simulate_day(
    symbol_count: int,
    windows: int = DAY_WINDOWS,
    seed: int = 7,
    clients: tuple[Any, Any] | None = None,
) -> DayResult:
    """The day at one scale. `windows` shortens it and `clients` replaces the metered stand-ins
    (with anything that has their `stream` list), for the check against moto."""
    started = time.perf_counter()
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    for module in (functions.chart_builder.handler, functions.aggregator.handler):
        module.metrics.namespace = "tickstream/cost"  # the template sets it per stack
    symbols = symbols_for(symbol_count)
    meter = Meter()
    dynamodb, s3 = clients if clients is not None else metered_clients(meter)
    bars = BarsTable(dynamodb, BARS_TABLE)
    aggregator = Aggregator(
        Ledger(dynamodb, LEDGER_TABLE),
        bars,
        DataLake(s3, DATA_BUCKET),
        AggregatorConfig(DEFAULT_INTERVALS, 60_000),
    )
    floor_s = CHART_REFRESH_MINUTES * 60
    per_window = sum(min(1.0, WINDOW_S / refresh_seconds(i, floor_s)) for i in CHART_SECONDS if i != "15m")
    expected_renders = max(1.0, symbol_count * per_window * windows)
    renderer = SampledRenderer(min(1.0, 4 * RENDER_SAMPLES / expected_renders), seed)
    builder = ChartBuilder(bars, SiteBucket(s3, SITE_BUCKET), render=renderer, refresh_floor_s=floor_s)
    alerts = AlertService(
        rules_from_file(DEFAULT_RULES_FILE),
        bars,
        CooldownTable(dynamodb, ALERT_TABLE),
        None,
        lambda symbol, interval: f"https://site/charts/{symbol}/{interval}.png",
    )
    _install(aggregator, builder, alerts)
    market = Market(symbols, seed)
    columns = Columns(symbols, market.run_id)
    cutter = Records(symbols)
    sampled = set(random.Random(seed).sample(range(windows), min(SAMPLED_WINDOWS, windows)))
    result = DayResult(symbol_count, windows=windows)
    unsampled_ticks = 0
    decode_seconds, decode_ticks = 0.0, 0
    stream_sequence = 1
    kinesis_mapping = _mapping("aggregator", STREAM_ARN_KINESIS, WINDOW_S)
    try:
        for index in range(windows):
            per_shard = cutter.window(index, market.window(index))
            window_start = DAY_START_MS // 1000 + index * WINDOW_S
            meter.scope = "aggregator"
            for shard_id, records in per_shard.items():
                result.kinesis_records += len(records)
                result.ticks += sum(len(r.ticks) for r in records)
                if index in sampled:
                    decode_seconds, decode_ticks = _sampled_window(
                        result,
                        columns,
                        kinesis_mapping,
                        shard_id,
                        records,
                        window_start,
                        decode_seconds,
                        decode_ticks,
                    )
                    continue
                unsampled_ticks += _unsampled_window(result, aggregator, columns, shard_id, records)
            meter.scope = "charts"
            written, dynamodb.stream = dynamodb.stream, []
            stream_sequence = _charts_window(result, renderer, written, stream_sequence, window_start)
    finally:
        vars(functions.aggregator.service)["explode"] = _real_explode
    per_tick = decode_seconds / decode_ticks if decode_ticks else 0.0
    result.aggregator_seconds += unsampled_ticks * per_tick
    _finish(result, renderer, meter)
    result.max_item = {
        what: size for (table, what), size in meter.max_item.items() if table in (BARS_TABLE, LEDGER_TABLE)
    }
    result.wall_seconds = time.perf_counter() - started
    return result


def _unsampled_window(
    result: DayResult, aggregator: Aggregator, columns: Columns, shard_id: str, records: list[KinesisRecord]
) -> int:
    """One shard's window through the service, its ticks handed over as columns; the ticks taken.
    A state over Lambda's 1 MB ends the window early, as Lambda does, and the rest starts afresh."""
    state = WindowState()
    taken = 0
    for batch in batches(records):
        ticks = columns.shard_ticks(batch)
        taken += len(ticks)
        began = cpu_seconds()
        aggregator.take(shard_id, Predecoded(ticks), state)
        result.aggregator_seconds += cpu_seconds() - began
        result.aggregator_invokes += 1
        if state_bytes(state) > MAX_STATE_BYTES:
            _flush(result, aggregator, shard_id, state)
            state = WindowState()
    _flush(result, aggregator, shard_id, state)
    return taken


def _flush(result: DayResult, aggregator: Aggregator, shard_id: str, state: WindowState) -> None:
    began = cpu_seconds()
    flushed = aggregator.flush(shard_id, state)
    result.aggregator_seconds += cpu_seconds() - began
    result.aggregator_invokes += 1
    if flushed.failed_minutes:
        raise RuntimeError(f"bars not written: {flushed.failed_minutes[:3]}")


# Upper bounds of a window state's JSON (logic.WindowState.to_json), so the exact size is
# computed only near the limit: an id hash, and a partial minute with its 56-digit positions.
STATE_BYTES_PER_ID = 16
STATE_BYTES_PER_MINUTE = 640


def state_bytes(state: WindowState) -> int:
    """The state's size as Lambda would carry it, or a bound below MAX_STATE_BYTES when far from it."""
    ids = sum(len(partial.id_hashes) for partial in state.minutes.values())
    minutes = len(state.minutes) + len(state.absent) + len(state.refold)
    bound = ids * STATE_BYTES_PER_ID + minutes * STATE_BYTES_PER_MINUTE + 256
    if bound <= MAX_STATE_BYTES:
        return bound
    return len(orjson.dumps(state.to_json()))


def _install(aggregator: Aggregator, builder: ChartBuilder, alerts: AlertService) -> None:
    """The handlers' cold-start caches filled with the metered clients, and the two patches."""
    functions.aggregator.handler._built = aggregator
    functions.chart_builder.handler._built = (builder, alerts)
    vars(functions.aggregator.service)["explode"] = _explode
    functions.aggregator.ledger.item_to_bar = _memoised_item_to_bar()


def _finish(result: DayResult, renderer: SampledRenderer, meter: Meter) -> None:
    result.renders = renderer.renders
    result.renders_drawn = renderer.drawn
    result.render_seconds_mean = renderer.mean_seconds
    result.charts_seconds += renderer.renders * renderer.mean_seconds
    result.usage = meter.usage


def _charts_window(
    result: DayResult,
    renderer: SampledRenderer,
    written: list[StreamRecord],
    sequence: int,
    window_start: int,
) -> int:
    """The chart builder's invocations for one window's writes; the next stream sequence number."""
    result.stream_records += len(written)
    for stream_batch in stream_batches(written):
        event = _stream_event(stream_batch, sequence, window_start + WINDOW_S)
        sequence += len(stream_batch)
        drawn_before = renderer.drawn_seconds
        began = cpu_seconds()
        with _quiet():
            functions.chart_builder.handler.handler(event, _charts_context())
        result.charts_seconds += cpu_seconds() - began - (renderer.drawn_seconds - drawn_before)
        result.charts_invokes += 1
    # The one-minute sweeps of the window, the last at its end: each draws what waits and is due.
    for at in range(window_start + SWEEP_S, window_start + WINDOW_S + 1, SWEEP_S):
        drawn_before = renderer.drawn_seconds
        began = cpu_seconds()
        with _quiet():
            functions.chart_builder.handler.handler(SWEEP.event(at), _charts_context())
        result.charts_seconds += cpu_seconds() - began - (renderer.drawn_seconds - drawn_before)
        result.charts_invokes += 1
    return sequence


def _charts_context() -> LocalContext:
    return LocalContext("charts", "arn", CHARTS_MEMORY_MB, 120)


def _sampled_window(
    result: DayResult,
    columns: Columns,
    mapping: Mapping,
    shard_id: str,
    records: list[KinesisRecord],
    window_start: int,
    decode_seconds: float,
    decode_ticks: int,
) -> tuple[float, int]:
    """One shard's window through the real handler, on real KPL records; checks and times the decode."""
    state: dict[str, Any] = {}
    for batch in batches(records):
        source = [
            SourceRecord(
                shard_id,
                str(r.sequence),
                columns.tick_columns(r.ticks).symbols[0],
                columns.kpl(r),
                r.arrival_ms / 1000,
            )
            for r in batch
        ]
        raw = [
            RawRecord(s.shard_id, s.sequence_number, int(s.arrival * 1000), s.partition_key, s.data)
            for s in source
        ]
        began = cpu_seconds()
        decoded, rejected = _real_explode(raw)
        decode_seconds += cpu_seconds() - began
        decode_ticks += len(decoded)
        expected = columns.shard_ticks(batch)
        if rejected or decoded != expected:
            raise RuntimeError("the decoded KPL records differ from the generated ticks")
        state = _invoke_aggregator(result, mapping, shard_id, source, window_start, state, early=False)
        if len(orjson.dumps(state)) > MAX_STATE_BYTES:  # Lambda ends the window early
            _invoke_aggregator(result, mapping, shard_id, [], window_start, state, early=True)
            state = {}
    _invoke_aggregator(result, mapping, shard_id, [], window_start, state, early=False)
    return decode_seconds, decode_ticks


def _invoke_aggregator(
    result: DayResult,
    mapping: Mapping,
    shard_id: str,
    source: list[SourceRecord],
    window_start: int,
    state: dict[str, Any],
    early: bool,
) -> dict[str, Any]:
    """One invoke of the real handler, a final one when `source` is empty; the state it returns."""
    event = window_event(
        mapping, shard_id, source, window_start, state, final=not source, terminated_early=early
    )
    began = cpu_seconds()
    with _quiet():
        response = functions.aggregator.handler.handler(
            event, LocalContext("aggregator", "arn", AGGREGATOR_MEMORY_MB, 60)
        )
    result.aggregator_seconds += cpu_seconds() - began
    result.aggregator_invokes += 1
    state = response["state"]
    assert isinstance(state, dict)
    return state


def kinesis_put_units(result: DayResult) -> int:
    """One PUT payload unit per record: every record is far below 25 KB at these rates."""
    return result.kinesis_records


def lambda_gb_seconds(seconds: float, memory_mb: int) -> float:
    return seconds * memory_mb / 1024
