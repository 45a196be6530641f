"""Bars as the table chart library wants them: a UTC time index and OHLCV columns.

Missing buckets stay missing (the chart shows the gap rather than closing it up), and weekly
candles are built from daily bars, Monday to Sunday, as exchanges' weeks are.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from market.bars import Bar

COLUMNS = ["Open", "High", "Low", "Close", "Volume"]
WEEKLY = "1w"


def bars_frame(bars: Sequence[Bar]) -> pd.DataFrame:
    """Floats for drawing only; the exact Decimals stay in the table and the data bucket."""
    index = pd.DatetimeIndex([pd.Timestamp(b.start, unit="s", tz="UTC") for b in bars], name="Date")
    rows = [[float(b.open), float(b.high), float(b.low), float(b.close), float(b.volume)] for b in bars]
    frame = pd.DataFrame(rows, index=index, columns=COLUMNS)
    return frame.sort_index()


def weekly_from_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """Weeks starting Monday 00:00 UTC: first open, highest high, lowest low, last close, summed volume."""
    if daily.empty:
        return daily
    weekly = daily.resample("W-MON", label="left", closed="left").agg(
        {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}
    )
    return weekly.dropna(subset=["Open"])
