"""The tick: one trade of one symbol, as producers send it and consumers accept it.

Validation rejects rather than repairs: a symbol ends up in S3 keys, file names and HTML, so a
value outside the contract is an error with a reason, never something we quietly clean.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from decimal import Context, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, NamedTuple, TypeVar, cast

import orjson

SYMBOL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,31}")
# Ids made only of these characters need no JSON escaping, which keeps encoding off json.dumps.
_PLAIN_ID = re.compile(r"[A-Za-z0-9:._+-]+")
MAX_ID_LENGTH = 128
# Bars sum prices and sizes exactly and DynamoDB keeps 38 significant digits (DynamoDB developer
# guide, "Number" data type): with these bounds a bar's notional stays exact for 10^8 ticks of
# the largest price and size. They also keep every value to at most 15 significant digits,
# which a binary double holds exactly (see decode_tick).
MAX_PRICE = Decimal(10_000_000)
MAX_SIZE = Decimal(10_000_000)
MAX_DECIMAL_PLACES = 8
ZERO = Decimal(0)
ONE = Decimal(1)
MIN_PRECISION = 28  # the decimal module's default context
_DEFAULT_CONTEXT = Context(prec=MIN_PRECISION)
# Event times outside [1970-01-01, 10000-01-01) cannot be bucketed into a UTC calendar day.
MIN_TS_MS = 0
MAX_TS_MS = 253_402_300_800_000
# How far a tick's event time may run ahead of its arrival in the stream (Kinesis's
# approximateArrivalTimestamp): room for producers' clocks, not for ticks from the future, which
# would set a chart's last price and open bars nobody will close.
MAX_AHEAD_OF_ARRIVAL_MS = 5 * 60_000


def check_not_ahead(tick: Tick, arrival_ms: int) -> Tick:
    if tick.ts_ms > arrival_ms + MAX_AHEAD_OF_ARRIVAL_MS:
        raise InvalidTick(
            RejectReason.FUTURE_TIMESTAMP,
            f"ts {tick.ts_ms} is {(tick.ts_ms - arrival_ms) / 60_000:,.1f} min after the record reached "
            f"the stream ({arrival_ms}); at most {MAX_AHEAD_OF_ARRIVAL_MS // 60_000} min are allowed",
        )
    return tick


class RejectReason(StrEnum):
    """Why a record is not a tick; used as a metric dimension and in quarantine entries."""

    NOT_AN_OBJECT = "not_an_object"
    MALFORMED_JSON = "malformed_json"
    BAD_UTF8 = "bad_utf8"
    BAD_SYMBOL = "bad_symbol"
    BAD_PRICE = "bad_price"
    BAD_SIZE = "bad_size"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    BAD_ID = "bad_id"
    # A KPL aggregate whose MD5 or protobuf is broken: none of its ticks can be read.
    CORRUPT_AGGREGATE = "corrupt_aggregate"


class InvalidTick(ValueError):
    """A record that breaks the tick contract; `reason` is machine-readable, the message is for people."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Tick(NamedTuple):
    """Immutable; a NamedTuple because the aggregator builds one per tick and this is the cheapest."""

    symbol: str
    price: Decimal
    size: Decimal
    ts_ms: int
    id: str | None = None


# Validated values by the raw JSON value they came from. A market repeats its prices, sizes and
# symbols endlessly, so most ticks skip the Decimal work; each memo is emptied when it fills.
MEMO_LIMIT = 100_000
_Raw = TypeVar("_Raw")  # a raw JSON value: a number, or None for a size
_valid_symbols: set[str] = set()
_valid_prices: dict[float | int, Decimal] = {}
_valid_sizes: dict[float | int, Decimal] = {}


def validate_symbol(value: object) -> str:
    if value.__class__ is str and value in _valid_symbols:
        return value
    if not isinstance(value, str) or SYMBOL_PATTERN.fullmatch(value) is None:
        raise InvalidTick(
            RejectReason.BAD_SYMBOL,
            f"symbol {value!r} must match {SYMBOL_PATTERN.pattern} (1-32 of letters, digits, '._+-')",
        )
    _remember(_valid_symbols, value)
    return value


def _remember(memo: set[str], value: str) -> None:
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo.add(value)


def _memoized(memo: dict[float | int, Decimal], value: object) -> Decimal | None:
    """The memo's answer for a JSON int or float (never a bool, which equals 0 or 1)."""
    if value.__class__ is float or value.__class__ is int:
        return memo.get(value)
    return None


def _memorize(memo: dict[float | int, Decimal], value: object, number: Decimal) -> Decimal:
    if value.__class__ is float or value.__class__ is int:
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[value] = number
    return number


def _shown(value: object) -> str:
    """A value as the record had it: a number read exactly is a Decimal, shown as its digits
    ("-5.5"), not as Python writes the object ("Decimal('-5.5')")."""
    return str(value) if isinstance(value, Decimal) else repr(value)


def _finite_decimal(value: object, reason: RejectReason, name: str) -> Decimal:
    """The exact value sent: a float goes through its shortest repr, which within the tick bounds
    is the text that was sent (decode_tick); _storable then gives it its one spelling."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidTick(reason, f"{name} {_shown(value)} must be a JSON number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidTick(reason, f"{name} {_shown(value)} must be finite")
        return Decimal(repr(value))
    number = Decimal(value)
    if not number.is_finite():
        raise InvalidTick(reason, f"{name} {_shown(value)} must be finite")
    return number


def _storable(number: Decimal, limit: Decimal, reason: RejectReason, name: str) -> Decimal:
    """The number in one spelling whatever it was sent as (100, 100.0, 1e2 and 1E+2 are all
    Decimal("100")), so a bar's row holds the same text whichever path or memo decoded it."""
    # Exactly: the default context's 28 digits would round 1.000000000000000000000000000001 to 1;
    # a context of its own only for such a number, not for each one of a batch.
    digits = len(number.as_tuple().digits)
    canonical = number.normalize(_DEFAULT_CONTEXT if digits <= MIN_PRECISION else Context(prec=digits))
    exponent = canonical.as_tuple().exponent
    if number >= limit or (isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES):
        raise InvalidTick(
            reason,
            f"{name} {number} must be below {limit:,} with at most {MAX_DECIMAL_PLACES} decimal places",
        )
    if not canonical:
        return ZERO  # -0.0 too
    if isinstance(exponent, int) and exponent > 0:
        return canonical.quantize(ONE)  # 1E+2 as 100: exact, the number is below the limit
    return canonical


def validate_price(value: object) -> Decimal:
    known = _memoized(_valid_prices, value)
    if known is not None:
        return known
    price = _finite_decimal(value, RejectReason.BAD_PRICE, "price")
    if price <= 0:
        raise InvalidTick(RejectReason.BAD_PRICE, f"price {_shown(value)} must be greater than 0")
    return _memorize(_valid_prices, value, _storable(price, MAX_PRICE, RejectReason.BAD_PRICE, "price"))


def validate_prices(values: Collection[float | int]) -> dict[float | int, Decimal]:
    """validate_price of each JSON number (never a bool), by value: the memo answers the known
    ones in one C pass, and only the others are validated one by one."""
    return _validate_many(_valid_prices, values, validate_price)


def validate_sizes(values: Collection[float | int | None]) -> dict[float | int | None, Decimal]:
    """validate_size of each JSON number (never a bool) or None, by value, as validate_prices."""
    return _validate_many(_valid_sizes, values, validate_size)


def _validate_many(
    memo: Mapping[Any, Decimal], values: Collection[_Raw], validate: Callable[[_Raw], Decimal]
) -> dict[_Raw, Decimal]:
    found: dict[_Raw, Decimal | None] = dict(zip(values, map(memo.get, values), strict=True))
    for value in [v for v, number in found.items() if number is None]:
        found[value] = validate(value)
    return cast(dict[_Raw, Decimal], found)


def validate_size(value: object) -> Decimal:
    if value is None:
        return ZERO
    known = _memoized(_valid_sizes, value)
    if known is not None:
        return known
    size = _finite_decimal(value, RejectReason.BAD_SIZE, "size")
    if size < 0:
        raise InvalidTick(RejectReason.BAD_SIZE, f"size {_shown(value)} must be 0 or more")
    return _memorize(_valid_sizes, value, _storable(size, MAX_SIZE, RejectReason.BAD_SIZE, "size"))


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
    """Ids are hashed and stored as UTF-8: a lone surrogate (JSON's "\\ud800") has no UTF-8 form."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise InvalidTick(RejectReason.BAD_ID, f"id {value!r} must be a string of 1-{MAX_ID_LENGTH} chars")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidTick(
                RejectReason.BAD_ID, f"id {value!r} is not valid Unicode: {exc.reason}"
            ) from exc
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
            size=ZERO,
            ts_ms=validate_timestamp(fields.get("EVENT_TIME")),
        )
    return Tick(
        symbol=validate_symbol(fields.get("symbol")),
        price=validate_price(fields.get("price")),
        size=validate_size(fields.get("size")),
        ts_ms=validate_timestamp(fields.get("ts")),
        id=validate_id(fields.get("id")),
    )


# JSON parsers nest by recursion: Python's json gives up at the interpreter's recursion limit
# less the stack in use, orjson at 1024 levels, so how deep a record could nest would depend on
# where it is parsed (a test runner raises the limit; Lambda does not). A tick nests nothing: a
# record with more brackets and braces than this, in strings too (an id of 128 of them and the
# tick's own braces still fit), is malformed wherever it is parsed.
MAX_BRACKETS = 256


def decode_tick(data: bytes) -> Tick:
    """Parses a tick, its numbers kept exactly as sent.

    The fast path parses with orjson: within the tick bounds every number has at most 15
    significant digits, and a binary double's shortest repr then is the very text that was sent.
    A record whose price or size is longer (9+ digits after a point, or a run of 16+ digits), or
    that has any escape in it, takes the exact path with Decimals, so a too-precise value is
    rejected rather than silently rounded; so does anything orjson refuses, for the precise reason.
    """
    if data.count(b"[") + data.count(b"{") > MAX_BRACKETS:
        raise InvalidTick(
            RejectReason.MALFORMED_JSON, f"record is not a tick: more than {MAX_BRACKETS} brackets and braces"
        )
    if _numbers_are_short(data):
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            return tick_from_object(obj)
    return _decode_exact(data)


def _decode_exact(data: bytes) -> Tick:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTick(RejectReason.BAD_UTF8, f"record is not UTF-8: {exc}") from exc
    try:
        obj = _DECODER.decode(text)
    except (ValueError, InvalidOperation) as exc:
        raise InvalidTick(RejectReason.MALFORMED_JSON, f"record is not JSON: {exc}") from exc
    except RecursionError as exc:  # thousands of nested [ or {: no tick nests at all
        raise InvalidTick(
            RejectReason.MALFORMED_JSON, "record is not a tick: JSON nested too deeply"
        ) from exc
    return tick_from_object(obj)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


# The number after a key, when a double may not keep it as sent: 9+ digits after the point, 16+
# digits, or an exponent (1e-400 is 0.0 to a double, and must be rejected as too precise).
_LONG_NUMBER_AFTER_KEY = re.compile(rb"\s*:\s*-?[0-9]*(?:\.[0-9]{9}|[0-9]{16}|(?:\.[0-9]*)?[eE])")
_NUMBER_KEYS = (b'"price"', b'"size"', b'"PRICE"')


def _numbers_are_short(data: bytes) -> bool:
    """True when the fast path keeps every price and size exact (see decode_tick).

    Keys are found with bytes.find, far cheaper than a regex over the record; a record with an
    escape could spell a key another way (\\u0070rice), so it goes the exact way.
    """
    if b"\\" in data:
        return False
    for key in _NUMBER_KEYS:
        at = data.find(key)
        while at >= 0:
            if _LONG_NUMBER_AFTER_KEY.match(data, at + len(key)):
                return False
            at = data.find(key, at + 1)
    return True


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
