"""The aggregator's decisions, free of boto3 and of Lambda's event shape.

Exactly-once effect rests on three facts kept in the bars table:
- each 1m bar keeps, per shard, the position (sequence, sub-sequence) of the last tick it took
  from that shard (`_wm`): a redelivered, retried, bisected or replayed tick sits at or below
  it and is skipped;
- each 1m bar keeps hashes of the tick ids it took (`_ids`): the same tick sent again in
  another record is skipped; a tick's id always falls in its own 1m bar, so that is where the
  bar can look it up, however late the copy arrives (up to MAX_IDS_PER_BAR ids per bar);
- bars of longer intervals are built from 1m bars, one slot per minute, so folding the same
  1m bar in twice changes nothing, and a crash between two writes heals on the retry.
Known limit: two copies of one tick sent to two different shards (partition keys other than
the symbol) whose windows are open at the same time are both counted; copies on one shard,
or a copy arriving after the first one's bar was written, are dropped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, NamedTuple

from market.bars import BASE_INTERVAL, EXACT, BarAccumulator, TickKey, bucket_start
from market.kpl_records import CorruptAggregate, decode_aggregate, is_aggregated
from market.ticks import InvalidTick, Tick, decode_tick

# Hashes of 8 bytes keep an id set of 20,000 ticks near 180 KB, inside DynamoDB's 400 KB item
# limit (DynamoDB developer guide, service quotas: item size) with room for the bar itself.
ID_HASH_BYTES = 8
MAX_IDS_PER_BAR = 20_000
STATE_VERSION = 1

Position = tuple[int, int]  # (sequence number, sub-sequence number) within one shard


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kinesis record as the event delivered it."""

    shard_id: str
    sequence_number: str
    arrival_ms: int
    partition_key: str
    data: bytes

    @property
    def sequence(self) -> int:
        return int(self.sequence_number)


class PositionedTick(NamedTuple):
    """A tick and its place in the shard; a NamedTuple as one is built per tick."""

    tick: Tick
    position: Position
    arrival_ms: int

    @property
    def key(self) -> TickKey:
        return (self.tick.ts_ms, self.position[0], self.position[1])


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record (or one user record of an aggregate) that is not a tick, kept with its reason."""

    shard_id: str
    sequence_number: str
    sub_sequence: int | None
    arrival_ms: int
    reason: str
    message: str
    data: bytes


def explode(records: Iterable[RawRecord]) -> tuple[list[PositionedTick], list[Rejection]]:
    """Every record becomes ticks or rejections; a corrupt aggregate is rejected whole, never passed on."""
    ticks: list[PositionedTick] = []
    rejections: list[Rejection] = []
    for record in records:
        sequence = record.sequence
        if is_aggregated(record.data):
            try:
                users = decode_aggregate(record.data)
            except CorruptAggregate as exc:
                rejections.append(
                    Rejection(
                        record.shard_id,
                        record.sequence_number,
                        None,
                        record.arrival_ms,
                        "corrupt_aggregate",
                        str(exc),
                        record.data,
                    )
                )
                continue
            parts = [(u.sub_sequence, u.data) for u in users]
        else:
            parts = [(0, record.data)]
        for sub_sequence, data in parts:
            try:
                tick = decode_tick(data)
            except InvalidTick as exc:
                rejections.append(
                    Rejection(
                        record.shard_id,
                        record.sequence_number,
                        sub_sequence,
                        record.arrival_ms,
                        exc.reason.value,
                        str(exc),
                        data,
                    )
                )
                continue
            ticks.append(PositionedTick(tick, (sequence, sub_sequence), record.arrival_ms))
    return ticks, rejections


def id_hash(tick_id: str) -> bytes:
    return hashlib.blake2b(tick_id.encode(), digest_size=ID_HASH_BYTES).digest()


@dataclass
class MinuteBookkeeping:
    """What a stored 1m bar says about one shard: how far it got, and which tick ids it holds."""

    watermark: Position | None = None
    id_hashes: set[bytes] = field(default_factory=set)


@dataclass
class PartialMinute:
    """Ticks of one (symbol, minute) gathered from one shard in this window, not yet written."""

    acc: BarAccumulator
    low: Position
    high: Position
    id_hashes: set[bytes]


MinuteKey = tuple[str, int]  # (symbol, 1m bucket start)


@dataclass
class WindowState:
    """The partial 1m bars of one shard's window: what Lambda carries between invocations."""

    last: Position | None = None
    minutes: dict[MinuteKey, PartialMinute] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "last": position_text(self.last) if self.last else None,
            "bars": {
                f"{symbol}|{minute}": _partial_to_json(partial)
                for (symbol, minute), partial in self.minutes.items()
            },
        }

    @classmethod
    def from_json(cls, state: Mapping[str, Any] | None) -> WindowState:
        if not state:
            return cls()
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"window state version {state.get('v')!r} is not {STATE_VERSION}")
        minutes = {}
        for key, value in state["bars"].items():
            symbol, minute = key.rsplit("|", 1)
            minutes[(symbol, int(minute))] = _partial_from_json(value)
        return cls(position_parse(state["last"]) if state.get("last") else None, minutes)


@dataclass(frozen=True)
class AccumulateCounts:
    taken: int
    redelivered: int
    duplicates: int
    late: int


def accumulate(
    state: WindowState,
    ticks: Sequence[PositionedTick],
    stored: Mapping[MinuteKey, MinuteBookkeeping],
    late_after_ms: int,
) -> AccumulateCounts:
    """Adds ticks to the window, skipping those already taken here or in the stored 1m bar."""
    taken = redelivered = duplicates = late = 0
    for item in ticks:
        if state.last is not None and item.position <= state.last:
            redelivered += 1
            continue
        state.last = item.position
        tick = item.tick
        minute_key = (tick.symbol, bucket_start(tick.ts_ms, BASE_INTERVAL))
        book = stored.get(minute_key)
        if book is not None and book.watermark is not None and item.position <= book.watermark:
            redelivered += 1
            continue
        partial = state.minutes.get(minute_key)
        digest = id_hash(tick.id) if tick.id is not None else None
        if digest is not None and (
            (book is not None and digest in book.id_hashes)
            or (partial is not None and digest in partial.id_hashes)
        ):
            duplicates += 1
            continue
        if partial is None:
            state.minutes[minute_key] = PartialMinute(
                BarAccumulator.of_tick(tick.price, tick.size, item.key),
                item.position,
                item.position,
                {digest} if digest is not None else set(),
            )
        else:
            partial.acc.add_tick(tick.price, tick.size, item.key)
            partial.high = item.position
            if digest is not None:
                partial.id_hashes.add(digest)
        taken += 1
        if item.arrival_ms - tick.ts_ms > late_after_ms:
            late += 1
    return AccumulateCounts(taken, redelivered, duplicates, late)


@dataclass
class StoredBar:
    """A bars-table item in domain terms; bookkeeping fields are empty for a bar not yet stored."""

    symbol: str
    interval: str
    start: int
    acc: BarAccumulator | None = None
    watermarks: dict[str, Position] = field(default_factory=dict)
    id_hashes: set[bytes] = field(default_factory=set)
    slots: dict[int, tuple[int, Decimal, Decimal]] = field(default_factory=dict)
    version: int = 0


class ConcurrentWriter(RuntimeError):
    """Another shard wrote the same bar in between: the write is retried from fresh data."""


def apply_partial(stored: StoredBar, shard_id: str, partial: PartialMinute) -> bool:
    """Merges one shard's window into a 1m bar; False when the bar already holds it (a retry)."""
    watermark = stored.watermarks.get(shard_id)
    if watermark is not None and watermark >= partial.high:
        return False
    if watermark is not None and watermark >= partial.low:
        raise ConcurrentWriter(
            f"{stored.symbol} 1m {stored.start}: stored watermark {watermark} "
            f"inside window {partial.low}..{partial.high}"
        )
    if stored.acc is None:
        stored.acc = replace(partial.acc)
    else:
        stored.acc.merge(partial.acc)
    stored.watermarks[shard_id] = partial.high
    room = MAX_IDS_PER_BAR - len(stored.id_hashes)
    if room > 0:
        stored.id_hashes.update(sorted(partial.id_hashes)[:room])
    return True


def fold_minute(stored: StoredBar, minute: StoredBar) -> bool:
    """Puts a 1m bar into its slot of a longer bar; False when that slot already holds it."""
    if minute.acc is None:
        return False
    snapshot = (minute.acc.trades, minute.acc.volume, minute.acc.notional)
    previous = stored.slots.get(minute.start)
    if previous is not None and previous[0] >= snapshot[0]:
        return False
    stored.slots[minute.start] = snapshot
    if stored.acc is None:
        stored.acc = replace(minute.acc)
    else:
        stored.acc.merge_extremes(minute.acc)
    stored.acc.trades = sum(s[0] for s in stored.slots.values())
    stored.acc.volume = functools.reduce(EXACT.add, (s[1] for s in stored.slots.values()), Decimal(0))
    stored.acc.notional = functools.reduce(EXACT.add, (s[2] for s in stored.slots.values()), Decimal(0))
    return True


def id_hashes_to_json(hashes: Iterable[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in sorted(hashes)]


def position_text(position: Position) -> str:
    return f"{position[0]}.{position[1]}"


def position_parse(text: str) -> Position:
    sequence, sub = text.split(".")
    return int(sequence), int(sub)


def key_text(key: TickKey) -> str:
    return f"{key[0]}.{key[1]}.{key[2]}"


def key_parse(text: str) -> TickKey:
    ts, sequence, sub = text.split(".")
    return int(ts), int(sequence), int(sub)


def _partial_to_json(partial: PartialMinute) -> dict[str, Any]:
    acc = partial.acc
    return {
        "o": str(acc.open),
        "ok": key_text(acc.open_key),
        "c": str(acc.close),
        "ck": key_text(acc.close_key),
        "h": str(acc.high),
        "l": str(acc.low),
        "v": str(acc.volume),
        "n": acc.trades,
        "pv": str(acc.notional),
        "lo": position_text(partial.low),
        "hi": position_text(partial.high),
        "ids": id_hashes_to_json(partial.id_hashes),
    }


def _partial_from_json(value: Mapping[str, Any]) -> PartialMinute:
    acc = BarAccumulator(
        Decimal(value["o"]),
        key_parse(value["ok"]),
        Decimal(value["c"]),
        key_parse(value["ck"]),
        Decimal(value["h"]),
        Decimal(value["l"]),
        Decimal(value["v"]),
        int(value["n"]),
        Decimal(value["pv"]),
    )
    return PartialMinute(
        acc,
        position_parse(value["lo"]),
        position_parse(value["hi"]),
        {base64.b64decode(h) for h in value["ids"]},
    )
