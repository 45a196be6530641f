"""`tickstream consume` killed after each of its DynamoDB and S3 writes in turn, then started
again, leaves the bars in DynamoDB and the rows in S3 of a run that was never killed.

The kill is the runner's TICKSTREAM_KILL_AFTER_WRITES (the process ends as SIGKILL would end it,
exit status 137) for k = 1, 2, ... until a run ends on its own: every write of the run is a crash
point. The oracle is pandas over the stream decoded by awslabs' deaggregator, not our decoder.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from consumers.aggregate.bars_table import BarsTable
from consumers.aggregate.data_lake import DataLake
from consumers.shard_reader import ShardReader
from market.bars import DEFAULT_INTERVALS
from tests.support.local_stack import LocalStack, run_cli
from tickstream.bars_reference import public_values, reference_from_stream
from tickstream.stack import StackDeployer, StackOutputs, output_values

pytestmark = pytest.mark.integration

STACK = "killk"
KILLED = 137


def _empty_table(local_stack: LocalStack, table: str, keys: list[str]) -> None:
    dynamodb = local_stack.client("dynamodb")
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=table, Key={k: item[k] for k in keys})


def _empty_bucket(local_stack: LocalStack, bucket: str) -> None:
    s3 = local_stack.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])


def _start_over(local_stack: LocalStack, outputs: StackOutputs, checkpoints: str) -> None:
    """Bars, rows, site and checkpoints gone: the next run reads the stream from its start."""
    _empty_table(local_stack, outputs.BarsTableName, ["pk", "sk"])
    _empty_table(local_stack, outputs.LedgerTableName, ["pk", "sk"])
    _empty_table(local_stack, outputs.AlertStateTableName, ["pk"])
    _empty_table(local_stack, checkpoints, ["mapping_shard"])
    _empty_bucket(local_stack, outputs.DataBucketName)
    _empty_bucket(local_stack, outputs.SiteBucketName)


def _s3_rows(local_stack: LocalStack, bucket: str) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    """Each bar's latest row (highest version) as a reader of the bucket sees it."""
    rows = {}
    for key, row in DataLake(local_stack.client("s3"), bucket).latest_rows().items():
        values = (row["open"], row["high"], row["low"], row["close"], row["volume"], row["trades"])
        rows[key] = tuple(Decimal(str(v)) for v in values)
    return rows


def test_a_kill_after_every_write_then_a_restart_gives_the_bars_and_rows_of_no_kill(
    local_stack: LocalStack,
) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": STACK}
    assert run_cli(["up", "--shards", "1"], env).returncode == 0
    produce = ["produce", "--symbols", "KIL", "--count", "90", "--rate", "1", "--seed", "3"]
    produced = run_cli([*produce, "--start", "2026-11-20T10:01:30", "--pace", "max"], env)
    assert produced.returncode == 0, produced.stderr
    cloudformation = local_stack.client("cloudformation")
    outputs = StackDeployer(cloudformation, STACK).outputs()
    checkpoints = output_values(StackDeployer(cloudformation, f"{STACK}-artifacts").describe())[
        "RunnerCheckpointsTableName"
    ]
    reader = ShardReader(local_stack.client("kinesis"), outputs.StreamName)
    records = [r for shard in reader.shards() for r in reader.read_shard(shard.shard_id)]
    expected = reference_from_stream(records, DEFAULT_INTERVALS)
    assert {interval for _, interval, _ in expected} == set(DEFAULT_INTERVALS)
    assert len([k for k in expected if k[1] == "1m"]) >= 2

    k = 0
    while True:
        k += 1
        _start_over(local_stack, outputs, checkpoints)
        killed = run_cli(["consume", "--until-idle"], {**env, "TICKSTREAM_KILL_AFTER_WRITES": str(k)})
        if killed.returncode == 0:
            break  # k is past the run's last write: every crash point was tried
        assert killed.returncode == KILLED, killed.stderr[-2000:]
        resumed = run_cli(["consume", "--until-idle"], env)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        bars = BarsTable(local_stack.client("dynamodb"), outputs.BarsTableName).scan_bars()
        stored = {(b.symbol, b.interval, b.start): public_values(b.acc) for b in bars if b.acc is not None}
        assert stored == expected, f"bars after a kill at write {k}"
        rows = _s3_rows(local_stack, outputs.DataBucketName)
        assert rows == {key: (*v[:5], Decimal(v[5])) for key, v in expected.items()}, (
            f"S3 rows after a kill at write {k}"
        )
    assert k > 10, f"a run of only {k - 1} writes: the dataset no longer exercises the write path"
