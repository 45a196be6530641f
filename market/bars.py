"""OHLC bars: buckets by event time, and a merge that ignores order, batching and redelivery.

Every value a bar keeps merges associatively and commutatively: open and close are the
prices of the smallest and largest tick key (event time, then shard sequence, then
sub-sequence), high and low are max and min, the rest are sums. So any split of a set of
ticks into batches, in any order, gives the same bar; what must not happen twice is adding
the same tick, and that is the aggregator's bookkeeping, not this module's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, Inexact, InvalidOperation, Overflow

INTERVAL_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}
DEFAULT_INTERVALS = ("1m", "5m", "1h", "1d")
BASE_INTERVAL = "1m"
# vwap is reported to 10 decimal places, rounded half-even, so every computation of it agrees.
VWAP_QUANTUM = Decimal("1E-10")

# Sums are kept to DynamoDB's 38 significant digits, and any rounding raises instead of passing
# silently (tick validation bounds prices and sizes so that it does not happen).
EXACT = Context(prec=38, traps=[Inexact, Overflow, InvalidOperation])
ROUNDED = Context(prec=38)

# (event time ms, sequence number, sub-sequence number): the total order that picks open and close.
TickKey = tuple[int, int, int]


def parse_intervals(text: str) -> tuple[str, ...]:
    """`1m,5m,1h` -> ("1m", "5m", "1h"); 1m is always included, since the others are built from it."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in INTERVAL_SECONDS]
    if unknown:
        raise ValueError(
            f"unknown interval(s) {', '.join(unknown)}; choose from {', '.join(INTERVAL_SECONDS)}"
        )
    chosen = {BASE_INTERVAL, *names}
    return tuple(sorted(chosen, key=INTERVAL_SECONDS.__getitem__))


def bucket_start(ts_ms: int, interval: str) -> int:
    """Start of the bucket holding `ts_ms`, in epoch seconds UTC, aligned to the epoch."""
    seconds = INTERVAL_SECONDS[interval]
    return ts_ms // 1000 // seconds * seconds


def bar_pk(symbol: str, interval: str) -> str:
    return f"{symbol}#{interval}"


@dataclass(slots=True)
class BarAccumulator:
    open: Decimal
    open_key: TickKey
    close: Decimal
    close_key: TickKey
    high: Decimal
    low: Decimal
    volume: Decimal
    trades: int
    notional: Decimal  # sum of price * size, for vwap

    @classmethod
    def of_tick(cls, price: Decimal, size: Decimal, key: TickKey) -> BarAccumulator:
        return cls(price, key, price, key, price, price, size, 1, EXACT.multiply(price, size))

    def add_tick(self, price: Decimal, size: Decimal, key: TickKey) -> None:
        if key < self.open_key:
            self.open, self.open_key = price, key
        if key > self.close_key:
            self.close, self.close_key = price, key
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume = EXACT.add(self.volume, size)
        self.trades += 1
        self.notional = EXACT.add(self.notional, EXACT.multiply(price, size))

    def merge(self, other: BarAccumulator) -> None:
        """Adds another set of ticks (disjoint from this one) to this bar."""
        self.merge_extremes(other)
        self.volume = EXACT.add(self.volume, other.volume)
        self.trades += other.trades
        self.notional = EXACT.add(self.notional, other.notional)

    def merge_extremes(self, other: BarAccumulator) -> None:
        """Open, close, high and low only: idempotent, so merging the same bar twice changes nothing."""
        if other.open_key < self.open_key:
            self.open, self.open_key = other.open, other.open_key
        if other.close_key > self.close_key:
            self.close, self.close_key = other.close, other.close_key
        if other.high > self.high:
            self.high = other.high
        if other.low < self.low:
            self.low = other.low

    @property
    def vwap(self) -> Decimal | None:
        if self.volume == 0:
            return None
        return ROUNDED.divide(self.notional, self.volume).quantize(VWAP_QUANTUM, rounding=ROUND_HALF_EVEN)

    @property
    def first_ts(self) -> int:
        return self.open_key[0]

    @property
    def last_ts(self) -> int:
        return self.close_key[0]


@dataclass(frozen=True, slots=True)
class Bar:
    """A finished bar as users see it: the public columns of the bars table."""

    symbol: str
    interval: str
    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    vwap: Decimal | None
    first_ts: int
    last_ts: int

    @classmethod
    def of(cls, symbol: str, interval: str, start: int, acc: BarAccumulator) -> Bar:
        return cls(
            symbol,
            interval,
            start,
            acc.open,
            acc.high,
            acc.low,
            acc.close,
            acc.volume,
            acc.trades,
            acc.vwap,
            acc.first_ts,
            acc.last_ts,
        )


def bars_of(
    ticks: Iterable[tuple[str, Decimal, Decimal, TickKey]], intervals: Sequence[str]
) -> dict[tuple[str, str, int], BarAccumulator]:
    """Bars of (symbol, price, size, key) ticks for each interval: the straightforward definition."""
    bars: dict[tuple[str, str, int], BarAccumulator] = {}
    for symbol, price, size, key in ticks:
        for interval in intervals:
            slot = (symbol, interval, bucket_start(key[0], interval))
            acc = bars.get(slot)
            if acc is None:
                bars[slot] = BarAccumulator.of_tick(price, size, key)
            else:
                acc.add_tick(price, size, key)
    return bars


Position = tuple[int, int]  # (sequence number, sub-sequence number) within one shard


@dataclass
class StoredBar:
    """A bars-table item in domain terms; bookkeeping fields are empty for a bar not yet stored."""

    symbol: str
    interval: str
    start: int
    acc: BarAccumulator | None = None
    watermarks: dict[str, Position] = field(default_factory=dict)
    id_hashes: set[bytes] = field(default_factory=set)
    version: int = 0
