"""`tickstream consume` killed after each of its DynamoDB and S3 writes in turn, then started
again, leaves the bars in DynamoDB and the rows in S3 of a run that was never killed.

The kill is the runner's TICKSTREAM_KILL_AFTER_WRITES (the process ends as SIGKILL would end it,
exit status 137) for k = 1, 2, ... until a run ends on its own: every write of the run is a crash
point. The oracle is pandas over the stream decoded by awslabs' deaggregator, not our decoder.
"""

from __future__ import annotations

import pytest

from local_aws.stack import StackDeployer
from market.bars import DEFAULT_INTERVALS
from stores.shard_reader import ShardReader
from tests.support.local_stack import LocalStack, run_cli
from tests.support.stack_state import checkpoints_table, expected_rows, s3_rows, start_over, stored_bars
from tickstream.demo.bars_reference import reference_from_stream

pytestmark = pytest.mark.integration

STACK = "killk"
KILLED = 137


def test_a_kill_after_every_write_then_a_restart_gives_the_bars_and_rows_of_no_kill(
    local_stack: LocalStack,
) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": STACK}
    local_stack.deploy(STACK, 1, env=env)
    produce = ["produce", "--symbols", "KIL", "--count", "90", "--rate", "1", "--seed", "3"]
    produced = run_cli([*produce, "--start", "2026-11-20T10:01:30", "--pace", "max"], env)
    assert produced.returncode == 0, produced.stderr
    cloudformation = local_stack.client("cloudformation")
    outputs = StackDeployer(cloudformation, STACK).outputs()
    checkpoints = checkpoints_table(local_stack, STACK)
    reader = ShardReader(local_stack.client("kinesis"), outputs.StreamName)
    records = [r for shard in reader.shards() for r in reader.read_shard(shard.shard_id)]
    expected = reference_from_stream(records, DEFAULT_INTERVALS)
    assert {interval for _, interval, _ in expected} == set(DEFAULT_INTERVALS)
    assert len([k for k in expected if k[1] == "1m"]) >= 2

    k = 0
    while True:
        k += 1
        start_over(local_stack, outputs, checkpoints)
        killed = run_cli(["consume", "--until-idle"], {**env, "TICKSTREAM_KILL_AFTER_WRITES": str(k)})
        if killed.returncode == 0:
            break  # k is past the run's last write: every crash point was tried
        assert killed.returncode == KILLED, killed.stderr[-2000:]
        resumed = run_cli(["consume", "--until-idle"], env)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert stored_bars(local_stack, outputs) == expected, f"bars after a kill at write {k}"
        rows = s3_rows(local_stack, outputs.DataBucketName)
        assert rows == expected_rows(expected), f"S3 rows after a kill at write {k}"

    assert k > 10, f"a run of only {k - 1} writes: the dataset no longer exercises the write path"
