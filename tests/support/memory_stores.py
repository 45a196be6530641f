"""In-memory stand-ins for the ledger, the bars table, the data lake and the site, keeping
DynamoDB's and S3's conditional-write rules.

For unit tests of the service's logic only; the integration tests run the real adapters on moto.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from functions.aggregator.data_lake import bar_rows_key, day_of
from functions.aggregator.ledger import LedgerError, VersionConflict
from functions.aggregator.logic import MinuteBookkeeping, MinuteKey, Rejection
from market.bars import BASE_INTERVAL, INTERVAL_SECONDS, StoredBar
from stores.site_bucket import ManifestChanged, SiteError
from stores.site_content import Manifest, SymbolEntry, entries_from_manifest, manifest_json


class ProcessKilled(BaseException):
    """The process ends here, as SIGKILL ends it: a BaseException, so no `except Exception` of the
    code under test can catch it and carry on."""


class WriteCounter:
    """Counts the writes of both stores, in order; kills the process at write `kill_at` (0-based),
    before it lands."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.writes = 0
        self.kill_at = kill_at

    def write(self) -> None:
        if self.kill_at is not None and self.writes == self.kill_at:
            self.kill_at = None
            raise ProcessKilled(f"killed at write {self.writes}")
        self.writes += 1


class MemoryLedger:
    def __init__(self, counter: WriteCounter | None = None) -> None:
        self.items: dict[tuple[str, str, int], StoredBar] = {}
        self.puts = 0
        self.fail_after: int | None = None  # raise on the put after this many more
        self.counter = counter or WriteCounter()
        self.projections = MemoryBars(self.counter)  # the bars table, sharing the write count
        self.bookkeeping_reads = 0  # items asked for by minute_bookkeeping

    def minute_bookkeeping(
        self, shard_id: str, keys: Iterable[MinuteKey]
    ) -> dict[MinuteKey, MinuteBookkeeping]:
        found = {}
        keys = list(keys)
        self.bookkeeping_reads += len(keys)
        for symbol, minute in keys:
            bar = self.items.get((symbol, BASE_INTERVAL, minute))
            if bar is not None:
                found[(symbol, minute)] = MinuteBookkeeping(bar.watermarks.get(shard_id), set(bar.id_hashes))
        return found

    def get_bars(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], StoredBar]:
        return {key: copy.deepcopy(self.items[key]) if key in self.items else StoredBar(*key) for key in keys}

    def get_bar(self, symbol: str, interval: str, start: int) -> StoredBar:
        return self.get_bars([(symbol, interval, start)])[(symbol, interval, start)]

    def put_bar(self, bar: StoredBar, now: float | None = None) -> None:
        if self.fail_after is not None:
            if self.fail_after == 0:
                self.fail_after = None
                raise LedgerError("injected crash between two writes")
            self.fail_after -= 1
        key = (bar.symbol, bar.interval, bar.start)
        current = self.items.get(key)
        if (current.version if current else 0) != bar.version:
            raise VersionConflict(str(key))
        self.counter.write()
        bar.version += 1
        self.items[key] = copy.deepcopy(bar)
        self.puts += 1


class MemoryBars:
    """The public projections, each put only over an older version (as the table's condition says)."""

    def __init__(self, counter: WriteCounter | None = None) -> None:
        self.items: dict[tuple[str, str, int], StoredBar] = {}
        self.counter = counter or WriteCounter()
        self.queries = 0

    def put_projections(self, bars: Iterable[StoredBar], updated_at: int) -> int:
        return sum(self.put_projection(bar, updated_at) for bar in bars if bar.acc is not None)

    def put_projection(self, bar: StoredBar, updated_at: int) -> bool:
        self.counter.write()
        key = (bar.symbol, bar.interval, bar.start)
        current = self.items.get(key)
        if current is not None and current.version >= bar.version:
            return False
        self.items[key] = StoredBar(*key, copy.deepcopy(bar.acc), version=bar.version)
        return True

    def bars_between(self, symbol: str, interval: str, first: int, last: int) -> list[StoredBar]:
        self.queries += 1
        span = INTERVAL_SECONDS[interval]
        keys = ((symbol, interval, start) for start in range(first - first % span, last + 1, span))
        return [copy.deepcopy(self.items[key]) for key in keys if key in self.items and key[2] >= first]


class MemoryDataLake:
    def __init__(self, counter: WriteCounter | None = None) -> None:
        self.quarantined: dict[tuple[str, str, int | None], Rejection] = {}
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.counter = counter or WriteCounter()

    def quarantine(self, rejections: Iterable[Rejection]) -> int:
        count = 0
        for r in rejections:
            self.counter.write()
            self.quarantined[(r.shard_id, r.sequence_number, r.sub_sequence)] = r
            count += 1
        return count

    def put_window_rows(self, shard_id: str, window: str, rows: Iterable[dict[str, Any]]) -> int:
        """The objects DataLake puts, keyed as it keys them: one write per (interval, day)."""
        grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            grouped.setdefault((row["interval"], day_of(row["start"])), []).append(row)
        for (interval, day), group in sorted(grouped.items()):
            self.counter.write()
            self.objects[bar_rows_key(interval, day, shard_id, window, group)] = group
        return len(grouped)

    def latest_rows(self) -> dict[tuple[str, str, int], dict[str, Any]]:
        latest: dict[tuple[str, str, int], dict[str, Any]] = {}
        for group in self.objects.values():
            for row in group:
                bar = (row["symbol"], row["interval"], row["start"])
                if bar not in latest or latest[bar]["version"] < row["version"]:
                    latest[bar] = row
        return latest


class MemorySite:
    """The site bucket as S3 keeps it: objects with ETags, the manifest written only over the version
    read (If-Match), or only when absent (If-None-Match: *). `intruder` runs once before the next
    publish, as another invocation writing meanwhile; `fail_next_page` fails the next page write."""

    def __init__(self, counter: WriteCounter | None = None) -> None:
        self.counter = counter or WriteCounter()
        self.charts: dict[tuple[str, str], tuple[bytes, int]] = {}  # -> (png, when drawn)
        self.manifest: bytes | None = None
        self.etag = 0
        self.intruder: Callable[[], None] | None = None
        self.clock = 0
        self.page: dict[str, SymbolEntry] = {}  # the entries index.html shows
        self.fail_next_page = False

    def put_chart(self, symbol: str, interval: str, png: bytes) -> None:
        self.counter.write()
        self.charts[(symbol, interval)] = (png, self.clock)

    def read_manifest(self) -> Manifest:
        if self.manifest is None:
            return Manifest({}, None)
        entries, problems = entries_from_manifest(self.manifest)
        return Manifest(entries, f'"{self.etag}"', tuple(problems))

    def publish(self, entries: dict[str, SymbolEntry], generated_at: int, read: str | None) -> None:
        """The page, then the manifest, as SiteBucket writes them; each a write that can fail or be killed."""
        if self.intruder is not None:
            intruder, self.intruder = self.intruder, None
            intruder()
        self.counter.write()
        if self.fail_next_page:
            self.fail_next_page = False
            raise SiteError("writing index.html: SlowDown")
        self.page = dict(entries)
        current = None if self.manifest is None else f'"{self.etag}"'
        if read != current:
            raise ManifestChanged("manifest.json changed since it was read")
        self.counter.write()
        self.manifest = manifest_json(entries.values(), generated_at)
        self.etag += 1

    def entries(self) -> dict[str, SymbolEntry]:
        return self.read_manifest().entries
