"""Data access for the poller's state table: each symbol's mark, the newest quote it gave.

The only poller module that imports botocore. Keys are `<provider>#<symbol>`, so two sources
polling the same symbol keep their own marks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.quote_poller.polling import QuoteMark

# BatchGetItem reads at most 100 keys a call (DynamoDB API reference, BatchGetItem).
MAX_KEYS_PER_GET = 100
# A mark not refreshed for this long expires (the table's TTL): the symbol left the config.
MARK_TTL_S = 30 * 86_400
# Keys DynamoDB leaves unprocessed (throttling) are asked again with backoff, as its guide says.
UNPROCESSED_ATTEMPTS = 5
UNPROCESSED_BACKOFF_S = 0.05


class QuoteStateUnavailable(RuntimeError):
    """The marks could not be read or written; the poll must not send ticks it cannot account for."""


class QuoteStateTable:
    def __init__(self, client: Any, table_name: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._table = table_name
        self._sleep = sleep

    def load(self, provider: str, symbols: Sequence[str]) -> dict[str, QuoteMark]:
        marks: dict[str, QuoteMark] = {}
        for start in range(0, len(symbols), MAX_KEYS_PER_GET):
            keys: list[dict[str, Any]] = [
                {"pk": {"S": f"{provider}#{s}"}} for s in symbols[start : start + MAX_KEYS_PER_GET]
            ]
            for attempt in range(UNPROCESSED_ATTEMPTS):
                if attempt:
                    self._sleep(UNPROCESSED_BACKOFF_S * 2**attempt)
                try:
                    answer = self._client.batch_get_item(
                        RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise QuoteStateUnavailable(f"reading marks from {self._table}: {exc}") from exc
                for item in answer.get("Responses", {}).get(self._table, []):
                    symbol = item["pk"]["S"].split("#", 1)[1]
                    marks[symbol] = QuoteMark(item["quote_id"]["S"], int(item["ts_ms"]["N"]))
                keys = answer.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
                if not keys:
                    break
            else:
                raise QuoteStateUnavailable(f"{len(keys)} marks left unprocessed by {self._table}")
        return marks

    def save(self, provider: str, marks: Mapping[str, QuoteMark], now_s: float | None = None) -> None:
        expires = int((time.time() if now_s is None else now_s) + MARK_TTL_S)
        for symbol, mark in marks.items():
            try:
                self._client.put_item(
                    TableName=self._table,
                    Item={
                        "pk": {"S": f"{provider}#{symbol}"},
                        "quote_id": {"S": mark.quote_id},
                        "ts_ms": {"N": str(mark.ts_ms)},
                        "expires_at": {"N": str(expires)},
                    },
                )
            except (ClientError, BotoCoreError) as exc:
                raise QuoteStateUnavailable(f"writing the mark of {symbol} to {self._table}: {exc}") from exc
