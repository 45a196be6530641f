"""Data access for the data bucket: bar day files and the quarantine, the aggregator's only S3 code.

Every key is a function of its content's identity, so a retried invocation writes the same
keys again instead of adding copies: one day file per (interval, symbol, date), one
quarantine object per rejected record position.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from consumers.aggregate.logic import Rejection
from market.bars import Bar

# gzip level 6: the zlib default, most of the ratio of 9 at a fraction of the CPU.
GZIP_LEVEL = 6


class DataLakeError(RuntimeError):
    """The data bucket could not be read or written; worth retrying the invocation."""


def day_of(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d")


def bar_day_key(interval: str, symbol: str, day: str) -> str:
    return f"bars/interval={interval}/symbol={symbol}/date={day}/bars.jsonl.gz"


def rejected_key(rejection: Rejection) -> str:
    day = day_of(rejection.arrival_ms // 1000)
    sub = "x" if rejection.sub_sequence is None else str(rejection.sub_sequence)
    return f"rejected/date={day}/shard={rejection.shard_id}/{rejection.sequence_number}-{sub}.json"


def bar_row(bar: Bar, updated_at: int) -> dict[str, Any]:
    """The public columns, numbers as JSON numbers: Athena and DuckDB read them as DECIMAL/DOUBLE."""
    row: dict[str, Any] = {
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

    def merge_day_file(self, interval: str, symbol: str, day: str, rows: Iterable[dict[str, Any]]) -> None:
        """Replaces the given bars in the day file by `start`, keeping the others."""
        key = bar_day_key(interval, symbol, day)
        by_start = {row["start"]: row for row in self._read_rows(key)}
        for row in rows:
            by_start[row["start"]] = row
        lines = b"".join(
            orjson.dumps(by_start[s], default=_decimal_as_number) + b"\n" for s in sorted(by_start)
        )
        self._put(key, gzip.compress(lines, GZIP_LEVEL, mtime=0), "application/x-ndjson", encoding="gzip")

    def _read_rows(self, key: str) -> list[dict[str, Any]]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return []
            raise DataLakeError(f"reading s3://{self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise DataLakeError(f"reading s3://{self.bucket}/{key}: {exc}") from exc
        return [orjson.loads(line) for line in gzip.decompress(body).splitlines() if line]

    def _put(self, key: str, body: bytes, content_type: str, encoding: str | None = None) -> None:
        extra = {"ContentEncoding": encoding} if encoding else {}
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise DataLakeError(f"writing s3://{self.bucket}/{key}: {exc}") from exc
