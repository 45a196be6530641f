"""The produce loop: ticks in, PutRecords out, nothing dropped without being counted.

Only entries that PutRecords reports as failed are re-sent, with capped exponential backoff
and full jitter; a whole call that fails transiently counts as all its entries failed. A
shard answering for a record meant for another shard means the stream was resharded: the
shard map is read again and aggregation follows it from the next record on.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from market.kpl_records import DEFAULT_MAX_AGGREGATE_BYTES
from market.ticks import Tick, encode_tick
from producer.batching import (
    MAX_RECORDS_PER_PUT,
    OutgoingRecord,
    ShardAggregators,
    plain_record,
    put_requests,
)
from producer.kinesis_writer import KinesisError, KinesisUnavailable, PutOutcome
from producer.pace import Pace
from producer.shard_map import ShardMap, ShardRange

# The KPL's RecordMaxBufferedTime default (amazon-kinesis-producer default_config.properties): 100 ms.
DEFAULT_LINGER_S = 0.1
PROGRESS_EVERY_S = 0.25


class StreamPort(Protocol):
    def open_shards(self) -> list[ShardRange]: ...

    def put_records(self, records: Sequence[OutgoingRecord]) -> list[PutOutcome]: ...


@dataclass(frozen=True)
class ProduceOptions:
    aggregate: bool = True
    pace: Pace = Pace.REALTIME
    linger_s: float = DEFAULT_LINGER_S
    max_aggregate_bytes: int = DEFAULT_MAX_AGGREGATE_BYTES
    max_attempts: int = 10
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 5.0


@dataclass
class ProduceStats:
    ticks_read: int = 0
    ticks_accepted: int = 0
    ticks_retried: int = 0
    ticks_failed: int = 0
    records_accepted: int = 0
    put_calls: int = 0
    shard_map_refreshes: int = 0
    elapsed_s: float = 0.0
    entry_errors: Counter[str] = field(default_factory=Counter)
    accepted_by_shard: Counter[str] = field(default_factory=Counter)
    fatal_error: str | None = None

    @property
    def complete(self) -> bool:
        """True when every tick read was accepted by Kinesis."""
        return self.fatal_error is None and self.ticks_failed == 0 and self.ticks_accepted == self.ticks_read


class SourceFailed(Exception):
    """The tick source raised (a bad CSV row, an unreadable file): the ticks it gave before were
    sent first, and `stats` says what became of them."""

    def __init__(self, stats: ProduceStats, cause: Exception) -> None:
        super().__init__(str(cause))
        self.stats = stats


class Producer:
    def __init__(
        self,
        stream: StreamPort,
        options: ProduceOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: random.Random | None = None,
    ) -> None:
        self._stream = stream
        self._options = options
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter or random.Random()
        self.stats = ProduceStats()
        self._aggregators = ShardAggregators(ShardMap(stream.open_shards()), options.max_aggregate_bytes)
        self._pending: list[OutgoingRecord] = []
        self._refresh_needed = False
        self._next_flush_check = 0.0

    def run(
        self,
        ticks: Iterable[Tick],
        stop: threading.Event | None = None,
        on_progress: Callable[[ProduceStats], None] | None = None,
    ) -> ProduceStats:
        stop = stop or threading.Event()
        started = self._clock()
        next_progress = started
        first_ts: int | None = None
        failure: list[Exception] = []
        try:
            for tick in _until_failure(ticks, failure):
                if stop.is_set():
                    break
                if self._options.pace is Pace.REALTIME:
                    first_ts = tick.ts_ms if first_ts is None else first_ts
                    self._wait_until(started + (tick.ts_ms - first_ts) / 1000, stop)
                self._add(tick)
                now = self._clock()
                if now >= self._next_flush_check or len(self._pending) >= MAX_RECORDS_PER_PUT:
                    self._flush_due(now)
                if on_progress is not None and now >= next_progress:
                    self.stats.elapsed_s = now - started
                    on_progress(self.stats)
                    next_progress = now + PROGRESS_EVERY_S
            self._pending.extend(self._aggregators.drain())
            self._send_pending()
        except KinesisError as exc:
            self._fail_everything_buffered(exc)
        self.stats.elapsed_s = self._clock() - started
        if on_progress is not None:
            on_progress(self.stats)
        if failure:
            raise SourceFailed(self.stats, failure[0]) from failure[0]
        return self.stats

    def _add(self, tick: Tick) -> None:
        data = encode_tick(tick)
        self.stats.ticks_read += 1
        if self._options.aggregate:
            full = self._aggregators.add(tick.symbol, data, self._clock())
            if full is not None:
                self._pending.append(full)
        else:
            self._pending.append(plain_record(self._aggregators.shard_map, tick.symbol, data))

    def _wait_until(self, deadline: float, stop: threading.Event) -> None:
        """Sleeps in short steps so lingering aggregates still go out and a stop is noticed."""
        while not stop.is_set():
            now = self._clock()
            if now >= deadline:
                return
            if now >= self._next_flush_check:
                self._flush_due(now)
            self._sleep(min(deadline - now, self._options.linger_s / 2, 0.05))

    def _flush_due(self, now: float) -> None:
        self._pending.extend(self._aggregators.due(now, self._options.linger_s))
        self._next_flush_check = now + self._options.linger_s / 4
        self._send_pending()

    def _send_pending(self) -> None:
        batches = list(put_requests(self._pending))
        self._pending = []
        for index, batch in enumerate(batches):
            try:
                self._put_with_retry(batch)
            except KinesisError:
                self._pending = [r for later in batches[index + 1 :] for r in later]
                raise
        if self._refresh_needed:
            self._refresh_shard_map()

    def _put_with_retry(self, batch: list[OutgoingRecord]) -> None:
        attempt = 1
        while True:
            try:
                outcomes = self._stream.put_records(batch)
            except KinesisUnavailable as exc:
                outcomes = [PutOutcome(None, None, "CallFailed", str(exc))] * len(batch)
            except KinesisError:
                self.stats.ticks_failed += sum(r.tick_count for r in batch)
                raise
            self.stats.put_calls += 1
            failed: list[OutgoingRecord] = []
            for record, outcome in zip(batch, outcomes, strict=True):
                if outcome.ok:
                    self.stats.ticks_accepted += record.tick_count
                    self.stats.records_accepted += 1
                    self.stats.accepted_by_shard[outcome.shard_id or "?"] += record.tick_count
                    # Only a record routed by the current map says the map is stale; ones drained
                    # from an older map are expected to land elsewhere.
                    current = self._aggregators.shard_map.by_id
                    if outcome.shard_id != record.shard_id and record.shard_id in current:
                        self._refresh_needed = True
                else:
                    failed.append(record)
                    self.stats.entry_errors[outcome.error_code or "Unknown"] += 1
            if not failed:
                return
            failed_ticks = sum(r.tick_count for r in failed)
            if attempt >= self._options.max_attempts:
                self.stats.ticks_failed += failed_ticks
                return
            self._sleep(self._backoff(attempt))
            self.stats.ticks_retried += failed_ticks
            attempt += 1
            batch = failed

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._options.backoff_cap_s, self._options.backoff_base_s * 2 ** (attempt - 1))
        return self._jitter.uniform(0, ceiling)

    def _refresh_shard_map(self) -> None:
        self._refresh_needed = False
        self._pending.extend(self._aggregators.drain())
        self._aggregators = ShardAggregators(
            ShardMap(self._stream.open_shards()), self._options.max_aggregate_bytes
        )
        self.stats.shard_map_refreshes += 1
        self._send_pending()

    def _fail_everything_buffered(self, exc: KinesisError) -> None:
        buffered = self._pending + self._aggregators.drain()
        self._pending = []
        self.stats.ticks_failed += sum(r.tick_count for r in buffered)
        self.stats.fatal_error = str(exc)


def _until_failure(ticks: Iterable[Tick], failure: list[Exception]) -> Iterator[Tick]:
    """The source's ticks until it raises; what it raised goes to `failure`, so that the ticks it
    gave before are still flushed and counted rather than dropped from the buffers."""
    source = iter(ticks)
    while True:
        try:
            tick = next(source)
        except StopIteration:
            return
        except Exception as exc:  # any: run() raises it again, wrapped, once the buffers are flushed
            failure.append(exc)
            return
        yield tick
