"""Quote API answers into ticks: Alpha Vantage's GLOBAL_QUOTE and intraday series, and any JSON
with configured field paths. Pure: bytes in, ticks or a QuoteError with its reason out.

Every tick gets an id from the provider, the symbol and the quote's own time (and for a daily
quote, which has no time, its cumulative volume and price), so a quote polled twice is one tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from market.ticks import InvalidTick, Tick, validate_price, validate_size, validate_timestamp

ALPHA_VANTAGE = "alphavantage"
# Alpha Vantage answers HTTP 200 with one of these keys instead of data.
AV_RATE_LIMIT_KEYS = ("Note", "Information")
AV_ERROR_KEY = "Error Message"
AV_GLOBAL_QUOTE = "Global Quote"
# Epoch values below this are seconds, above it milliseconds (1e11 s is the year 5138).
EPOCH_MS_FROM = 100_000_000_000


class QuoteError(ValueError):
    """A poll that gave no tick; `reason` is the metric dimension, the message is for the log."""

    reason = "provider_error"


class RateLimitNote(QuoteError):
    reason = "rate_limited"


class NotJson(QuoteError):
    reason = "not_json"


class MissingField(QuoteError):
    reason = "missing_field"


class NoData(QuoteError):
    reason = "no_data"


class BadQuote(QuoteError):
    reason = "bad_quote"


def parse_json(body: bytes) -> object:
    """The answer as JSON; an HTML error page or a captive portal is a NotJson, not a crash."""
    if not body.strip():
        raise NoData("empty answer")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        start = body[:60].decode(errors="replace").strip()
        raise NotJson(f"answer is not JSON (starts {start!r})") from exc


def _alpha_vantage_notes(payload: object) -> dict[str, object]:
    if not isinstance(payload, dict):
        raise BadQuote(f"expected a JSON object, got {type(payload).__name__}")
    for key in AV_RATE_LIMIT_KEYS:
        if key in payload:
            raise RateLimitNote(f"Alpha Vantage: {payload[key]}")
    if AV_ERROR_KEY in payload:
        raise QuoteError(f"Alpha Vantage: {payload[AV_ERROR_KEY]}")
    return payload


def _number(value: object, symbol: str) -> object:
    """Quote APIs send numbers as strings ("227.4200"); the tick validators take numbers."""
    if not isinstance(value, str):
        return value
    try:
        return Decimal(value.strip())
    except InvalidOperation as exc:
        raise BadQuote(f"{symbol}: {value!r} is not a number") from exc


def _tick(symbol: str, price: object, size: object, ts: object, quote_id: str) -> Tick:
    try:
        return Tick(
            symbol,
            validate_price(_number(price, symbol)),
            validate_size(_number(size, symbol)),
            validate_timestamp(ts),
            quote_id,
        )
    except InvalidTick as exc:
        raise BadQuote(f"{symbol}: {exc}") from exc


def _field(record: dict[str, object], key: str, symbol: str) -> object:
    if key not in record:
        raise MissingField(f"{symbol}: no {key!r} in the answer")
    return record[key]


def alpha_vantage_global_quote(payload: object, symbol: str, fetched_ms: int) -> Tick:
    """The latest price. GLOBAL_QUOTE gives a trading day but no time: the tick is timed at the
    fetch, and its id changes only when the day, the cumulative volume or the price does."""
    quote = _alpha_vantage_notes(payload).get(AV_GLOBAL_QUOTE)
    if not isinstance(quote, dict) or not quote:
        raise NoData(f"{symbol}: Alpha Vantage has no quote (unknown symbol?)")
    price = _field(quote, "05. price", symbol)
    volume = _field(quote, "06. volume", symbol)
    day = _field(quote, "07. latest trading day", symbol)
    return _tick(symbol, price, Decimal(0), fetched_ms, f"{ALPHA_VANTAGE}:{symbol}:{day}:{volume}:{price}")


def alpha_vantage_intraday(payload: object, symbol: str) -> list[Tick]:
    """Each interval of the series as a tick at its close, sized by its volume, oldest first."""
    answer = _alpha_vantage_notes(payload)
    meta = answer.get("Meta Data")
    series_key = next((k for k in answer if k.startswith("Time Series")), None)
    if not isinstance(meta, dict) or series_key is None:
        raise MissingField(f"{symbol}: no 'Meta Data' or 'Time Series' in the answer")
    series = answer[series_key]
    if not isinstance(series, dict) or not series:
        raise NoData(f"{symbol}: the time series is empty")
    zone_name = next((str(v) for k, v in meta.items() if k.endswith("Time Zone")), "US/Eastern")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadQuote(f"{symbol}: unknown time zone {zone_name!r}") from exc
    ticks = []
    for stamp in sorted(series):
        point = series[stamp]
        if not isinstance(point, dict):
            raise BadQuote(f"{symbol}: interval {stamp} is not an object")
        try:
            moment = datetime.fromisoformat(stamp).replace(tzinfo=zone)
        except ValueError as exc:
            raise BadQuote(f"{symbol}: interval time {stamp!r}") from exc
        ts_ms = int(moment.timestamp() * 1000)
        close, volume = _field(point, "4. close", symbol), _field(point, "5. volume", symbol)
        ticks.append(_tick(symbol, close, volume, ts_ms, f"{ALPHA_VANTAGE}:{symbol}:{ts_ms}"))
    return ticks


@dataclass(frozen=True)
class JsonFields:
    """Dotted paths into a provider's JSON answer (`data.last`, `quotes.0.price`)."""

    price: str
    size: str | None = None
    time: str | None = None


def _at(payload: object, path: str, symbol: str) -> object:
    value = payload
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise MissingField(f"{symbol}: no {path!r} in the answer")
    return value


def _epoch_or_iso(value: object, symbol: str) -> int | str:
    if isinstance(value, bool):
        raise BadQuote(f"{symbol}: time {value!r}")
    if isinstance(value, int | float):
        return int(value if value >= EPOCH_MS_FROM else value * 1000)
    if isinstance(value, str):
        return value
    raise BadQuote(f"{symbol}: time {value!r} is neither epoch nor ISO-8601")


def generic_json(payload: object, symbol: str, fields: JsonFields, provider: str, fetched_ms: int) -> Tick:
    """One quote per answer. Without a time field the tick is timed at the fetch and, like a
    daily quote, identified by its price and size."""
    price = _at(payload, fields.price, symbol)
    size = _at(payload, fields.size, symbol) if fields.size else None
    if fields.time:
        try:
            ts_ms = validate_timestamp(_epoch_or_iso(_at(payload, fields.time, symbol), symbol))
        except InvalidTick as exc:
            raise BadQuote(f"{symbol}: {exc}") from exc
        return _tick(symbol, price, size, ts_ms, f"{provider}:{symbol}:{ts_ms}")
    day = datetime.fromtimestamp(fetched_ms / 1000, UTC).date().isoformat()
    return _tick(symbol, price, size, fetched_ms, f"{provider}:{symbol}:{day}:{size}:{price}")
