"""The cost meter's stand-ins make the same requests as the product makes against a moto server.

Three windows of the cost simulation (8 symbols, 1,000 ticks/s, the real handlers on real KPL
records) run twice: once on bench.aws_meter's metered clients, once on boto3 clients of a moto
server. Every DynamoDB operation and every S3 request per bucket must be counted the same.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest

import bench.cost_day
from bench.aws_meter import StreamRecord, item_bytes
from bench.cost_day import ALERT_TABLE, BARS_TABLE, DATA_BUCKET, LEDGER_TABLE, SITE_BUCKET, simulate_day
from local_aws.embedded import EmbeddedAws, free_local_port

pytestmark = pytest.mark.integration

WINDOWS = 3


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


class Recorded:
    """A boto3 client whose calls are counted, and whose bars-table puts are kept as stream records."""

    def __init__(self, client: Any, counts: Counter[str]) -> None:
        self._client = client
        self._counts = counts
        self.stream: list[StreamRecord] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**params: Any) -> Any:
            self._counts[f"{_camel(name)}{':' + params['Bucket'] if 'Bucket' in params else ''}"] += 1
            answer = method(**params)
            if name == "put_item" and params["TableName"] == BARS_TABLE:
                item = params["Item"]
                keys = {"pk": item["pk"], "sk": item["sk"]}
                self.stream.append(StreamRecord(BARS_TABLE, "MODIFY", keys, item, item_bytes(item)))
            return answer

        return call


def _moto_counts(endpoint: str) -> Counter[str]:
    options = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    dynamodb, s3 = boto3.client("dynamodb", **options), boto3.client("s3", **options)
    for table in (BARS_TABLE, LEDGER_TABLE):
        dynamodb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    dynamodb.create_table(
        TableName=ALERT_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for bucket in (DATA_BUCKET, SITE_BUCKET):
        s3.create_bucket(Bucket=bucket)
    counts: Counter[str] = Counter()
    simulate_day(8, windows=WINDOWS, clients=(Recorded(dynamodb, counts), Recorded(s3, counts)))
    return counts


def _metered_counts() -> Counter[str]:
    result = simulate_day(8, windows=WINDOWS)
    counts: Counter[str] = Counter()
    for usage in result.usage.values():
        counts.update(usage.requests)
        counts.update({f"PutObject:{bucket}": n for bucket, n in usage.s3_puts.items()})
        counts.update({f"GetObject:{bucket}": n for bucket, n in usage.s3_gets.items()})
    return counts


def test_the_meter_counts_what_moto_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench.cost_day, "RENDER_SAMPLES", 1)
    metered = _metered_counts()
    with tempfile.TemporaryDirectory() as state:
        local = EmbeddedAws(Path(state), free_local_port())
        local.start()
        try:
            on_moto = _moto_counts(local.url)
        finally:
            local.stop()
    assert min(metered["PutItem"], metered["Query"], metered["BatchGetItem"]) > 0
    assert metered == on_moto
