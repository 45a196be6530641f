"""A deployed stack's state for crash and fault tests: emptied between runs, read back for checks."""

from __future__ import annotations

from decimal import Decimal

from functions.aggregator.data_lake import DataLake
from local_aws.stack import StackDeployer, StackOutputs, output_values
from stores.bars_table import BarsTable
from tests.support.local_stack import LocalStack
from tickstream.demo.bars_reference import ReferenceBar, public_values

S3Row = tuple[Decimal, ...]


def checkpoints_table(local_stack: LocalStack, stack: str) -> str:
    """The runner's checkpoints table, which `tickstream up` deploys in the stack's artifacts stack."""
    artifacts = StackDeployer(local_stack.client("cloudformation"), f"{stack}-artifacts").describe()
    return output_values(artifacts)["RunnerCheckpointsTableName"]


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


def start_over(local_stack: LocalStack, outputs: StackOutputs, checkpoints: str) -> None:
    """Bars, rows, site, checkpoints and dead letters gone: the next run reads the stream from its start."""
    _empty_table(local_stack, outputs.BarsTableName, ["pk", "sk"])
    _empty_table(local_stack, outputs.LedgerTableName, ["pk", "sk"])
    _empty_table(local_stack, outputs.AlertStateTableName, ["pk"])
    _empty_table(local_stack, checkpoints, ["mapping_shard"])
    _empty_bucket(local_stack, outputs.DataBucketName)
    _empty_bucket(local_stack, outputs.SiteBucketName)
    sqs = local_stack.client("sqs")
    while messages := sqs.receive_message(QueueUrl=outputs.DeadLetterQueueUrl, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for message in messages:
            sqs.delete_message(QueueUrl=outputs.DeadLetterQueueUrl, ReceiptHandle=message["ReceiptHandle"])


def stored_bars(local_stack: LocalStack, outputs: StackOutputs) -> dict[tuple[str, str, int], ReferenceBar]:
    """Every bar of the bars table, in the reference's shape."""
    bars = BarsTable(local_stack.client("dynamodb"), outputs.BarsTableName).scan_bars()
    return {(b.symbol, b.interval, b.start): public_values(b.acc) for b in bars if b.acc is not None}


def s3_rows(local_stack: LocalStack, bucket: str) -> dict[tuple[str, str, int], S3Row]:
    """Each bar's latest row (highest version), as a reader of the bucket sees it:
    (symbol, interval, start) -> open, high, low, close, volume, trades."""
    rows = {}
    for key, row in DataLake(local_stack.client("s3"), bucket).latest_rows().items():
        values = (row["open"], row["high"], row["low"], row["close"], row["volume"], row["trades"])
        rows[key] = tuple(Decimal(str(v)) for v in values)
    return rows


def expected_rows(expected: dict[tuple[str, str, int], ReferenceBar]) -> dict[tuple[str, str, int], S3Row]:
    """The S3 rows the reference bars make."""
    return {key: (*v[:5], Decimal(v[5])) for key, v in expected.items()}


def dead_letters(local_stack: LocalStack, outputs: StackOutputs) -> int:
    sqs = local_stack.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=outputs.DeadLetterQueueUrl,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
