"""The chart builder's cadence: each chart drawn at most once per its interval, and the last change
of every series drawn in the end, whatever the order of changes, sweeps, races and crashes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.chart_builder.cadence import CHART_SECONDS, plan, refresh_seconds
from functions.chart_builder.service import ChartBuilder
from functions.chart_builder.settings import ChartSettings, ChartSettingsError
from stores.site_bucket import SiteError
from tests.support.chart_doubles import T0, DrawLog, VersionedBars, render
from tests.support.memory_stores import ProcessKilled, WriteCounter

SYMBOLS = ("A+B", "MSFT")
INTERVALS = ("1m", "5m", "1h", "1d")
WEEK = CHART_SECONDS["1w"]


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
    """The script's changes and sweeps; an invocation killed midway is run again, as Lambda
    redelivers a crashed stream batch and the next sweep follows a crashed one."""
    builder = ChartBuilder(bars, site, render=render, refresh_floor_s=floor_s)
    now = T0
    for kind, symbol, interval, dt in script:
        now += dt
        site.clock = now
        if kind == "change":
            bars.change(symbol, interval)
        series = {(symbol, interval)} if kind == "change" else set()
        try:
            builder.rebuild(series, now)
        except ProcessKilled:
            builder.rebuild(series, now)
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
    """The script with the process killed at one site write, then a sweep a week later."""
    site, bars = DrawLog(WriteCounter(kill_at)), VersionedBars()
    builder, now = _run(site, bars, CRASH_SCRIPT, 60)
    site.clock = now + WEEK
    builder.rebuild(set(), now + WEEK)
    charts = {series: png for series, (png, _) in site.charts.items()}
    return charts, site.read_manifest().pending()


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
    pending = site.read_manifest().pending()
    assert pending == {("A+B", "1m"), ("MSFT", "1m")}


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
        (b"", set()),
        (b'{"symbols": null}', set()),
        (beside_good(drawn_at=None), {"MSFT"}),
        (beside_good(drawn_at=["1m"]), {"MSFT"}),
        (beside_good(drawn_at={"1m": "soon"}), {"MSFT"}),
        (beside_good(drawn_at={"1m": 2**62}), {"MSFT"}),
        (beside_good(pending=None), {"MSFT"}),
        (beside_good(pending=5), {"MSFT"}),
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


def test_a_drawing_time_far_ahead_of_the_events_never_freezes_a_chart() -> None:
    """`tickstream charts` stamps drawn_at with a workstation's clock, the function with the
    events' time: a workstation an hour fast (or a hand) must not stop the 1m chart for an hour."""
    site, bars = DrawLog(), VersionedBars()
    bars.change("MSFT", "1m")
    ChartBuilder(bars, site, render=render).rebuild({("MSFT", "1m")}, T0 + 3_600)
    function = ChartBuilder(bars, site, render=render, refresh_floor_s=60)
    for minute in range(1, 10):
        bars.change("MSFT", "1m")
        function.rebuild({("MSFT", "1m")}, T0 + 60 * minute)
    assert site.charts[("MSFT", "1m")][0] == b"MSFT 1m (UTC)=10"
    site.manifest = beside_good(drawn_at={"1m": 10**11})  # the year 5138
    bars.change("Y", "1m")
    function.rebuild({("Y", "1m")}, T0 + 700)
    assert site.charts[("Y", "1m")][0] == b"Y 1m (UTC)=1"


X = ("MSFT", "1m")


def test_a_slow_invocation_never_leaves_an_older_chart_on_the_site_for_good() -> None:
    """The sweep loads v2 and renders; meanwhile v3 lands and a stream batch draws it; the sweep's
    v2 lands last. Its manifest write conflicts, sees the other drawing, and keeps the chart
    pending, so the next due invocation draws v3; drawn_at never goes back."""
    site, bars = DrawLog(), VersionedBars()
    bars.change(*X)
    ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild({X}, T0)
    bars.change(*X)

    def batch_while_the_sweep_renders(frame: pd.DataFrame, title: str, bar_seconds: int) -> bytes:
        png = render(frame, title, bar_seconds)
        bars.change(*X)
        ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild({X}, T0 + 61)
        return png

    ChartBuilder(bars, site, render=batch_while_the_sweep_renders, refresh_floor_s=60).rebuild({X}, T0 + 60)
    assert site.charts[X][0] == b"MSFT 1m (UTC)=2"  # the older drawing landed last ...
    assert site.entries()["MSFT"].pending == {"1m"}  # ... and is known to
    assert site.entries()["MSFT"].drawn_at["1m"] == T0 + 61
    ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild(set(), T0 + 121)
    assert site.charts[X][0] == b"MSFT 1m (UTC)=3"
    assert not site.entries()["MSFT"].pending


def test_a_backlog_larger_than_one_invocation_is_drawn_over_the_next_ones_longest_waiting_first() -> None:
    symbols = [f"S{n:03d}" for n in range(50)]
    site, bars = DrawLog(), VersionedBars()
    every = {(s, "1m") for s in symbols}
    for s in symbols:
        bars.change(s, "1m")
    ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild(every, T0)
    for s in symbols:
        bars.change(s, "1m")
    ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild(every, T0 + 30)
    draws_before = len(site.draws)
    for minute in (1, 2, 3):
        drawn = len(site.draws)

        def out_of_time(drawn: int = drawn) -> bool:
            return len(site.draws) - drawn >= 20

        rebuilt = ChartBuilder(bars, site, render=render, refresh_floor_s=60).rebuild(
            set(), T0 + 60 * minute, out_of_time=out_of_time
        )
        assert rebuilt.drawn <= 20
    assert len(site.draws) - draws_before == 50  # each once: the longest waiting first
    assert {series: png for series, (png, _) in site.charts.items()} == {s: _latest(bars, s) for s in every}
    assert not ChartBuilder(bars, site).pending()


def test_a_page_that_fails_to_be_written_is_written_by_the_next_invocation() -> None:
    site, bars = DrawLog(), VersionedBars()
    builder = ChartBuilder(bars, site, render=render, refresh_floor_s=60)
    bars.change(*X)
    builder.rebuild({X}, T0)
    bars.change(*X)
    builder.rebuild({X}, T0 + 10)
    site.fail_next_page = True
    with pytest.raises(SiteError):
        builder.rebuild(set(), T0 + 60)  # a sweep: not retried
    builder.rebuild(set(), T0 + 120)
    assert site.page["MSFT"].drawn_at == {"1m": T0 + 120}
    assert site.page == site.entries()
