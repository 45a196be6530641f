"""Data access for the ledger table: the aggregator's own record of every 1m bar, never read by users.

A ledger item is a 1m bar with what keeps it exact: per shard, the position of the last tick it
took (`_wm`); the hashes of the tick ids it holds (`_ids`); and a version (`_v`) every write is
conditional on. The 1m bars users and charts read are projections of these items, written to the
bars table after them; longer bars are folded there from the shorter ones
(stores.bars_table), so they need no bookkeeping of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.aggregator.logic import (
    MinuteBookkeeping,
    MinuteKey,
    key_parse,
    key_text,
    position_parse,
    position_text,
)
from market.bars import BASE_INTERVAL, BarAccumulator, StoredBar, bar_pk
from stores.bars_table import public_columns

# BatchGetItem reads at most 100 items per call (DynamoDB API reference, BatchGetItem).
MAX_KEYS_PER_BATCH_GET = 100
BOOKKEEPING_PROJECTION = "pk, sk, #wm, #ids"


class LedgerError(RuntimeError):
    """The ledger table could not be read or written; worth retrying the invocation."""


class VersionConflict(LedgerError):
    """The item changed since it was read: read it again and redo the merge."""


class Ledger:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def minute_bookkeeping(
        self, shard_id: str, keys: Iterable[MinuteKey]
    ) -> dict[MinuteKey, MinuteBookkeeping]:
        """Watermark of `shard_id` and id hashes of each stored 1m bar; absent bars are left out."""
        wanted = sorted(set(keys))
        found: dict[MinuteKey, MinuteBookkeeping] = {}
        for start in range(0, len(wanted), MAX_KEYS_PER_BATCH_GET):
            chunk = wanted[start : start + MAX_KEYS_PER_BATCH_GET]
            for item in self._batch_get([(bar_pk(s, BASE_INTERVAL), m) for s, m in chunk], bookkeeping=True):
                symbol = item["pk"]["S"].rsplit("#", 1)[0]
                minute = int(item["sk"]["N"])
                watermark = item.get("_wm", {}).get("M", {}).get(shard_id)
                found[(symbol, minute)] = MinuteBookkeeping(
                    position_parse(watermark["S"]) if watermark else None,
                    set(item.get("_ids", {}).get("BS", [])),
                )
        return found

    def get_bars(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], StoredBar]:
        """Stored bars by (symbol, interval, start); a bar not stored yet comes back empty."""
        result = {key: StoredBar(*key) for key in keys}
        unique = sorted(set(keys))
        for start in range(0, len(unique), MAX_KEYS_PER_BATCH_GET):
            chunk = unique[start : start + MAX_KEYS_PER_BATCH_GET]
            for item in self._batch_get([(bar_pk(s, i), b) for s, i, b in chunk], bookkeeping=False):
                bar = item_to_bar(item)
                result[(bar.symbol, bar.interval, bar.start)] = bar
        return result

    def get_bar(self, symbol: str, interval: str, start: int) -> StoredBar:
        return self.get_bars([(symbol, interval, start)])[(symbol, interval, start)]

    def put_bar(self, bar: StoredBar, now: float | None = None) -> None:
        """Writes the bar if nobody else has since it was read (optimistic version check)."""
        item = bar_to_item(bar, int(now if now is not None else time.time()))
        condition: dict[str, Any]
        if bar.version == 0:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "_v"},
                "ExpressionAttributeValues": {":v": {"N": str(bar.version)}},
            }
        try:
            self._client.put_item(TableName=self.table_name, Item=item, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise VersionConflict(f"{bar.symbol} {bar.interval} {bar.start} changed under us") from exc
            raise LedgerError(f"writing {bar.symbol} {bar.interval} {bar.start}: {exc}") from exc
        except BotoCoreError as exc:
            raise LedgerError(f"writing {bar.symbol} {bar.interval} {bar.start}: {exc}") from exc
        bar.version += 1

    def _batch_get(self, keys: list[tuple[str, int]], bookkeeping: bool) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"Keys": [{"pk": {"S": pk}, "sk": {"N": str(sk)}} for pk, sk in keys]}
        if bookkeeping:
            request["ProjectionExpression"] = BOOKKEEPING_PROJECTION
            request["ExpressionAttributeNames"] = {"#wm": "_wm", "#ids": "_ids"}
        items: list[dict[str, Any]] = []
        pending = {self.table_name: request}
        for attempt in range(8):
            try:
                answer = self._client.batch_get_item(RequestItems=pending)
            except (ClientError, BotoCoreError) as exc:
                raise LedgerError(f"reading the ledger: {exc}") from exc
            items.extend(answer["Responses"].get(self.table_name, []))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                return items
            time.sleep(0.05 * 2**attempt)
        raise LedgerError("reading the ledger: keys still unprocessed after 8 tries")


def item_to_bar(item: dict[str, Any]) -> StoredBar:
    symbol, interval = item["pk"]["S"].rsplit("#", 1)
    acc = BarAccumulator(
        Decimal(item["open"]["N"]),
        key_parse(item["_ok"]["S"]),
        Decimal(item["close"]["N"]),
        key_parse(item["_ck"]["S"]),
        Decimal(item["high"]["N"]),
        Decimal(item["low"]["N"]),
        Decimal(item["volume"]["N"]),
        int(item["trades"]["N"]),
        Decimal(item["notional"]["N"]),
    )
    return StoredBar(
        symbol,
        interval,
        int(item["sk"]["N"]),
        acc,
        {shard: position_parse(v["S"]) for shard, v in item.get("_wm", {}).get("M", {}).items()},
        set(item.get("_ids", {}).get("BS", [])),
        int(item["_v"]["N"]),
    )


def bar_to_item(bar: StoredBar, updated_at: int) -> dict[str, Any]:
    """The bar's public columns, its open and close keys, and its bookkeeping."""
    columns = public_columns(bar, updated_at)  # refuses a bar without ticks
    acc = bar.acc
    assert acc is not None
    item = {
        **columns,
        "_ok": {"S": key_text(acc.open_key)},
        "_ck": {"S": key_text(acc.close_key)},
        "_v": {"N": str(bar.version + 1)},
    }
    if bar.watermarks:
        item["_wm"] = {"M": {shard: {"S": position_text(p)} for shard, p in bar.watermarks.items()}}
    if bar.id_hashes:
        item["_ids"] = {"BS": sorted(bar.id_hashes)}
    return item
