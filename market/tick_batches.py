"""Many ticks decoded at once, column by column, for the aggregator's hot path.

`decode_tick` pays Python's per-call price for every field of every tick. Here each check runs
once per batch in C (map, set, min, max) and each distinct symbol, price and size is validated
once, by the same validators `decode_tick` uses. The answer is all or nothing: either every
record is a native tick and the columns equal what `decode_tick` gives record by record, or
None, and the caller decodes record by record to learn each record's reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat
from typing import Any

import orjson

from market.ticks import (
    MAX_ID_LENGTH,
    MAX_TS_MS,
    MIN_TS_MS,
    InvalidTick,
    Tick,
    validate_price,
    validate_size,
    validate_symbol,
)

# A run of 17 digits or points: the only way a number can carry more significant digits than a
# double keeps (15, see decode_tick). Within the tick bounds a number has at most 15 digits and
# a point, so a batch without such a run parses exactly through orjson's doubles. A run inside a
# string (a long id) only sends the batch the slow way.
_DIGITS_AND_POINT = bytes(1 if chr(c) in "0123456789." else 0 for c in range(256))
_LONG_RUN = b"\x01" * 17
# A negative exponent: a double reads 1e-400 as 0.0, which is not what was sent (decode_tick
# rejects it as too precise). An id that happens to hold "1e-" only sends the batch the slow way.
_NEGATIVE_EXPONENT = re.compile(rb"[0-9.][eE]-")

_NUMBER_TYPES = {int, float}
_SIZE_TYPES = {int, float, type(None)}
_ID_TYPES = {str, type(None)}


@dataclass(frozen=True, slots=True)
class TickColumns:
    """Ticks as parallel lists: the n-th entry of each list is the n-th record's tick."""

    symbols: list[str]
    prices: list[Decimal]
    sizes: list[Decimal]
    ts_ms: list[int]
    ids: list[str | None]

    def __len__(self) -> int:
        return len(self.symbols)

    def tick(self, index: int) -> Tick:
        return Tick(
            self.symbols[index], self.prices[index], self.sizes[index], self.ts_ms[index], self.ids[index]
        )


def decode_columns(datas: Sequence[bytes]) -> TickColumns | None:
    """Every record as a native tick, or None when any record needs decode_tick's attention."""
    if not datas:
        return None
    joined = b"".join(datas)
    if joined.translate(_DIGITS_AND_POINT).find(_LONG_RUN) >= 0 or _NEGATIVE_EXPONENT.search(joined):
        return None
    try:
        objects = list(map(orjson.loads, datas))
    except orjson.JSONDecodeError:
        return None
    if set(map(type, objects)) != {dict}:
        return None
    # Typed Any: the type checks right below are what make them str, int and so on.
    symbols: list[Any] = list(map(dict.get, objects, repeat("symbol")))
    raw_prices: list[Any] = list(map(dict.get, objects, repeat("price")))
    raw_sizes: list[Any] = list(map(dict.get, objects, repeat("size")))
    ts_ms: list[Any] = list(map(dict.get, objects, repeat("ts")))
    ids: list[Any] = list(map(dict.get, objects, repeat("id")))
    if (
        set(map(type, symbols)) != {str}
        or not set(map(type, raw_prices)) <= _NUMBER_TYPES
        or not set(map(type, raw_sizes)) <= _SIZE_TYPES
        or set(map(type, ts_ms)) != {int}
        or not set(map(type, ids)) <= _ID_TYPES
        or min(ts_ms) < MIN_TS_MS
        or max(ts_ms) >= MAX_TS_MS
        or "" in ids
    ):
        return None
    named = [i for i in ids if i is not None]
    if named and max(map(len, named)) > MAX_ID_LENGTH:
        return None
    try:
        for symbol in set(symbols):
            validate_symbol(symbol)
        prices = {raw: validate_price(raw) for raw in set(raw_prices)}
        sizes = {raw: validate_size(raw) for raw in set(raw_sizes)}
    except InvalidTick:
        return None
    return TickColumns(
        symbols,
        list(map(prices.__getitem__, raw_prices)),
        list(map(sizes.__getitem__, raw_sizes)),
        ts_ms,
        ids,
    )
