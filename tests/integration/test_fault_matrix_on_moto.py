"""Throttling, 500s, AccessDenied and timeouts on every kind of DynamoDB and S3 call the
aggregator, the chart builder and the runner make, with and without a tumbling window: once
the faults stop and the run finishes, the bars in DynamoDB and the rows in S3 are those of
pandas over awslabs' deaggregator, and nothing went to the dead-letter queue.

The faults come from an HTTP proxy in front of moto (tests/support/aws_fault_proxy.py), so
botocore's own retries and error parsing stand between them and our code. Each kind of call
gets, at seeded places, a burst as long as botocore's tries (the code sees the error) and a
lone failure (botocore retries it away); AccessDenied is never retried, so both reach the code.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass

import pytest

from consumers.shard_reader import ShardReader
from market.bars import DEFAULT_INTERVALS
from producer.kinesis_writer import KinesisStreamWriter
from producer.pipeline import Pace, ProduceOptions, Producer
from producer.sources import SyntheticMarket
from tests.support.aws_fault_proxy import AwsFaultProxy, Fault, FaultPlan, Target
from tests.support.local_stack import LocalStack, run_cli
from tests.support.stack_state import (
    checkpoints_table,
    dead_letters,
    expected_rows,
    s3_rows,
    start_over,
    stored_bars,
)
from tickstream.bars_reference import ReferenceBar, reference_from_stream
from tickstream.stack import StackDeployer, StackOutputs

pytestmark = pytest.mark.integration

SYMBOLS = ("FMA", "FMB", "FMC")
# 300 ticks over about five minutes of event time, across midnight: two days of day files.
START_MS = 1_795_305_450_000  # 2026-11-21T23:57:30Z
COUNT = 300
RATE = 1.0
SEED = 13
# Small aggregates: a few dozen KPL records instead of one per shard.
AGGREGATE_BYTES = 1_500
# Tries per call: the runner's clients say 3 (standard mode); the handlers' clients keep Lambda's
# default legacy mode, capped at 3 by AWS_MAX_ATTEMPTS so that a burst reaching the aggregator
# costs tenths of a second of DynamoDB backoff instead of the 25 s of legacy's 10 tries.
ATTEMPTS = 3
MAX_FAULTED_RUNS = 8
DRAINED = 0
RUNNER_ERROR = 2  # the one-line `error:` exit of a command (tickstream.cli.run)


@dataclass(frozen=True)
class FaultStack:
    window_s: int
    env: dict[str, str]
    outputs: StackOutputs
    checkpoints: str
    expected: dict[tuple[str, str, int], ReferenceBar]
    clean_calls: dict[Target, int]  # how often a run without faults makes each kind of call

    def targets(self) -> list[Target]:
        """Every kind of DynamoDB and S3 call a consume run makes on the data and checkpoints."""
        bars, data = self.outputs.BarsTableName, self.outputs.DataBucketName
        return [
            Target("dynamodb", "BatchGetItem", bars),  # aggregator: bookkeeping, then bars to merge
            Target("dynamodb", "PutItem", bars),  # aggregator: conditional bar writes
            Target("dynamodb", "Query", bars),  # chart builder: the bars of a chart
            Target("s3", "GetObject", data),  # aggregator: the day file to merge into
            Target("s3", "PutObject", data),  # aggregator: the merged day file
            Target("dynamodb", "GetItem", self.checkpoints),  # runner: where a shard resumes
            Target("dynamodb", "PutItem", self.checkpoints),  # runner: a batch or window done
        ]


def produce(local_stack: LocalStack, stream: str) -> None:
    market = SyntheticMarket(SYMBOLS, RATE, SEED, START_MS, count=COUNT)
    options = ProduceOptions(pace=Pace.MAX, max_aggregate_bytes=AGGREGATE_BYTES)
    stats = Producer(KinesisStreamWriter(local_stack.client("kinesis"), stream), options).run(market.ticks())
    assert stats.complete, stats
    assert stats.records_accepted >= 10, stats


@pytest.fixture(scope="module", params=[60, 0], ids=["window60", "window0"])
def fault_stack(request: pytest.FixtureRequest, local_stack: LocalStack) -> FaultStack:
    """A two-shard stack with the template's tumbling window (60 s) or none, and its stream filled."""
    window_s: int = request.param
    name = f"faults{window_s}"
    env = {**local_stack.env, "TICKSTREAM_STACK": name}
    created = run_cli(["up", "--shards", "2", "--parameter", f"TumblingWindowSeconds={window_s}"], env)
    assert created.returncode == 0, created.stderr
    outputs = StackDeployer(local_stack.client("cloudformation"), name).outputs()
    produce(local_stack, outputs.StreamName)
    reader = ShardReader(local_stack.client("kinesis"), outputs.StreamName)
    records = [r for shard in reader.shards() for r in reader.read_shard(shard.shard_id)]
    expected = reference_from_stream(records, DEFAULT_INTERVALS)
    assert {interval for _, interval, _ in expected} == set(DEFAULT_INTERVALS)
    assert len({start for _, interval, start in expected if interval == "1d"}) == 2
    stack = FaultStack(window_s, env, outputs, checkpoints_table(local_stack, name), expected, {})
    # A run without faults through the proxy: where the faults can go, and that the run is right.
    with AwsFaultProxy(local_stack.endpoint, FaultPlan({}, 0)) as proxy:
        clean = consume({**env, "AWS_ENDPOINT_URL": proxy.url})
    assert clean.returncode == DRAINED, clean.stderr[-3000:]
    assert stored_bars(local_stack, outputs) == expected
    assert s3_rows(local_stack, outputs.DataBucketName) == expected_rows(expected)
    stack.clean_calls.update({t: proxy.log.calls[t] for t in stack.targets()})
    assert min(stack.clean_calls.values()) >= ATTEMPTS, stack.clean_calls
    return stack


def fault_plan(calls: dict[Target, int], fault: Fault, seed: int) -> FaultPlan:
    """Per kind of call: a burst and a lone failure, each anywhere among the calls a run without
    faults makes (a failed call is made again, so every planned call comes).

    A burst of ATTEMPTS calls outlasts botocore's tries, so the code gets the error; AccessDenied
    is not retried, so a burst of one does. A lone failure is what botocore alone absorbs.
    """
    rng = random.Random(seed)
    burst = 1 if fault is Fault.ACCESS_DENIED else ATTEMPTS
    failures = {}
    for target, count in sorted(calls.items()):
        first = rng.randrange(count - burst + 1)
        failing = set(range(first, first + burst))
        lone = rng.randrange(count)
        if not failing & {lone - 1, lone, lone + 1}:  # one beside the burst would lengthen it
            failing.add(lone)
        failures[target] = dict.fromkeys(sorted(failing), fault)
    return FaultPlan(failures, seed)


def consume(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(["consume", "--until-idle"], env, timeout=600)


@pytest.mark.parametrize("fault", list(Fault))
def test_faults_on_every_call_then_a_clean_finish_give_the_reference_bars_and_rows(
    local_stack: LocalStack, fault_stack: FaultStack, fault: Fault
) -> None:
    start_over(local_stack, fault_stack.outputs, fault_stack.checkpoints)
    targets = fault_stack.targets()
    plan = fault_plan(
        fault_stack.clean_calls, fault, seed=fault_stack.window_s * 100 + list(Fault).index(fault)
    )
    with AwsFaultProxy(local_stack.endpoint, plan) as proxy:
        faulted = {**fault_stack.env, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": str(ATTEMPTS)}
        exits = []
        for _ in range(MAX_FAULTED_RUNS):
            run = consume(faulted)
            exits.append(run.returncode)
            # The runner may stop on a checkpoint it cannot read or write, with one error line;
            # anything else (a traceback, a hang) is a bug.
            assert run.returncode in (DRAINED, RUNNER_ERROR), run.stderr[-3000:]
            if run.returncode == RUNNER_ERROR:
                assert "checkpoint" in run.stderr, run.stderr[-3000:]
            unreached = [t for t in targets if proxy.log.calls[t] <= max(plan.failures[t])]
            if run.returncode == DRAINED and not unreached:
                break
        assert not unreached, f"planned faults never injected: {unreached} ({dict(proxy.log.calls)})"
        injected = dict(proxy.log.injected)
    finished = consume(fault_stack.env)
    assert finished.returncode == DRAINED, finished.stderr[-3000:]

    assert dead_letters(local_stack, fault_stack.outputs) == 0, f"records discarded; {exits=} {injected=}"
    assert stored_bars(local_stack, fault_stack.outputs) == fault_stack.expected
    assert s3_rows(local_stack, fault_stack.outputs.DataBucketName) == expected_rows(fault_stack.expected)
