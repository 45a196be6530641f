"""Regenerates the charts of the series that changed, then the site's index and manifest.

Each (symbol, interval) is drawn once per call however many of its bars changed, and, in the
chart builder function, at most once per its interval (cadence.py): the others wait in the
manifest as pending. A change to a daily bar also marks the weekly chart, built from daily bars.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from functions.chart_builder.cadence import Plan, Series, plan
from functions.chart_builder.chart_data import WEEKLY, bars_frame, weekly_from_daily
from functions.chart_builder.render import render_chart
from market.bars import INTERVAL_SECONDS, Bar, StoredBar
from stores.site_bucket import ManifestChanged, SiteError
from stores.site_content import CHART_INTERVALS, NO_QUOTE, Manifest, Quote, SymbolEntry, day_change_pct

CANDLES = 200  # candles per chart
# Below this many charts a process pool costs more to start than it saves.
PARALLEL_FROM = 8
WEEKS_OF_DAYS = CANDLES * 7
# Invocations racing on the manifest (one per stream shard, and the sweep): each conflict means
# another one wrote meanwhile, so a few rereads always suffice unless something is wrong.
MANIFEST_ATTEMPTS = 8


class BarsSource(Protocol):
    def query_bars(self, symbol: str, interval: str, newest: int) -> list[StoredBar]: ...


class Site(Protocol):
    def put_chart(self, symbol: str, interval: str, png: bytes) -> None: ...

    def read_manifest(self) -> Manifest: ...

    def publish(self, entries: dict[str, SymbolEntry], generated_at: int, read: str | None) -> None: ...


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


def charts_to_draw(series: Iterable[Series]) -> list[Series]:
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
    waiting: int = 0  # series left pending: drawn too recently to draw again yet
    manifest_problems: tuple[str, ...] = ()  # manifest entries that could not be read, left out


def render_or_reason(render: Renderer, chart: Chart) -> bytes | str:
    """The PNG, or why this one series cannot be drawn: one bad series never stops the others."""
    try:
        return render(chart.frame, chart.title, chart.bar_seconds)
    except BAD_SERIES_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"


@dataclass
class _Outcome:
    """What one call did, to apply to whichever manifest is current when it is written."""

    now: int
    read_drawn_at: dict[Series, int]  # as the manifest this call planned from said
    drawn: set[Series] = field(default_factory=set)
    dropped: set[Series] = field(default_factory=set)  # failed: no longer pending
    waiting: set[Series] = field(default_factory=set)
    quotes: dict[str, Quote] = field(default_factory=dict)

    def changes(self, manifest: Manifest) -> bool:
        pending = manifest.pending()
        return bool(self.drawn or self.quotes or (self.dropped & pending) or (self.waiting - pending))

    def apply(self, entries: dict[str, SymbolEntry]) -> dict[str, SymbolEntry]:
        result = dict(entries)
        drawn, dropped, waiting = _by_symbol(self.drawn), _by_symbol(self.dropped), _by_symbol(self.waiting)
        for symbol in sorted(drawn.keys() | dropped.keys() | waiting.keys() | self.quotes.keys()):
            before = result.get(symbol)
            mine = drawn.get(symbol, set())
            if before is None and not mine:
                continue  # nothing drawn yet: a never-drawn series is due, never pending
            was = dict(before.drawn_at) if before else {}
            # Drawn by another invocation too since this one read the manifest: whose PNG landed
            # last is unknown, so the chart is drawn again rather than left older than its bars.
            raced = {i for i in mine if was.get(i) != self.read_drawn_at.get((symbol, i))}
            pending = (set(before.pending) if before else set()) | waiting.get(symbol, set()) | raced
            pending -= (mine - raced) | dropped.get(symbol, set())
            quote = self.quotes.get(symbol) or (before.quote if before else NO_QUOTE)
            result[symbol] = SymbolEntry(
                symbol,
                quote,
                self.now if symbol in self.quotes or before is None else before.updated_at,
                tuple(i for i in CHART_INTERVALS if i in set(before.charts if before else ()) | mine),
                {**was, **{i: max(self.now, was.get(i, 0)) for i in mine}},
                frozenset(pending),
            )
        return result


def _by_symbol(series: Iterable[Series]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    for symbol, interval in series:
        grouped.setdefault(symbol, set()).add(interval)
    return grouped


class ChartBuilder:
    """Draws charts and keeps the manifest.

    refresh_floor_s None draws whatever it is asked at once (`tickstream charts`); a number is
    the chart builder function's cadence (functions.chart_builder.cadence) with that floor.
    """

    def __init__(
        self,
        bars: BarsSource,
        site: Site,
        render: Renderer = render_chart,
        refresh_floor_s: int | None = None,
    ) -> None:
        self._bars = bars
        self._site = site
        self._render = render
        self._floor = refresh_floor_s

    def load(self, symbol: str, interval: str) -> Chart:
        if interval == WEEKLY:
            daily = bars_frame(_bars(self._bars.query_bars(symbol, "1d", WEEKS_OF_DAYS)))
            return Chart(symbol, interval, weekly_from_daily(daily).tail(CANDLES))
        return Chart(symbol, interval, bars_frame(_bars(self._bars.query_bars(symbol, interval, CANDLES))))

    def pending(self) -> set[Series]:
        """The series waiting to be drawn, as the manifest says."""
        return self._site.read_manifest().pending()

    def rebuild(
        self,
        series: Iterable[Series],
        now: int,
        draw: Callable[[list[Chart]], list[bytes | str]] | None = None,
        out_of_time: Callable[[], bool] = lambda: False,
    ) -> Rebuilt:
        """Draws and uploads the charts due, refreshes their symbols' entries, keeps the rest pending.

        A series whose bars cannot be read or drawn is skipped and named in the result. Charts
        are drawn longest-waiting first, one at a time, until out_of_time(): a backlog larger
        than one invocation can draw stays pending for the next, never lost to a timeout.
        """
        manifest = self._site.read_manifest()
        changed = charts_to_draw(series)
        drawn_at = manifest.drawn_at()
        if self._floor is None:
            todo = Plan(changed, set())
        else:
            todo = plan(changed, manifest.pending(), drawn_at, now, self._floor)
        outcome = _Outcome(now, drawn_at, waiting=set(todo.waiting))
        due = sorted(todo.due, key=lambda s: (drawn_at.get(s, -1), s))
        if draw is not None:
            failed = self._draw_together(due, outcome, draw)
        else:
            failed = self._draw_in_turn(due, outcome, out_of_time)
        for symbol in sorted({s for s, _ in outcome.drawn}):
            try:
                outcome.quotes[symbol] = self._quote(symbol)
            except BAD_SERIES_ERRORS as exc:  # the page keeps the symbol's price as it last stood
                failed[(symbol, "entry")] = f"{type(exc).__name__}: {exc}"
        self._write(manifest, outcome)
        return Rebuilt(len(outcome.drawn), failed, len(outcome.waiting), manifest.problems)

    def _chart_or_reason(self, symbol: str, interval: str) -> Chart | str:
        try:
            return self.load(symbol, interval)
        except BAD_SERIES_ERRORS as exc:
            return f"{type(exc).__name__}: {exc}"

    def _draw_in_turn(
        self, due: list[Series], outcome: _Outcome, out_of_time: Callable[[], bool]
    ) -> dict[tuple[str, str], str]:
        failed: dict[tuple[str, str], str] = {}
        for index, (symbol, interval) in enumerate(due):
            if out_of_time():
                outcome.waiting |= set(due[index:])
                break
            chart = self._chart_or_reason(symbol, interval)
            if isinstance(chart, str):
                failed[(symbol, interval)] = chart
                continue
            if chart.frame.empty:
                continue
            png = render_or_reason(self._render, chart)
            if isinstance(png, str):
                failed[(symbol, interval)] = png
                continue
            self._site.put_chart(symbol, interval, png)
            outcome.drawn.add((symbol, interval))
        # Failed, or nothing to draw: no longer pending; the series' next change marks it again.
        outcome.dropped = set(due) - outcome.drawn - outcome.waiting
        return failed

    def _draw_together(
        self, due: list[Series], outcome: _Outcome, draw: Callable[[list[Chart]], list[bytes | str]]
    ) -> dict[tuple[str, str], str]:
        failed: dict[tuple[str, str], str] = {}
        charts = []
        for symbol, interval in due:
            chart = self._chart_or_reason(symbol, interval)
            if isinstance(chart, str):
                failed[(symbol, interval)] = chart
            elif not chart.frame.empty:
                charts.append(chart)
        for chart, png in zip(charts, draw(charts), strict=True):
            if isinstance(png, str):
                failed[(chart.symbol, chart.interval)] = png
                continue
            self._site.put_chart(chart.symbol, chart.interval, png)
            outcome.drawn.add((chart.symbol, chart.interval))
        outcome.dropped = set(due) - outcome.drawn
        return failed

    def _write(self, manifest: Manifest, outcome: _Outcome) -> None:
        for _ in range(MANIFEST_ATTEMPTS):
            if not outcome.changes(manifest):
                return
            try:
                self._site.publish(outcome.apply(manifest.entries), outcome.now, manifest.etag)
            except ManifestChanged:
                manifest = self._site.read_manifest()
            else:
                return
        raise SiteError(f"manifest.json changed under each of {MANIFEST_ATTEMPTS} writes")

    def _quote(self, symbol: str) -> Quote:
        last = _bars(self._bars.query_bars(symbol, "1m", 1))
        days = _bars(self._bars.query_bars(symbol, "1d", 1))
        newest = last[-1] if last else (days[-1] if days else None)
        if newest is None:
            return NO_QUOTE
        if not days:
            return Quote(str(newest.close), last_tick_at=newest.last_ts // 1000)
        day = days[-1]
        return Quote(
            str(newest.close),
            day_change_pct(day.open, newest.close),
            f"{day.low:f}",  # plain decimals, as the manifest requires (no exponent)
            f"{day.high:f}",
            f"{day.volume:f}",
            max(newest.last_ts, day.last_ts) // 1000,
        )


def draw_in_parallel(charts: list[Chart]) -> list[bytes | str]:
    """Renders on every core when there are enough charts to pay for the worker processes.

    For `tickstream charts` on a workstation; the Lambda draws in its one process.
    """
    if len(charts) < PARALLEL_FROM:
        return [render_or_reason(render_chart, c) for c in charts]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(render_or_reason, [render_chart] * len(charts), charts))
