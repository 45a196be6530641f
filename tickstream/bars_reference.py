"""The reference for "correct" bars: a pandas recomputation over the unique valid ticks.

Used by the demo and the tests to check the aggregator; the aggregator itself never imports pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd

from consumers.aggregate.logic import RawRecord, explode
from market.bars import INTERVAL_SECONDS, VWAP_QUANTUM, BarAccumulator

# (symbol, price, size, ts_ms, sequence, sub_sequence)
ReferenceTick = tuple[str, Decimal, Decimal, int, int, int]
ReferenceBar = tuple[Decimal, Decimal, Decimal, Decimal, Decimal, int, Decimal | None, int, int]


def public_values(acc: BarAccumulator) -> ReferenceBar:
    """A bar's public values in the reference's order, to compare stored bars with it."""
    return (
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


def reference_bars(
    ticks: Iterable[ReferenceTick], intervals: Sequence[str]
) -> dict[tuple[str, str, int], ReferenceBar]:
    """(symbol, interval, start) -> (open, high, low, close, volume, trades, vwap, first_ts, last_ts)."""
    frame = pd.DataFrame(list(ticks), columns=["symbol", "price", "size", "ts", "seq", "sub"])
    result: dict[tuple[str, str, int], ReferenceBar] = {}
    if frame.empty:
        return result
    frame = frame.sort_values(["ts", "seq", "sub"], kind="stable")
    frame["notional"] = [p * s for p, s in zip(frame["price"], frame["size"], strict=True)]
    for interval in intervals:
        seconds = INTERVAL_SECONDS[interval]
        frame["start"] = frame["ts"] // 1000 // seconds * seconds
        for (symbol, start), group in frame.groupby(["symbol", "start"], sort=False):
            volume = sum(group["size"], Decimal(0))
            notional = sum(group["notional"], Decimal(0))
            vwap = (notional / volume).quantize(VWAP_QUANTUM, ROUND_HALF_EVEN) if volume else None
            result[(str(symbol), interval, int(str(start)))] = (
                group["price"].iloc[0],
                max(group["price"]),
                min(group["price"]),
                group["price"].iloc[-1],
                volume,
                len(group),
                vwap,
                int(group["ts"].iloc[0]),
                int(group["ts"].iloc[-1]),
            )
    return result


def reference_from_records(
    records: Iterable[RawRecord], intervals: Sequence[str]
) -> dict[tuple[str, str, int], ReferenceBar]:
    """The reference over what a stream holds: the first copy of each tick id, by stream position."""
    seen: set[str] = set()
    rows: list[ReferenceTick] = []
    for record in records:
        ticks, _ = explode([record])
        for index in range(len(ticks)):
            tick = ticks.tick(index)
            if tick.id is not None:
                if tick.id in seen:
                    continue
                seen.add(tick.id)
            sequence, sub = ticks.position(index)
            rows.append((tick.symbol, tick.price, tick.size, tick.ts_ms, sequence, sub))
    return reference_bars(rows, intervals)
