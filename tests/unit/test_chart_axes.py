"""What a reader sees on a chart's axes, read off the drawn figure: which candles are on it,
the dates and times its labels say, and that no label hides behind the last price's box."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from itertools import pairwise

import matplotlib.colors as mcolors
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Annotation, Text

from functions.chart_builder.chart_data import bars_frame
from functions.chart_builder.render import (
    AGG_SNAP_MAX_VERTICES,
    DPI,
    MAX_SPAN,
    MIN_TITLE_SIZE,
    STYLE,
    draw_chart,
    render_chart,
    start_over,
)
from market.bars import Bar

MINUTE = 1_793_629_800  # 2026-11-02 14:30 UTC, a Monday
DAY = MINUTE - MINUTE % 86_400
LABEL_GAP_PX = 20  # between two date labels, and from the edges: a space, not a touch
SECONDS = {"1m": 60, "15m": 900, "1h": 3_600, "1d": 86_400, "1w": 7 * 86_400}


def day_number(seconds: int | str) -> float:
    """A UTC time (epoch seconds or a date) as matplotlib's axis position, in days."""
    at = (
        pd.Timestamp(seconds, unit="s", tz="UTC")
        if isinstance(seconds, int)
        else pd.Timestamp(seconds, tz="UTC")
    )
    return float(mdates.date2num(at))  # type: ignore[no-untyped-call]


def bars(starts: list[int], interval: str, close: str | None = None) -> list[Bar]:
    """A wave of candles; the last one closes at `close` when given."""
    out = []
    for i, start in enumerate(starts):
        mid = Decimal(100) + Decimal(i % 11) / 2
        last = Decimal(close) if close is not None and i == len(starts) - 1 else mid
        out.append(
            Bar(
                "X",
                interval,
                start,
                mid,
                max(mid, last) + 1,
                min(mid, last) - 1,
                last,
                Decimal(1000 + i),
                1,
                None,
                0,
                0,
            )
        )
    return out


@contextmanager
def closing(figure: Figure) -> Iterator[Figure]:
    """A figure drawn as it is saved (at DPI), closed afterwards."""
    try:
        figure.set_dpi(DPI)
        figure.canvas.draw()
        yield figure
    finally:
        plt.close(figure)


def drawn(starts: list[int], interval: str, close: str | None = None) -> AbstractContextManager[Figure]:
    frame = bars_frame(bars(starts, interval, close))
    return closing(draw_chart(frame, f"X {interval} (UTC)", SECONDS[interval]))


def candle_days(figure: Figure) -> list[float]:
    """The centres of the volume bars, one per candle drawn, in matplotlib's day numbers, in time
    order: the bars of each colour are one path of closed rectangles (five vertices each)."""
    (volume,) = [c for c in figure.axes[1].collections if isinstance(c, PathCollection)]
    corners = [np.asarray(path.vertices).reshape(-1, 5, 2) for path in volume.get_paths()]
    return sorted(float(c) for bars in corners for c in bars[:, :4, 0].mean(axis=1))


def volume_bars(figure: Figure) -> list[tuple[float, float, str]]:
    """Each volume bar drawn as (centre, height, colour), in time order."""
    (volume,) = [c for c in figure.axes[1].collections if isinstance(c, PathCollection)]
    drawn = []
    colours = np.asarray(volume.get_facecolor(), dtype=float)
    for path, rgba in zip(volume.get_paths(), colours, strict=True):
        corners = np.asarray(path.vertices).reshape(-1, 5, 2)
        hex_colour = mcolors.to_hex(tuple(rgba))
        drawn += [(float(c[:4, 0].mean()), float(c[:, 1].max()), hex_colour) for c in corners]
    return sorted(drawn)


def time_labels(figure: Figure) -> list[Text]:
    return [t for t in figure.axes[1].get_xticklabels() if t.get_text()]


def title(figure: Figure) -> str:
    return str(figure.texts[0].get_text())


def test_after_a_pause_of_days_a_1m_chart_shows_the_minutes_since_not_slivers_days_apart() -> None:
    before = [MINUTE + 60 * i for i in range(100)]
    after = [MINUTE + 3 * 86_400 + 60 * i for i in range(100)]
    with drawn(before + after, "1m") as figure:
        low, high = figure.axes[0].get_xlim()
        assert (high - low) * 86_400 <= (MAX_SPAN + 1) * 60
        assert len(candle_days(figure)) == 100
        assert title(figure).endswith("2026-11-05")  # the date the axis's times are on


def test_intraday_labels_are_times_with_the_date_where_a_day_starts() -> None:
    with drawn([MINUTE + 900 * i for i in range(200)], "15m") as figure:  # 50 hours from Monday 14:30
        texts = [t.get_text() for t in time_labels(figure)]
        assert texts, "no time labels"
        assert all(re.fullmatch(r"\d\d:\d\d|[A-Z][a-z]{2} \d\d", t) for t in texts), texts
        assert "Nov 03" in texts
    with drawn([MINUTE + 60 * i for i in range(200)], "1m") as figure:
        assert all(re.fullmatch(r"\d\d:\d\d", t.get_text()) for t in time_labels(figure))
        # Candles are centred on their minute: the 14:30 candle lies between 14:30 and 14:31.
        first = day_number(MINUTE)
        assert candle_days(figure)[0] == pytest.approx(first + 30 / 86_400)


@pytest.mark.parametrize("count", [1, 3, 40, 148, 150, 197, 200])
def test_day_candles_sit_on_their_dates_and_the_last_is_labelled_with_its_own(count: int) -> None:
    days = [DAY + 86_400 * i for i in range(count)]
    with drawn(days, "1d") as figure:
        centres = candle_days(figure)
        assert centres == pytest.approx([day_number(d) for d in days])
        labels = time_labels(figure)
        last = pd.Timestamp(days[-1], unit="s", tz="UTC").strftime("%Y-%m-%d")
        assert labels[-1].get_text() == last
        assert title(figure).endswith(last)
        # Every label is a candle's date, under that candle, clear of the figure's edges and of the next.
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        boxes = [t.get_window_extent(renderer) for t in labels]
        for text, box in zip(labels, boxes, strict=True):
            at = day_number(text.get_text())
            assert text.get_position()[0] == pytest.approx(at)
            assert min(abs(c - at) for c in centres) < 1e-6
            assert box.x0 >= LABEL_GAP_PX
            assert box.x1 <= figure.bbox.width - LABEL_GAP_PX
        assert all(b.x0 - a.x1 >= LABEL_GAP_PX for a, b in pairwise(boxes))
        if count >= 40:
            assert len(labels) >= 3


@pytest.mark.parametrize("close", ["100", "100.01", "99.9", "101.5", "104.25", "95.3"])
def test_no_price_label_hides_behind_the_last_price_box(close: str) -> None:
    with drawn([MINUTE + 60 * i for i in range(60)], "1m", close) as figure:
        price = figure.axes[0]
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        (box,) = [t for t in price.texts if isinstance(t, Annotation)]
        assert box.get_text() == close.rstrip("0").rstrip(".") if "." in close else close
        covered = box.get_window_extent(renderer)
        shown = [t for t in price.get_yticklabels() if t.get_text()]
        assert len(shown) >= 2
        assert not any(t.get_window_extent(renderer).overlaps(covered) for t in shown)


def on_figure(figure: Figure, artist: Text | Legend) -> bool:
    box = artist.get_window_extent(figure.canvas.get_renderer())  # type: ignore[attr-defined]
    inside = box.x0 >= 0 and box.y0 >= 0
    return bool(inside and box.x1 <= figure.bbox.width and box.y1 <= figure.bbox.height)


def test_the_longest_prices_and_symbols_stay_whole_on_the_figure() -> None:
    """A helper's attack: 1234567.15345679 was cut to 1234567.1534 at the edge, which reads as
    another price, and a 32-character symbol ran its heading under the legend."""
    symbol = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    rows = [
        Bar("X", "1m", MINUTE + 60 * i, p, p + Decimal("0.00000002"), p, p, Decimal(10), 1, None, 0, 0)
        for i in range(60)
        for p in [Decimal("1234567.15345679") + Decimal(i % 7) / 10**8]
    ]
    with closing(draw_chart(bars_frame(rows), f"{symbol} 1m (UTC)", 60)) as figure:
        price = figure.axes[0]
        (box,) = [t for t in price.texts if isinstance(t, Annotation)]
        assert box.get_text() == str(rows[-1].close)  # 16 characters
        shown = [t for t in price.get_yticklabels() if t.get_text()]
        assert shown
        assert all(on_figure(figure, t) for t in [box, *shown]), [t.get_text() for t in shown]
        heading, legend = figure.texts[0], price.get_legend()
        assert legend is not None
        assert on_figure(figure, heading)
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        assert heading.get_window_extent(renderer).x1 < legend.get_window_extent(renderer).x0


def test_prices_a_step_apart_get_distinct_labels_of_at_most_8_decimals_and_none_below_zero() -> None:
    rows = [
        Bar("X", "1m", MINUTE + 60 * i, p, p, p, p, Decimal(1), 1, None, 0, 0)
        for i in range(40)
        for p in [Decimal("0.00000001") * (1 + i % 2)]
    ]
    with closing(draw_chart(bars_frame(rows), "X 1m (UTC)", 60)) as figure:
        texts = [t.get_text() for t in figure.axes[0].get_yticklabels() if t.get_text()]
        assert len(texts) >= 2
        assert len(set(texts)) == len(texts)
        assert all(re.fullmatch(r"\d+(\.\d{1,8})?", t) for t in texts), texts


@pytest.mark.parametrize(("interval", "seconds"), [("1d", 86_400), ("1w", 7 * 86_400), ("1m", 60)])
@pytest.mark.parametrize("start", ["2263-01-02", "9999-01-04"])
def test_bars_past_pandas_nanosecond_range_are_drawn(interval: str, seconds: int, start: str) -> None:
    """A helper found day and week charts of any date after 2262-04-11 failing to draw."""
    first = int(pd.Timestamp(start, tz="UTC").timestamp())
    png = render_chart(bars_frame(bars([first + seconds * i for i in range(20)], interval)), "X", seconds)
    assert png.startswith(b"\x89PNG")


def test_a_few_candles_after_a_long_gap_are_not_called_a_new_series() -> None:
    days = [DAY + 86_400 * i for i in range(100)] + [DAY + 86_400 * 1200]
    with drawn(days, "1d") as figure:
        notes = [t.get_text() for t in figure.axes[0].texts if not isinstance(t, Annotation)]
        assert notes == ["1 candle since a gap"]
    with drawn(days[:1], "1d") as figure:
        assert [t.get_text() for t in figure.axes[0].texts if not isinstance(t, Annotation)] == [
            "1 candle so far"
        ]


def test_a_chart_drawn_after_others_is_the_same_png_as_drawn_first() -> None:
    """The process keeps one figure and clears it between charts: nothing of one chart (its
    price range, margin, legend, notes, heading) may show in the next."""
    minutes = [MINUTE + 60 * i for i in range(200)]
    tiny = Decimal("0.00000001")
    charts = [
        (bars_frame(bars(minutes, "1m")), "AAPL 1m (UTC)", 60),
        (bars_frame(bars([DAY], "1d")), "AAPL 1d (UTC)", 86_400),
        (
            bars_frame(
                [Bar("X", "1m", m, tiny, tiny, tiny, tiny, Decimal(1), 1, None, 0, 0) for m in minutes[:9]]
            ),
            "TINY 1m (UTC)",
            60,
        ),
        (
            bars_frame(bars(minutes[:60], "1m", "1234567.15345679")),
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 1m (UTC)",
            60,
        ),
        (bars_frame(bars([DAY + 86_400 * i for i in range(150)], "1d")), "X 1d (UTC)", 86_400),
    ]
    first = []
    for chart in charts:
        start_over()
        first.append(render_chart(*chart))
    start_over()
    for index in [0, 1, 2, 3, 4, 2, 0, 3, 1, 4, 4, 0]:
        assert render_chart(*charts[index]) == first[index], f"chart {index} differs after others"


def wave(base: str, step: str, count: int, interval: str = "1m") -> list[Bar]:
    """Candles moving `step` at a time around `base`."""
    seconds = SECONDS[interval]
    rows = []
    for i in range(count):
        price = Decimal(base) + Decimal(step) * (i % 7)
        high = price + Decimal(step)
        rows.append(
            Bar("X", interval, MINUTE + seconds * i, price, high, price, price, Decimal(1), 1, None, 0, 0)
        )
    return rows


@pytest.mark.parametrize("base", ["123456.1234567", "1234567.1234567", "9999999.9999990"])
def test_tiny_moves_of_large_prices_fill_the_price_axis(base: str) -> None:
    """A helper found 6e-8 of movement at 1234567 spread over 2.5e-6 (flat candles)."""
    with closing(draw_chart(bars_frame(wave(base, "0.00000001", 30)), "X", 60)) as figure:
        low, high = figure.axes[0].get_ylim()
        assert high - low <= 2 * 7e-8
        texts = [t.get_text() for t in figure.axes[0].get_yticklabels() if low <= t.get_position()[1] <= high]
        assert len([t for t in texts if t]) >= 2, texts  # besides any the last price's box hides


def test_a_spike_from_the_smallest_price_to_the_largest_keeps_the_axis_at_0_or_above() -> None:
    least, most = Decimal("0.00000001"), Decimal(9_999_999)
    spike = Bar("X", "1m", MINUTE + 60 * 29, least, most, least, most, Decimal(1), 1, None, 0, 0)
    rows = [*wave("1", "0", 29), spike]
    with closing(draw_chart(bars_frame(rows), "X", 60)) as figure:
        assert figure.axes[0].get_ylim()[0] >= 0


@pytest.mark.parametrize("averages", [(), (5,), (5, 25)])
@pytest.mark.parametrize("symbol", ["W" * 32, "A" * 32, "X"])
def test_a_heading_is_readable_whole_on_the_figure_and_clear_of_the_legend(
    symbol: str, averages: tuple[int, ...]
) -> None:
    """A helper found a 32-character heading cut at the right edge without averages (it was
    fitted at another dpi), and set at 3 points beside 16-character prices."""
    frame = bars_frame(wave("9999999.9999990", "0.00000001", 60))
    with closing(draw_chart(frame, f"{symbol} 1m (UTC)", 60, averages)) as figure:
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        heading = figure.texts[0]
        box = heading.get_window_extent(renderer)
        assert float(heading.get_fontsize()) >= MIN_TITLE_SIZE
        assert heading.get_text().endswith("  2026-11-02")  # the date whole
        assert heading.get_text().startswith(symbol[:4])
        assert box.x0 >= 0
        assert box.x1 <= figure.bbox.width
        legend = figure.axes[0].get_legend()
        if legend is not None:
            assert box.x1 < legend.get_window_extent(renderer).x0


@pytest.mark.parametrize("closes", [[101, 99, 100, 100, 98, 103], [101] * 6, [99] * 6, [100]])
def test_each_candle_has_one_volume_bar_of_its_volume_in_its_direction_colour(closes: list[int]) -> None:
    """Rising (close at or above open) in the up colour, falling in the down colour; the bars of
    each colour share one path, so a colour with no candle must draw nothing, not a stray bar."""
    start, high, low = Decimal(100), Decimal(104), Decimal(97)
    rows = [
        Bar("X", "1m", MINUTE + 60 * i, start, high, low, Decimal(c), Decimal(10 + i), 1, None, 0, 0)
        for i, c in enumerate(closes)
    ]
    colours = STYLE["marketcolors"]["volume"]
    with closing(draw_chart(bars_frame(rows), "X 1m (UTC)", 60)) as figure:
        drawn = volume_bars(figure)
    assert [(round(centre, 9), height, colour) for centre, height, colour in drawn] == [
        (
            round(day_number(MINUTE + 60 * i + 30), 9),
            10.0 + i,
            mcolors.to_hex(colours["up"] if c >= 100 else colours["down"]),
        )
        for i, c in enumerate(closes)
    ]


def test_volume_paths_stay_small_enough_for_agg_to_snap_their_bars_to_whole_pixels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past 1,024 vertices a path is drawn unsnapped, and its bars come out blurred and pale."""
    monkeypatch.setattr("functions.chart_builder.render.MAX_SPAN", 600)
    start, high, low, close = Decimal(100), Decimal(104), Decimal(97), Decimal(101)
    rows = [
        Bar("X", "1m", MINUTE + 60 * i, start, high, low, close, Decimal(10 + i), 1, None, 0, 0)
        for i in range(500)
    ]
    with closing(draw_chart(bars_frame(rows), "X 1m (UTC)", 60)) as figure:
        (volume,) = [c for c in figure.axes[1].collections if isinstance(c, PathCollection)]
        assert max(len(np.asarray(path.vertices)) for path in volume.get_paths()) <= AGG_SNAP_MAX_VERTICES
        assert [height for _, height, _ in volume_bars(figure)] == [10.0 + i for i in range(500)]
