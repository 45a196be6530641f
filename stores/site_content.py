"""The site bucket's content: index.html for people, manifest.json for machines, both from the
same entries; the chart builder writes it and `tickstream view` serves it.

Everything from a record is escaped for HTML and quoted for URLs, though symbols were validated
long before (A+B and X.Y-Z are valid and must still come out right).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

CHART_INTERVALS = ("1m", "5m", "15m", "1h", "1d", "1w")
# Volumes at a glance, on the charts' axes and in the page's table: powers of ten and their letter.
VOLUME_SCALES = ((12, "T"), (9, "B"), (6, "M"), (3, "k"))
# The moving averages' colours: the charts draw them (functions.chart_builder.render), the page's
# legend names them.
MA_COLOURS = {5: "#e8710a", 25: "#1a73e8"}
# How often an open page asks for manifest.json: one small GET per tab, images only when redrawn.
REFRESH_SECONDS = 30
# Charts are drawn for a cell about this wide (css px) at twice the pixel density; the page
# reserves their space before they load.
CHART_WIDTH_PX, CHART_HEIGHT_PX = 480, 270
STYLE = """\
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 0 .75rem; max-width: 1600px; }
header { display: flex; flex-wrap: wrap; align-items: baseline; column-gap: 1rem; }
h1 { font-size: 1.4rem; margin: .6rem 0; }
.asof { color: #555; margin: .2rem 0; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; text-align: right; white-space: nowrap;
  border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
.legend { font-size: .85rem; color: #555; }
.legend i { display: inline-block; width: 1.2rem; height: 0; border-top: 3px solid;
  margin: 0 .25rem .2rem .6rem; }
.legend i.last { border-top-style: dashed; border-top-width: 2px; }
section { border-top: 1px solid #ddd; padding: .5rem 0; }
h2 { margin: .3rem 0; font-size: 1.2rem; }
.stats span { margin-right: 1rem; }
.price { font-weight: bold; }
.up { color: #087f23; } .down { color: #b00020; } .flat { color: #666; }
.charts { display: grid; gap: .5rem;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 440px), 1fr)); }
figure { margin: 0; } figcaption { font-size: .8rem; color: #666; }
img { width: 100%; height: auto; display: block; }
@media (max-width: 800px) { .wide { display: none; } }
@media (max-width: 500px) { table { font-size: .8rem; } th, td { padding: .2rem .25rem; }
  th { white-space: normal; } }
@media (max-width: 380px) { table { font-size: .7rem; } th, td { padding: .15rem; white-space: normal; } }
"""
# Re-reads manifest.json every REFRESH_SECONDS: a chart whose drawn_at changed is fetched again,
# nothing else is; the table's and sections' figures and the captions are set as text, with
# their colour. A symbol or chart the page lacks reloads it, once per manifest. Anything in a
# manifest that is not what the chart builder writes is skipped, entry by entry.
SCRIPT = """\
(() => {
  const intervals = new Set(%(intervals)s);
  let generated = %(generated)d, newest = %(newest)s;
  const finite = (x) => typeof x === "number" && Number.isFinite(x) && Math.abs(x) < 1e11;
  const utc = (s) => finite(s)
    ? new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "n/a";
  const ago = (s) => s < 120 ? `${Math.round(s)} s`
    : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  const number = (v) => typeof v === "string" && /^[+-]?\\d{1,20}(\\.\\d{1,20})?$/.test(v);
  const short = (v) => {
    const n = Number(v);
    for (const [scale, suffix] of %(scales)s) {
      if (Math.abs(n) >= scale * 0.99995) return `${(n / scale).toFixed(1)}${suffix}`;
    }
    return v;
  };
  const setText = (id, text) => {
    const cell = document.getElementById(id);
    if (cell && typeof text === "string") cell.textContent = text;
  };
  const setChange = (id, change) => {
    const cell = document.getElementById(id);
    if (!cell) return;
    const value = number(change) ? Number(change) : null;
    cell.textContent = value === null ? "n/a" : `${change}\u00a0%%`;  // a no-break space, as the page has
    cell.className = value === null || value === 0 ? "flat" : value < 0 ? "down" : "up";
  };
  const showLag = () => {
    const lag = document.getElementById("lag");
    lag.textContent = newest === null ? "n/a" : ago(Math.max(0, Date.now() / 1000 - newest));
  };
  const apply = (entry) => {  // true when the page lacks a symbol or chart of this entry
    if (!entry || typeof entry.symbol !== "string") return false;
    const key = encodeURIComponent(entry.symbol);
    if (!document.getElementById(key)) return true;
    for (const id of [`last-${key}`, `price-${key}`]) setText(id, entry.last_price);
    for (const id of [`change-${key}`, `schange-${key}`]) setChange(id, entry.day_change_pct);
    if (number(entry.day_low) && number(entry.day_high)) {
      setText(`range-${key}`, `${entry.day_low} \u2013 ${entry.day_high}`);
    }
    if (number(entry.day_volume)) setText(`volume-${key}`, short(entry.day_volume));
    if (finite(entry.updated_at)) {
      setText(`updated-${key}`, utc(entry.updated_at));
      setText(`supdated-${key}`, `updated ${utc(entry.updated_at)}`);
    }
    let lacking = false;
    const drawn = entry.drawn_at && typeof entry.drawn_at === "object" ? entry.drawn_at : {};
    for (const [interval, at] of Object.entries(drawn)) {
      if (!intervals.has(interval) || !finite(at)) continue;
      const image = document.getElementById(`chart-${key}-${interval}`);
      if (!image) { lacking = true; continue; }
      if (image.dataset.drawn === String(at)) continue;
      image.dataset.drawn = String(at);
      image.src = `charts/${key}/${interval}.png?v=${at}`;
      setText(`caption-${key}-${interval}`, `${interval}, drawn ${utc(at)}`);
    }
    return lacking;
  };
  async function refresh() {
    let manifest;
    try {
      const answer = await fetch("manifest.json", { cache: "no-store" });
      if (!answer.ok) return;
      manifest = await answer.json();
    } catch { return; }
    if (!manifest || !Array.isArray(manifest.symbols) || manifest.generated_at === generated) return;
    let lacking = false, latest = null;
    for (const entry of manifest.symbols) {
      try {
        lacking = apply(entry) || lacking;
        const tick = entry.last_tick_at;
        if (finite(tick) && (latest === null || tick > latest)) latest = tick;
      } catch { /* an entry the page cannot show is skipped; the others still are */ }
    }
    generated = manifest.generated_at;
    newest = latest;
    setText("asof", utc(generated));
    setText("newest", utc(newest));
    showLag();
    const reloaded = `tickstream-reloaded-${generated}`;
    if (lacking && !sessionStorage.getItem(reloaded)) {
      sessionStorage.setItem(reloaded, "1");
      location.reload();
    }
  }
  window.tickstream = { refresh };  // for a test, or a console, to refresh now
  showLag();
  setInterval(showLag, 1000);
  setInterval(refresh, %(refresh_ms)d);
})();
"""


@dataclass(frozen=True)
class Quote:
    """Where a symbol stands, from its newest 1m and 1d bars: the summary table's row."""

    last_price: str
    day_change_pct: str | None = None
    day_low: str | None = None
    day_high: str | None = None
    day_volume: str | None = None
    last_tick_at: int | None = None  # epoch seconds of the newest tick in the bars


NO_QUOTE = Quote("n/a")


@dataclass(frozen=True)
class SymbolEntry:
    symbol: str
    quote: Quote
    updated_at: int  # epoch seconds
    charts: tuple[str, ...]  # intervals with a chart, in CHART_INTERVALS order
    drawn_at: Mapping[str, int] = field(default_factory=dict)  # interval -> when its chart was drawn
    # Intervals whose bars changed since (functions.chart_builder.cadence).
    pending: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Manifest:
    """manifest.json as read: the entries, the version they were read at, what was left out."""

    entries: dict[str, SymbolEntry]
    etag: str | None  # None: there is no manifest yet
    problems: tuple[str, ...] = ()  # what could not be read, and was left out

    def pending(self) -> set[tuple[str, str]]:
        return {(s, i) for s, e in self.entries.items() for i in e.pending}

    def drawn_at(self) -> dict[tuple[str, str], int]:
        return {(s, i): t for s, e in self.entries.items() for i, t in e.drawn_at.items()}


def chart_key(symbol: str, interval: str) -> str:
    return f"charts/{symbol}/{interval}.png"


def chart_url(symbol: str, interval: str) -> str:
    """Relative URL of a chart; the symbol is percent-quoted so '+' stays a plus, not a space."""
    return f"charts/{quote(symbol, safe='')}/{interval}.png"


def day_change_pct(day_open: Decimal, last: Decimal) -> str:
    return f"{(last - day_open) / day_open * 100:+.2f}"


def manifest_json(entries: Iterable[SymbolEntry], generated_at: int) -> bytes:
    ordered = sorted(entries, key=lambda e: e.symbol)
    document: dict[str, Any] = {
        "generated_at": generated_at,
        "symbols": [
            {
                "symbol": e.symbol,
                "last_price": e.quote.last_price,
                "day_change_pct": e.quote.day_change_pct,
                "updated_at": e.updated_at,
                "charts": {i: chart_url(e.symbol, i) for i in e.charts},
                "drawn_at": {i: e.drawn_at[i] for i in e.charts if i in e.drawn_at},
                "pending": [i for i in CHART_INTERVALS if i in e.pending],
                "day_low": e.quote.day_low,
                "day_high": e.quote.day_high,
                "day_volume": e.quote.day_volume,
                "last_tick_at": e.quote.last_tick_at,
            }
            for e in ordered
        ],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


# Times a manifest may hold: from the epoch to the end of year 9999, what the page can print.
LAST_SECOND = 253_402_300_799


def _epoch(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LAST_SECOND:
        raise TypeError(f"not a time: {value!r}")
    return value


# The figures a manifest entry carries as text: each must be a plain decimal number the page can
# print and compare (what the chart builder writes), so a hand-edited "n/a" or "1e1000000" is
# an entry left out, never a page that cannot be published.
NUMBER_TEXT = re.compile(r"[+-]?\d{1,20}(\.\d{1,20})?")


def _optional_number(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not NUMBER_TEXT.fullmatch(value):
        raise TypeError(f"{item['symbol']!r}: {key} is not a decimal number")
    return value


def _entry(item: Any) -> SymbolEntry:
    if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
        raise TypeError("not an entry with a symbol")
    price, change = item.get("last_price"), _optional_number(item, "day_change_pct")
    if not isinstance(price, str):
        raise TypeError(f"{item['symbol']!r}: last_price is not text")
    charts, drawn, pending = item.get("charts", {}), item.get("drawn_at", {}), item.get("pending", [])
    if not isinstance(charts, dict) or not isinstance(drawn, dict) or not isinstance(pending, list):
        raise TypeError(f"{item['symbol']!r}: charts, drawn_at or pending has the wrong shape")
    quote = Quote(
        price,
        change,
        _optional_number(item, "day_low"),
        _optional_number(item, "day_high"),
        _optional_number(item, "day_volume"),
        None if item.get("last_tick_at") is None else _epoch(item.get("last_tick_at")),
    )
    return SymbolEntry(
        item["symbol"],
        quote,
        _epoch(item.get("updated_at")),
        tuple(i for i in CHART_INTERVALS if i in charts),
        {i: _epoch(t) for i, t in drawn.items() if i in CHART_INTERVALS},
        frozenset(i for i in pending if i in CHART_INTERVALS),
    )


def entries_from_manifest(body: bytes) -> tuple[dict[str, SymbolEntry], list[str]]:
    """The entries a manifest holds, and why any cannot be used.

    The manifest is ours, but a bucket can be written by hand: an entry that cannot be read is
    left out (its symbol returns at its next change), never a reason to fail every batch.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return {}, [f"manifest.json is not JSON: {exc}"]
    items = document.get("symbols") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return {}, ["manifest.json has no list of symbols"]
    entries: dict[str, SymbolEntry] = {}
    problems = []
    for item in items:
        try:
            entry = _entry(item)
        except TypeError as exc:
            problems.append(f"manifest entry skipped: {exc}")
            continue
        entries[entry.symbol] = entry
    return entries, problems


def _utc(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _drawn(epoch_s: int | None) -> str:
    """When a chart was drawn: a daily chart is drawn once a day, and says so."""
    return "" if epoch_s is None else f", drawn {_utc(epoch_s)}"


def short_number(text: str | None) -> str:
    """1.2k, 3.4M, 5.6B: volumes read at a glance; the exact figure is in the bars."""
    if text is None:
        return "n/a"
    if not NUMBER_TEXT.fullmatch(text):
        return text
    value = Decimal(text)
    for exponent, suffix in VOLUME_SCALES:
        scale = Decimal(10) ** exponent
        if abs(value) >= scale * Decimal("0.99995"):  # 999,960 is 1.0M, not 1000.0k
            return f"{value / scale:.1f}{suffix}"
    return f"{value:f}"


def _change(quote: Quote) -> tuple[str, str]:
    """The change's text and its colour class."""
    change = quote.day_change_pct
    if change is None or not NUMBER_TEXT.fullmatch(change):
        return "n/a", "flat"
    value = Decimal(change)
    # A no-break space: the "%" never wraps onto a line of its own.
    return f"{change}\u00a0%", "flat" if value.is_zero() else ("down" if value < 0 else "up")


def _summary_row(entry: SymbolEntry) -> str:
    key = html.escape(quote(entry.symbol, safe=""))
    figures = entry.quote
    text, colour = _change(figures)
    day_range = (
        "n/a"
        if figures.day_low is None or figures.day_high is None
        else f"{figures.day_low} \u2013 {figures.day_high}"
    )
    cells = (
        f'<td><a href="#{key}">{html.escape(entry.symbol)}</a></td>',
        f'<td id="last-{key}" class="price">{html.escape(figures.last_price)}</td>',
        f'<td id="change-{key}" class="{colour}">{html.escape(text)}</td>',
        f'<td id="range-{key}">{html.escape(day_range)}</td>',
        f'<td id="volume-{key}">{html.escape(short_number(figures.day_volume))}</td>',
        f'<td id="updated-{key}" class="wide">{html.escape(_utc(entry.updated_at))}</td>',
    )
    return f"<tr>{''.join(cells)}</tr>"


def _section(entry: SymbolEntry) -> str:
    name = html.escape(entry.symbol)
    key = html.escape(quote(entry.symbol, safe=""))
    text, colour = _change(entry.quote)
    images = "".join(
        f'<figure><img id="chart-{key}-{i}" data-drawn="{entry.drawn_at.get(i, "")}" '
        f'src="{html.escape(chart_url(entry.symbol, i))}?v={entry.drawn_at.get(i, entry.updated_at)}" '
        f'width="{CHART_WIDTH_PX}" height="{CHART_HEIGHT_PX}" '
        f'alt="{name} {i} candlestick chart" loading="lazy">'
        f'<figcaption id="caption-{key}-{i}">{i}{_drawn(entry.drawn_at.get(i))}</figcaption></figure>'
        for i in entry.charts
    )
    return (
        f'<section id="{key}"><h2>{name}</h2>'
        f'<p class="stats"><span id="price-{key}" class="price">{html.escape(entry.quote.last_price)}</span> '
        f'<span id="schange-{key}" class="{colour}">{html.escape(text)}</span> '
        f'<span id="supdated-{key}">updated {html.escape(_utc(entry.updated_at))}</span></p>'
        f'<div class="charts">{images}</div></section>'
    )


def index_html(entries: Iterable[SymbolEntry], generated_at: int) -> bytes:
    """The page: when it was made and how far behind the newest tick, a summary table, then one
    section of charts per symbol; it refreshes itself from manifest.json."""
    ordered = sorted(entries, key=lambda e: e.symbol)
    ticks = [e.quote.last_tick_at for e in ordered]
    newest = max((t for t in ticks if t is not None), default=None)
    newest_text = "n/a" if newest is None else _utc(newest)
    lag = "n/a" if newest is None else f"{max(0, generated_at - newest)} s"
    rows = "\n".join(_summary_row(e) for e in ordered)
    summary = (
        '<div class="table"><table><thead><tr><th>symbol</th><th>last</th><th>change</th>'
        f'<th>day range</th><th>day volume</th><th class="wide">updated</th></tr></thead><tbody>\n{rows}\n'
        "</tbody></table></div>"
        if ordered
        else "<p>No bars yet.</p>"
    )
    legend = "".join(
        f'<span><i style="border-color: {colour}"></i>MA {n}</span>'
        for n, colour in sorted(MA_COLOURS.items())
    )
    script = SCRIPT % {
        "intervals": orjson.dumps(list(CHART_INTERVALS)).decode(),
        "scales": orjson.dumps([[10**exponent, suffix] for exponent, suffix in VOLUME_SCALES]).decode(),
        "generated": generated_at,
        "newest": "null" if newest is None else str(newest),
        "refresh_ms": REFRESH_SECONDS * 1000,
    }
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tickstream charts</title>
<style>
{STYLE}</style>
</head>
<body>
<header><h1>tickstream</h1>
<p class="asof">as of <span id="asof">{html.escape(_utc(generated_at))}</span>; newest tick
<span id="newest">{html.escape(newest_text)}</span>, <span id="lag">{html.escape(lag)}</span> behind</p>
<a href="manifest.json">manifest.json</a></header>
{summary}
<p class="legend">Candles in UTC, volume below:{legend}<span><i class="last"></i>last price</span></p>
{"".join(_section(e) for e in ordered)}
<script>
{script}</script>
</body>
</html>
"""
    return page.encode()
