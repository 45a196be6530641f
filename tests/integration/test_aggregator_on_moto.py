"""The aggregator and local runner on a real moto server: poison, duplicates, kills and faults.

The reference is computed apart from the aggregator: positions come from reading the stream
back and deaggregating with aws-kinesis-agg, ticks from what the test generated, bars from
pandas over the unique valid ticks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import signal
import subprocess
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.deaggregator import deaggregate_records

from functions.aggregator.data_lake import DataLake
from local_aws.stack import StackOutputs
from market.kpl_records import AggregateBuilder
from market.ticks import Tick, encode_tick
from producer.sources import SyntheticMarket
from stores.bars_table import BarsTable
from tests.support.local_stack import TICKSTREAM, LocalStack, run_cli
from tickstream.demo.bars_reference import reference_bars

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = [f"S{i:02d}" for i in range(18)] + ["A+B", "X.Y-Z"]
START_MS = 1793629800000
COUNT = 200_000
RATE = 20_000.0
SEED = 31
INTERVALS = ("1m", "5m", "1h", "1d")

POISON = {
    "malformed_json": b'{"symbol": "S00", "price": ',
    "bad_price": b'{"symbol":"S00","price":"12.5","size":1,"ts":1793629800000}',
    "bad_size": b'{"symbol":"S00","price":12.5,"size":-4,"ts":1793629800000}',
    "bad_symbol": b'{"symbol":"../etc","price":12.5,"size":1,"ts":1793629800000}',
    "bad_timestamp": b'{"symbol":"S00","price":12.5,"size":1,"ts":"yesterday"}',
    "bad_utf8": b'{"symbol":"S\xff\xfe","price":1}',
    "not_an_object": b"[1, 2, 3]",
}
NON_POSITIVE = b'{"symbol":"S01","price":0,"size":1,"ts":1793629800000}'
HUGE = b'{"symbol":"S02","price":1e999,"size":1,"ts":1793629800000}'


def corrupt_digest() -> bytes:
    builder = AggregateBuilder()
    builder.try_add("S03", b'{"symbol":"S03","price":1,"ts":1}')
    blob = bytearray(builder.build())
    blob[-1] ^= 0x55
    return bytes(blob)


def corrupt_protobuf() -> bytes:
    message = b"\x0a\x03S03\x1a\x09\x08\x07\x1a\x01x"  # a record pointing at key index 7 of a 1-key table
    return b"\xf3\x89\x9a\xc2" + message + hashlib.md5(message).digest()


def put(kinesis: Any, stream: str, entries: list[tuple[str, bytes]]) -> None:
    for start in range(0, len(entries), 400):
        chunk = entries[start : start + 400]
        answer = kinesis.put_records(
            StreamName=stream, Records=[{"PartitionKey": pk, "Data": data} for pk, data in chunk]
        )
        assert answer["FailedRecordCount"] == 0


def scan_bars(dynamodb: Any, table: str) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    bars = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            bars[(item["symbol"]["S"], item["interval"]["S"], int(item["sk"]["N"]))] = (
                Decimal(item["open"]["N"]),
                Decimal(item["high"]["N"]),
                Decimal(item["low"]["N"]),
                Decimal(item["close"]["N"]),
                Decimal(item["volume"]["N"]),
                int(item["trades"]["N"]),
                Decimal(item["vwap"]["N"]) if "vwap" in item else None,
                int(item["first_ts"]["N"]),
                int(item["last_ts"]["N"]),
            )
    return bars


def reference_from_stream(stack: LocalStack, stream: str, generated: dict[str, Tick]) -> dict[Any, Any]:
    """First occurrence of each generated tick id, by its place in the stream, then pandas."""
    reader = stack.reader()
    reader.stream_name = stream
    seen: set[str] = set()
    rows = []
    for shard in reader.shards():
        for record in reader.read_shard(shard.shard_id):
            lambda_record = {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record.partition_key,
                    "sequenceNumber": record.sequence_number,
                    "data": base64.b64encode(record.data).decode(),
                    "approximateArrivalTimestamp": 0.0,
                }
            }
            users = deaggregate_records([lambda_record])
            for sub, user in enumerate(users):
                try:
                    tick_id = json.loads(base64.b64decode(user["kinesis"]["data"])).get("id")
                except (ValueError, AttributeError):
                    continue
                if tick_id in generated and tick_id not in seen:
                    seen.add(tick_id)
                    t = generated[tick_id]
                    rows.append((t.symbol, t.price, t.size, t.ts_ms, int(record.sequence_number), sub))
    assert seen == set(generated), "the stream lost generated ticks"
    return reference_bars(rows, INTERVALS)


def run_and_kill(env: dict[str, str], seconds: float) -> None:
    process = subprocess.Popen(
        [*TICKSTREAM, "consume", "--follow"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(seconds)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_200k_ticks_with_poison_duplicates_kills_and_faults_give_the_reference_bars(
    local_stack: LocalStack,
) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": "agg", "PYTHONPATH": str(REPO)}
    outputs = local_stack.deploy("agg", 4, env=env)
    local_stack.client("lambda").update_function_configuration(
        FunctionName=outputs.AggregatorFunctionName, Handler="tests.support.flaky_handler.handler"
    )

    produced = run_cli(
        [
            "produce",
            "--count",
            str(COUNT),
            "--seed",
            str(SEED),
            "--start",
            str(START_MS),
            "--rate",
            str(RATE),
            "--symbols",
            ",".join(SYMBOLS),
            "--pace",
            "max",
        ],
        env,
    )
    assert produced.returncode == 0, produced.stderr
    ticks = list(SyntheticMarket(SYMBOLS, RATE, SEED, START_MS, count=COUNT).ticks())
    generated = {t.id: t for t in ticks if t.id}

    rng = random.Random(SEED)
    resent = rng.sample(ticks, COUNT // 20)
    poison_plain = (
        [POISON[k] for k in sorted(POISON) for _ in range(150)] + [NON_POSITIVE] * 150 + [HUGE] * 100
    )
    poison_inside = [POISON[k] for k in sorted(POISON) for _ in range(60)]
    entries: list[tuple[str, bytes]] = [(t.symbol, encode_tick(t)) for t in resent[: len(resent) // 2]]
    entries += [("poison", p) for p in poison_plain]
    entries += [("corrupt", corrupt_digest()) for _ in range(50)] + [
        ("corrupt", corrupt_protobuf()) for _ in range(50)
    ]
    # The other half goes out as a KPL producer keyed by symbol would send it: aggregates of one symbol.
    later = sorted(resent[len(resent) // 2 :], key=lambda t: t.symbol)
    for start in range(0, len(later), 100):
        group = [t for t in later[start : start + 100] if t.symbol == later[start].symbol]
        builder = AggregateBuilder()
        for tick in group:
            builder.try_add(tick.symbol, encode_tick(tick))
        for payload in poison_inside[start // 100 :: 50]:
            builder.try_add(group[0].symbol, payload)
        entries.append((group[0].symbol, builder.build()))
        entries += [
            (t.symbol, encode_tick(t)) for t in later[start : start + 100] if t.symbol != group[0].symbol
        ]
    rng.shuffle(entries)
    kinesis = local_stack.client("kinesis")
    put(kinesis, outputs.StreamName, entries)

    run_and_kill(env, rng.uniform(2.0, 6.0))
    run_and_kill(env, rng.uniform(2.0, 6.0))
    finished = run_cli(["consume", "--until-idle"], env, timeout=900)
    assert finished.returncode == 0, finished.stderr

    expected = reference_from_stream(local_stack, outputs.StreamName, generated)
    assert scan_bars(local_stack.client("dynamodb"), outputs.BarsTableName) == expected

    s3 = local_stack.client("s3")
    reasons: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=outputs.DataBucketName, Prefix="rejected/"
    ):
        for item in page.get("Contents", []):
            body = json.loads(s3.get_object(Bucket=outputs.DataBucketName, Key=item["Key"])["Body"].read())
            assert body["message"]
            assert body["data_base64"]
            reasons[body["reason"]] += 1
    expected_reasons = Counter(dict.fromkeys(POISON, 150))
    expected_reasons["bad_price"] += 150 + 100
    expected_reasons["corrupt_aggregate"] = 100
    for start in range(0, len(later), 100):
        for payload in poison_inside[start // 100 :: 50]:
            expected_reasons[next(k for k, v in POISON.items() if v == payload)] += 1
    assert reasons == expected_reasons

    sqs = local_stack.client("sqs")
    depth = sqs.get_queue_attributes(
        QueueUrl=outputs.DeadLetterQueueUrl, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert depth == "0"  # transient faults never outlast the retries: AWS sends nothing to OnFailure

    _assert_latest_rows_are_the_bars(local_stack, outputs)


def _assert_latest_rows_are_the_bars(local_stack: LocalStack, outputs: StackOutputs) -> None:
    """Each bar's latest S3 row (highest version) is the bar in DynamoDB; objects by shard, not symbol."""
    s3 = local_stack.client("s3")
    lake = DataLake(s3, outputs.DataBucketName).latest_rows()
    assert {key: (r["open"], r["close"], r["trades"], r["version"]) for key, r in lake.items()} == {
        (b.symbol, b.interval, b.start): (b.acc.open, b.acc.close, b.acc.trades, b.version)
        for b in BarsTable(local_stack.client("dynamodb"), outputs.BarsTableName).scan_bars()
        if b.acc is not None
    }
    objects = s3.list_objects_v2(Bucket=outputs.DataBucketName, Prefix="bars/interval=1m/")["Contents"]
    assert {o["Key"].split("/")[2] for o in objects} == {"date=2026-11-02"}
    assert {o["Key"].split("/")[3] for o in objects} <= {f"shard=shardId-00000000000{i}" for i in range(4)}


def test_without_a_tumbling_window_each_batch_is_written_and_bad_input_quarantined(
    local_stack: LocalStack,
) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": "nowindow"}
    outputs = local_stack.deploy("nowindow", 2, env=env)
    lam = local_stack.client("lambda")
    mapping = next(
        m
        for m in lam.list_event_source_mappings()["EventSourceMappings"]
        if m["FunctionArn"].endswith(outputs.AggregatorFunctionName)
    )
    lam.update_event_source_mapping(UUID=mapping["UUID"], TumblingWindowInSeconds=0, BatchSize=7)
    ticks = list(SyntheticMarket(["AAA", "BBB"], 100.0, 5, START_MS, count=300).ticks())
    entries = [(t.symbol, encode_tick(t)) for t in ticks] + [("x", POISON["bad_symbol"])]
    put(local_stack.client("kinesis"), outputs.StreamName, entries)
    finished = run_cli(["consume", "--until-idle"], env, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "0 windows closed" in finished.stdout
    assert "invocations" in finished.stdout
    invocations = int(finished.stdout.split(": ", 1)[1].split(" invocations")[0])
    assert invocations >= 301 // 7
    generated = {t.id: t for t in ticks if t.id}
    expected = reference_from_stream(local_stack, outputs.StreamName, generated)
    assert scan_bars(local_stack.client("dynamodb"), outputs.BarsTableName) == expected
    rejected = local_stack.client("s3").list_objects_v2(Bucket=outputs.DataBucketName, Prefix="rejected/")
    assert len(rejected["Contents"]) == 1
