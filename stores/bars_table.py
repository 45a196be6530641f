"""Data access for the bars table: the bars users, charts and alerts read, and nothing else; the
aggregator writes them through it.

A 1m item is the public projection of a ledger item (functions.aggregator.ledger): its columns
and the ledger's `version`. A longer bar is folded from the shorter bars here, with the sum of
their versions (functions.aggregator.logic.fold_children). Either way an item stays a few hundred
bytes whatever the tick rate, and the table's stream, which drives the chart builder, carries
no bookkeeping. A bar is written only over an older version (`version` is conditional), so a
retried or late writer never puts an older bar back.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from market.bars import BarAccumulator, StoredBar, bar_pk

PROJECTION_CONDITION = "attribute_not_exists(#version) OR #version < :version"


class BarsTableError(RuntimeError):
    """The bars table could not be read or written; worth retrying the invocation."""


class BarsTable:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def put_projections(self, bars: Iterable[StoredBar], updated_at: int) -> int:
        """Puts each bar's public item unless the table holds the same or a newer version; how many landed."""
        return sum(self.put_projection(bar, updated_at) for bar in bars if bar.acc is not None)

    def put_projection(self, bar: StoredBar, updated_at: int) -> bool:
        """False when the table holds this version of the bar or a newer one already."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=projection_item(bar, updated_at),
                ConditionExpression=PROJECTION_CONDITION,
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":version": {"N": str(bar.version)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise BarsTableError(f"writing {bar.symbol} {bar.interval} {bar.start}: {exc}") from exc
        except BotoCoreError as exc:
            raise BarsTableError(f"writing {bar.symbol} {bar.interval} {bar.start}: {exc}") from exc
        return True

    def bars_between(self, symbol: str, interval: str, first: int, last: int) -> list[StoredBar]:
        """The series' bars starting in [first, last], read strongly consistent (a fold must see
        the shorter bars this invocation has just written)."""
        bars: list[StoredBar] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": {"S": bar_pk(symbol, interval)},
                ":first": {"N": str(first)},
                ":last": {"N": str(last)},
            },
            "ConsistentRead": True,
        }
        try:
            while True:
                answer = self._client.query(**request)
                bars.extend(public_item_to_bar(i) for i in answer["Items"])
                if "LastEvaluatedKey" not in answer:
                    return bars
                request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise BarsTableError(f"querying {symbol} {interval} {first}..{last}: {exc}") from exc

    def query_bars(self, symbol: str, interval: str, newest: int) -> list[StoredBar]:
        """The newest `newest` bars of a series, oldest first (the chart builder's read)."""
        bars: list[StoredBar] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": bar_pk(symbol, interval)}},
            "ScanIndexForward": False,
        }
        try:
            while len(bars) < newest:
                answer = self._client.query(Limit=newest - len(bars), **request)
                bars.extend(public_item_to_bar(i) for i in answer["Items"])
                if "LastEvaluatedKey" not in answer:
                    break
                request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise BarsTableError(f"querying {symbol} {interval}: {exc}") from exc
        return bars[::-1]

    def list_series(self) -> set[tuple[str, str]]:
        """Every (symbol, interval) with bars, read from a scan of the keys alone."""
        series: set[tuple[str, str]] = set()
        try:
            pages = self._client.get_paginator("scan").paginate(
                TableName=self.table_name, ProjectionExpression="pk"
            )
            for page in pages:
                for item in page["Items"]:
                    symbol, interval = item["pk"]["S"].rsplit("#", 1)
                    series.add((symbol, interval))
        except (ClientError, BotoCoreError) as exc:
            raise BarsTableError(f"listing series: {exc}") from exc
        return series

    def scan_bars(self) -> list[StoredBar]:
        """Every bar in the table; for checks and reports over a small table, not for the hot path."""
        bars: list[StoredBar] = []
        try:
            for page in self._client.get_paginator("scan").paginate(TableName=self.table_name):
                bars.extend(public_item_to_bar(item) for item in page["Items"])
        except (ClientError, BotoCoreError) as exc:
            raise BarsTableError(f"scanning bars: {exc}") from exc
        return bars


def public_columns(bar: StoredBar, updated_at: int) -> dict[str, Any]:
    """The bar's key and public columns as DynamoDB attributes: the projection, and the part of a
    ledger item users would recognise (functions.aggregator.ledger adds its bookkeeping to them)."""
    acc = bar.acc
    if acc is None:
        raise ValueError(f"{bar.symbol} {bar.interval} {bar.start} has no ticks to store")
    item: dict[str, Any] = {
        "pk": {"S": bar_pk(bar.symbol, bar.interval)},
        "sk": {"N": str(bar.start)},
        "symbol": {"S": bar.symbol},
        "interval": {"S": bar.interval},
        "open": {"N": str(acc.open)},
        "high": {"N": str(acc.high)},
        "low": {"N": str(acc.low)},
        "close": {"N": str(acc.close)},
        "volume": {"N": str(acc.volume)},
        "trades": {"N": str(acc.trades)},
        "notional": {"N": str(acc.notional)},
        "first_ts": {"N": str(acc.first_ts)},
        "last_ts": {"N": str(acc.last_ts)},
        "updated_at": {"N": str(updated_at)},
    }
    if acc.vwap is not None:
        item["vwap"] = {"N": str(acc.vwap)}
    return item


def projection_item(bar: StoredBar, updated_at: int) -> dict[str, Any]:
    return {**public_columns(bar, updated_at), "version": {"N": str(bar.version)}}


def public_item_to_bar(item: dict[str, Any]) -> StoredBar:
    """A public item as a StoredBar: its open and close keys are the first and last tick times."""
    symbol, interval = item["pk"]["S"].rsplit("#", 1)
    acc = BarAccumulator(
        Decimal(item["open"]["N"]),
        (int(item["first_ts"]["N"]), 0, 0),
        Decimal(item["close"]["N"]),
        (int(item["last_ts"]["N"]), 0, 0),
        Decimal(item["high"]["N"]),
        Decimal(item["low"]["N"]),
        Decimal(item["volume"]["N"]),
        int(item["trades"]["N"]),
        Decimal(item["notional"]["N"]),
    )
    return StoredBar(symbol, interval, int(item["sk"]["N"]), acc, version=int(item["version"]["N"]))
