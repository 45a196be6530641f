"""`make bench`: measures the budgets of docs/contract.md and rewrites their section of BENCHMARKS.md.

Each figure stands beside a baseline measured in the same run, so ratios survive a noisy,
shared machine better than absolute numbers do.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mplfinance as mpf
import msgspec
import orjson
import pandas as pd
from aws_kinesis_agg.aggregator import RecordAggregator
from botocore.config import Config

from bench.prices import LAMBDA_PER_GB_SECOND_X86
from functions.aggregator.logic import RawRecord, WindowState, accumulate, explode
from functions.chart_builder.chart_data import bars_frame
from functions.chart_builder.render import DPI, HEIGHT_IN, MOVING_AVERAGES, STYLE, WIDTH_IN, render_chart
from functions.chart_builder.service import Chart, draw_in_parallel
from local_aws.deploy import deploy_stack
from local_aws.embedded import EmbeddedAws, free_local_port
from market.bars import DEFAULT_INTERVALS, Bar, bars_of, bucket_start
from market.kpl_records import (
    DIGEST_SIZE,
    MAGIC,
    AggregateBuilder,
    _AggregatedRecord,
    decode_aggregate,
    user_record_data,
)
from market.tick_batches import decode_columns
from market.ticks import Tick, encode_tick
from producer.batching import ShardAggregators
from producer.kinesis_writer import KinesisStreamWriter
from producer.pace import Pace
from producer.pipeline import ProduceOptions, Producer
from producer.shard_map import MAX_HASH_KEY, ShardMap, ShardRange
from producer.sources import SyntheticMarket
from stores.bars_table import PROJECTION_CONDITION
from tickstream.aws_clients import AwsClients
from tickstream.settings import PROJECT_ROOT, Settings

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM", "V", "BRK.B", "A+B", "X.Y-Z"]
CPU_TICKS = 200_000
DELIVERY_TICKS = 50_000
ONE_BY_ONE_TICKS = 2_000
REPEATS = 5
# A function gets one vCPU's worth of CPU at 1,769 MB, and a share in proportion below it (Lambda
# Developer Guide, "Configuring Lambda function memory"): so one core's ticks per second, times
# 1024 / 1769, is what a GB-second of any smaller function processes.
LAMBDA_CORES_PER_GB = 1024 / 1769
# A day of event time for the demo's 8 symbols, replayed by `make bench-replay`.
REPLAY_SYMBOLS = SYMBOLS[:8]
REPLAY_TICKS = 60_000
DAY_S = 86_400


@dataclass(frozen=True)
class Row:
    what: str
    figure: float
    unit: str
    note: str = ""


def make_ticks(count: int) -> list[Tick]:
    return list(SyntheticMarket(SYMBOLS, 10_000.0, 7, 1_795_000_000_000, count=count).ticks())


def four_shards() -> ShardMap:
    step = (MAX_HASH_KEY + 1) // 4
    return ShardMap(
        ShardRange(f"shardId-{i:012d}", i * step, MAX_HASH_KEY if i == 3 else (i + 1) * step - 1)
        for i in range(4)
    )


def best_rate(count: int, work: Callable[[], object]) -> float:
    """Best of REPEATS: the run least disturbed by the machine's other work."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return count / best


def ours(ticks: Sequence[Tick]) -> None:
    aggregators = ShardAggregators(four_shards())
    for tick in ticks:
        aggregators.add(tick.symbol, encode_tick(tick), 0.0)
    aggregators.drain()


def library(ticks: Sequence[Tick]) -> None:
    shard_map = four_shards()
    per_shard = {s.shard_id: RecordAggregator() for s in shard_map.shards}
    for tick in ticks:
        per_shard[shard_map.shard_for(tick.symbol).shard_id].add_user_record(tick.symbol, encode_tick(tick))
    for aggregator in per_shard.values():
        aggregator.clear_and_get()


def cpu_rows() -> list[Row]:
    os.sched_setaffinity(0, {0})
    ticks = make_ticks(CPU_TICKS)
    mine = best_rate(len(ticks), lambda: ours(ticks))
    theirs = best_rate(len(ticks), lambda: library(ticks))
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return [
        Row("encode + KPL-aggregate per shard (ours)", mine, "ticks/s", "budget >= 300,000 on one core"),
        Row("encode + aws-kinesis-agg RecordAggregator per shard", theirs, "ticks/s", "baseline, same run"),
        Row("ours / aws-kinesis-agg", mine / theirs, "x"),
    ]


def delivery_rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as state:
        settings = Settings.from_environment(
            {
                "TICKSTREAM_PORT": str(free_local_port()),
                "TICKSTREAM_STATE_DIR": state,
                "TICKSTREAM_STACK": "bench",
            }
        )
        local = EmbeddedAws(settings.state_dir, settings.port)
        local.start()
        try:
            clients = AwsClients(settings)
            outputs = deploy_stack(clients, settings, shards=4).outputs
            kinesis = clients.client("kinesis")
            writer = KinesisStreamWriter(kinesis, outputs.StreamName)
            ticks = make_ticks(DELIVERY_TICKS)

            def produce(aggregate: bool, batch: Sequence[Tick]) -> float:
                producer = Producer(writer, ProduceOptions(aggregate=aggregate, pace=Pace.MAX))
                stats = producer.run(batch)
                if not stats.complete:
                    raise RuntimeError(f"benchmark lost ticks: {stats}")
                return stats.ticks_accepted / stats.elapsed_s

            aggregated = produce(True, ticks)
            plain = produce(False, ticks[:10_000])
            started = time.perf_counter()
            for tick in ticks[:ONE_BY_ONE_TICKS]:
                kinesis.put_record(
                    StreamName=outputs.StreamName, Data=encode_tick(tick), PartitionKey=tick.symbol
                )
            one_by_one = ONE_BY_ONE_TICKS / (time.perf_counter() - started)
        finally:
            local.stop()
    return [
        Row(
            "delivered into local stack, KPL-aggregated PutRecords",
            aggregated,
            "ticks/s",
            f"{DELIVERY_TICKS:,} ticks",
        ),
        Row("delivered, --no-aggregate (one record per tick, PutRecords)", plain, "ticks/s", "10,000 ticks"),
        Row(
            "delivered, one put_record call per tick (tutorial script)",
            one_by_one,
            "ticks/s",
            f"{ONE_BY_ONE_TICKS:,}",
        ),
        Row("aggregated / one put_record per tick", aggregated / one_by_one, "x"),
        Row("aggregated / --no-aggregate", aggregated / plain, "x"),
    ]


def kpl_records(ticks: Sequence[Tick], arrival_ms: int) -> list[RawRecord]:
    """The ticks in KPL aggregates, one symbol per aggregate, as the producer sends them."""
    records: list[RawRecord] = []
    builders: dict[str, AggregateBuilder] = {}
    sequence = 1000
    for tick in ticks:
        builder = builders.setdefault(tick.symbol, AggregateBuilder())
        if not builder.try_add(tick.symbol, encode_tick(tick)):
            sequence += 1
            records.append(RawRecord("shardId-0", str(sequence), arrival_ms, tick.symbol, builder.build()))
            builders[tick.symbol] = builder = AggregateBuilder()
            builder.try_add(tick.symbol, encode_tick(tick))
    for symbol, builder in builders.items():
        sequence += 1
        records.append(RawRecord("shardId-0", str(sequence), arrival_ms, symbol, builder.build()))
    return records


def floor(blobs: Sequence[str]) -> None:
    """What the libraries alone cost: base64, MD5, protobuf and orjson per tick, no checks, no bars."""
    for data in blobs:
        blob = base64.b64decode(data)
        message = blob[len(MAGIC) : -DIGEST_SIZE]
        hashlib.md5(message, usedforsecurity=False).digest()
        for user in _AggregatedRecord.FromString(message).records:
            orjson.loads(user.data)


def batch_floor(blobs: Sequence[str]) -> None:
    """The libraries alone with the records of an aggregate parsed as one JSON array."""
    for data in blobs:
        blob = base64.b64decode(data)
        message = blob[len(MAGIC) : -DIGEST_SIZE]
        hashlib.md5(message, usedforsecurity=False).digest()
        users = [user.data for user in _AggregatedRecord.FromString(message).records]
        msgspec.json.decode(b"[" + b",".join(users) + b"]")


def aggregator_rows() -> list[Row]:
    """The handler's CPU path on an event of 10,000 ticks in KPL records, beside a naive handler."""
    os.sched_setaffinity(0, {0})
    ticks = make_ticks(10_000)
    arrival_ms = ticks[-1].ts_ms  # as the stream stamps them: after the ticks' event times
    records = kpl_records(ticks, arrival_ms)
    encoded = [(r, base64.b64encode(r.data).decode()) for r in records]
    assert not explode(records)[1], "the benchmark's ticks must all be valid, or it times quarantine"

    def ours() -> WindowState:
        raw = [
            RawRecord(r.shard_id, r.sequence_number, arrival_ms, r.partition_key, base64.b64decode(d))
            for r, d in encoded
        ]
        exploded, _ = explode(raw)
        state = WindowState()
        accumulate(state, exploded, {}, 60_000)
        return state

    writes = {"n": 0}

    class CountingDynamo:
        def update_item(self, **_kwargs: object) -> None:
            writes["n"] += 1

    naive_client = CountingDynamo()

    def naive() -> None:
        for _, data in encoded:
            blob = base64.b64decode(data)
            for user in decode_aggregate(blob):
                tick = json.loads(user.data)
                for interval in DEFAULT_INTERVALS:
                    start = bucket_start(int(tick["ts"]), interval)
                    naive_client.update_item(
                        Key={"pk": f"{tick['symbol']}#{interval}", "sk": start},
                        UpdateExpression="ADD volume :v, trades :one SET close = :p",
                        ExpressionAttributeValues={":v": tick["size"], ":one": 1, ":p": tick["price"]},
                    )

    ids = [tick.id.encode() for tick in ticks if tick.id is not None]

    def id_hashes() -> None:
        for tick_id in ids:
            hashlib.blake2b(tick_id, digest_size=8).digest()

    # Ours in its three stages, each timed alone on the same event, so the rows say where the
    # time goes: the KPL checks, the batch decode with its guards, the window with its dedupe.
    blobs_raw = [base64.b64decode(d) for _, d in encoded]
    record_datas = [user_record_data(blob) for blob in blobs_raw]
    exploded, _ = explode(
        [
            RawRecord(r.shard_id, r.sequence_number, arrival_ms, r.partition_key, b)
            for (r, _), b in zip(encoded, blobs_raw, strict=True)
        ]
    )
    stages = {
        "KPL checks and deaggregation: MD5, protobuf, canonical records": lambda: [
            user_record_data(blob) for blob in blobs_raw
        ],
        "batch decode and tick checks: msgspec, guards, distinct values validated": lambda: [
            decode_columns(datas) for datas in record_datas
        ],
        "window: grouped by minute, deduped by id hash, bars summed": lambda: accumulate(
            WindowState(), exploded, {}, 60_000
        ),
    }
    stage_ns = {what: 1e9 / best_rate(len(ticks), work) for what, work in stages.items()}
    mine = best_rate(len(ticks), ours)
    theirs = best_rate(len(ticks), naive)
    blobs = [data for _, data in encoded]
    libraries = best_rate(len(ticks), lambda: floor(blobs))
    batch_libraries = best_rate(len(ticks), lambda: batch_floor(blobs))
    hashing = best_rate(len(ticks), id_hashes)
    bars_touched = len(
        bars_of(((t.symbol, t.price, t.size, (t.ts_ms, 0, 0)) for t in ticks), DEFAULT_INTERVALS)
    )
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    naive_writes = writes["n"] // REPEATS
    return [
        Row(
            "decode + deaggregate + validate + aggregate (ours)",
            mine,
            "ticks/s",
            "budget >= 1,000,000 on one core",
        ),
        Row(
            "naive handler: stdlib json, one UpdateItem per tick and interval",
            theirs,
            "ticks/s",
            "same event",
        ),
        Row("ours / naive", mine / theirs, "x", "CPU only; the naive one also waits on DynamoDB"),
        Row(
            "floor: base64 + MD5 + protobuf + orjson.loads per tick, nothing else",
            libraries,
            "ticks/s",
            "no validation, no bars: a ceiling for any Python handler",
        ),
        Row(
            "batch floor: base64 + MD5 + protobuf + one msgspec parse per aggregate, nothing else",
            batch_libraries,
            "ticks/s",
            "the libraries as ours calls them",
        ),
        *(Row(f"stage of ours: {what}", ns, "ns/tick", "timed alone") for what, ns in stage_ns.items()),
        Row("ours, the whole path", 1e9 / mine, "ns/tick", "base64 included"),
        Row("ours / floor", mine / libraries, "x"),
        Row("ours / batch floor", mine / batch_libraries, "x"),
        Row("batch floor / floor", batch_libraries / libraries, "x"),
        Row(
            "ticks per GB-second of Lambda, ours",
            mine * LAMBDA_CORES_PER_GB,
            "ticks/GB-s",
            "any memory up to 1,769 MB, 512 MB included: the CPU share grows with memory",
        ),
        Row(
            "Lambda compute per million ticks, ours",
            1e6 / (mine * LAMBDA_CORES_PER_GB) * LAMBDA_PER_GB_SECOND_X86,
            "USD",
            "x86 price; CPU path only, no waits on DynamoDB or S3",
        ),
        Row("the 8-byte BLAKE2b of each tick id, alone", hashing, "ticks/s", "the dedupe key"),
        Row("DynamoDB writes for these 10,000 ticks, ours", bars_touched, "writes", "one per bar touched"),
        Row(
            "DynamoDB writes for these 10,000 ticks, naive",
            naive_writes,
            "writes",
            "one per tick and interval",
        ),
    ]


def chart_rows() -> list[Row]:
    """One 200-candle chart on one core, and a 50 x 4 rebuild on every core beside one process."""
    start = 1_795_000_000
    bars = [
        Bar(
            "X",
            "1m",
            start + 60 * i,
            Decimal(100 + i % 7),
            Decimal(101 + i % 7),
            Decimal(99 + i % 7),
            Decimal(100 + (i + 1) % 7),
            Decimal(1000 + i),
            10,
            None,
            0,
            0,
        )
        for i in range(200)
    ]
    frame = bars_frame(bars)
    os.sched_setaffinity(0, {0})
    single = 1 / best_rate(1, lambda: render_chart(frame, "X 1m (UTC)", 60)) * 1000
    one_call = 1 / best_rate(1, lambda: mplfinance_in_one_call(frame, "X 1m (UTC)", 60)) * 1000
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    charts = [Chart(f"S{i:02d}", interval, frame) for i in range(50) for interval in ("1m", "5m", "1h", "1d")]
    started = time.perf_counter()
    for chart in charts:
        render_chart(chart.frame, chart.title, chart.bar_seconds)
    serial = len(charts) / (time.perf_counter() - started)
    started = time.perf_counter()
    draw_in_parallel(charts)
    parallel = len(charts) / (time.perf_counter() - started)
    return [
        Row(
            "one 200-candle chart with volume and two moving averages",
            single,
            "ms",
            "budget <= 100 on one core",
        ),
        Row(
            "the same chart from one mpf.plot(volume=True) call",
            one_call,
            "ms",
            "baseline, same run: mplfinance draws volume as a patch per bar",
        ),
        Row("one call / ours", one_call / single, "x"),
        Row("full rebuild, 50 symbols x 4 intervals, one process", serial, "charts/s", "baseline, same run"),
        Row(
            f"full rebuild, process pool on {os.cpu_count()} cores",
            parallel,
            "charts/s",
            "tickstream charts --all",
        ),
        Row("pool / one process", parallel / serial, "x"),
    ]


def mplfinance_in_one_call(frame: pd.DataFrame, title: str, bar_seconds: int) -> bytes:
    """The chart as the straightforward mplfinance call draws it (the chart builder's render did before)."""
    pad = pd.Timedelta(seconds=bar_seconds)
    width = 0.7 * bar_seconds / 86_400
    figure, _ = mpf.plot(
        frame,
        type="candle",
        volume=True,
        show_nontrading=True,
        style=STYLE,
        title=title,
        mav=MOVING_AVERAGES,
        figsize=(WIDTH_IN, HEIGHT_IN),
        xlim=(frame.index[0] - pad, frame.index[-1] + pad),
        update_width_config={"candle_width": width, "volume_width": width},
        returnfig=True,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def replay_rows() -> list[Row]:
    """A day of event time produced at max pace into the embedded moto, then `consume --until-idle`.

    The consume runs the template's mappings as Lambda would (60 s tumbling windows of event
    arrival), so it is what a user waits for when replaying a day locally.
    """
    with tempfile.TemporaryDirectory() as state:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TICKSTREAM_"))},
            "TICKSTREAM_PORT": os.environ.get("TICKSTREAM_PORT") or str(free_local_port()),
            "TICKSTREAM_STATE_DIR": state,
            "TICKSTREAM_STACK": "replay",
        }
        settings = Settings.from_environment(env)
        local = EmbeddedAws(settings.state_dir, settings.port)
        local.start()
        try:
            clients = AwsClients(settings)
            outputs = deploy_stack(clients, settings, shards=4).outputs
            market = SyntheticMarket(
                REPLAY_SYMBOLS, REPLAY_TICKS / DAY_S, 7, 1_795_000_000_000, count=REPLAY_TICKS
            )
            writer = KinesisStreamWriter(clients.client("kinesis"), outputs.StreamName)
            stats = Producer(writer, ProduceOptions(aggregate=True, pace=Pace.MAX)).run(market.ticks())
            if not stats.complete:
                raise RuntimeError(f"replay benchmark lost ticks: {stats}")
            started = time.perf_counter()
            with subprocess.Popen(
                [sys.executable, "-m", "tickstream", "consume", "--until-idle"],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ) as consume:
                try:
                    returncode = consume.wait()
                finally:
                    consume.kill()  # a no-op once it ended; ends it when the benchmark is stopped
            elapsed = time.perf_counter() - started
            if returncode != 0:
                raise RuntimeError(f"consume --until-idle failed ({returncode})")
            dynamodb = clients.client("dynamodb")
            bars = _item_count(dynamodb, outputs.BarsTableName)
            ledger = _item_count(dynamodb, outputs.LedgerTableName)
            patient = clients.session.client(
                "dynamodb",
                endpoint_url=settings.endpoint_url,
                config=Config(read_timeout=900, retries={"total_max_attempts": 1}),
            )
            put_s, transact_s = _write_costs(dynamodb, patient, outputs.BarsTableName)
        finally:
            local.stop()
    floor = (bars + ledger) * put_s
    return [
        Row(
            "local replay: a day of 8 symbols (60,000 ticks), `consume --until-idle`",
            elapsed,
            "s",
            "goal <= 60",
        ),
        Row(
            "bars the replay wrote (1m, 5m, 1h, 1d)",
            bars,
            "items",
            "each a conditional PutItem at least once",
        ),
        Row("1m ledger items the replay wrote", ledger, "items", "each a conditional PutItem at least once"),
        Row(
            "conditional PutItem to the embedded moto, one at a time",
            put_s * 1000,
            "ms",
            f"same server and run, after the replay; {FLOOR_PUTS:,} puts",
        ),
        Row(
            "floor: one such PutItem per item written, nothing else",
            floor,
            "s",
            f"replay / floor = {elapsed / floor:.1f}",
        ),
        Row(
            f"one TransactWriteItems of {TRANSACT_ITEMS} conditional puts to the embedded moto",
            transact_s,
            "s",
            "same server, after the replay: moto copies every table for each transaction",
        ),
    ]


# The scratch writes that price one conditional write on the embedded moto, after a replay.
FLOOR_PUTS = 2_000
TRANSACT_ITEMS = 100  # DynamoDB's limit of actions per TransactWriteItems (Developer Guide, quotas)


def _item_count(dynamodb: Any, table: str) -> int:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(int(page["Count"]) for page in pages)


def _write_costs(dynamodb: Any, patient: Any, bars_table: str) -> tuple[float, float]:
    """Seconds per conditional PutItem through the replay's client, and per TransactWriteItems of
    the most items it takes, on the server the replay filled: copies of one of its bars, with the
    aggregator's condition, into a scratch table keyed as the bars table. The transaction goes
    through a client that waits as long as it takes."""
    sample = dynamodb.scan(TableName=bars_table, Limit=1)["Items"][0]
    table = "replay-write-cost"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )

    def put(sk: int) -> dict[str, Any]:
        return {
            "TableName": table,
            "Item": {**sample, "sk": {"N": str(sk)}},
            "ConditionExpression": PROJECTION_CONDITION,
            "ExpressionAttributeNames": {"#version": "version"},
            "ExpressionAttributeValues": {":version": sample["version"]},
        }

    started = time.perf_counter()
    for sk in range(FLOOR_PUTS):
        dynamodb.put_item(**put(sk))
    put_s = (time.perf_counter() - started) / FLOOR_PUTS
    items = [{"Put": put(sk)} for sk in range(FLOOR_PUTS, FLOOR_PUTS + TRANSACT_ITEMS)]
    started = time.perf_counter()
    patient.transact_write_items(TransactItems=items)
    transact_s = time.perf_counter() - started
    return put_s, transact_s


BENCH_METHOD = (
    f"CPU figures: best of {REPEATS}, pinned to one core; "
    "figures that deliver to the embedded moto server: one run (moto is a second process, so two cores)."
)


def render(
    section: str, title: str, rows: list[Row], command: str = "make bench", method: str = BENCH_METHOD
) -> str:
    cpu = platform.processor() or platform.machine()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        cpu,
    )
    lines = [
        f"<!-- {section}:start -->",
        f"## {title}",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {model}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, by `{command}`. {method}",
        "",
        "| what | figure | unit | note |",
        "|---|---:|---|---|",
    ]
    for row in rows:
        if row.unit.startswith("USD"):
            figure = f"{row.figure:,.4f}"
        elif row.unit in ("x", "charts/s"):
            figure = f"{row.figure:,.1f}" if row.figure >= 1 else f"{row.figure:.2f}"  # 0.24, not 0.2
        else:
            figure = f"{row.figure:,.0f}"
        lines.append(f"| {row.what} | {figure} | {row.unit} | {row.note} |")
    lines.append(f"<!-- {section}:end -->")
    return "\n".join(lines)


def write_section(section: str, body: str) -> None:
    """Replaces the section between its markers, or appends it: other sections stay as they are."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {section}:start -->.*?<!-- {section}:end -->", re.DOTALL)
    appended = text.rstrip() + "\n\n" + body + "\n"
    BENCHMARKS.write_text(pattern.sub(lambda _: body, text) if pattern.search(text) else appended)


REPLAY_METHOD = (
    f"One run: {REPLAY_TICKS:,} ticks of {len(REPLAY_SYMBOLS)} symbols spread over a day of event time, "
    "produced at max pace (KPL-aggregated, 4 shards) into the embedded moto, then timed: "
    "`tickstream consume --until-idle`, wall time."
)


def _stop_on_sigterm() -> None:
    """A SIGTERM (`timeout`, a CI cancel) unwinds like Ctrl-C, so the moto server and `consume`
    this benchmark started are stopped by their `finally` blocks instead of orphaned."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    """All sections; with TICKSTREAM_BENCH_REPLAY=1 (`make bench-replay`) the local replay alone."""
    _stop_on_sigterm()
    if os.environ.get("TICKSTREAM_BENCH_REPLAY") == "1":
        body = render("replay", "Local replay", replay_rows(), "make bench-replay", REPLAY_METHOD)
        print(body)
        write_section("replay", body)
        return
    for section, title, rows in (
        ("producer", "Producer", cpu_rows() + delivery_rows()),
        ("aggregator", "Aggregator", aggregator_rows()),
        ("charts", "Charts", chart_rows()),
    ):
        body = render(section, title, rows)
        print(body)
        write_section(section, body)


if __name__ == "__main__":
    main()
