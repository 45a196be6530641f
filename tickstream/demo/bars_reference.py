"""The reference for "correct" bars: a pandas recomputation over the unique valid ticks.

Used by the demo and the tests to check the aggregator; the aggregator itself never imports pandas.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

import pandas as pd
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

from market.bars import INTERVAL_SECONDS, VWAP_QUANTUM, BarAccumulator
from stores.shard_reader import StreamRecord

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


def reference_from_stream(
    records: Iterable[StreamRecord], intervals: Sequence[str]
) -> dict[tuple[str, str, int], ReferenceBar]:
    """The reference over what a stream holds: the first copy of each tick id, by stream position.

    Decoded apart from the aggregator: awslabs' deaggregator and the standard library's json, so a
    decoding bug of ours cannot hide in both the bars and their reference.
    """
    seen: set[str] = set()
    rows: list[ReferenceTick] = []
    for record in records:
        boto3_shaped = {
            "SequenceNumber": record.sequence_number,
            "PartitionKey": record.partition_key,
            "ApproximateArrivalTimestamp": record.arrival,
            "Data": record.data,
        }
        user_records = iter_deaggregate_records(boto3_shaped, data_format="Boto3")
        for sub, user in enumerate(user_records):
            kinesis = user["kinesis"]
            data = base64.b64decode(kinesis["data"]) if kinesis.get("aggregated") else kinesis["data"]
            tick = json.loads(data, parse_float=Decimal, parse_int=Decimal)
            tick_id = tick.get("id")
            if tick_id is not None:
                if tick_id in seen:
                    continue
                seen.add(tick_id)
            size = tick.get("size", Decimal(0))
            position = (int(record.sequence_number), sub)
            rows.append((tick["symbol"], tick["price"], size, int(tick["ts"]), *position))
    return reference_bars(rows, intervals)
