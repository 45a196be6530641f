"""Routing by hash key, per-shard aggregation, and PutRecords requests within Kinesis's limits."""

from __future__ import annotations

import hashlib

import pytest

from market.kpl_records import decode_aggregate
from producer.batching import (
    MAX_BYTES_PER_PUT,
    MAX_RECORDS_PER_PUT,
    OutgoingRecord,
    ShardAggregators,
    put_requests,
)
from producer.shard_map import MAX_HASH_KEY, ShardMap, ShardRange


def even_shards(n: int) -> list[ShardRange]:
    step = (MAX_HASH_KEY + 1) // n
    return [
        ShardRange(f"shardId-{i:012d}", i * step, MAX_HASH_KEY if i == n - 1 else (i + 1) * step - 1)
        for i in range(n)
    ]


def test_key_goes_to_the_shard_whose_range_holds_its_md5() -> None:
    shard_map = ShardMap(even_shards(4))
    for key in ("AAPL", "MSFT", "X.Y-Z", "A+B"):
        value = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")
        shard = shard_map.shard_for(key)
        assert shard.starting_hash_key <= value <= shard.ending_hash_key


def test_a_map_with_a_gap_is_refused() -> None:
    shards = even_shards(3)
    with pytest.raises(ValueError, match="unassigned"):
        ShardMap([shards[0], shards[2]])


def test_each_aggregate_holds_only_keys_of_its_shard_and_is_pinned_to_it() -> None:
    shard_map = ShardMap(even_shards(4))
    aggregators = ShardAggregators(shard_map, max_bytes=2000)
    done = []
    for i in range(2000):
        full = aggregators.add(f"SYM{i % 13}", f'{{"n":{i}}}'.encode(), now=0.0)
        if full:
            done.append(full)
    done += aggregators.drain()
    assert sum(r.tick_count for r in done) == 2000
    for record in done:
        assert record.size <= 2000
        assert record.explicit_hash_key == str(shard_map.by_id[record.shard_id].starting_hash_key)
        for user in decode_aggregate(record.data):
            assert shard_map.shard_for(user.partition_key).shard_id == record.shard_id


def test_partly_full_aggregates_leave_after_the_linger_time() -> None:
    aggregators = ShardAggregators(ShardMap(even_shards(2)))
    aggregators.add("AAPL", b"{}", now=10.0)
    assert aggregators.due(now=10.125, linger_s=0.25) == []
    assert [r.tick_count for r in aggregators.due(now=10.25, linger_s=0.25)] == [1]
    assert aggregators.drain() == []


def record(size: int) -> OutgoingRecord:
    return OutgoingRecord("s", "k", None, b"x" * (size - 1), 1)


def test_put_requests_respect_500_records_and_5_mib() -> None:
    many = list(put_requests([record(10)] * 1201))
    assert [len(b) for b in many] == [MAX_RECORDS_PER_PUT, MAX_RECORDS_PER_PUT, 201]
    big = list(put_requests([record(1024 * 1024)] * 11))
    assert all(sum(r.size for r in b) <= MAX_BYTES_PER_PUT for b in big)
    assert [len(b) for b in big] == [5, 5, 1]


def test_a_record_over_1_mib_is_refused() -> None:
    with pytest.raises(ValueError, match="1 MiB"):
        list(put_requests([record(1024 * 1024 + 1)]))
