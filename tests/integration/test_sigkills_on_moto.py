"""`tickstream consume --until-idle` killed with a real SIGKILL at seeded random moments, over
and over while ticks keep coming, then run to the end: the bars in DynamoDB and the rows in S3
are those of pandas over awslabs' deaggregator, and nothing went to the dead-letter queue.

Unlike the crash points of TICKSTREAM_KILL_AFTER_WRITES, which end the process between two
calls, a signal can land anywhere: inside a request moto is reading, between a write and its
checkpoint, while a handler's worker thread is writing. Each kill's moment is counted from the
run's first AWS call (seen by a pass-through proxy), so start-up time does not decide where
kills land.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from market.bars import DEFAULT_INTERVALS
from producer.kinesis_writer import KinesisStreamWriter
from producer.pace import Pace
from producer.pipeline import ProduceOptions, Producer
from producer.sources import SyntheticMarket
from stores.shard_reader import ShardReader
from tests.support.aws_fault_proxy import AwsFaultProxy, FaultPlan
from tests.support.local_stack import TICKSTREAM, LocalStack, run_cli
from tests.support.stack_state import checkpoints_table, dead_letters, expected_rows, s3_rows, stored_bars
from tickstream.demo.bars_reference import reference_from_stream

pytestmark = pytest.mark.integration

SYMBOLS = ("SKA", "SKB", "SKC")
START_MS = 1_795_305_450_000  # 2026-11-21T23:57:30Z: five minutes across midnight
CHUNKS = 12  # the ticks come in this many parts, one before each of the first runs
TICKS_PER_CHUNK = 25
RATE = 1.0
SEED = 29
AGGREGATE_BYTES = 1_500
KILLS = 10  # at least this many runs end by SIGKILL
MAX_ROUNDS = 30
LATEST_KILL_S = 6.0  # a clean run of the whole stream lasts about three times as long here


def produce_chunk(local_stack: LocalStack, stream: str, chunk: int) -> None:
    """The chunk-th part of the ticks: its own seed, its own stretch of event time."""
    start = START_MS + chunk * int(TICKS_PER_CHUNK / RATE * 1000)
    market = SyntheticMarket(SYMBOLS, RATE, SEED + chunk, start, count=TICKS_PER_CHUNK)
    options = ProduceOptions(pace=Pace.MAX, max_aggregate_bytes=AGGREGATE_BYTES)
    stats = Producer(KinesisStreamWriter(local_stack.client("kinesis"), stream), options).run(market.ticks())
    assert stats.complete, stats


def started_consumer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*TICKSTREAM, "consume", "--until-idle"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("window_s", [60, 0], ids=["window60", "window0"])
def test_many_sigkills_at_random_moments_then_a_finish_give_the_reference_bars_and_rows(
    local_stack: LocalStack, window_s: int
) -> None:
    name = f"sigkill{window_s}"
    env = {**local_stack.env, "TICKSTREAM_STACK": name}
    outputs = local_stack.deploy(name, 2, f"TumblingWindowSeconds={window_s}", env=env)
    checkpoints_table(local_stack, name)  # deployed, so a killed run has checkpoints to resume from

    rng = random.Random(SEED * 1000 + window_s)
    kills = ended_alone = 0
    for round_ in range(MAX_ROUNDS):
        if round_ < CHUNKS:
            produce_chunk(local_stack, outputs.StreamName, round_)
        elif kills >= KILLS:
            break
        with AwsFaultProxy(local_stack.endpoint, FaultPlan({}, round_)) as proxy:
            process = started_consumer({**env, "AWS_ENDPOINT_URL": proxy.url})
            working = proxy.first_call.wait(timeout=120)
            assert working, "consume made no AWS call"
            time.sleep(rng.uniform(0.0, LATEST_KILL_S))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            returncode = process.wait(timeout=120)
        if returncode == -signal.SIGKILL:
            kills += 1
            continue
        assert returncode == 0, f"round {round_}: consume ended with {returncode}"
        ended_alone += 1
    assert kills >= KILLS, f"only {kills} runs were killed, {ended_alone} ended first"

    finished = run_cli(["consume", "--until-idle"], env, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]

    reader = ShardReader(local_stack.client("kinesis"), outputs.StreamName)
    records = [r for shard in reader.shards() for r in reader.read_shard(shard.shard_id)]
    expected = reference_from_stream(records, DEFAULT_INTERVALS)
    assert (
        sum(bar[5] for (_, interval, _), bar in expected.items() if interval == "1d")
        == CHUNKS * TICKS_PER_CHUNK
    )
    assert dead_letters(local_stack, outputs) == 0
    assert stored_bars(local_stack, outputs) == expected, f"{kills} kills"
    assert s3_rows(local_stack, outputs.DataBucketName) == expected_rows(expected), f"{kills} kills"
