"""Candlestick PNGs with mplfinance: Agg backend, figures closed, nothing written to disk."""

from __future__ import annotations

import io
import logging
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot loads: no display, no GUI toolkit

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import mplfinance as mpf
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.ticker import MaxNLocator

MOVING_AVERAGES = (5, 25)
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 80  # 800 x 480 pixels
# Panels as [left, bottom, width, height] fractions of the figure: price above, volume below.
PRICE_PANEL = (0.07, 0.36, 0.85, 0.56)
VOLUME_PANEL = (0.07, 0.09, 0.85, 0.22)
PRICE_TICKS, VOLUME_TICKS = 6, 3
TITLE_Y, TITLE_SIZE = 0.96, 11
STYLE = mpf.make_mpf_style(base_mpf_style="yahoo", rc={"font.size": 9})
# The style asks for a semibold title that the bundled DejaVu font lacks; bold is used, quietly.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def render_chart(
    frame: pd.DataFrame, title: str, bar_seconds: int, moving_averages: tuple[int, ...] = MOVING_AVERAGES
) -> bytes:
    """A candlestick chart with a volume panel and moving averages, as PNG bytes.

    mplfinance draws the price panel (candles, moving averages, style, UTC date axis) into axes
    of our figure; the volume panel is one polygon collection of our own, since mplfinance's
    draws a patch per bar, which alone took longer than our whole per-chart budget.
    `show_nontrading` keeps the time axis true, so a missing bar shows as a gap; the axis spans
    the bars plus one bar's width each side, not the library's default of days around them.
    Moving averages longer than the series are left out rather than drawn from too few bars.
    Ticks are few on purpose: labels are most of the drawing time.
    """
    averages = tuple(n for n in moving_averages if n < len(frame))
    optional: dict[str, Any] = {"mav": averages} if averages else {}
    pad = pd.Timedelta(seconds=bar_seconds)
    # On a true time axis widths are in days; set them from the bar's duration, or a lone bar
    # (no neighbour to measure spacing from) is drawn as a hairline.
    width = 0.7 * bar_seconds / 86_400
    figure = mpf.figure(style=STYLE, figsize=(WIDTH_IN, HEIGHT_IN))
    try:
        price_axes = figure.add_axes(PRICE_PANEL)
        volume_axes = figure.add_axes(VOLUME_PANEL, sharex=price_axes)
        mpf.plot(
            frame,
            ax=price_axes,
            type="candle",
            show_nontrading=True,
            ylabel="price",
            xlim=(frame.index[0] - pad, frame.index[-1] + pad),
            update_width_config={"candle_width": width},
            datetime_format="%m-%d %H:%M",
            xrotation=0,
            warn_too_much_data=100_000,
            **optional,
        )
        _draw_volume(volume_axes, frame, width)
        # A figure text, not an axes title: placing an axes title measures every tick label.
        figure.text(0.5, TITLE_Y, title, ha="center", va="center", fontsize=TITLE_SIZE)
        price_axes.tick_params(labelbottom=False)
        price_axes.yaxis.set_major_locator(MaxNLocator(PRICE_TICKS))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _draw_volume(axes: Axes, frame: pd.DataFrame, width: float) -> None:
    """One bar per candle, in the style's up and down volume colours, as a single collection."""
    centres = mdates.date2num(pd.DatetimeIndex(frame.index).to_pydatetime())  # type: ignore[no-untyped-call]
    volumes = frame["Volume"].to_numpy(dtype=float)
    rising = frame["Close"].to_numpy() >= frame["Open"].to_numpy()
    left, right = centres - width / 2, centres + width / 2
    zeros = np.zeros_like(volumes)
    corners = np.stack(
        [np.column_stack(c) for c in ((left, zeros), (left, volumes), (right, volumes), (right, zeros))],
        axis=1,
    )
    colours = STYLE["marketcolors"]["volume"]
    axes.add_collection(
        PolyCollection(
            list(corners), facecolors=np.where(rising, colours["up"], colours["down"]), linewidths=0
        )
    )
    axes.set_axisbelow(True)
    axes.set_ylim(0, max(float(volumes.max()), 1.0) * 1.1)
    axes.yaxis.set_major_locator(MaxNLocator(VOLUME_TICKS))
    axes.yaxis.tick_right()
    axes.yaxis.set_label_position("right")
    axes.set_ylabel("volume")
