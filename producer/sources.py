"""Where ticks come from: a seeded synthetic market, or a CSV file replayed.

Every tick carries an id that is stable for the same input (same seed and start, or same CSV
row), so replaying a source is deduplicated downstream rather than counted twice.
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from market.ticks import (
    ZERO,
    InvalidTick,
    RejectReason,
    Tick,
    validate_id,
    validate_price,
    validate_size,
    validate_symbol,
)
from market.ticks import validate_timestamp as validate_ts

MS_PER_YEAR = 365.25 * 86_400 * 1000
CENT = Decimal("0.01")
CSV_COLUMNS = ("symbol", "price", "size", "ts")
# The bad rows a --skip-bad replay names in its report; any more are only counted.
SKIPPED_ROWS_KEPT = 20


@dataclass(frozen=True)
class Jump:
    """A sudden move, to try alerts: from `after_s` into the run, `symbol` trades `percent` higher."""

    symbol: str
    percent: float
    after_s: float

    @classmethod
    def parse(cls, text: str) -> Jump:
        """`SYMBOL:PERCENT:SECONDS`, e.g. `AAPL:5:30` (AAPL jumps 5 % 30 s in) or `AAPL:-4:10`."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3:
            raise ValueError(f"jump {text!r}: expected SYMBOL:PERCENT:SECONDS, e.g. NVDA:6:30")
        symbol, percent, after = parts
        try:
            jump = cls(validate_symbol(symbol), float(percent), float(after))
        except InvalidTick as exc:
            raise ValueError(f"jump {text!r}: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"jump {text!r}: PERCENT and SECONDS must be numbers, e.g. NVDA:6:30") from exc
        if not -90 < jump.percent <= 1000 or not 0 <= jump.after_s < math.inf:
            raise ValueError(f"jump {text!r}: percent must be in (-90, 1000] and seconds finite, 0 or more")
        return jump


@dataclass(frozen=True)
class SyntheticMarket:
    """Geometric Brownian motion per symbol with Poisson arrivals across the market."""

    symbols: Sequence[str]
    rate: float
    seed: int
    start_ms: int
    count: int | None = None
    duration_s: float | None = None
    annual_volatility: float = 0.4
    annual_drift: float = 0.05
    jumps: tuple[Jump, ...] = ()
    # Where each symbol's price stands (the last bar's close): a new run continues from there
    # instead of drawing a fresh price, so two runs never mix unrelated paths in one bar.
    start_prices: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """A market without symbols, with a bad one, or without ticks fails here, not mid-run."""
        if not self.symbols:
            raise ValueError("no symbols: give one or more, e.g. AAPL,MSFT")
        for symbol in self.symbols:
            validate_symbol(symbol)
        if self.rate <= 0:
            raise ValueError("rate must be greater than 0 ticks/s")

    def _jump_ms(self, jump: Jump) -> float:
        return self.start_ms + jump.after_s * 1000

    def run_id(self) -> str:
        key = f"{self.seed}|{self.start_ms}|{','.join(self.symbols)}|{self.rate}"
        return hashlib.blake2b(key.encode(), digest_size=4).hexdigest()

    def ticks(self) -> Iterator[Tick]:
        rng = random.Random(self.seed)
        drawn = {s: rng.uniform(20.0, 600.0) for s in self.symbols}  # drawn always: same seed, same ids
        prices = {s: float(self.start_prices.get(s, drawn[s])) for s in self.symbols}
        last_ms = dict.fromkeys(self.symbols, float(self.start_ms))
        weights = [rng.uniform(0.5, 2.0) for _ in self.symbols]
        run_id = self.run_id()
        end_ms = None if self.duration_s is None else self.start_ms + self.duration_s * 1000
        clock_ms = float(self.start_ms)
        sigma, mu = self.annual_volatility, self.annual_drift
        pending = sorted(self.jumps, key=lambda j: j.after_s)
        n = 0
        while self.count is None or n < self.count:
            clock_ms += rng.expovariate(self.rate) * 1000
            if end_ms is not None and clock_ms >= end_ms:
                return
            symbol = rng.choices(self.symbols, weights)[0]
            dt_years = (clock_ms - last_ms[symbol]) / MS_PER_YEAR
            last_ms[symbol] = clock_ms
            shock = rng.gauss(0.0, 1.0)
            prices[symbol] *= math.exp(
                (mu - sigma * sigma / 2) * dt_years + sigma * math.sqrt(dt_years) * shock
            )
            if pending:  # most runs have no jumps: no work per tick for them
                for jump in [j for j in pending if j.symbol == symbol and clock_ms >= self._jump_ms(j)]:
                    prices[symbol] *= 1 + jump.percent / 100
                    pending.remove(jump)
            price = max(Decimal(round(prices[symbol] * 100)) * CENT, CENT)
            size = Decimal(max(1, round(rng.lognormvariate(4.0, 1.0))))
            yield Tick(symbol, price, size, int(clock_ms), f"{run_id}:{n:09d}")
            n += 1


class BadCsvRow(ValueError):
    """A CSV row that is not a tick; names the file and line so the user can fix it."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@dataclass
class CsvReplay:
    """Replays `symbol,price,size,ts[,id]` rows; bad rows raise unless `skip_bad`, then are counted
    and the first SKIPPED_ROWS_KEPT kept in `skipped`, so the user can see which to fix."""

    path: Path
    skip_bad: bool = False
    bad_rows: int = 0
    skipped: list[BadCsvRow] = field(default_factory=list)

    def ticks(self) -> Iterator[Tick]:
        with self.path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise BadCsvRow(self.path, 1, f"header lacks column(s) {', '.join(missing)}")
            for row in reader:
                try:
                    yield self._tick(row, reader.line_num)
                except BadCsvRow as exc:
                    if not self.skip_bad:
                        raise
                    self.bad_rows += 1
                    if len(self.skipped) < SKIPPED_ROWS_KEPT:
                        self.skipped.append(exc)

    def event_time_span_ms(self) -> int:
        """Newest minus oldest event time of the valid rows: how long a real-time replay runs."""
        replay = CsvReplay(self.path, skip_bad=True)
        times = [tick.ts_ms for tick in replay.ticks()]
        return max(times) - min(times) if times else 0

    def _tick(self, row: dict[str, str | None], line: int) -> Tick:
        try:
            symbol = validate_symbol(row["symbol"])
            sent_price = _number(row["price"], RejectReason.BAD_PRICE)
            sent_size = _number(row["size"], RejectReason.BAD_SIZE) if row["size"] else ZERO
            price, size = validate_price(sent_price), validate_size(sent_size)
            raw_ts = (row["ts"] or "").strip()
            ts_ms = validate_ts(int(raw_ts) if raw_ts.lstrip("-").isdigit() else raw_ts)
            tick_id = validate_id(row.get("id") or None)
        except InvalidTick as exc:
            raise BadCsvRow(self.path, line, str(exc)) from exc
        if tick_id is None:
            # From the numbers as written, not as stored: a replay of the file gives the ids an
            # earlier run gave, whichever spelling tickstream stores (100.0 and 1e2 as 100).
            text = f"{line}|{symbol}|{sent_price}|{sent_size}|{ts_ms}"
            digest = hashlib.blake2b(text.encode(), digest_size=6)
            tick_id = f"csv-{digest.hexdigest()}:{line}"
        return Tick(symbol, price, size, ts_ms, tick_id)


def _number(text: str | None, reason: RejectReason) -> Decimal:
    try:
        return Decimal((text or "").strip())
    except InvalidOperation as exc:
        raise InvalidTick(reason, f"{reason.value.removeprefix('bad_')} {text!r} is not a number") from exc
