"""Regenerates the charts of the series that changed, then the site's index and manifest.

Each (symbol, interval) is drawn once per call however many of its bars changed; a change to
a daily bar also redraws the weekly chart, which is built from the daily bars.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from charts.chart_data import WEEKLY, bars_frame, weekly_from_daily
from charts.render import render_chart
from charts.site import CHART_INTERVALS, SymbolEntry, day_change_pct
from consumers.aggregate.logic import StoredBar
from market.bars import INTERVAL_SECONDS, Bar

CANDLES = 200  # candles per chart
# Below this many charts a process pool costs more to start than it saves.
PARALLEL_FROM = 8
WEEKS_OF_DAYS = CANDLES * 7


class BarsSource(Protocol):
    def query_bars(self, symbol: str, interval: str, newest: int) -> list[StoredBar]: ...


class Site(Protocol):
    def put_chart(self, symbol: str, interval: str, png: bytes) -> None: ...

    def read_entries(self) -> dict[str, SymbolEntry]: ...

    def publish(self, entries: dict[str, SymbolEntry], generated_at: int) -> None: ...


Renderer = Callable[[pd.DataFrame, str, int], bytes]
WEEK_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class Chart:
    symbol: str
    interval: str
    frame: pd.DataFrame

    @property
    def title(self) -> str:
        return f"{self.symbol} {self.interval} (UTC)"

    @property
    def bar_seconds(self) -> int:
        return WEEK_SECONDS if self.interval == WEEKLY else INTERVAL_SECONDS[self.interval]


def charts_to_draw(series: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (symbol, interval) pairs to redraw: the changed ones, plus 1w wherever 1d changed."""
    wanted = {(s, i) for s, i in series if i in CHART_INTERVALS}
    wanted |= {(s, WEEKLY) for s, i in wanted if i == "1d"}
    return sorted(wanted)


def _bars(stored: Sequence[StoredBar]) -> list[Bar]:
    return [Bar.of(b.symbol, b.interval, b.start, b.acc) for b in stored if b.acc is not None]


class ChartBuilder:
    def __init__(self, bars: BarsSource, site: Site, render: Renderer = render_chart) -> None:
        self._bars = bars
        self._site = site
        self._render = render

    def load(self, symbol: str, interval: str) -> Chart:
        if interval == WEEKLY:
            daily = bars_frame(_bars(self._bars.query_bars(symbol, "1d", WEEKS_OF_DAYS)))
            return Chart(symbol, interval, weekly_from_daily(daily).tail(CANDLES))
        return Chart(symbol, interval, bars_frame(_bars(self._bars.query_bars(symbol, interval, CANDLES))))

    def rebuild(
        self,
        series: Iterable[tuple[str, str]],
        now: int,
        draw: Callable[[list[Chart]], list[bytes]] | None = None,
    ) -> int:
        """Draws and uploads the charts, refreshes the touched symbols' entries; returns charts drawn."""
        charts = [c for c in (self.load(s, i) for s, i in charts_to_draw(series)) if not c.frame.empty]
        images = (
            draw(charts)
            if draw is not None
            else [self._render(c.frame, c.title, c.bar_seconds) for c in charts]
        )
        for chart, png in zip(charts, images, strict=True):
            self._site.put_chart(chart.symbol, chart.interval, png)
        entries = self._site.read_entries()
        for symbol in sorted({c.symbol for c in charts}):
            drawn = {c.interval for c in charts if c.symbol == symbol}
            before = entries.get(symbol)
            have = drawn | set(before.charts if before else ())
            entries[symbol] = self._entry(symbol, tuple(i for i in CHART_INTERVALS if i in have), now)
        self._site.publish(entries, now)
        return len(charts)

    def _entry(self, symbol: str, charts: tuple[str, ...], now: int) -> SymbolEntry:
        last = _bars(self._bars.query_bars(symbol, "1m", 1))
        day = _bars(self._bars.query_bars(symbol, "1d", 1))
        last_price = last[-1].close if last else (day[-1].close if day else None)
        change = day_change_pct(day[-1].open, last_price) if day and last_price is not None else None
        return SymbolEntry(symbol, str(last_price) if last_price is not None else "n/a", change, now, charts)


def draw_in_parallel(charts: list[Chart]) -> list[bytes]:
    """Renders on every core when there are enough charts to pay for the worker processes.

    For `tickstream charts` on a workstation; the Lambda draws in its one process.
    """
    if len(charts) < PARALLEL_FROM:
        return [render_chart(c.frame, c.title, c.bar_seconds) for c in charts]
    frames, titles, widths = (
        [c.frame for c in charts],
        [c.title for c in charts],
        [c.bar_seconds for c in charts],
    )
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(render_chart, frames, titles, widths))
