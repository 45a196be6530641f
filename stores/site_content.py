"""The site bucket's content: index.html for people, manifest.json for machines, both from the
same entries; the chart builder writes it and `tickstream view` serves it.

Everything from a record is escaped for HTML and quoted for URLs, though symbols were validated
long before (A+B and X.Y-Z are valid and must still come out right).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson

CHART_INTERVALS = ("1m", "5m", "15m", "1h", "1d", "1w")
# One column of charts on a phone (400 px), three or more side by side at 1600 px.
STYLE = """\
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 0 1rem; max-width: 1600px; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 1rem; }
nav a { margin-right: .6rem; }
section { border-top: 1px solid #ddd; padding: .5rem 0; }
.stats span { margin-right: 1rem; }
.price { font-weight: bold; font-size: 1.2rem; }
.up { color: #087f23; } .down { color: #b00020; } .flat { color: #666; }
.charts { display: grid; gap: .5rem;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 480px), 1fr)); }
figure { margin: 0; } figcaption { font-size: .8rem; color: #666; }
img { width: 100%; height: auto; display: block; }
"""


@dataclass(frozen=True)
class SymbolEntry:
    symbol: str
    last_price: str
    day_change_pct: str | None
    updated_at: int  # epoch seconds
    charts: tuple[str, ...]  # intervals with a chart, in CHART_INTERVALS order
    drawn_at: Mapping[str, int] = field(default_factory=dict)  # interval -> when its chart was drawn
    pending: frozenset[str] = (
        frozenset()
    )  # intervals whose bars changed since (functions.chart_builder.cadence)


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
                "last_price": e.last_price,
                "day_change_pct": e.day_change_pct,
                "updated_at": e.updated_at,
                "charts": {i: chart_url(e.symbol, i) for i in e.charts},
                "drawn_at": {i: e.drawn_at[i] for i in e.charts if i in e.drawn_at},
                "pending": [i for i in CHART_INTERVALS if i in e.pending],
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


def _entry(item: Any) -> SymbolEntry:
    if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
        raise TypeError("not an entry with a symbol")
    price, change = item.get("last_price"), item.get("day_change_pct")
    if not isinstance(price, str) or not (change is None or isinstance(change, str)):
        raise TypeError(f"{item['symbol']!r}: last_price or day_change_pct is not text")
    charts, drawn, pending = item.get("charts", {}), item.get("drawn_at", {}), item.get("pending", [])
    if not isinstance(charts, dict) or not isinstance(drawn, dict) or not isinstance(pending, list):
        raise TypeError(f"{item['symbol']!r}: charts, drawn_at or pending has the wrong shape")
    return SymbolEntry(
        item["symbol"],
        price,
        change,
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


def index_html(entries: Iterable[SymbolEntry], generated_at: int) -> bytes:
    ordered = sorted(entries, key=lambda e: e.symbol)
    sections = []
    for entry in ordered:
        name = html.escape(entry.symbol)
        change = entry.day_change_pct
        change_class = "flat" if change is None else ("down" if change.startswith("-") else "up")
        shown_change = "n/a" if change is None else f"{change} %"
        images = "".join(
            f'<figure><img src="{html.escape(chart_url(entry.symbol, i))}'
            f'?v={entry.drawn_at.get(i, entry.updated_at)}" '
            f'alt="{name} {i} candlestick chart" loading="lazy">'
            f"<figcaption>{i}{_drawn(entry.drawn_at.get(i))}</figcaption></figure>"
            for i in entry.charts
        )
        sections.append(
            f'<section id="{html.escape(quote(entry.symbol, safe=""))}"><h2>{name}</h2>'
            f'<p class="stats"><span class="price">{html.escape(entry.last_price)}</span> '
            f'<span class="{change_class}">{html.escape(shown_change)}</span> '
            f"<span>updated {html.escape(_utc(entry.updated_at))}</span></p>"
            f'<div class="charts">{images}</div></section>'
        )
    body = "\n".join(sections) or "<p>No bars yet.</p>"
    nav = "".join(
        f'<a href="#{html.escape(quote(e.symbol, safe=""))}">{html.escape(e.symbol)}</a>' for e in ordered
    )
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
<header><h1>tickstream</h1><span>generated {html.escape(_utc(generated_at))}</span>
<nav>{nav}</nav>
<a href="manifest.json">manifest.json</a></header>
{body}
</body>
</html>
"""
    return page.encode()
