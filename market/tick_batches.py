"""Many ticks decoded at once, column by column, for the aggregator's hot path.

`decode_tick` pays Python's per-call price for every field of every tick. Here a KPL
aggregate's user records are parsed as one JSON array by msgspec into typed structs (types
checked in C), each remaining check runs once per batch in C (map, set, min, max), and each
distinct symbol, price and size is validated once, by the same validators `decode_tick` uses.
The answer is all or nothing: either every record is a native tick and the columns equal what
`decode_tick` gives record by record, or None, and the caller decodes record by record to learn
each record's reason.

Parsing the records joined as `[r1,r2,...]` is only the same as parsing each alone when each
record is one JSON object by itself. A record such as `{"a":[{}` followed by `{}]}` parses
joined, yet neither does alone. The guard: every record starts with "{" and ends with "}", and
the batch holds no other brace. Then each of the array's objects, which needs a brace of its own
at each end, can only be one whole record, so a batch that parses into as many objects as it has
records is those records, each parsed alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat
from operator import attrgetter

import msgspec

from market.ticks import (
    MAX_ID_LENGTH,
    MAX_TS_MS,
    MIN_TS_MS,
    InvalidTick,
    Tick,
    validate_prices,
    validate_sizes,
    validate_symbol,
)

# A number can carry more significant digits than a double keeps (15, see decode_tick) only as
# a run of 17 digits and points, or as 16 digits right before an exponent (9477255422360239e-9
# rounds to 9477255.42236024, where decode_tick rejects the 9 decimals sent). Within the tick
# bounds neither is a valid price or size, so a batch with neither parses exactly through
# doubles. Such a run inside a string (a long id) only sends the batch the slow way.
_NUMBER_BYTES = bytes(1 if chr(c) in "0123456789." else 2 if chr(c) in "eE" else 0 for c in range(256))
_LONG_RUN = b"\x01" * 17
_LONG_MANTISSA = b"\x01" * 16 + b"\x02"


class _NativeTick(msgspec.Struct, gc=False):
    """A native tick's fields as JSON types; unknown fields are skipped, as decode_tick does, and
    a repeated key keeps its last value, as orjson and json do."""

    symbol: str
    price: int | float
    ts: int
    size: int | float | None = None
    id: str | None = None


_BATCH = msgspec.json.Decoder(list[_NativeTick])
_FIELDS = tuple(attrgetter(name) for name in ("symbol", "price", "size", "ts", "id"))


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


def _utf8(data: bytes) -> bool:
    """msgspec skips unknown fields without checking their text, where decode_tick rejects a
    record that is not UTF-8 anywhere (bad_utf8); ASCII, the usual case, is checked in one pass."""
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def decode_columns(datas: Sequence[bytes]) -> TickColumns | None:
    """Every record as a native tick, or None when any record needs decode_tick's attention."""
    count = len(datas)
    if not count:
        return None
    joined = b",".join(datas)
    if (
        joined.count(b"{") != count
        or joined.count(b"}") != count
        or not all(map(bytes.startswith, datas, repeat(b"{")))
        or not all(map(bytes.endswith, datas, repeat(b"}")))
        or b"\\" in joined  # an escape: the exact path reads it, as decode_tick does
        or b"[" in joined  # an array, which no tick holds: decode_tick bounds its nesting
        or not _utf8(joined)
    ):
        return None
    numbers = joined.translate(_NUMBER_BYTES)
    if numbers.find(_LONG_RUN) >= 0 or numbers.find(_LONG_MANTISSA) >= 0:
        return None
    try:
        parsed = _BATCH.decode(b"[" + joined + b"]")
    except msgspec.DecodeError:  # ValidationError too: a field of the wrong JSON type
        return None
    if len(parsed) != count:
        return None
    columns = [list(map(field, parsed)) for field in _FIELDS]
    symbols, raw_prices, raw_sizes, ts_ms, ids = columns
    if min(ts_ms) < MIN_TS_MS or max(ts_ms) >= MAX_TS_MS or "" in ids:
        return None
    if max(map(len, filter(None, ids)), default=0) > MAX_ID_LENGTH:  # "" is out, just above
        return None
    distinct_prices, distinct_sizes = set(raw_prices), set(raw_sizes)
    # A double reads 1e-400 as 0.0, which is not what was sent (decode_tick rejects it as too
    # precise): a zero written as a float goes the exact way.
    if any(n.__class__ is float and not n for n in (*distinct_prices, *distinct_sizes)):
        return None
    try:
        for symbol in set(symbols):
            validate_symbol(symbol)
        prices = validate_prices(distinct_prices)
        sizes = validate_sizes(distinct_sizes)
    except InvalidTick:
        return None
    return TickColumns(
        symbols,
        list(map(prices.__getitem__, raw_prices)),
        list(map(sizes.__getitem__, raw_sizes)),
        ts_ms,
        ids,
    )
