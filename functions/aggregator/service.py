"""One invocation's work: take records into the window, and write the window's bars once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from functions.aggregator.data_lake import bar_row
from functions.aggregator.ledger import LedgerError, VersionConflict
from functions.aggregator.logic import (
    AccumulateCounts,
    ConcurrentWriter,
    MinuteBookkeeping,
    MinuteKey,
    PartialMinute,
    RawRecord,
    Rejection,
    WindowState,
    accumulate,
    apply_partial,
    explode,
    fold_children,
    ids_beyond_cap,
    position_text,
)
from market.bars import BASE_INTERVAL, INTERVAL_SECONDS, Bar, StoredBar, bucket_start
from stores.bars_table import BarsTableError

# Tries of one bar's read-merge-write when another writer keeps changing it underneath.
MAX_CONFLICT_RETRIES = 5
# Most shorter bars one longer bar is folded from (an hour of minutes), so a fold reads ~4 KB
# whatever the time of day.
MAX_CHILDREN = 60


class LedgerStore(Protocol):
    """What the service needs of the ledger table (functions.aggregator.ledger.Ledger)."""

    def minute_bookkeeping(
        self, shard_id: str, keys: Iterable[MinuteKey]
    ) -> dict[MinuteKey, MinuteBookkeeping]: ...

    def get_bars(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], StoredBar]: ...

    def get_bar(self, symbol: str, interval: str, start: int) -> StoredBar: ...

    def put_bar(self, bar: StoredBar, now: float | None = None) -> None: ...


class PublicBars(Protocol):
    """What the service needs of the bars table (stores.bars_table.BarsTable)."""

    def put_projections(self, bars: Iterable[StoredBar], updated_at: int) -> int: ...

    def put_projection(self, bar: StoredBar, updated_at: int) -> bool: ...

    def bars_between(self, symbol: str, interval: str, first: int, last: int) -> list[StoredBar]: ...


class Lake(Protocol):
    """What the service needs of the data bucket (functions.aggregator.data_lake.DataLake)."""

    def quarantine(self, rejections: Iterable[Rejection]) -> int: ...

    def put_window_rows(self, shard_id: str, window: str, rows: Iterable[dict[str, Any]]) -> int: ...


@dataclass(frozen=True)
class AggregatorConfig:
    intervals: tuple[str, ...]
    late_after_ms: int


@dataclass
class TakeReport:
    ticks: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    counts: AccumulateCounts = field(default_factory=lambda: AccumulateCounts(0, 0, 0, 0))


@dataclass
class FlushReport:
    bars_written: int = 0
    failed_minutes: list[MinuteKey] = field(default_factory=list)
    # Tick ids a 1m bar had no room to remember, by minute: their later copies are not recognised.
    ids_beyond_cap: dict[MinuteKey, int] = field(default_factory=dict)


class BarsNotWritten(RuntimeError):
    """A tumbling window's bars could not all be written: its partial bars live only in the window
    state, which Lambda keeps for a retry only when the invocation fails."""


def item_failures(flushed: FlushReport, state: WindowState, windowed: bool) -> list[str]:
    """The sequence numbers Lambda must retry from (ReportBatchItemFailures): none when every bar
    was written; else, without a window, the lowest record of any minute not written, since Lambda
    retries the batch from the failed item on. Raises BarsNotWritten in a tumbling window."""
    if not flushed.failed_minutes:
        return []
    if windowed:
        raise BarsNotWritten(f"bars not written: {flushed.failed_minutes[:5]}")
    lowest = min(state.minutes[key].low for key in flushed.failed_minutes)
    return [str(lowest[0])]


def child_interval(interval: str, intervals: Sequence[str]) -> str:
    """The shorter bars a longer one is folded from: the longest configured interval dividing it
    in at most MAX_CHILDREN parts (1m -> 5m, 5m -> 1h, 1h -> 1d by default), else 1m.

    Folding from bars rather than minutes keeps each fold's read at a few dozen items (1,440
    minutes would make a 1d fold read ~250 KB every window).
    """
    seconds = INTERVAL_SECONDS[interval]
    candidates = [
        shorter
        for shorter in intervals
        if INTERVAL_SECONDS[shorter] < seconds
        and seconds % INTERVAL_SECONDS[shorter] == 0
        and seconds // INTERVAL_SECONDS[shorter] <= MAX_CHILDREN
    ]
    return max(candidates, key=INTERVAL_SECONDS.__getitem__, default=BASE_INTERVAL)


class Aggregator:
    def __init__(self, ledger: LedgerStore, bars: PublicBars, lake: Lake, config: AggregatorConfig) -> None:
        self._ledger = ledger
        self._bars = bars
        self._lake = lake
        self._config = config

    def take(
        self, shard_id: str, records: Sequence[RawRecord], state: WindowState, *, redrive: bool = False
    ) -> TakeReport:
        """Quarantines what is not a tick and adds the rest to the window, skipping what was taken."""
        ticks, rejections = explode(records)
        self._lake.quarantine(rejections)
        unread = ticks.minute_keys() - state.absent
        stored = self._ledger.minute_bookkeeping(shard_id, unread)
        state.absent |= unread - stored.keys()
        counts = accumulate(state, ticks, stored, self._config.late_after_ms, redrive)
        return TakeReport(len(ticks), Counter(r.reason for r in rejections), counts)

    def redrive(self, shard_id: str, records: Sequence[RawRecord]) -> tuple[TakeReport, FlushReport]:
        """Brings records Lambda discarded into the bars: what the bars lack by tick id, once."""
        state = WindowState()
        taken = self.take(shard_id, records, state, redrive=True)
        return taken, self.flush(shard_id, state, redrive=True)

    def flush(self, shard_id: str, state: WindowState, *, redrive: bool = False) -> FlushReport:
        """Writes each bar the window touched once: 1m bars in the ledger, then their projections,
        then each longer interval folded from its child interval's projections; then S3 rows."""
        report = FlushReport()
        now = time.time()
        minute_keys = sorted(state.minutes.keys() | state.refold)
        # A bar absent when the window began is most likely absent still: written blind, its
        # condition (not yet written) sends a bar another shard wrote meanwhile back for a read.
        stored = self._ledger.get_bars(
            [(s, BASE_INTERVAL, m) for s, m in minute_keys if (s, m) not in state.absent]
        )
        stored |= {
            (s, BASE_INTERVAL, m): StoredBar(s, BASE_INTERVAL, m) for s, m in state.absent & set(minute_keys)
        }
        minutes: list[StoredBar] = []
        for symbol, minute in minute_keys:
            bar = stored[(symbol, BASE_INTERVAL, minute)]
            partial = state.minutes.get((symbol, minute))
            if partial is None:  # only refolded: the 1m bar holds these ticks already
                if bar.acc is not None:
                    minutes.append(bar)
                continue

            def apply(
                bar: StoredBar, partial: PartialMinute = partial, key: MinuteKey = (symbol, minute)
            ) -> bool:
                beyond = ids_beyond_cap(bar, partial)
                changed = apply_partial(bar, shard_id, partial, redrive)
                if changed and beyond:
                    report.ids_beyond_cap[key] = beyond  # set, not added: a conflict applies again
                return changed

            try:
                bar = self._write_with_retry(bar, apply, now, report)
            except (LedgerError, ConcurrentWriter):
                report.failed_minutes.append((symbol, minute))
                continue
            minutes.append(bar)
        # After the ledger: a crash before this point leaves projections a retry writes again.
        self._bars.put_projections(minutes, int(now))
        touched = list(minutes)
        by_interval = {BASE_INTERVAL: minutes}
        for interval in self._config.intervals:
            if interval == BASE_INTERVAL:
                continue
            child = child_interval(interval, self._config.intervals)
            parents = sorted({(c.symbol, bucket_start(c.start * 1000, interval)) for c in by_interval[child]})
            folded = [self._fold(symbol, interval, start, child, now, report) for symbol, start in parents]
            by_interval[interval] = folded
            touched += folded
        if state.last is not None:
            rows = [
                bar_row(Bar.of(bar.symbol, bar.interval, bar.start, bar.acc), bar.version, int(now))
                for bar in touched
                if bar.acc is not None
            ]
            self._lake.put_window_rows(shard_id, position_text(state.last), rows)
        return report

    def _fold(
        self, symbol: str, interval: str, start: int, child: str, now: float, report: FlushReport
    ) -> StoredBar:
        """Folds a longer bar from its shorter bars and writes it unless the table holds this fold
        or a later one. A refusal may come from a fold whose read interleaved with ours, so the
        bar is read and folded again until its sum of versions stops growing: that read came after
        every refused writer's, and holds everything they and we wrote."""
        last = start + INTERVAL_SECONDS[interval] - 1
        refused = -1
        for _ in range(MAX_CONFLICT_RETRIES):
            bar = fold_children(symbol, interval, start, self._bars.bars_between(symbol, child, start, last))
            if bar.acc is None or bar.version <= refused:
                return bar
            if self._bars.put_projection(bar, int(now)):
                report.bars_written += 1
                return bar
            refused = bar.version
        raise BarsTableError(f"{symbol} {interval} {start}: folds still growing after retries")

    def _write_with_retry(
        self, bar: StoredBar, merge: Callable[[StoredBar], bool], now: float, report: FlushReport
    ) -> StoredBar:
        """merge() says whether it changed the bar; a conflict re-reads the bar and merges again."""
        for _ in range(MAX_CONFLICT_RETRIES):
            if not merge(bar):
                return bar
            try:
                self._ledger.put_bar(bar, now)
            except VersionConflict:
                bar = self._ledger.get_bar(bar.symbol, bar.interval, bar.start)
                continue
            report.bars_written += 1
            return bar
        raise LedgerError(f"{bar.symbol} {bar.interval} {bar.start}: still conflicting after retries")
