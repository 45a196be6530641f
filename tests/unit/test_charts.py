"""Chart data, rendering and the site page, without AWS."""

from __future__ import annotations

import io
from decimal import Decimal

import matplotlib.image as mpimg
import orjson
import pandas as pd
import pytest
from PIL import Image

from functions.chart_builder.chart_data import bars_frame, weekly_from_daily
from functions.chart_builder.render import DPI, draw_chart, render_chart, short_volume
from functions.chart_builder.service import ChartBuilder, charts_to_draw
from market.bars import Bar, BarAccumulator, StoredBar
from stores.site_content import (
    Quote,
    SymbolEntry,
    entries_from_manifest,
    index_html,
    manifest_json,
    short_number,
)
from tests.support.memory_stores import MemorySite

MINUTE = 1_793_629_800  # 2026-11-02 14:30 UTC


def bar(start: int, o: str, h: str, low: str, c: str, v: str = "10", interval: str = "1m") -> Bar:
    return Bar(
        "X", interval, start, Decimal(o), Decimal(h), Decimal(low), Decimal(c), Decimal(v), 1, None, 0, 0
    )


def test_missing_bars_stay_missing_and_order_is_by_time() -> None:
    frame = bars_frame([bar(MINUTE + 180, "3", "3", "3", "3"), bar(MINUTE, "1", "2", "1", "2")])
    assert list(frame.index) == [
        pd.Timestamp(MINUTE, unit="s", tz="UTC"),
        pd.Timestamp(MINUTE + 180, unit="s", tz="UTC"),
    ]
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]


def test_weekly_candles_are_built_from_daily_bars_monday_to_sunday() -> None:
    monday = 1_793_577_600 - 0  # 2026-11-02 00:00 UTC is a Monday
    assert pd.Timestamp(monday, unit="s", tz="UTC").day_name() == "Monday"
    days = [
        bar(monday + d * 86_400, str(10 + d), str(20 + d), str(5 + d), str(11 + d), "100", "1d")
        for d in range(9)
    ]
    weekly = weekly_from_daily(bars_frame(days))
    assert [day.strftime("%Y-%m-%d") for day in weekly.index] == ["2026-11-02", "2026-11-09"]
    first = weekly.iloc[0]
    assert (first.Open, first.High, first.Low, first.Close, first.Volume) == (10, 26, 5, 17, 700)


def pixels(png: bytes) -> tuple[tuple[int, ...], float]:
    image = mpimg.imread(io.BytesIO(png), format="png")
    return image.shape, float(image.std())


@pytest.mark.parametrize(
    "bars",
    [
        [bar(MINUTE, "10", "11", "9", "10.5")],  # a single bar
        [bar(MINUTE, "10", "10", "10", "10"), bar(MINUTE + 60, "10", "10", "10", "10")],  # flat: high == low
        [bar(MINUTE + 60 * i, "10", "11", "9", "10", "0") for i in range(3)],  # zero volume
        [
            bar(MINUTE + 60 * i, str(10 + i % 3), str(12 + i % 3), str(9 + i % 3), str(11 + i % 3))
            for i in range(200)
        ],
    ],
)
def test_charts_are_real_pngs_of_the_expected_size_and_not_blank(bars: list[Bar]) -> None:
    png = render_chart(bars_frame(bars), "X 1m (UTC)", 60)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    shape, spread = pixels(png)
    assert shape[:2] == (540, 960)  # twice the page's 480 x 270 cell: sharp on a 2x screen
    assert spread > 0.05


def test_the_png_holds_the_pixels_savefig_writes_without_an_alpha_channel() -> None:
    """The chart encodes its PNG itself, as RGB: that loses nothing only while every pixel of the
    figure is opaque, which a transparent style or face colour would break."""
    frame = bars_frame([bar(MINUTE + 60 * i, "10", "12", "9", str(9 + i % 4)) for i in range(40)])
    ours = mpimg.imread(io.BytesIO(render_chart(frame, "X 1m (UTC)", 60)), format="png")
    saved = io.BytesIO()
    draw_chart(frame, "X 1m (UTC)", 60).savefig(saved, format="png", dpi=DPI)
    theirs = mpimg.imread(io.BytesIO(saved.getvalue()), format="png")
    assert ours.shape == (540, 960, 3)
    # PNG keeps pixels per metre, so 150 dpi reads back as 150.0124.
    dpi = Image.open(io.BytesIO(render_chart(frame, "X 1m (UTC)", 60))).info["dpi"]
    assert dpi == pytest.approx((DPI, DPI), abs=0.1)
    assert (theirs[..., 3] == 1).all()
    assert (ours == theirs[..., :3]).all()


def test_a_changed_daily_bar_also_redraws_the_weekly_chart() -> None:
    assert charts_to_draw([("A+B", "1d"), ("X.Y-Z", "1m"), ("Q", "2h")]) == [
        ("A+B", "1d"),
        ("A+B", "1w"),
        ("X.Y-Z", "1m"),
    ]


def test_the_page_escapes_text_and_quotes_urls_of_hostile_looking_but_valid_symbols() -> None:
    entries = [
        SymbolEntry("A+B", Quote("12.5", "+1.25"), MINUTE, ("1m", "1d")),
        SymbolEntry("X.Y-Z", Quote("0.5", "-0.10"), MINUTE, ("1m",)),
    ]
    page = index_html(entries, MINUTE).decode()
    assert 'src="charts/A%2BB/1m.png?v=' in page
    assert 'src="charts/X.Y-Z/1m.png?v=' in page
    assert "<h2>A+B</h2>" in page
    assert 'class="down">-0.10\u00a0%' in page
    assert page.count("<img ") == 3
    manifest = orjson.loads(manifest_json(entries, MINUTE))
    assert [s["symbol"] for s in manifest["symbols"]] == ["A+B", "X.Y-Z"]
    assert manifest["symbols"][0]["charts"] == {"1m": "charts/A%2BB/1m.png", "1d": "charts/A%2BB/1d.png"}


def test_text_from_a_record_cannot_become_markup() -> None:
    page = index_html([SymbolEntry("X", Quote("<b>1</b>"), MINUTE, ())], MINUTE).decode()
    assert "<b>1</b>" not in page
    assert "&lt;b&gt;1&lt;/b&gt;" in page


class _Bars:
    """Bars as the table would return them: GOOD's are fine, FAR's 1d bar starts in 9999 (past
    pandas' last Timestamp), and BAD's items cannot be parsed."""

    def query_bars(self, symbol: str, interval: str, newest: int) -> list[StoredBar]:
        if symbol == "BAD":
            raise KeyError("_ck")
        start = 253_402_214_400 if (symbol, interval) == ("FAR", "1d") else MINUTE
        acc = BarAccumulator.of_tick(Decimal("10.5"), Decimal(3), (start * 1000, 0, 0))
        return [StoredBar(symbol, interval, start, acc)]


def test_a_series_that_cannot_be_read_or_drawn_is_skipped_and_named_not_fatal() -> None:
    site = MemorySite()
    bad = SymbolEntry("BAD", Quote("9"), 1, ("1m",))
    site.publish({"BAD": bad}, 1, None)
    series = [("GOOD", "1m"), ("FAR", "1m"), ("FAR", "1d"), ("BAD", "1m")]
    rebuilt = ChartBuilder(_Bars(), site).rebuild(series, MINUTE)
    assert set(site.charts) == {("GOOD", "1m"), ("FAR", "1m")}
    assert set(rebuilt.failed) == {("FAR", "1d"), ("FAR", "1w"), ("BAD", "1m")}
    assert "KeyError" in rebuilt.failed[("BAD", "1m")]
    assert rebuilt.drawn == 2
    # FAR stays on the page with the chart it has; BAD, drawn nowhere, keeps its old entry.
    published = site.entries()
    assert set(published) == {"GOOD", "FAR", "BAD"}
    assert published["FAR"].charts == ("1m",)
    assert published["FAR"].drawn_at == {"1m": MINUTE}
    assert published["BAD"] == bad


def test_volumes_read_in_k_m_and_b() -> None:
    assert [short_volume(v) for v in (0, 950, 300_000, 1_000_000, 2_500_000_000)] == [
        "0", "950", "300k", "1M", "2.5B",
    ]  # fmt: skip
    assert [short_number(v) for v in ("950", "300000", "1234567.8", None, "x")] == [
        "950", "300.0k", "1.2M", "n/a", "x",
    ]  # fmt: skip


def test_one_day_candle_is_a_placeholder_chart_not_a_block_and_still_a_real_png() -> None:
    png = render_chart(
        bars_frame([bar(MINUTE - MINUTE % 86_400, "1", "2", "0.5", "1.5", "3", "1d")]), "X 1d", 86_400
    )
    shape, spread = pixels(png)
    assert shape[:2] == (540, 960)
    assert spread > 0.05


def test_the_summary_table_comes_first_with_a_row_per_symbol_and_the_lag_behind_the_newest_tick() -> None:
    entries = [
        SymbolEntry("A+B", Quote("12.5", "+1.25", "11", "13", "1234567", MINUTE - 90), MINUTE, ("1m",)),
        SymbolEntry("C", Quote("<i>"), MINUTE, ("1m",)),
    ]
    page = index_html(entries, MINUTE).decode()
    assert page.index("<table>") < page.index("<section")
    assert page.count("<tbody>") == 1
    assert page.count("<tr><td>") == 2
    assert '<td id="range-A%2BB">11 \u2013 13</td>' in page
    assert '<td id="volume-A%2BB">1.2M</td>' in page
    assert '<span id="lag">90 s</span>' in page
    assert "&lt;i&gt;" in page
    assert "<i>" not in page.replace('<i style="border-color', "").replace('<i class="last">', "")
    assert page.count('width="480" height="270"') == 2  # room kept before the images load


def test_the_manifest_carries_the_day_and_reads_back_old_manifests_without_it() -> None:
    entry = SymbolEntry("A", Quote("1", "+0.00", "1", "2", "30", MINUTE), MINUTE, ("1m",), {"1m": MINUTE})
    entries, problems = entries_from_manifest(manifest_json([entry], MINUTE))
    assert (entries, problems) == ({"A": entry}, [])
    old = b'{"symbols": [{"symbol": "A", "last_price": "1", "updated_at": 5, "charts": {}}]}'
    assert entries_from_manifest(old)[0]["A"].quote.day_volume is None
    bad = b'{"symbols": [{"symbol": "A", "last_price": "1", "updated_at": 5, "day_volume": 7}]}'
    assert entries_from_manifest(bad) == (
        {},
        ["manifest entry skipped: 'A': day_volume is not a decimal number"],
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("day_change_pct", "n/a"), ("day_change_pct", ""), ("day_change_pct", "+"), ("day_volume", "1e1000000"),
     ("day_low", "NaN"), ("day_high", "Infinity"), ("day_volume", "1" * 40)],
)  # fmt: skip
def test_a_hand_edited_figure_leaves_its_entry_out_and_the_page_is_still_published(
    key: str, value: str
) -> None:
    """One entry the page could not print must never stop every later publication."""
    good = {"symbol": "OK", "last_price": "1", "updated_at": 5, "charts": {}}
    bad = {**good, "symbol": "BAD", key: value}
    entries, problems = entries_from_manifest(orjson.dumps({"symbols": [good, bad]}))
    assert set(entries) == {"OK"}
    assert problems == [f"manifest entry skipped: 'BAD': {key} is not a decimal number"]
    assert b"<td" in index_html(entries.values(), 5)


def test_the_change_colour_follows_its_sign_and_a_rounded_zero_is_flat() -> None:
    def colour(change: str) -> str:
        page = index_html([SymbolEntry("A", Quote("1", change), MINUTE, ())], MINUTE).decode()
        return page.split('<td id="change-A" class="', 1)[1].split('"', 1)[0]

    assert [colour(c) for c in ("+1.00", "-1.00", "-0.00", "+0.00")] == ["up", "down", "flat", "flat"]
    assert short_number("999960") == "1.0M"
    assert short_number("1000000000000000") == "1000.0T"
