"""`tickstream redrive` brings back exactly the ticks of a record Lambda gave up on.

The local runner bisects a failing batch down to one record and sends Lambda's OnFailure record
to the dead-letter queue, while the records before and after it, in the same minutes, are taken.
A replay then skips the record (it sits below those minutes' watermarks); the redrive takes its
ticks by id, once. The oracle is pandas over the stream decoded by awslabs' deaggregator.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from market.bars import DEFAULT_INTERVALS
from stores.bars_table import BarsTable
from stores.shard_reader import ShardReader
from tests.support.local_stack import LocalStack, run_cli
from tickstream.demo.bars_reference import public_values, reference_from_stream

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("window", ["60", "0"], ids=["tumbling-window", "window-0"])
def test_a_record_discarded_between_taken_ones_is_redriven_once(
    local_stack: LocalStack, window: str, tmp_path: Path
) -> None:
    stack = f"redrive{window}"
    env = {**local_stack.env, "TICKSTREAM_STACK": stack}
    outputs = local_stack.deploy(stack, 1, f"TumblingWindowSeconds={window}", env=env)
    produce = ["produce", "--symbols", "RDA,RDB", "--count", "80", "--rate", "0.5", "--seed", "5"]
    produced = run_cli([*produce, "--start", "2026-11-20T10:01:30", "--pace", "max", "--no-aggregate"], env)
    assert produced.returncode == 0, produced.stderr
    reader = ShardReader(local_stack.client("kinesis"), outputs.StreamName)
    records = [r for shard in reader.shards() for r in reader.read_shard(shard.shard_id)]
    expected = reference_from_stream(records, DEFAULT_INTERVALS)
    doomed = records[len(records) // 2]

    functions = local_stack.client("lambda")
    deployed = functions.get_function_configuration(FunctionName=outputs.AggregatorFunctionName)
    variables = deployed["Environment"]["Variables"]
    functions.update_function_configuration(
        FunctionName=outputs.AggregatorFunctionName,
        Handler="tests.support.discarding_handler.handler",
        Environment={"Variables": {**variables, "DISCARD_SEQUENCE": doomed.sequence_number}},
    )
    consumed = run_cli(["consume", "--until-idle"], env)
    assert consumed.returncode == 0, consumed.stderr[-2000:]
    functions.update_function_configuration(
        FunctionName=outputs.AggregatorFunctionName,
        Handler=deployed["Handler"],
        Environment={"Variables": variables},
    )
    sqs = local_stack.client("sqs")
    letters = sqs.receive_message(
        QueueUrl=outputs.DeadLetterQueueUrl, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    batches = [json.loads(m["Body"])["KinesisBatchInfo"] for m in letters.get("Messages", [])]
    assert [(b["startSequenceNumber"], b["endSequenceNumber"]) for b in batches] == [
        (doomed.sequence_number, doomed.sequence_number)
    ]

    table = BarsTable(local_stack.client("dynamodb"), outputs.BarsTableName)

    def stored() -> dict[tuple[str, str, int], object]:
        return {(b.symbol, b.interval, b.start): public_values(b.acc) for b in table.scan_bars() if b.acc}

    assert "then `tickstream redrive`" in " ".join(run_cli(["status"], env).stdout.split())
    without = stored()
    lost = {key for key in expected if without.get(key) != expected[key]}
    assert {interval for _, interval, _ in lost} == set(DEFAULT_INTERVALS)

    redriven = run_cli(["redrive"], env)
    assert redriven.returncode == 0, redriven.stderr
    assert "1 discarded range(s), 1 records, 1 ticks recovered, 0 already in the bars" in redriven.stdout
    assert stored() == expected
    depth = sqs.get_queue_attributes(QueueUrl=outputs.DeadLetterQueueUrl, AttributeNames=["All"])[
        "Attributes"
    ]
    assert (depth["ApproximateNumberOfMessages"], depth["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "0",
    )

    again = run_cli(["redrive"], env)
    assert again.returncode == 0, again.stderr
    assert "0 discarded range(s)" in again.stdout
    assert "DLQ     0 message(s)" in run_cli(["status"], env).stdout
    replayed = run_cli(["consume", "--until-idle"], env)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    assert stored() == expected
    _assert_the_documented_query_gives_the_bars(local_stack, outputs.DataBucketName, table, tmp_path)


def _assert_the_documented_query_gives_the_bars(
    local_stack: LocalStack, bucket: str, table: BarsTable, tmp_path: Path
) -> None:
    """docs/exactly-once.md's DuckDB query over a copy of the bucket's rows gives each 1m bar as
    DynamoDB has it."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "exactly-once.md").read_text()
    query = re.search(r"## The data bucket.*?```sql\n(.*?)```", doc, re.DOTALL)
    assert query is not None
    s3 = local_stack.client("s3")
    for entry in s3.list_objects_v2(Bucket=bucket, Prefix="bars/")["Contents"]:
        copy = tmp_path / entry["Key"]
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
    sql = query.group(1).replace("s3://<data-bucket>", str(tmp_path)).replace("2026-11-30", "2026-11-20")
    relation = duckdb.sql(sql)
    assert relation is not None
    rows = {(r[0], r[2]): tuple(Decimal(str(v)) for v in r[3:9]) for r in relation.fetchall()}
    bars = [b for b in table.scan_bars() if b.interval == "1m"]
    assert rows == {
        (b.symbol, b.start): (a.open, a.high, a.low, a.close, a.volume, Decimal(a.trades))
        for b in bars
        if (a := b.acc) is not None
    }
