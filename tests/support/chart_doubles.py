"""Bars whose close says their version, a renderer that writes it as text, and a site that logs
when each chart was drawn: what the chart builder's cadence tests and handler tests draw with."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

from market.bars import BarAccumulator, StoredBar
from tests.support.memory_stores import MemorySite, WriteCounter

T0 = 1_793_629_800  # 2026-11-02 14:30 UTC


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
