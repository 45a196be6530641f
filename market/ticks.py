"""The tick: one trade of one symbol, as producers send it and consumers accept it.

Validation rejects rather than repairs: a symbol ends up in S3 keys, file names and HTML, so a
value outside the contract is an error with a reason, never something we quietly clean.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

SYMBOL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,31}")
# Ids made only of these characters need no JSON escaping, which keeps encoding off json.dumps.
_PLAIN_ID = re.compile(r"[A-Za-z0-9:._+-]+")
MAX_ID_LENGTH = 128
# Bars sum prices and sizes exactly and DynamoDB keeps 38 significant digits (DynamoDB developer
# guide, "Number" data type): with these bounds a bar's notional stays exact for 100,000 ticks of
# the largest price and size, and far more of real ones.
MAX_PRICE = Decimal(10_000_000)
MAX_SIZE = Decimal(10_000_000_000)
MAX_DECIMAL_PLACES = 8
# Event times outside [1970-01-01, 10000-01-01) cannot be bucketed into a UTC calendar day.
MIN_TS_MS = 0
MAX_TS_MS = 253_402_300_800_000


class RejectReason(StrEnum):
    """Why a record is not a tick; used as a metric dimension and in quarantine entries."""

    NOT_AN_OBJECT = "not_an_object"
    MALFORMED_JSON = "malformed_json"
    BAD_UTF8 = "bad_utf8"
    BAD_SYMBOL = "bad_symbol"
    BAD_PRICE = "bad_price"
    BAD_SIZE = "bad_size"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_ID = "bad_id"


class InvalidTick(ValueError):
    """A record that breaks the tick contract; `reason` is machine-readable, the message is for people."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    price: Decimal
    size: Decimal
    ts_ms: int
    id: str | None = None


def validate_symbol(value: object) -> str:
    if not isinstance(value, str) or SYMBOL_PATTERN.fullmatch(value) is None:
        raise InvalidTick(
            RejectReason.BAD_SYMBOL,
            f"symbol {value!r} must match {SYMBOL_PATTERN.pattern} (1-32 of letters, digits, '._+-')",
        )
    return value


def _finite_decimal(value: object, reason: RejectReason, name: str) -> Decimal:
    """Numbers keep the decimal text they were sent as: floats go through their shortest repr."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidTick(reason, f"{name} {value!r} must be a JSON number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidTick(reason, f"{name} {value!r} must be finite")
        return Decimal(repr(value))
    number = Decimal(value)
    if not number.is_finite():
        raise InvalidTick(reason, f"{name} {value!r} must be finite")
    return number


def _storable(number: Decimal, limit: Decimal, reason: RejectReason, name: str) -> Decimal:
    exponent = number.normalize().as_tuple().exponent
    if number >= limit or (isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES):
        raise InvalidTick(
            reason,
            f"{name} {number} must be below {limit:,} with at most {MAX_DECIMAL_PLACES} decimal places",
        )
    return number


def validate_price(value: object) -> Decimal:
    price = _finite_decimal(value, RejectReason.BAD_PRICE, "price")
    if price <= 0:
        raise InvalidTick(RejectReason.BAD_PRICE, f"price {value!r} must be greater than 0")
    return _storable(price, MAX_PRICE, RejectReason.BAD_PRICE, "price")


def validate_size(value: object) -> Decimal:
    if value is None:
        return Decimal(0)
    size = _finite_decimal(value, RejectReason.BAD_SIZE, "size")
    if size < 0:
        raise InvalidTick(RejectReason.BAD_SIZE, f"size {value!r} must be 0 or more")
    return _storable(size, MAX_SIZE, RejectReason.BAD_SIZE, "size")


def validate_timestamp(value: object) -> int:
    """Epoch milliseconds as an integer, or an ISO-8601 string where no zone means UTC."""
    if isinstance(value, bool):
        raise InvalidTick(RejectReason.BAD_TIMESTAMP, f"ts {value!r} must be epoch ms or ISO-8601")
    if isinstance(value, int):
        ts_ms = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidTick(RejectReason.BAD_TIMESTAMP, f"ts {value!r} is not an ISO-8601 time") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        ts_ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        raise InvalidTick(
            RejectReason.BAD_TIMESTAMP, f"ts {value!r} must be integer epoch ms or an ISO-8601 string"
        )
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise InvalidTick(RejectReason.BAD_TIMESTAMP, f"ts {value!r} is outside 1970-01-01..9999-12-31")
    return ts_ms


def validate_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise InvalidTick(RejectReason.BAD_ID, f"id {value!r} must be a string of 1-{MAX_ID_LENGTH} chars")
    return value


def tick_from_object(obj: object) -> Tick:
    """Accepts the native tick and AWS's Kinesis tutorial stock record (EVENT_TIME/TICKER/PRICE)."""
    if not isinstance(obj, dict):
        raise InvalidTick(
            RejectReason.NOT_AN_OBJECT, f"a tick must be a JSON object, got {type(obj).__name__}"
        )
    fields: dict[str, Any] = obj
    if "symbol" not in fields and "TICKER" in fields:
        return Tick(
            symbol=validate_symbol(fields.get("TICKER")),
            price=validate_price(fields.get("PRICE")),
            size=Decimal(0),
            ts_ms=validate_timestamp(fields.get("EVENT_TIME")),
        )
    return Tick(
        symbol=validate_symbol(fields.get("symbol")),
        price=validate_price(fields.get("price")),
        size=validate_size(fields.get("size")),
        ts_ms=validate_timestamp(fields.get("ts")),
        id=validate_id(fields.get("id")),
    )


def decode_tick(data: bytes) -> Tick:
    """Parses JSON with decimals kept exact, so a price is never drifted through a binary float."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTick(RejectReason.BAD_UTF8, f"record is not UTF-8: {exc}") from exc
    try:
        obj = _DECODER.decode(text)
    except (ValueError, InvalidOperation) as exc:
        raise InvalidTick(RejectReason.MALFORMED_JSON, f"record is not JSON: {exc}") from exc
    return tick_from_object(obj)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for all ticks: json.loads with options would build a new one per call.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def encode_tick(tick: Tick) -> bytes:
    """Fixed field order and no whitespace: the same tick always encodes to the same bytes."""
    head = '{"symbol":"' + tick.symbol + '","price":' + str(tick.price) + ',"size":' + str(tick.size)
    head += ',"ts":' + str(tick.ts_ms)
    if tick.id is None:
        return (head + "}").encode()
    if _PLAIN_ID.fullmatch(tick.id):
        return (head + ',"id":"' + tick.id + '"}').encode()
    return (head + ',"id":' + json.dumps(tick.id, ensure_ascii=False) + "}").encode()
