"""The aggregator's decisions, free of boto3 and of Lambda's event shape.

Exactly-once effect rests on three facts kept in the ledger (functions.aggregator.ledger):
- each 1m bar keeps, per shard, the position (sequence, sub-sequence) of the last tick it took
  from that shard (`_wm`): a redelivered, retried, bisected or replayed tick sits at or below
  it and is skipped;
- each 1m bar keeps hashes of the tick ids it took (`_ids`): the same tick sent again in
  another record is skipped; a tick's id always falls in its own 1m bar, so that is where the
  bar can look it up, however late the copy arrives (up to MAX_IDS_PER_BAR ids per bar);
- bars of longer intervals are folded whole from the published shorter bars in them (1m -> 5m,
  5m -> 1h, 1h -> 1d), read together, and versioned by the sum of their versions: folding again
  changes nothing, and a fold is only written over an older one. A minute whose ticks come again
  after this shard wrote them (a retry after a crash or fault between two writes, a replay) is
  folded into its longer bars and S3 rows once more (WindowState.refold): what the crash left
  unwritten is written then.
A redrive (`tickstream redrive`) brings back records Lambda discarded: below the watermarks, a
tick's id alone decides, and a tick without one is left out and counted, never risked twice.
Known limit: two copies of one tick sent to two different shards (partition keys other than
the symbol) whose windows are open at the same time are both counted; copies on one shard,
or a copy arriving after the first one's bar was written, are dropped.
"""

from __future__ import annotations

import base64
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from hashlib import blake2b
from itertools import islice, repeat
from operator import attrgetter, floordiv, gt, itemgetter, mul, sub
from typing import Any

from market.bars import BASE_INTERVAL, EXACT, INTERVAL_SECONDS, BarAccumulator, Position, StoredBar, TickKey
from market.kpl_records import CorruptAggregate, is_aggregated, user_record_data
from market.tick_batches import TickColumns, decode_columns
from market.ticks import (
    MAX_AHEAD_OF_ARRIVAL_MS,
    ZERO,
    InvalidTick,
    RejectReason,
    Tick,
    check_not_ahead,
    decode_tick,
)

# Hashes of 8 bytes keep an id set of 20,000 ticks near 180 KB, inside DynamoDB's 400 KB item
# limit (DynamoDB developer guide, service quotas: item size) with room for the bar itself.
ID_HASH_BYTES = 8
MAX_IDS_PER_BAR = 20_000
STATE_VERSION = 1
MINUTE_MS = INTERVAL_SECONDS[BASE_INTERVAL] * 1000


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


@dataclass(slots=True)
class ShardTicks:
    """The ticks of one shard's batch as parallel columns, in shard order.

    Columns rather than an object per tick: the aggregator's CPU path works on whole columns in
    C (see market.tick_batches), and the position of the n-th tick is (sequences[n], subs[n]).
    """

    symbols: list[str] = field(default_factory=list)
    prices: list[Decimal] = field(default_factory=list)
    sizes: list[Decimal] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)
    subs: list[int] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.symbols)

    def add_columns(self, columns: TickColumns, sequence: int, arrival_ms: int) -> None:
        """The ticks of one aggregated record, its user records numbered from 0."""
        count = len(columns)
        self.symbols += columns.symbols
        self.prices += columns.prices
        self.sizes += columns.sizes
        self.ts_ms += columns.ts_ms
        self.ids += columns.ids
        self.sequences += repeat(sequence, count)
        self.subs += range(count)
        self.arrivals += repeat(arrival_ms, count)

    def add_tick(self, tick: Tick, position: Position, arrival_ms: int) -> None:
        self.symbols.append(tick.symbol)
        self.prices.append(tick.price)
        self.sizes.append(tick.size)
        self.ts_ms.append(tick.ts_ms)
        self.ids.append(tick.id)
        self.sequences.append(position[0])
        self.subs.append(position[1])
        self.arrivals.append(arrival_ms)

    def tick(self, index: int) -> Tick:
        return Tick(
            self.symbols[index], self.prices[index], self.sizes[index], self.ts_ms[index], self.ids[index]
        )

    def minute_keys(self) -> set[MinuteKey]:
        """The (symbol, 1m bucket) of every tick: the stored bars the batch must be checked against."""
        minutes = map(floordiv, self.ts_ms, repeat(MINUTE_MS))
        return {
            (symbol, minute * MINUTE_MS // 1000)
            for symbol, minute in set(zip(self.symbols, minutes, strict=True))
        }

    def position(self, index: int) -> Position:
        return (self.sequences[index], self.subs[index])

    def key(self, index: int) -> TickKey:
        return (self.ts_ms[index], self.sequences[index], self.subs[index])


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


class OutOfOrderRecords(ValueError):
    """A batch whose sequence numbers do not increase: Kinesis never delivers one."""


def explode(records: Iterable[RawRecord]) -> tuple[ShardTicks, list[Rejection]]:
    """Every record becomes ticks or rejections; a corrupt aggregate is rejected whole, never passed on."""
    ticks = ShardTicks()
    rejections: list[Rejection] = []
    previous = -1
    for record in records:
        sequence = record.sequence
        if sequence <= previous:
            raise OutOfOrderRecords(f"record {sequence} follows record {previous} in one batch")
        previous = sequence
        if is_aggregated(record.data):
            try:
                datas = user_record_data(record.data)
            except CorruptAggregate as exc:
                rejections.append(
                    Rejection(
                        record.shard_id,
                        record.sequence_number,
                        None,
                        record.arrival_ms,
                        RejectReason.CORRUPT_AGGREGATE,
                        str(exc),
                        record.data,
                    )
                )
                continue
            columns = decode_columns(datas)
            if columns is not None and max(columns.ts_ms) <= record.arrival_ms + MAX_AHEAD_OF_ARRIVAL_MS:
                ticks.add_columns(columns, sequence, record.arrival_ms)
                continue
        else:
            datas = [record.data]
        for sub_sequence, data in enumerate(datas):
            try:
                tick = check_not_ahead(decode_tick(data), record.arrival_ms)
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
            ticks.add_tick(tick, (sequence, sub_sequence), record.arrival_ms)
    return ticks, rejections


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
    # 1m bars this shard had already written when its ticks came again (a retry after a crash or
    # a fault, a replay): the flush folds them into the longer bars and S3 rows once more, which
    # changes nothing that was written and writes what the crash left unwritten.
    refold: set[MinuteKey] = field(default_factory=set)
    # 1m bars the ledger did not hold when this window first met them. Only this shard writes its
    # own watermark, and it writes at the end of the window, so they are not read again for each
    # batch: one read per minute and window instead of one per batch. (Another shard's copies of
    # a tick are the known limit either way; a write that lands meanwhile fails its condition.)
    absent: set[MinuteKey] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "last": position_text(self.last) if self.last else None,
            "bars": {
                f"{symbol}|{minute}": _partial_to_json(partial)
                for (symbol, minute), partial in self.minutes.items()
            },
            "refold": sorted(f"{symbol}|{minute}" for symbol, minute in self.refold),
            "absent": sorted(f"{symbol}|{minute}" for symbol, minute in self.absent),
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
        refold = {(s, int(m)) for s, m in (key.rsplit("|", 1) for key in state.get("refold", []))}
        absent = {(s, int(m)) for s, m in (key.rsplit("|", 1) for key in state.get("absent", []))}
        return cls(position_parse(state["last"]) if state.get("last") else None, minutes, refold, absent)


@dataclass(frozen=True)
class AccumulateCounts:
    taken: int
    redelivered: int
    duplicates: int
    late: int
    # Redrive only: ticks at or below a bar's watermark that carry no id (or whose bar's id set
    # is full), so nothing can tell whether the bar holds them; left out rather than risk a double.
    unknowable: int = 0


def accumulate(
    state: WindowState,
    ticks: ShardTicks,
    stored: Mapping[MinuteKey, MinuteBookkeeping],
    late_after_ms: int,
    redrive: bool = False,
) -> AccumulateCounts:
    """Adds ticks to the window, skipping those already taken here or in the stored 1m bar.

    Ticks are grouped by (symbol, minute) in one pass; each group is then added as a whole
    (see _group_bar), which is what keeps this path fast.

    A redrive brings back records Lambda discarded to the OnFailure destination. They sit below
    the watermarks of the bars that later records reached, so there a tick's id alone says
    whether the bar holds it: ticks with an id the bar does not know are taken, the others not.
    """
    total = len(ticks)
    start = _first_untaken(ticks, state.last)
    redelivered = start
    if start == total:
        return AccumulateCounts(0, redelivered, 0, 0)
    state.last = ticks.position(total - 1)
    groups: defaultdict[tuple[str, int], list[int]] = defaultdict(list)
    minutes = map(floordiv, islice(ticks.ts_ms, start, None), repeat(MINUTE_MS))
    for index, group_key in enumerate(zip(islice(ticks.symbols, start, None), minutes, strict=True), start):
        groups[group_key].append(index)
    taken = duplicates = late = unknowable = 0
    for (symbol, minute_number), arrived in groups.items():
        minute_key = (symbol, minute_number * MINUTE_MS // 1000)
        book = stored.get(minute_key)
        members = arrived
        if book is not None and book.watermark is not None:
            unseen = [i for i in members if ticks.position(i) > book.watermark]
            if len(unseen) < len(members):
                state.refold.add(minute_key)
                if redrive:
                    below = len(members) - len(unseen)
                    unseen = _known_by_id(ticks, members, book)
                    unknowable += below - (len(unseen) - (len(members) - below))
                else:
                    redelivered += len(members) - len(unseen)
            members = unseen
        partial = state.minutes.get(minute_key)
        members, digests = _drop_known_ids(ticks, members, book, partial)
        duplicates += digests.dropped
        if not members:
            continue
        acc, arrival_lags = _group_bar(ticks, members)
        if partial is None:
            state.minutes[minute_key] = PartialMinute(
                acc, ticks.position(members[0]), ticks.position(members[-1]), digests.kept
            )
        else:
            partial.acc.merge(acc)
            partial.high = ticks.position(members[-1])
            partial.id_hashes |= digests.kept
        taken += len(members)
        late += sum(map(gt, arrival_lags, repeat(late_after_ms)))
    return AccumulateCounts(taken, redelivered, duplicates, late, unknowable)


def _known_by_id(ticks: ShardTicks, members: list[int], book: MinuteBookkeeping) -> list[int]:
    """Members above the watermark, and those below it whose id can settle whether the bar has them."""
    assert book.watermark is not None
    ids_complete = len(book.id_hashes) < MAX_IDS_PER_BAR
    return [
        i
        for i in members
        if ticks.position(i) > book.watermark or (ids_complete and ticks.ids[i] is not None)
    ]


def _first_untaken(ticks: ShardTicks, last: Position | None) -> int:
    """Index of the first tick past `last`: positions only increase through a batch."""
    if last is None:
        return 0
    sequence, sub = last
    low = bisect_left(ticks.sequences, sequence)
    high = bisect_right(ticks.sequences, sequence, low)
    return bisect_right(ticks.subs, sub, low, high)


# Copied for each id: a copy of a set-up hasher costs about two thirds of building one from its
# parameters (digest size), and this runs once per tick.
_ID_HASHER = blake2b(digest_size=ID_HASH_BYTES)


@dataclass(frozen=True)
class IdDigests:
    kept: set[bytes]
    dropped: int


def _drop_known_ids(
    ticks: ShardTicks,
    members: list[int],
    book: MinuteBookkeeping | None,
    partial: PartialMinute | None,
) -> tuple[list[int], IdDigests]:
    """Members whose id the minute has not taken yet, the first copy kept; and their id hashes."""
    ids = ticks.ids
    # A tick id is known by its 8-byte BLAKE2b hash, here and in the stored bar's `_ids`.
    digests: dict[int, bytes] = {}
    fresh = _ID_HASHER.copy
    for i in members:
        tick_id = ids[i]
        if tick_id is not None:
            hasher = fresh()
            hasher.update(tick_id.encode())
            digests[i] = hasher.digest()
    if not digests:
        return members, IdDigests(set(), 0)
    kept = set(digests.values())
    known_before = (book.id_hashes if book is not None else set()) | (
        partial.id_hashes if partial is not None else set()
    )
    if len(kept) == len(digests) and kept.isdisjoint(known_before):
        return members, IdDigests(kept, 0)
    seen = set(known_before)
    unseen: list[int] = []
    dropped = 0
    for i in members:
        digest = digests.get(i)
        if digest is None:
            unseen.append(i)
        elif digest in seen:
            dropped += 1
        else:
            seen.add(digest)
            unseen.append(i)
    return unseen, IdDigests(seen - known_before, dropped)


def _group_bar(ticks: ShardTicks, members: list[int]) -> tuple[BarAccumulator, Iterable[int]]:
    """The bar of one group of ticks, and each tick's arrival minus event time.

    Open is the earliest event time's first tick and close the latest's last one, since
    positions increase with the index; sums are exact (EXACT traps any rounding).
    """
    if len(members) == 1:
        prices: tuple[Decimal, ...] = (ticks.prices[members[0]],)
        sizes: tuple[Decimal, ...] = (ticks.sizes[members[0]],)
        times: tuple[int, ...] = (ticks.ts_ms[members[0]],)
        arrivals: tuple[int, ...] = (ticks.arrivals[members[0]],)
    else:
        gather = itemgetter(*members)
        prices, sizes, times, arrivals = (
            gather(ticks.prices),
            gather(ticks.sizes),
            gather(ticks.ts_ms),
            gather(ticks.arrivals),
        )
    first = times.index(min(times))
    last = len(times) - 1 - times[::-1].index(max(times))
    with localcontext(EXACT):
        volume = sum(sizes, ZERO)
        notional = sum(map(mul, prices, sizes), ZERO)
    acc = BarAccumulator(
        prices[first],
        ticks.key(members[first]),
        prices[last],
        ticks.key(members[last]),
        max(prices),
        min(prices),
        volume,
        len(members),
        notional,
    )
    return acc, map(sub, arrivals, times)


class ConcurrentWriter(RuntimeError):
    """Another shard wrote the same bar in between: the write is retried from fresh data."""


def apply_partial(stored: StoredBar, shard_id: str, partial: PartialMinute, redrive: bool = False) -> bool:
    """Merges one shard's window into a 1m bar; False when the bar already holds it (a retry).

    A redrive's partial holds only ticks whose ids the bar did not know when it was read, so it
    is merged whatever the watermark says; the ids written with it make a second redrive skip them.
    """
    watermark = stored.watermarks.get(shard_id)
    if redrive:
        if not partial.id_hashes.isdisjoint(stored.id_hashes):
            raise ConcurrentWriter(f"{stored.symbol} 1m {stored.start}: ids taken since they were read")
    elif watermark is not None and watermark >= partial.high:
        return False
    elif watermark is not None and watermark >= partial.low:
        raise ConcurrentWriter(
            f"{stored.symbol} 1m {stored.start}: stored watermark {watermark} "
            f"inside window {partial.low}..{partial.high}"
        )
    if stored.acc is None:
        stored.acc = replace(partial.acc)
    else:
        stored.acc.merge(partial.acc)
    stored.watermarks[shard_id] = partial.high if watermark is None else max(watermark, partial.high)
    room = MAX_IDS_PER_BAR - len(stored.id_hashes)
    if room > 0:
        stored.id_hashes.update(sorted(partial.id_hashes)[:room])
    return True


def ids_beyond_cap(stored: StoredBar, partial: PartialMinute) -> int:
    """How many of the window's new tick ids the 1m bar has no room to remember (MAX_IDS_PER_BAR):
    a copy of one of those ticks arriving later would be counted again."""
    new = len(partial.id_hashes - stored.id_hashes)
    return max(0, new - max(0, MAX_IDS_PER_BAR - len(stored.id_hashes)))


def fold_children(symbol: str, interval: str, start: int, children: Iterable[StoredBar]) -> StoredBar:
    """A longer bar made whole from every shorter bar in it, versioned by the sum of their versions.

    A shorter bar only gains ticks, and each change raises its version, so a fold read after
    another holds at least what that one holds, and a larger sum means a later read.
    """
    bar = StoredBar(symbol, interval, start)
    for child in sorted(children, key=attrgetter("start")):
        if child.acc is None:
            continue
        if bar.acc is None:
            bar.acc = replace(child.acc)
        else:
            bar.acc.merge(child.acc)
        bar.version += child.version
    return bar


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
