"""The chart builder's cadence: each chart drawn at most once per its interval, and the last change
of every series drawn in the end, whatever the order of changes, sweeps, races and crashes."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charts.builder import ChartBuilder
from charts.cadence import CHART_SECONDS, plan, refresh_seconds
from charts.handler import event_time, is_sweep
from charts.settings import ChartSettings, ChartSettingsError
from consumers.aggregate.logic import StoredBar
from market.bars import BarAccumulator
from tests.support.memory_stores import MemorySite, ProcessKilled, WriteCounter

T0 = 1_793_629_800  # 2026-11-02 14:30 UTC
SYMBOLS = ("A+B", "MSFT")
INTERVALS = ("1m", "5m", "1h", "1d")
WEEK = CHART_SECONDS["1w"]


class VersionedBars:
    """One bar per series whose close is its version: a chart's PNG says which version it shows."""

    def __init__(self) -> None:
        self.version: dict[tuple[str, str], int] = {}

    def change(self, symbol: str, interval: str) -> None:
        self.version[(symbol, interval)] = self.version.get((symbol, interval), 0) + 1

    def query_bars(self, symbol: str, interval: str, newest: int) -> list[StoredBar]:
        version = self.version.get((symbol, interval))
        if version is None:
            return []
        acc = BarAccumulator.of_tick(Decimal(version), Decimal(1), (T0 * 1000, 0, 0))
        return [StoredBar(symbol, interval, T0 - T0 % 86_400, acc)]


def render(frame: pd.DataFrame, title: str, bar_seconds: int) -> bytes:
    return f"{title}={frame.Close.iloc[-1]:g}".encode()


class DrawLog(MemorySite):
    """The site, remembering when each chart was drawn."""

    def __init__(self, counter: WriteCounter | None = None) -> None:
        super().__init__(counter)
        self.draws: list[tuple[tuple[str, str], int]] = []

    def put_chart(self, symbol: str, interval: str, png: bytes) -> None:
        super().put_chart(symbol, interval, png)
        self.draws.append(((symbol, interval), self.clock))


def test_a_series_is_due_when_never_drawn_or_when_its_period_has_passed() -> None:
    drawn = {("X", "1m"): T0, ("X", "1h"): T0, ("X", "1d"): T0}
    due = plan([("X", "1m"), ("X", "1h"), ("Y", "1d")], [("X", "1d")], drawn, T0 + 60, 60)
    assert due.due == [("X", "1m"), ("Y", "1d")]
    assert due.waiting == {("X", "1h"), ("X", "1d")}
    assert plan([], [("X", "1h")], drawn, T0 + 3_600, 60).due == [("X", "1h")]
    # A floor above an interval slows that interval down, never a longer one.
    assert refresh_seconds("1m", 900) == 900
    assert refresh_seconds("1d", 900) == 86_400
    assert plan([("X", "1m")], [], drawn, T0 + 899, 900).due == []


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("change"), st.sampled_from(SYMBOLS), st.sampled_from(INTERVALS), st.integers(0, 400)
        ),
        st.tuples(st.just("sweep"), st.just(""), st.just(""), st.integers(0, 4_000)),
    ),
    max_size=60,
)


def _run(
    site: DrawLog, bars: VersionedBars, script: list[tuple[str, str, str, int]], floor_s: int
) -> tuple[ChartBuilder, int]:
    builder = ChartBuilder(bars, site, render=render, refresh_floor_s=floor_s)
    now = T0
    for kind, symbol, interval, dt in script:
        now += dt
        site.clock = now
        if kind == "change":
            bars.change(symbol, interval)
            builder.rebuild({(symbol, interval)}, now)
        else:
            builder.rebuild(set(), now)
    return builder, now


def _latest(bars: VersionedBars, series: tuple[str, str]) -> bytes:
    symbol, interval = series
    version = bars.version[(symbol, "1d" if interval == "1w" else interval)]
    return f"{symbol} {interval} (UTC)={version}".encode()


@settings(max_examples=300, deadline=None)
@given(steps, st.sampled_from([60, 300]))
def test_no_chart_is_drawn_twice_within_its_period_and_the_last_change_is_always_drawn(
    script: list[tuple[str, str, str, int]], floor_s: int
) -> None:
    site, bars = DrawLog(), VersionedBars()
    builder, now = _run(site, bars, script, floor_s)
    last_drawn: dict[tuple[str, str], int] = {}
    for series, at in site.draws:
        if series in last_drawn:
            assert at - last_drawn[series] >= refresh_seconds(series[1], floor_s), series
        last_drawn[series] = at
    # Whatever waited is in the manifest, and the sweep after the longest period draws it.
    site.clock = now + WEEK
    builder.rebuild(set(), now + WEEK)
    changed = set(bars.version) | {(s, "1w") for s, i in bars.version if i == "1d"}
    assert {series: png for series, (png, _) in site.charts.items()} == {s: _latest(bars, s) for s in changed}
    assert all(not entry.pending for entry in site.entries().values())


CRASH_SCRIPT = [
    ("change", "A+B", "1m", 0),
    ("change", "A+B", "1d", 5),
    ("change", "A+B", "1m", 20),  # waits: drawn 25 s ago
    ("change", "MSFT", "5m", 1),
    ("sweep", "", "", 30),
    ("change", "A+B", "1m", 10),
    ("sweep", "", "", 60),  # draws A+B 1m
    ("change", "A+B", "1d", 1),  # waits a day
    ("change", "MSFT", "5m", 400),  # due again
    ("sweep", "", "", 2),
]


def _run_killed(kill_at: int | None) -> tuple[dict[tuple[str, str], bytes], set[tuple[str, str]]]:
    """The script with the process killed at one site write; Lambda redelivers a crashed stream
    batch, and a crashed sweep is followed by the next one."""
    counter = WriteCounter(kill_at)
    site, bars = DrawLog(counter), VersionedBars()
    now = T0
    for kind, symbol, interval, dt in CRASH_SCRIPT:
        now += dt
        site.clock = now
        if kind == "change":
            bars.change(symbol, interval)
        series = {(symbol, interval)} if kind == "change" else set()
        try:
            ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild(series, now)
        except ProcessKilled:
            ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild(series, now)
    site.clock = now + WEEK
    ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild(set(), now + WEEK)
    charts = {series: png for series, (png, _) in site.charts.items()}
    pending = {(s, i) for s, e in site.entries().items() for i in e.pending}
    return charts, pending


def test_a_kill_at_every_site_write_changes_nothing_in_the_end() -> None:
    counter = WriteCounter()
    clean_site = DrawLog(counter)
    _run(clean_site, VersionedBars(), CRASH_SCRIPT, 60)
    writes = counter.writes
    assert writes > 10
    reference = _run_killed(None)
    assert reference[1] == set()
    for k in range(writes):
        assert _run_killed(k) == reference, f"killed at write {k}"


def test_a_manifest_written_meanwhile_keeps_both_writers_pending_charts() -> None:
    site, bars = DrawLog(), VersionedBars()
    builder = ChartBuilder(bars, site, render=render, refresh_floor_s=60)
    for series in (("A+B", "1m"), ("MSFT", "1m")):
        bars.change(*series)
    builder.rebuild({("A+B", "1m"), ("MSFT", "1m")}, T0)
    bars.change("A+B", "1m")
    bars.change("MSFT", "1m")

    def other_invocation() -> None:
        ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild({("MSFT", "1m")}, T0 + 2)

    site.intruder = other_invocation
    builder.rebuild({("A+B", "1m")}, T0 + 1)
    pending = {(s, i) for s, e in site.entries().items() for i in e.pending}
    assert pending == {("A+B", "1m"), ("MSFT", "1m")}


def test_the_sweep_and_a_stream_batch_each_carry_their_own_time() -> None:
    sweep = {
        "version": "0",
        "id": "1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": "2026-11-02T14:31:00Z",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"],
        "detail": {},
    }
    assert is_sweep(sweep)
    assert event_time(sweep) == T0 + 60
    batch = {"Records": [{"dynamodb": {"ApproximateCreationDateTime": t}} for t in (T0 + 5.5, T0 + 9.9, T0)]}
    assert not is_sweep(batch)
    assert event_time(batch) == T0 + 9


@pytest.mark.parametrize("given_minutes", ["0", "-1", "1.5", "x"])
def test_a_refresh_below_a_minute_or_not_whole_is_refused(given_minutes: str) -> None:
    env = {"BARS_TABLE": "b", "SITE_BUCKET": "s", "CHART_REFRESH_MINUTES": given_minutes}
    with pytest.raises(ChartSettingsError, match="CHART_REFRESH_MINUTES"):
        ChartSettings.from_environment(env)
    assert ChartSettings.from_environment({**env, "CHART_REFRESH_MINUTES": "15"}).refresh_floor_s == 900


GOOD = {"symbol": "MSFT", "last_price": "1", "updated_at": T0, "charts": {"1m": "c"}, "drawn_at": {"1m": T0}}


def beside_good(**bad: object) -> bytes:
    return json.dumps({"symbols": [GOOD, {**GOOD, "symbol": "Y", **bad}]}).encode()


@pytest.mark.parametrize(
    ("manifest", "kept"),
    [
        (b"{not json", set()),
        (b"[1, 2]", set()),
        (b'{"symbols": {"a": 1}}', set()),
        (json.dumps({"symbols": [GOOD, {"last_price": "1"}]}).encode(), {"MSFT"}),
        (json.dumps({"symbols": [GOOD, [[[[]]]]]}).encode(), {"MSFT"}),
        (beside_good(updated_at=10**20), {"MSFT"}),
        (beside_good(updated_at=1e300), {"MSFT"}),
        (beside_good(updated_at=True), {"MSFT"}),
        (beside_good(drawn_at={"1m": -1}), {"MSFT"}),
        (beside_good(pending="1m"), {"MSFT"}),
        (beside_good(last_price=3), {"MSFT"}),
        (beside_good(symbol=None), {"MSFT"}),
    ],
)
def test_a_manifest_written_by_hand_never_stops_the_charts(manifest: bytes, kept: set[str]) -> None:
    """Whatever a hand wrote into manifest.json, the batch draws its charts and writes a readable
    manifest again; unreadable entries are left out and named, readable ones kept."""
    site, bars = DrawLog(), VersionedBars()
    site.manifest = manifest
    bars.change("X", "1m")
    rebuilt = ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild({("X", "1m")}, T0 + 5)
    assert rebuilt.drawn == 1
    assert rebuilt.manifest_problems
    assert set(site.entries()) == kept | {"X"}
    assert site.read_manifest().problems == ()
