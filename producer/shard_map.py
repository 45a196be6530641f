"""Which open shard a partition key hashes to, as Kinesis decides it: MD5 of the key as a 128-bit int."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

# Kinesis hash keys span [0, 2**128 - 1] (Kinesis API reference, HashKeyRange).
MAX_HASH_KEY = 2**128 - 1


@dataclass(frozen=True, slots=True)
class ShardRange:
    shard_id: str
    starting_hash_key: int
    ending_hash_key: int


def hash_key(partition_key: str) -> int:
    return int.from_bytes(hashlib.md5(partition_key.encode(), usedforsecurity=False).digest(), "big")


class ShardMap:
    """Open shards by hash-key range; refuses a map with gaps, which would route keys nowhere."""

    def __init__(self, open_shards: Iterable[ShardRange]) -> None:
        self.shards = sorted(open_shards, key=lambda s: s.starting_hash_key)
        if not self.shards:
            raise ValueError("the stream has no open shards")
        expected = 0
        for shard in self.shards:
            if shard.starting_hash_key != expected:
                raise ValueError(f"open shards leave hash keys from {expected} unassigned")
            expected = shard.ending_hash_key + 1
        if expected != MAX_HASH_KEY + 1:
            raise ValueError(f"open shards leave hash keys from {expected} unassigned")
        self._starts = [s.starting_hash_key for s in self.shards]
        self.by_id = {s.shard_id: s for s in self.shards}
        self._by_key: dict[str, ShardRange] = {}

    def shard_for(self, partition_key: str) -> ShardRange:
        shard = self._by_key.get(partition_key)
        if shard is None:
            shard = self.shards[bisect.bisect_right(self._starts, hash_key(partition_key)) - 1]
            self._by_key[partition_key] = shard
        return shard
