"""Candlestick PNGs with mplfinance: Agg backend, figures closed, nothing written to disk."""

from __future__ import annotations

import io
import logging
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot loads: no display, no GUI toolkit

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import mplfinance as mpf
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.path import Path
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, Formatter, FuncFormatter, Locator, MaxNLocator
from PIL import Image

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
# The right margin grows with the longest price label (1234567.12345678 is 16 characters), so no
# label is cut at the figure's edge: a digit's width at the labels' 11 points and DPI, and room
# for the tick mark, the padding and the last-price box's own.
DIGIT_PX, LABEL_ROOM_PX = 15, 24
# Prices move in steps of 1e-8 (8 decimal places at most): the price axis spans at least
# PRICE_TICKS such steps, and ticks fall on 1, 2 or 5 times a power of ten, so no two labels
# read the same and none has more than 8 decimals.
PRICE_STEP = 1e-8
PRICE_STEPS = [m * 10.0**e for e in range(-8, 8) for m in (1, 2, 5)]
PRICE_MARGIN = 0.05  # of the candles' range, above and below
PRICE_TICKS, VOLUME_TICKS, TIME_TICKS = 5, 2, 5
TITLE_Y, TITLE_SIZE, LABEL_SIZE = 0.95, 13, 10
# A long heading is set no smaller than this (about 8 px on the page), then shortened.
MIN_TITLE_SIZE = 9
HEADING_GAP_PX = 20  # between the heading and the legend
LEGEND_RIGHT = 0.99  # the legend's right end, as a fraction of the figure's width
# Tick labels nearer the last price than this (points, centre to centre) are left out: the
# price box is about 1.4 label sizes high, and a tick label about one.
LABEL_CLEARANCE_PT = 1.5 * LABEL_SIZE
# Fewer candles than this and the chart is a placeholder: the axis spans PLACEHOLDER_SPAN bars,
# so one daily candle is a candle, not a block across the whole chart, and the chart says so.
FEW_CANDLES, PLACEHOLDER_SPAN = 5, 30
# The axis never spans more than this many intervals back from the last candle: after a pause
# of days, a 1m chart shows the minutes since, not two slivers of hairline candles days apart.
MAX_SPAN = 200
# Candles of a day or longer sit on their date, as on a daily chart: the date's label is under
# its candle. Shorter ones are centred on their interval, between the times that bound it.
DATED_FROM_SECONDS = 86_400
# Times of day on intraday charts, and the date where a day starts ("Nov 03"): the formats of
# matplotlib's ConciseDateFormatter by level (years, months, days, hours, minutes, seconds) and
# at a level's zero. The date of the last candle is in the title.
TIME_FORMATS = ["%Y", "%b", "%b %d", "%H:%M", "%H:%M", "%S"]
TIME_ZERO_FORMATS = ["", "%Y", "%b", "%b %d", "%H:%M", "%H:%M"]
# Day and week candles are labelled with their own dates, the last one always, the others at
# least DATE_LABEL_PX apart (a 10-character date at 11 points is about 136 pixels at DPI).
DATE_FORMAT, DATE_LABEL_PX = "%Y-%m-%d", 180
LAST_PRICE_COLOUR = "#444444"
# The PNG: the figure is opaque, so its pixels are written as RGB, without the alpha channel
# savefig writes; zlib level 3 rather than 6. Together they took the encoding from 14 to 8 ms
# of a 200-candle chart, for a file 1 to 11% larger than savefig's.
PNG_COMPRESS_LEVEL = 3
STYLE = mpf.make_mpf_style(
    base_mpf_style="yahoo", mavcolors=list(MA_COLOURS.values()), rc={"font.size": 11}, y_on_right=True
)
# The style asks for a semibold title that the bundled DejaVu font lacks; bold is used, quietly.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def date_ticks(starts: pd.DatetimeIndex, spacing: pd.Timedelta, earliest: pd.Timestamp) -> list[float]:
    """Candle dates to label, as axis positions: the last candle's, then going back, each next
    candle at least `spacing` before the one labelled after it and none before `earliest` (a
    label there would run off the figure's left edge)."""
    chosen = [starts[-1]]
    for start in reversed(starts[:-1]):
        if chosen[-1] - start >= spacing and start >= earliest:
            chosen.append(start)
    return [float(mdates.date2num(t)) for t in reversed(chosen)]  # type: ignore[no-untyped-call]


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
    """The chart of `draw_chart` as PNG bytes."""
    figure = draw_chart(frame, title, bar_seconds, moving_averages)
    try:
        figure.canvas.draw()
        pixels = Image.frombuffer(
            "RGBA",
            figure.canvas.get_width_height(),
            figure.canvas.buffer_rgba(),  # type: ignore[attr-defined]
            "raw",
            "RGBA",
            0,
            1,
        ).convert("RGB")
    except BaseException:
        start_over()
        raise
    buffer = io.BytesIO()
    pixels.save(buffer, format="png", compress_level=PNG_COMPRESS_LEVEL, dpi=(DPI, DPI))
    return buffer.getvalue()


class _Canvas:
    """The figure and its two panels, made once per process and cleared between charts.

    Making the axes and their tick objects was about a quarter of each chart's drawing time
    (BENCHMARKS.md). Clearing removes every artist a chart adds (candles, averages, volume,
    last price, legend, notes, heading) and gives both panels back their autoscaling; a test
    draws charts one after another and checks each PNG equals the same chart drawn first in a
    new figure. A chart that fails mid-way discards the figure rather than trust its state.
    """

    def __init__(self) -> None:
        self._made: tuple[Figure, Axes, Axes] | None = None

    def blank(self) -> tuple[Figure, Axes, Axes]:
        made = self._made
        if made is None or not plt.fignum_exists(made[0].number):
            # At DPI from the start: the heading is measured to fit at the size it is saved.
            figure = mpf.figure(style=STYLE, figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
            price_axes = figure.add_axes(PRICE_PANEL)
            made = self._made = (figure, price_axes, figure.add_axes(VOLUME_PANEL, sharex=price_axes))
            return made
        figure, *panels = made
        for axes in panels:
            for artist in [*axes.collections, *axes.lines, *axes.texts, *axes.patches]:
                artist.remove()
            if (legend := axes.get_legend()) is not None:
                legend.remove()
            axes.relim()
            axes.set_autoscale_on(True)
        for text in list(figure.texts):
            text.remove()
        return made

    def discard(self) -> None:
        if self._made is not None:
            plt.close(self._made[0])
        self._made = None


_CANVAS = _Canvas()


def start_over() -> None:
    """Forget the figure: the next chart is drawn in a new one."""
    _CANVAS.discard()


def draw_chart(
    frame: pd.DataFrame, title: str, bar_seconds: int, moving_averages: tuple[int, ...] = MOVING_AVERAGES
) -> Figure:
    """A candlestick chart with a volume panel, moving averages with their legend and the last
    price marked, in the process's one chart figure (see _Canvas): valid until the next chart.

    mplfinance draws the price panel (candles, moving averages, style, UTC date axis) into axes
    of our figure; the volume panel is our own (a few paths, see _draw_volume), since mplfinance's
    draws a patch per bar, which alone took longer than our whole per-chart budget.
    `show_nontrading` keeps the time axis true, so a missing bar shows as a gap; the axis spans
    the bars plus one bar's width each side, at most MAX_SPAN intervals (older candles are left
    out), or PLACEHOLDER_SPAN intervals while there are few. Moving averages longer than the
    series are left out rather than drawn from too few bars. Ticks are few on purpose: labels
    are most of the drawing time.
    """
    pad = pd.Timedelta(seconds=bar_seconds)
    in_view = frame[frame.index > frame.index[-1] - pad * MAX_SPAN]
    older = len(frame) > len(in_view)
    frame = in_view
    heading = f"{title}  {frame.index[-1]:%Y-%m-%d}"  # the last candle's date
    if bar_seconds < DATED_FROM_SECONDS:
        frame = frame.set_axis(frame.index + pad / 2)
    averages = tuple(n for n in moving_averages if n < len(frame))
    optional: dict[str, Any] = {"mav": averages} if averages else {}
    first = frame.index[0] - pad
    if len(frame) < FEW_CANDLES:
        first = min(first, frame.index[-1] - pad * PLACEHOLDER_SPAN)
    # On a true time axis widths are in days; set them from the bar's duration, or a lone bar
    # (no neighbour to measure spacing from) is drawn as a hairline.
    width = 0.7 * bar_seconds / 86_400
    labels = max(
        len(price_text(float(x))) for x in (frame["High"].max(), frame["Low"].min(), frame["Close"].iloc[-1])
    )
    panel_width = min(
        PRICE_PANEL[2], 1 - PRICE_PANEL[0] - (labels * DIGIT_PX + LABEL_ROOM_PX) / (WIDTH_IN * DPI)
    )
    figure, price_axes, volume_axes = _CANVAS.blank()
    try:
        price_axes.set_position((*PRICE_PANEL[:2], panel_width, PRICE_PANEL[3]))
        volume_axes.set_position((*VOLUME_PANEL[:2], panel_width, VOLUME_PANEL[3]))
        mpf.plot(
            frame,
            ax=price_axes,
            type="candle",
            show_nontrading=True,
            ylabel="",
            xlim=(first, frame.index[-1] + pad),
            update_width_config={"candle_width": width},
            xrotation=0,
            warn_too_much_data=100_000,
            **optional,
        )
        averages_drawn = list(price_axes.lines)  # mplfinance's only lines: the moving averages
        price_axes.set_ylim(*price_range(float(frame["Low"].min()), float(frame["High"].max())))
        _draw_volume(volume_axes, frame, width)
        last = float(frame["Close"].iloc[-1])
        _mark_last_price(price_axes, last)
        legend = None
        if averages:
            # Above the panels at the figure's right edge, beside the heading: never over a candle.
            legend = price_axes.legend(
                averages_drawn,
                [f"MA {n}" for n in averages],
                loc="center right",
                bbox_to_anchor=(LEGEND_RIGHT, TITLE_Y),
                bbox_transform=figure.transFigure,
                borderaxespad=0,
                fontsize=LABEL_SIZE,
                frameon=False,
                ncols=len(averages),
            )
        if len(frame) < FEW_CANDLES:
            since = "since a gap" if older else "so far"  # older candles are out of view
            price_axes.text(
                0.5, 0.5, f"{len(frame)} candle{'s' if len(frame) > 1 else ''} {since}",
                transform=price_axes.transAxes, ha="center", va="center", color="#666666",
                bbox={"facecolor": "white", "alpha": 0.85, "linewidth": 0},
            )  # fmt: skip
        # A figure text, not an axes title: placing an axes title measures every tick label.
        heading_text = figure.text(
            PRICE_PANEL[0], TITLE_Y, heading, ha="left", va="center", fontsize=TITLE_SIZE, weight="bold"
        )
        _fit_heading(figure, heading_text, title, legend)
        price_axes.tick_params(labelbottom=False)
        price_axes.yaxis.set_major_locator(_PriceTicks())
        price_axes.yaxis.set_major_formatter(_ClearOfLastPrice(price_axes, last))
        _label_time_axis(
            volume_axes, pd.DatetimeIndex(frame.index), (first, frame.index[-1] + pad), bar_seconds
        )
    except BaseException:
        start_over()
        raise
    return figure


def _label_time_axis(
    axes: Axes, candles: pd.DatetimeIndex, span: tuple[pd.Timestamp, pd.Timestamp], bar_seconds: int
) -> None:
    """Round times of day (12:00, 12:30; the date where a day starts) for intraday candles, at
    most TIME_TICKS of them; candles' own dates for day and week candles."""
    if bar_seconds < DATED_FROM_SECONDS:
        times = mdates.AutoDateLocator(minticks=2, maxticks=TIME_TICKS)  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(times)
        axes.xaxis.set_major_formatter(
            mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
                times, formats=TIME_FORMATS, zero_formats=TIME_ZERO_FORMATS, show_offset=False
            )
        )
        return
    first, end = span
    spacing = DATE_LABEL_PX / (axes.get_position().width * WIDTH_IN * DPI) * (end - first)
    axes.xaxis.set_major_locator(FixedLocator(date_ticks(candles, spacing, first + spacing / 3)))
    axes.xaxis.set_major_formatter(mdates.DateFormatter(DATE_FORMAT))  # type: ignore[no-untyped-call]


def _fit_heading(figure: Figure, heading: Text, title: str, legend: Legend | None) -> None:
    """A long heading is set smaller, down to MIN_TITLE_SIZE, then its title is shortened in the
    middle ("ABCDEFGH…2345 1m (UTC)"), rather than run under the legend or off the edge: it holds
    the only date on an intraday chart, which is kept whole."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    right = legend.get_window_extent(renderer).x0 if legend is not None else figure.bbox.width
    box = heading.get_window_extent(renderer)
    room = right - box.x0 - HEADING_GAP_PX
    if box.width <= room:
        return
    heading.set_fontsize(max(MIN_TITLE_SIZE, TITLE_SIZE * room / box.width))
    date = heading.get_text()[len(title) :]
    keep = len(title)
    while heading.get_window_extent(renderer).width > room and keep > 1:
        keep -= 1
        heading.set_text(f"{title[: (keep + 1) // 2]}\u2026{title[len(title) - keep // 2 :]}{date}")


def price_range(low: float, high: float) -> tuple[float, float]:
    """The price axis's limits: the candles with 5% to spare each side, at least PRICE_TICKS
    price steps high and never below 0 (mplfinance's padding put 0.00000001 to 9999999 from
    -500000); set, not autoscaled, so no tick locator can stretch it (autoscaling spread 6e-8
    of movement at 1234567 over 2.5e-6)."""
    span = max(high - low, PRICE_TICKS * PRICE_STEP)
    bottom = (low + high) / 2 - span * (0.5 + PRICE_MARGIN)
    top = bottom + span * (1 + 2 * PRICE_MARGIN)
    return (0.0, top - bottom) if bottom < 0 else (bottom, top)


class _PriceTicks(Locator):
    """At most PRICE_TICKS + 1 ticks on 1, 2 or 5 times a power of ten, never finer than a price
    step, as whole multiples of the step: MaxNLocator's tolerances grow with the price, and at
    9999999.9999990 it steps by 5e-7 across an axis 8e-8 high, leaving one label or none."""

    def __call__(self) -> list[float]:
        assert self.axis is not None
        low, high = self.axis.get_view_interval()
        return self.tick_values(low, high)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        rough = (vmax - vmin) / PRICE_TICKS
        step = next((s for s in PRICE_STEPS if s >= rough), PRICE_STEPS[-1])
        return [k * step for k in range(math.ceil(vmin / step), math.floor(vmax / step) + 1)]


class _ClearOfLastPrice(Formatter):
    """Prices as prices, in plain digits with at most 8 decimals (no "+4.5e3" offset, no
    exponent), and no label where the last price's box covers it: a label half hidden behind
    the box reads as another number."""

    def __init__(self, axes: Axes, last: float) -> None:
        self._axes, self._last = axes, last

    def __call__(self, x: float, pos: int | None = None) -> str:
        to_pixels = self._axes.transData.transform
        apart = abs(to_pixels((0, x))[1] - to_pixels((0, self._last))[1])
        if apart < LABEL_CLEARANCE_PT * self._axes.figure.dpi / 72:
            return ""
        return price_text(x)


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
    """One bar per candle, in the style's up and down volume colours: the bars of a colour are a
    few paths of rectangles, drawn at once (a polygon per bar took a tenth of the chart's time)."""
    centres = mdates.date2num(pd.DatetimeIndex(frame.index).to_pydatetime())  # type: ignore[no-untyped-call]
    volumes = frame["Volume"].to_numpy(dtype=float)
    rising = frame["Close"].to_numpy() >= frame["Open"].to_numpy()
    colours = STYLE["marketcolors"]["volume"]
    paths, faces = [], []
    for chosen, colour in ((rising, colours["up"]), (~rising, colours["down"])):
        bars = np.flatnonzero(chosen)
        for first in range(0, len(bars), BARS_PER_PATH):
            some = bars[first : first + BARS_PER_PATH]
            paths.append(_rectangles(centres[some], volumes[some], width))
            faces.append(colour)
    # The axes' limits are set below, not measured from the paths: measuring walks every segment.
    axes.add_collection(PathCollection(paths, facecolors=faces, linewidths=0), autolim=False)
    axes.set_axisbelow(True)
    axes.set_ylim(0, max(float(volumes.max()), 1.0) * 1.1)
    axes.yaxis.set_major_locator(MaxNLocator(VOLUME_TICKS))
    axes.yaxis.set_major_formatter(FuncFormatter(short_volume))
    axes.yaxis.tick_right()


# Agg snaps a path of straight lines to whole pixels, so bars keep crisp edges, only when it has
# at most 1,024 vertices (matplotlib's src/path_converters.h, PathSnapper::should_snap): a bar
# is 5, so the bars of a colour are drawn as paths of at most 204 bars.
AGG_SNAP_MAX_VERTICES = 1024
BARS_PER_PATH = AGG_SNAP_MAX_VERTICES // 5
_RECTANGLE_CODES = np.array(
    [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY], dtype=np.uint8
)


def _rectangles(centres: np.ndarray[Any, Any], heights: np.ndarray[Any, Any], width: float) -> Path:
    """Bars of the given heights from 0, `width` wide around their centres, as one compound path."""
    left, right = centres - width / 2, centres + width / 2
    zeros = np.zeros_like(heights)
    corners = np.stack(
        [
            np.column_stack(c)
            for c in ((left, zeros), (left, heights), (right, heights), (right, zeros), (left, zeros))
        ],
        axis=1,
    )
    return Path(corners.reshape(-1, 2), np.tile(_RECTANGLE_CODES, len(centres)))
