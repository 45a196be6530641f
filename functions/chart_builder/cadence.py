"""When a chart is drawn: at most once per its interval, however often its bars change.

A chart of 1m candles gains a candle a minute, a daily chart one a day: drawing either more
often redraws a picture that differs only in its last candle, and at a thousand symbols those
redraws were most of the system's cost (BENCHMARKS.md). So a changed series is marked pending
and drawn by the first invocation (a stream batch, or the one-minute sweep) at which its
refresh period has passed since it was last drawn; a series never drawn is drawn at once. The
deployment may set a longer floor for every interval (ChartRefreshMinutes) to spend less still.

Times are the events' own (the stream records' creation time, the schedule's time), so the
cadence is the same in a replay, a test and on AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from functions.chart_builder.chart_data import WEEKLY
from market.bars import INTERVAL_SECONDS

CHART_SECONDS = {**INTERVAL_SECONDS, WEEKLY: 7 * 86_400}
Series = tuple[str, str]  # (symbol, interval)


def refresh_seconds(interval: str, floor_s: int) -> int:
    return max(CHART_SECONDS[interval], floor_s)


@dataclass(frozen=True)
class Plan:
    due: list[Series]  # to draw now, sorted
    waiting: set[Series]  # changed, drawn too recently: pending until their period has passed


def plan(
    changed: Iterable[Series],
    pending: Iterable[Series],
    drawn_at: Mapping[Series, int],
    now: int,
    floor_s: int,
) -> Plan:
    """Which of the changed and pending series to draw now, and which wait."""
    dirty = set(changed) | set(pending)
    due = {s for s in dirty if s not in drawn_at or _elapsed(now - drawn_at[s], s[1], floor_s)}
    return Plan(sorted(due), dirty - due)


def _elapsed(since_s: int, interval: str, floor_s: int) -> bool:
    """A period has passed, or the drawing time is more than a period ahead of this event's time:
    another clock (a workstation's `tickstream charts`) or a hand, never a reason to wait."""
    period_s = refresh_seconds(interval, floor_s)
    return since_s >= period_s or since_s < -period_s
