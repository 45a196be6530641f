"""The produce loop against a scripted stream port: what is retried, counted, and never lost."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from market.kpl_records import decode_aggregate
from market.ticks import Tick, encode_tick
from producer.batching import OutgoingRecord
from producer.kinesis_writer import KinesisUnavailable, PutOutcome, StreamNotFound
from producer.pace import Pace
from producer.pipeline import ProduceOptions, Producer, SourceFailed
from producer.shard_map import MAX_HASH_KEY, ShardMap, ShardRange, hash_key
from producer.sources import BadCsvRow, SyntheticMarket

HALF = (MAX_HASH_KEY + 1) // 2
TWO_SHARDS = [ShardRange("shard-a", 0, HALF - 1), ShardRange("shard-b", HALF, MAX_HASH_KEY)]


class ScriptedStream:
    """Answers PutRecords per entry through `decide`; records what was sent and what was stored."""

    def __init__(self, decide: Callable[[int, OutgoingRecord], PutOutcome | Exception]) -> None:
        self.decide = decide
        self.calls: list[list[bytes]] = []
        self.records: list[OutgoingRecord] = []
        self.stored: list[bytes] = []
        self.shard_reads = 0
        self.shards = TWO_SHARDS

    def open_shards(self) -> list[ShardRange]:
        self.shard_reads += 1
        return self.shards

    def put_records(self, records: Sequence[OutgoingRecord]) -> list[PutOutcome]:
        self.calls.append([r.data for r in records])
        self.records.extend(records)
        outcomes = []
        for record in records:
            decision = self.decide(len(self.calls), record)
            if isinstance(decision, Exception):
                raise decision
            if decision.ok:
                self.stored.append(record.data)
            outcomes.append(decision)
        return outcomes


def ok(record: OutgoingRecord) -> PutOutcome:
    return PutOutcome(record.shard_id, "1")


def ticks(count: int = 3000) -> SyntheticMarket:
    return SyntheticMarket(["AAPL", "MSFT", "GOOG", "AMZN"], 1000.0, 1, 1_795_000_000_000, count=count)


def producer(stream: ScriptedStream, **options: object) -> tuple[Producer, list[float]]:
    """A producer whose clock advances 1 ms per reading, so flushes happen at the same ticks every run."""
    sleeps: list[float] = []
    readings = itertools.count()
    settings = ProduceOptions(pace=Pace.MAX, max_aggregate_bytes=4000, **options)  # type: ignore[arg-type]
    clock = lambda: next(readings) / 1000  # noqa: E731
    return Producer(stream, settings, clock=clock, sleep=sleeps.append, jitter=random.Random(0)), sleeps


def stored_ticks(stream: ScriptedStream) -> Counter[bytes]:
    return Counter(u.data for blob in stream.stored for u in decode_aggregate(blob))


def test_only_failed_entries_are_resent_and_nothing_is_lost_or_doubled() -> None:
    flaky = random.Random(5)
    failures: Counter[str] = Counter()

    def decide(_call: int, record: OutgoingRecord) -> PutOutcome:
        if flaky.random() < 0.3:
            code = flaky.choice(["ProvisionedThroughputExceededException", "InternalFailure"])
            failures[code] += 1
            return PutOutcome(None, None, code, "injected")
        return ok(record)

    stream = ScriptedStream(decide)
    run, sleeps = producer(stream)
    stats = run.run(ticks().ticks())
    sent = Counter(data for call in stream.calls for data in call)
    assert stats.complete
    assert stats.ticks_accepted == 3000
    assert stats.ticks_failed == 0
    assert stats.entry_errors == failures
    assert sum(failures.values()) > 0
    assert sum(sent.values()) - len(sent) == sum(failures.values())  # one re-send per failure, no more
    assert stored_ticks(stream) == Counter(encode_tick(t) for t in ticks().ticks())
    assert sleeps
    assert all(0 <= s <= 5.0 for s in sleeps)


def test_a_record_failing_every_attempt_is_counted_as_failed() -> None:
    stream = ScriptedStream(lambda _c, r: PutOutcome(None, None, "InternalFailure", "down"))
    run, sleeps = producer(stream, max_attempts=4)
    stats = run.run(ticks(200).ticks())
    assert not stats.complete
    assert (stats.ticks_accepted, stats.ticks_failed) == (0, 200)
    assert stats.ticks_retried == 3 * 200
    assert len(sleeps) == 3 * len(stream.calls) // 4


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    stream = ScriptedStream(lambda _c, r: PutOutcome(None, None, "InternalFailure", "down"))
    run, sleeps = producer(stream, max_attempts=12, backoff_base_s=0.1, backoff_cap_s=1.0)
    run.run(ticks(1).ticks())
    assert len(sleeps) == 11
    assert all(s <= min(1.0, 0.1 * 2**i) for i, s in enumerate(sleeps))


def test_a_whole_call_failing_transiently_is_retried() -> None:
    def decide(call: int, record: OutgoingRecord) -> PutOutcome | Exception:
        return KinesisUnavailable("503") if call == 1 else ok(record)

    stream = ScriptedStream(decide)
    run, _ = producer(stream)
    stats = run.run(ticks(500).ticks())
    assert stats.complete
    assert stats.entry_errors["CallFailed"] > 0


def test_a_vanished_stream_fails_what_is_buffered_and_accounts_for_every_tick() -> None:
    def decide(call: int, record: OutgoingRecord) -> PutOutcome | Exception:
        return StreamNotFound("gone") if call >= 2 else ok(record)

    stream = ScriptedStream(decide)
    run, _ = producer(stream)
    stats = run.run(ticks(3000).ticks())
    assert stats.fatal_error == "gone"
    assert not stats.complete
    assert stats.ticks_accepted > 0
    assert stats.ticks_accepted + stats.ticks_failed == stats.ticks_read


def test_after_a_split_the_producer_follows_the_children() -> None:
    parent = [ShardRange("parent", 0, MAX_HASH_KEY)]
    children = TWO_SHARDS
    stream = ScriptedStream(lambda _c, r: ok(r))
    stream.shards = parent

    def answer_from_owner(_call: int, record: OutgoingRecord) -> PutOutcome:
        # As Kinesis does after the split: the open child owning the hash key takes the record.
        key = int(record.explicit_hash_key) if record.explicit_hash_key else hash_key(record.partition_key)
        owner = next(s for s in children if s.starting_hash_key <= key <= s.ending_hash_key)
        return PutOutcome(owner.shard_id, "1")

    stream.decide = answer_from_owner
    run, _ = producer(stream)
    stream.shards = children  # the split happens after the producer read the map
    stats = run.run(ticks(3000).ticks())
    assert stats.complete
    assert stats.shard_map_refreshes == 1
    assert stream.shard_reads == 2
    owners = ShardMap(children)
    rerouted = [r for r in stream.records if r.shard_id != "parent"]
    assert sum(r.tick_count for r in rerouted) > 2500
    for record in rerouted:
        assert {owners.shard_for(u.partition_key).shard_id for u in decode_aggregate(record.data)} == {
            record.shard_id
        }


def test_a_source_that_fails_midway_gets_its_earlier_ticks_sent_and_counted() -> None:
    """A bad CSV row after good ones: the good ones still buffered are flushed, then the error is
    raised with the stats, so the user is told what reached the stream (found by a helper: a row
    still in a partly full aggregate was silently dropped)."""
    given = list(ticks(5).ticks())

    def source() -> Iterator[Tick]:
        yield from given
        raise BadCsvRow(Path("ticks.csv"), 7, "price -1 must be greater than 0")

    stream = ScriptedStream(lambda _c, r: ok(r))
    run, _ = producer(stream)
    with pytest.raises(SourceFailed, match=r"ticks\.csv:7") as failed:
        run.run(source())
    assert stored_ticks(stream) == Counter(encode_tick(t) for t in given)
    assert failed.value.stats.ticks_read == 5
    assert failed.value.stats.ticks_accepted == 5
