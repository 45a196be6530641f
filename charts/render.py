"""Candlestick PNGs with mplfinance: Agg backend, figures closed, nothing written to disk."""

from __future__ import annotations

import io
import logging
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot loads: no display, no GUI toolkit

import matplotlib.pyplot as plt
import mplfinance as mpf
import pandas as pd

MOVING_AVERAGES = (5, 25)
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 80  # 800 x 480 pixels
STYLE = mpf.make_mpf_style(base_mpf_style="yahoo", rc={"font.size": 9})
# The style asks for a semibold title that the bundled DejaVu font lacks; bold is used, quietly.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def render_chart(
    frame: pd.DataFrame, title: str, bar_seconds: int, moving_averages: tuple[int, ...] = MOVING_AVERAGES
) -> bytes:
    """A candlestick chart with a volume panel and moving averages, as PNG bytes.

    `show_nontrading` keeps the time axis true, so a missing bar shows as a gap; the axis spans
    the bars plus one bar's width each side, not the library's default of days around them.
    Moving averages longer than the series are left out rather than drawn from too few bars.
    """
    averages = tuple(n for n in moving_averages if n < len(frame))
    optional: dict[str, Any] = {"mav": averages} if averages else {}
    pad = pd.Timedelta(seconds=bar_seconds)
    optional["xlim"] = (frame.index[0] - pad, frame.index[-1] + pad)
    # On a true time axis widths are in days; set them from the bar's duration, or a lone bar
    # (no neighbour to measure spacing from) is drawn as a hairline.
    width = 0.7 * bar_seconds / 86_400
    optional["update_width_config"] = {"candle_width": width, "volume_width": width}
    figure, _ = mpf.plot(
        frame,
        type="candle",
        volume=True,
        show_nontrading=True,
        style=STYLE,
        title=title,
        ylabel="price",
        ylabel_lower="volume",
        figsize=(WIDTH_IN, HEIGHT_IN),
        datetime_format="%m-%d %H:%M",
        xrotation=0,
        returnfig=True,
        warn_too_much_data=100_000,
        **optional,
    )
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(figure)
    return buffer.getvalue()
