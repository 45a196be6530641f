"""Data access for the data bucket: bar rows and the quarantine, the aggregator's only S3 code.

Bar rows are never read back and rewritten. Each flush of a shard's window puts one immutable
object per (interval, day) it touched, named by the shard, the position of the window's last
tick and a digest of the bars and versions it holds: a retry that writes the same bars writes the
same key again, and one that writes other bars (a batch retried from its first failed record has
the same last tick) never replaces an object holding rows it lacks. Requests per window grow with
shards, not symbols. A bar then has one row per write, each with the bar's `version` (the
bars-table item's version, which only grows): its latest row is the one with the highest
version (docs/exactly-once.md, "The data bucket"). Quarantine objects are keyed by record position.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import blake2b
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from functions.aggregator.logic import Rejection
from market.bars import Bar

# gzip level 6: the zlib default, most of the ratio of 9 at a fraction of the CPU.
GZIP_LEVEL = 6


class DataLakeError(RuntimeError):
    """The data bucket could not be read or written; worth retrying the invocation."""


def day_of(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d")


BARS_PREFIX = "bars/"


def bar_rows_key(interval: str, day: str, shard_id: str, window: str, rows: Iterable[dict[str, Any]]) -> str:
    """Hive-style partitions (interval, date) that DuckDB and Athena prune on, then the writer and
    what it wrote."""
    digest = blake2b(digest_size=8)
    for symbol, start, version in sorted((r["symbol"], r["start"], r["version"]) for r in rows):
        digest.update(f"{symbol}|{start}|{version}\n".encode())
    return (
        f"{BARS_PREFIX}interval={interval}/date={day}/shard={shard_id}/{window}-{digest.hexdigest()}.jsonl.gz"
    )


def rejected_key(rejection: Rejection) -> str:
    day = day_of(rejection.arrival_ms // 1000)
    sub = "x" if rejection.sub_sequence is None else str(rejection.sub_sequence)
    return f"rejected/date={day}/shard={rejection.shard_id}/{rejection.sequence_number}-{sub}.json"


def bar_row(bar: Bar, version: int, updated_at: int) -> dict[str, Any]:
    """The public columns, numbers as JSON numbers: Athena and DuckDB read them as DECIMAL/DOUBLE."""
    row: dict[str, Any] = {
        "version": version,
        "symbol": bar.symbol,
        "interval": bar.interval,
        "start": bar.start,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "trades": bar.trades,
        "first_ts": bar.first_ts,
        "last_ts": bar.last_ts,
        "updated_at": updated_at,
    }
    if bar.vwap is not None:
        row["vwap"] = bar.vwap
    return row


def _decimal_as_number(value: Any) -> orjson.Fragment:
    return orjson.Fragment(str(value))


class DataLake:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def quarantine(self, rejections: Iterable[Rejection]) -> int:
        count = 0
        for rejection in rejections:
            body = orjson.dumps(
                {
                    "reason": rejection.reason,
                    "message": rejection.message,
                    "shard_id": rejection.shard_id,
                    "sequence_number": rejection.sequence_number,
                    "sub_sequence_number": rejection.sub_sequence,
                    "approximate_arrival_ms": rejection.arrival_ms,
                    "data_base64": base64.b64encode(rejection.data).decode(),
                }
            )
            self._put(rejected_key(rejection), body, "application/json")
            count += 1
        return count

    def put_window_rows(self, shard_id: str, window: str, rows: Iterable[dict[str, Any]]) -> int:
        """One object per (interval, day of the bar) among the rows; how many objects were put."""
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault((row["interval"], day_of(row["start"])), []).append(row)
        for (interval, day), group in sorted(grouped.items()):
            group.sort(key=lambda row: (row["symbol"], row["start"]))
            lines = b"".join(orjson.dumps(row, default=_decimal_as_number) + b"\n" for row in group)
            body = gzip.compress(lines, GZIP_LEVEL, mtime=0)
            key = bar_rows_key(interval, day, shard_id, window, group)
            self._put(key, body, "application/x-ndjson", "gzip")
        return len(grouped)

    def latest_rows(self) -> dict[tuple[str, str, int], dict[str, Any]]:
        """Each bar's row of the highest version, over every object under bars/: the reader's view."""
        latest: dict[tuple[str, str, int], dict[str, Any]] = {}
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=BARS_PREFIX
            )
            keys = [entry["Key"] for page in pages for entry in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise DataLakeError(f"listing s3://{self.bucket}/{BARS_PREFIX}: {exc}") from exc
        for key in keys:
            for row in self._read_rows(key):
                bar = (row["symbol"], row["interval"], row["start"])
                if bar not in latest or latest[bar]["version"] < row["version"]:
                    latest[bar] = row
        return latest

    def _read_rows(self, key: str) -> list[dict[str, Any]]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise DataLakeError(f"reading s3://{self.bucket}/{key}: {exc}") from exc
        # Decimals, as the bars were: a float would round prices a reader compares with DynamoDB's.
        return [json.loads(line, parse_float=Decimal) for line in gzip.decompress(body).splitlines() if line]

    def _put(self, key: str, body: bytes, content_type: str, encoding: str | None = None) -> None:
        extra = {"ContentEncoding": encoding} if encoding else {}
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise DataLakeError(f"writing s3://{self.bucket}/{key}: {exc}") from exc
