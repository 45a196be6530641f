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
from matplotlib.ticker import FuncFormatter, MaxNLocator

from stores.site_content import CHART_HEIGHT_PX, CHART_WIDTH_PX, MA_COLOURS, VOLUME_SCALES

MOVING_AVERAGES = tuple(MA_COLOURS)
# Drawn at twice the pixel density of the page's chart cell (stores.site_content): 960 x 540
# pixels shown about 480 css px wide (a 11-point label reads at about 11 px), and at 9 px in a
# phone's 380 px column.
DPI = 150
WIDTH_IN, HEIGHT_IN = 2 * CHART_WIDTH_PX / DPI, 2 * CHART_HEIGHT_PX / DPI
# Panels as [left, bottom, width, height] fractions of the figure: price above, volume below;
# the right margin holds the price and volume labels.
PRICE_PANEL = (0.06, 0.37, 0.78, 0.52)
VOLUME_PANEL = (0.06, 0.11, 0.78, 0.22)
PRICE_TICKS, VOLUME_TICKS, TIME_TICKS = 5, 2, 5
TITLE_Y, TITLE_SIZE, LABEL_SIZE = 0.95, 13, 10
# Fewer candles than this and the chart is a placeholder: the axis spans PLACEHOLDER_SPAN bars,
# so one daily candle is a candle, not a block across the whole chart, and the chart says so.
FEW_CANDLES, PLACEHOLDER_SPAN = 5, 30
LAST_PRICE_COLOUR = "#444444"
STYLE = mpf.make_mpf_style(
    base_mpf_style="yahoo", mavcolors=list(MA_COLOURS.values()), rc={"font.size": 11}, y_on_right=True
)
# The style asks for a semibold title that the bundled DejaVu font lacks; bold is used, quietly.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def time_format(bar_seconds: int) -> str:
    """Dates for day and week candles, times within a day for the rest."""
    if bar_seconds >= 86_400:
        return "%Y-%m-%d"
    return "%m-%d %H:%M" if bar_seconds >= 3_600 else "%H:%M"


def price_text(price: float) -> str:
    """A price in plain digits, at most 8 decimals, as ticks carry them: never 9.67536e+06."""
    return str(np.format_float_positional(price, precision=8, trim="-"))


def short_volume(value: float, _position: object = None) -> str:
    """Volume labels read at a glance: 300k, 1.2M, not 300000 or 1e6."""
    for exponent, suffix in VOLUME_SCALES:
        if abs(value) >= 10.0**exponent:
            return f"{value / 10.0**exponent:.3g}{suffix}"
    return f"{value:.3g}"


def render_chart(
    frame: pd.DataFrame, title: str, bar_seconds: int, moving_averages: tuple[int, ...] = MOVING_AVERAGES
) -> bytes:
    """A candlestick chart with a volume panel, moving averages with their legend and the last
    price marked, as PNG bytes.

    mplfinance draws the price panel (candles, moving averages, style, UTC date axis) into axes
    of our figure; the volume panel is one polygon collection of our own, since mplfinance's
    draws a patch per bar, which alone took longer than our whole per-chart budget. Each candle
    is centred on the middle of its interval, so a day's candle sits between its midnights.
    `show_nontrading` keeps the time axis true, so a missing bar shows as a gap; the axis spans
    the bars plus one bar's width each side, or PLACEHOLDER_SPAN bars while there are few.
    Moving averages longer than the series are left out rather than drawn from too few bars.
    Ticks are few on purpose: labels are most of the drawing time.
    """
    averages = tuple(n for n in moving_averages if n < len(frame))
    optional: dict[str, Any] = {"mav": averages} if averages else {}
    pad = pd.Timedelta(seconds=bar_seconds)
    frame = frame.set_axis(frame.index + pad / 2)
    first = frame.index[0] - pad
    if len(frame) < FEW_CANDLES:
        first = min(first, frame.index[-1] - pad * PLACEHOLDER_SPAN)
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
            ylabel="",
            xlim=(first, frame.index[-1] + pad),
            update_width_config={"candle_width": width},
            datetime_format=time_format(bar_seconds),
            xrotation=0,
            warn_too_much_data=100_000,
            **optional,
        )
        averages_drawn = list(price_axes.lines)  # mplfinance's only lines: the moving averages
        _draw_volume(volume_axes, frame, width)
        _mark_last_price(price_axes, float(frame["Close"].iloc[-1]))
        if averages:
            # Above the panel, beside the title: never over a candle.
            price_axes.legend(
                averages_drawn,
                [f"MA {n}" for n in averages],
                loc="lower right",
                bbox_to_anchor=(1, 1),
                borderaxespad=0.2,
                fontsize=LABEL_SIZE,
                frameon=False,
                ncols=len(averages),
            )
        if len(frame) < FEW_CANDLES:
            price_axes.text(
                0.5, 0.5, f"{len(frame)} candle{'s' if len(frame) > 1 else ''} so far",
                transform=price_axes.transAxes, ha="center", va="center", color="#666666",
                bbox={"facecolor": "white", "alpha": 0.85, "linewidth": 0},
            )  # fmt: skip
        # A figure text, not an axes title: placing an axes title measures every tick label.
        figure.text(0.06, TITLE_Y, title, ha="left", va="center", fontsize=TITLE_SIZE, weight="bold")
        price_axes.tick_params(labelbottom=False)
        price_axes.yaxis.set_major_locator(MaxNLocator(PRICE_TICKS))
        # Prices as prices: no "+4.5e3" offset above the ticks, no scientific notation.
        price_axes.ticklabel_format(axis="y", style="plain", useOffset=False)
        # Round times and dates (12:00, 12:30; the 1st, the 15th), at most TIME_TICKS of them.
        locator = mdates.AutoDateLocator(minticks=2, maxticks=TIME_TICKS)  # type: ignore[no-untyped-call]
        volume_axes.xaxis.set_major_locator(locator)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(figure)
    return buffer.getvalue()


def _mark_last_price(axes: Axes, last: float) -> None:
    """A dashed line at the last close, its value in a box on the price axis."""
    axes.axhline(last, color=LAST_PRICE_COLOUR, linewidth=0.8, linestyle="--")
    axes.annotate(
        price_text(last),
        xy=(1, last),
        xycoords=("axes fraction", "data"),
        xytext=(2, 0),
        textcoords="offset points",
        va="center",
        fontsize=LABEL_SIZE,
        color="white",
        bbox={"boxstyle": "square,pad=0.2", "facecolor": LAST_PRICE_COLOUR, "linewidth": 0},
    )


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
    axes.yaxis.set_major_formatter(FuncFormatter(short_volume))
    axes.yaxis.tick_right()
