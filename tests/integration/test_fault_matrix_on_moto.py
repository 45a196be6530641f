"""Throttling, 500s, AccessDenied and timeouts on each kind of DynamoDB and S3 call the
aggregator, the chart builder and the runner make, with and without a tumbling window: once
the faults stop and the run finishes, the bars in DynamoDB and the rows in S3 are those of
pandas over awslabs' deaggregator, and nothing went to the dead-letter queue.

The faults come from an HTTP proxy in front of moto (tests/support/aws_fault_proxy.py), so
botocore's own retries and error parsing stand between them and our code. One kind of call
is faulted per case: faults on another kind would make the aggregator retry, and a retry
rewrites what an earlier fault may have left unwritten, hiding the loss.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass

import pytest

from local_aws.stack import StackOutputs
from market.bars import DEFAULT_INTERVALS
from producer.kinesis_writer import KinesisStreamWriter
from producer.pace import Pace
from producer.pipeline import ProduceOptions, Producer
from producer.sources import SyntheticMarket
from stores.shard_reader import ShardReader
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
from tickstream.demo.bars_reference import ReferenceBar, reference_from_stream

pytestmark = pytest.mark.integration

SYMBOLS = ("FMA", "FMB", "FMC")
# 300 ticks over about five minutes of event time, across midnight: two days of rows.
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

    def target(self, call: str) -> Target:
        """The call of CALLS named `call`, on this stack's table or bucket."""
        service, operation, resource = call.split(":")
        names = {
            "bars": self.outputs.BarsTableName,
            "ledger": self.outputs.LedgerTableName,
            "data": self.outputs.DataBucketName,
            "checkpoints": self.checkpoints,
        }
        return Target(service, operation, names[resource])


# Every kind of DynamoDB and S3 call a consume run makes on the ledger, the bars, the rows and
# the runner's checkpoints. The aggregator never reads the data bucket.
CALLS = [
    "dynamodb:BatchGetItem:ledger",  # aggregator: bookkeeping, then the bars to merge into
    "dynamodb:PutItem:ledger",  # aggregator: conditional ledger writes
    "dynamodb:PutItem:bars",  # aggregator: the bars users read, 1m projections and longer folds
    "dynamodb:Query:bars",  # aggregator: the shorter bars of a fold; chart builder: a chart's bars
    "s3:PutObject:data",  # aggregator: a window's rows
    "dynamodb:GetItem:checkpoints",  # runner: where a shard resumes
    "dynamodb:PutItem:checkpoints",  # runner: a batch or a window done
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
    outputs = local_stack.deploy(name, 2, f"TumblingWindowSeconds={window_s}", env=env)
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
    stack.clean_calls.update({stack.target(c): proxy.log.calls[stack.target(c)] for c in CALLS})
    # Every kind of call is made, so every kind can be faulted (the ledger is read twice: once
    # per shard, for the minutes its first batch meets).
    assert min(stack.clean_calls.values()) >= 2, stack.clean_calls
    return stack


def fault_plan(target: Target, calls: int, seed: int) -> FaultPlan:
    """Each kind of fault twice on one kind of call, anywhere among the `calls` calls a run without
    faults makes: once as a burst the code sees, once as a shorter one botocore retries away.

    A burst of ATTEMPTS failures outlasts botocore's tries; AccessDenied is not retried, so one
    failure reaches the code. Places count the calls of a run without faults: every failed call
    is made again, so the planned indices shift by the failures planned before them.
    """
    rng = random.Random(seed)
    bursts = [(fault, 1 if fault is Fault.ACCESS_DENIED else ATTEMPTS) for fault in Fault]
    bursts += [(fault, rng.randint(1, ATTEMPTS - 1)) for fault in Fault if fault is not Fault.ACCESS_DENIED]
    failures: dict[int, Fault] = {}
    shift = 0
    for place, which in sorted((rng.randrange(calls), i) for i in range(len(bursts))):
        fault, length = bursts[which]
        failures.update(dict.fromkeys(range(place + shift, place + shift + length), fault))
        shift += length
    return FaultPlan({target: failures}, seed)


def consume(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(["consume", "--until-idle"], env, timeout=600)


@pytest.mark.parametrize("call", CALLS, ids=[c.split(":", 1)[1].replace(":", "-") for c in CALLS])
def test_faults_on_a_call_then_a_clean_finish_give_the_reference_bars_and_rows(
    local_stack: LocalStack, fault_stack: FaultStack, call: str
) -> None:
    start_over(local_stack, fault_stack.outputs, fault_stack.checkpoints)
    target = fault_stack.target(call)
    plan = fault_plan(
        target, fault_stack.clean_calls[target], seed=fault_stack.window_s * 100 + CALLS.index(call)
    )
    last_planned = max(plan.failures[target])
    with AwsFaultProxy(local_stack.endpoint, plan) as proxy:
        faulted = {**fault_stack.env, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": str(ATTEMPTS)}
        exits = []
        for _ in range(MAX_FAULTED_RUNS):
            calls_before = proxy.log.calls[target]
            run = consume(faulted)
            exits.append(run.returncode)
            # The runner stops on a checkpoint it cannot read or write, with one error line;
            # anything else that ends it (a traceback) is a bug.
            assert run.returncode in (DRAINED, RUNNER_ERROR), run.stderr[-3000:]
            assert run.stderr.startswith("error:") or run.returncode == DRAINED, run.stderr[-3000:]
            # Done once drained, and past the plan or out of calls to fail: a checkpoint write
            # that timed out after it applied is not made again.
            if run.returncode == DRAINED and (
                proxy.log.calls[target] > last_planned or proxy.log.calls[target] == calls_before
            ):
                break
        injected = dict(proxy.log.injected)
    finished = consume(fault_stack.env)
    assert finished.returncode == DRAINED, finished.stderr[-3000:]

    assert dead_letters(local_stack, fault_stack.outputs) == 0, f"records discarded; {exits=} {injected=}"
    assert stored_bars(local_stack, fault_stack.outputs) == fault_stack.expected, f"{exits=} {injected=}"
    rows = s3_rows(local_stack, fault_stack.outputs.DataBucketName)
    assert rows == expected_rows(fault_stack.expected), f"{exits=} {injected=}"
    # Checked last: a fault the code swallows makes no retry, so the later planned ones never come.
    for fault in Fault:
        reaching = 1 if fault is Fault.ACCESS_DENIED else ATTEMPTS
        assert injected.get((target, fault), 0) >= reaching, f"{fault} never reached the code: {injected}"
