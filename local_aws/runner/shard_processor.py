"""One shard of one event source mapping, processed as Lambda's stream poller does.

Kinesis and DynamoDB Streams mappings follow the same rules; only the event and the OnFailure
record differ in shape (events.py).

What AWS documents, and how it is read here (Lambda developer guide: "Using Lambda with
Kinesis", "Tumbling windows", "Partial batch response", "On-failure destinations"):
- Records of a shard go out in order, in batches of at most BatchSize records and 6 MB,
  after at most MaximumBatchingWindowInSeconds of gathering.
- Success checkpoints the batch. A partial batch response checkpoints before the lowest
  reported record and retries from it. An error, or a tumbling-window answer without `state`,
  fails the whole batch: with BisectBatchOnFunctionError the batch is split in two and each
  half tried (splitting does not use up retries); otherwise it is retried. After
  MaximumRetryAttempts retries, or once a record is older than MaximumRecordAgeInSeconds,
  the records are discarded and the OnFailure destination gets a metadata record.
- Tumbling windows group records by arrival time. `state` goes from one invoke of a window to
  the next; a final invoke (`isFinalInvokeForWindow`, no records) ends it, and only then is the
  window checkpointed. A state over 1 MB ends the window early (`isWindowTerminatedEarly`) and
  the window goes on with fresh state. A failed final invoke is retried until it succeeds,
  as processing "suspends ... until a successful invocation". A closed shard closes its window.
Choices where the guide is silent: a batch never spans two windows; a bisected half starts
its own retry count; `--until-idle` closes an open window once the shard is drained, as a
closed shard would, instead of waiting for the window's end on the clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from local_aws.runner.events import (
    Mapping,
    Outcome,
    SourceRecord,
    batch_event,
    judge,
    on_failure_message,
    payload_size,
    window_event,
)

# Lambda quotas (Lambda developer guide, "Lambda quotas"): 6 MB synchronous invocation payload;
# tumbling-window state up to 1 MB per shard ("Tumbling windows").
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_STATE_BYTES = 1024 * 1024
FINAL_INVOKE_BACKOFF_S = (0.1, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Fetch:
    records: list[SourceRecord]
    closed: bool  # the shard is closed and nothing is left after these records


class RecordSource(Protocol):
    def fetch(self, after: str | None, limit: int) -> Fetch: ...


class Invoker(Protocol):
    def invoke(self, event: dict[str, Any]) -> tuple[Any, str | None]: ...


@dataclass
class ShardCheckpoint:
    sequence: str | None = None
    finished: bool = False


class CheckpointStore(Protocol):
    def load(self, shard_id: str) -> ShardCheckpoint: ...

    def save(self, shard_id: str, checkpoint: ShardCheckpoint) -> None: ...


class FailureDestination(Protocol):
    def send(self, message: dict[str, Any]) -> None: ...


@dataclass
class ProcessorStats:
    invokes: int = 0
    records_done: int = 0
    records_discarded: int = 0
    failure_messages: int = 0
    windows_closed: int = 0
    windows_terminated_early: int = 0
    bisections: int = 0
    windows_left_open: int = 0  # a stop came while a window's final invoke kept failing


class ShardProcessor:
    def __init__(
        self,
        mapping: Mapping,
        shard_id: str,
        source: RecordSource,
        invoker: Invoker,
        checkpoints: CheckpointStore,
        destination: FailureDestination | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        stop: threading.Event | None = None,
    ) -> None:
        self.mapping = mapping
        self._stop = stop
        self.shard_id = shard_id
        self._source = source
        self._invoker = invoker
        self._checkpoints = checkpoints
        self._destination = destination
        self._clock = clock
        self._sleep = sleep
        saved = checkpoints.load(shard_id)
        self.finished = saved.finished
        self._fetched_after = saved.sequence
        self._buffer: list[SourceRecord] = []
        self._buffered_since: float | None = None
        self._closed = False
        self._window_start: int | None = None
        self._state: dict[str, Any] = {}
        self._window_last: str | None = None
        self.stats = ProcessorStats()

    @property
    def windowed(self) -> bool:
        return self.mapping.tumbling_window_s > 0

    def step(self, draining: bool) -> bool:
        """Does one unit of work (a batch, a window's end, the shard's end); False when there was none."""
        if self.finished:
            return False
        self._fill()
        if self._discard_expired():
            return True
        if self._buffer:
            head_window = self._window_of(self._buffer[0])
            if self._window_start is not None and head_window != self._window_start:
                self._close_window(early=False)
                return True
            if not self._batch_ready(draining):
                return False
            self._process(self._take_batch())
            return True
        if self._window_start is not None and (
            self._closed or draining or self._clock() >= self._window_start + self.mapping.tumbling_window_s
        ):
            self._close_window(early=False)
            return True
        if self._closed:
            self.finished = True
            self._checkpoints.save(self.shard_id, ShardCheckpoint(self._fetched_after, finished=True))
            return True
        return False

    def _window_of(self, record: SourceRecord) -> int | None:
        if not self.windowed:
            return None
        width = self.mapping.tumbling_window_s
        return int(record.arrival // width * width)

    def _fill(self) -> None:
        room = self.mapping.batch_size - len(self._buffer)
        if room <= 0 or self._closed:
            return
        fetched = self._source.fetch(self._fetched_after, room)
        if fetched.records:
            if not self._buffer:
                self._buffered_since = self._clock()
            self._buffer.extend(fetched.records)
            self._fetched_after = fetched.records[-1].sequence_number
        self._closed = fetched.closed

    def _batch_ready(self, draining: bool) -> bool:
        if draining or self._closed or len(self._buffer) >= self.mapping.batch_size:
            return True
        if self.windowed and self._window_of(self._buffer[-1]) != self._window_of(self._buffer[0]):
            return True
        if sum(payload_size(r) for r in self._buffer) >= MAX_PAYLOAD_BYTES:
            return True
        since = self._buffered_since if self._buffered_since is not None else self._clock()
        return self._clock() - since >= self.mapping.batching_window_s

    def _take_batch(self) -> list[SourceRecord]:
        window = self._window_of(self._buffer[0])
        batch: list[SourceRecord] = []
        size = 0
        for record in self._buffer:
            if len(batch) == self.mapping.batch_size or self._window_of(record) != window:
                break
            if batch and size + payload_size(record) > MAX_PAYLOAD_BYTES:
                break
            batch.append(record)
            size += payload_size(record)
        del self._buffer[: len(batch)]
        self._buffered_since = self._clock() if self._buffer else None
        return batch

    def _discard_expired(self) -> bool:
        """Records older than MaximumRecordAgeInSeconds leave for the OnFailure destination unread."""
        limit = self.mapping.max_record_age_s
        if limit < 0 or not self._buffer:
            return False
        oldest_allowed = self._clock() - limit
        expired = 0
        while expired < len(self._buffer) and self._buffer[expired].arrival < oldest_allowed:
            expired += 1
        if not expired:
            return False
        records = self._buffer[:expired]
        del self._buffer[:expired]
        self._discard(records, "RecordAgeExceeded", 0, None)
        return True

    def _invoke(self, records: list[SourceRecord], final: bool, early: bool) -> tuple[Any, str | None]:
        self.stats.invokes += 1
        if self.windowed:
            assert self._window_start is not None
            event = window_event(
                self.mapping, self.shard_id, records, self._window_start, self._state, final, early
            )
        else:
            event = batch_event(self.mapping, records)
        return self._invoker.invoke(event)

    def _process(self, batch: list[SourceRecord]) -> None:
        if self.windowed and self._window_start is None:
            self._window_start = self._window_of(batch[0])
            self._state = {}
        pending = [batch]
        while pending:
            records = pending.pop(0)
            invokes = 0
            while records:
                if self._older_than_allowed(records[0]):
                    self._discard(records, "RecordAgeExceeded", invokes, None)
                    break
                response, error = self._invoke(records, final=False, early=False)
                invokes += 1
                verdict = judge(self.mapping, records, response, error, self.windowed)
                if verdict.outcome is Outcome.SUCCESS:
                    self._done(records, verdict.state)
                    break
                if verdict.outcome is Outcome.PARTIAL:
                    assert verdict.failed_from is not None
                    self._done(records[: verdict.failed_from], verdict.state)
                    records = records[verdict.failed_from :]
                    if self._retries_used_up(invokes):
                        self._discard(records, "RetryAttemptsExhausted", invokes, None)
                        break
                    continue
                if self.mapping.bisect and len(records) > 1:
                    middle = len(records) // 2
                    pending[0:0] = [records[:middle], records[middle:]]
                    self.stats.bisections += 1
                    break
                if self._retries_used_up(invokes):
                    self._discard(records, "RetryAttemptsExhausted", invokes, verdict.reason)
                    break

    def _older_than_allowed(self, record: SourceRecord) -> bool:
        limit = self.mapping.max_record_age_s
        return limit >= 0 and record.arrival < self._clock() - limit

    def _retries_used_up(self, invokes: int) -> bool:
        return self.mapping.max_retries >= 0 and invokes > self.mapping.max_retries

    def _done(self, records: list[SourceRecord], state: dict[str, Any] | None) -> None:
        if not records:
            if state is not None:
                self._state = state
            return
        self.stats.records_done += len(records)
        self._advance(records[-1].sequence_number)
        if state is not None:
            self._state = state
            if len(json.dumps(state).encode()) > MAX_STATE_BYTES:
                self._close_window(early=True)

    def _discard(self, records: list[SourceRecord], condition: str, invokes: int, error: str | None) -> None:
        self.stats.records_discarded += len(records)
        if self._destination is not None:
            self._destination.send(
                on_failure_message(
                    self.mapping, self.shard_id, records, condition, invokes, error, self._clock()
                )
            )
            self.stats.failure_messages += 1
        self._advance(records[-1].sequence_number)

    def _advance(self, sequence: str) -> None:
        """Outside a window the checkpoint moves now; inside one, when the window ends."""
        if self.windowed and self._window_start is not None:
            self._window_last = sequence
        else:
            self._checkpoints.save(self.shard_id, ShardCheckpoint(sequence))

    def _close_window(self, early: bool) -> None:
        """Invokes the window's final call until it succeeds: its writes are the window's. A stop
        ends the tries and leaves the window open and its checkpoint where it was, so the next
        run reads the window's records again (a replay, which changes no bar)."""
        attempt = 0
        while True:
            response, error = self._invoke([], final=True, early=early)
            verdict = judge(self.mapping, [], response, error, windowed=True)
            if verdict.outcome is Outcome.SUCCESS:
                break
            pause = FINAL_INVOKE_BACKOFF_S[min(attempt, len(FINAL_INVOKE_BACKOFF_S) - 1)]
            if self._stop is not None and self._stop.is_set():
                self.stats.windows_left_open += 1
                return
            self._sleep(pause)
            attempt += 1
        if self._window_last is not None:
            self._checkpoints.save(self.shard_id, ShardCheckpoint(self._window_last))
        self._state = {}
        if early:
            self.stats.windows_terminated_early += 1
        else:
            self.stats.windows_closed += 1
            self._window_start = None
            self._window_last = None
