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
# What a bar item that cannot be parsed, or a bar pandas or matplotlib cannot place (a start in
# the year 9999 is past pandas' last Timestamp), raises. Such a series is skipped and reported;
# the table's or the bucket's own errors (BarsTableError, SiteError) still fail the batch.
BAD_SERIES_ERRORS = (ValueError, KeyError, TypeError, ArithmeticError)


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


@dataclass(frozen=True)
class Rebuilt:
    drawn: int
    failed: dict[tuple[str, str], str]  # (symbol, interval) skipped -> why


def render_or_reason(render: Renderer, chart: Chart) -> bytes | str:
    """The PNG, or why this one series cannot be drawn: one bad series never stops the others."""
    try:
        return render(chart.frame, chart.title, chart.bar_seconds)
    except BAD_SERIES_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"


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
        draw: Callable[[list[Chart]], list[bytes | str]] | None = None,
    ) -> Rebuilt:
        """Draws and uploads the charts, refreshes the touched symbols' entries.

        A series whose bars cannot be read or drawn is skipped and named in the result.
        """
        failed: dict[tuple[str, str], str] = {}
        loaded = []
        for symbol, interval in charts_to_draw(series):
            try:
                loaded.append(self.load(symbol, interval))
            except BAD_SERIES_ERRORS as exc:
                failed[(symbol, interval)] = f"{type(exc).__name__}: {exc}"
        charts = [c for c in loaded if not c.frame.empty]
        images = draw(charts) if draw is not None else [render_or_reason(self._render, c) for c in charts]
        uploaded: list[Chart] = []
        for chart, png in zip(charts, images, strict=True):
            if isinstance(png, str):
                failed[(chart.symbol, chart.interval)] = png
                continue
            self._site.put_chart(chart.symbol, chart.interval, png)
            uploaded.append(chart)
        entries = self._site.read_entries()
        for symbol in sorted({c.symbol for c in uploaded}):
            drawn = {c.interval for c in uploaded if c.symbol == symbol}
            before = entries.get(symbol)
            have = tuple(i for i in CHART_INTERVALS if i in drawn | set(before.charts if before else ()))
            try:
                entries[symbol] = self._entry(symbol, have, now)
            except BAD_SERIES_ERRORS as exc:  # the page keeps the symbol as it last stood
                failed[(symbol, "entry")] = f"{type(exc).__name__}: {exc}"
        self._site.publish(entries, now)
        return Rebuilt(len(uploaded), failed)

    def _entry(self, symbol: str, charts: tuple[str, ...], now: int) -> SymbolEntry:
        last = _bars(self._bars.query_bars(symbol, "1m", 1))
        day = _bars(self._bars.query_bars(symbol, "1d", 1))
        last_price = last[-1].close if last else (day[-1].close if day else None)
        change = day_change_pct(day[-1].open, last_price) if day and last_price is not None else None
        return SymbolEntry(symbol, str(last_price) if last_price is not None else "n/a", change, now, charts)


def draw_in_parallel(charts: list[Chart]) -> list[bytes | str]:
    """Renders on every core when there are enough charts to pay for the worker processes.

    For `tickstream charts` on a workstation; the Lambda draws in its one process.
    """
    if len(charts) < PARALLEL_FROM:
        return [render_or_reason(render_chart, c) for c in charts]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(render_or_reason, [render_chart] * len(charts), charts))
