"""The KPL aggregated record format, written and read without the protobuf runtime.

Format (amazon-kinesis-producer, aggregation-format.md): 4 magic bytes, a protobuf
`AggregatedRecord {repeated string partition_key_table = 1; repeated string
explicit_hash_key_table = 2; repeated Record records = 3}` with `Record {uint64
partition_key_index = 1; uint64 explicit_hash_key_index = 2; bytes data = 3; repeated Tag tags
= 4}`, then the MD5 of the protobuf bytes. We encode it ourselves because the aws-kinesis-agg
aggregator alone runs below the producer's 300k ticks/s budget (see BENCHMARKS.md); tests check
both directions against that library. The decoder is strict: where aws-kinesis-agg hands a
corrupt aggregate back as one plain record, we raise, so the caller can quarantine it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16
# KPL's AggregationMaxSize default (amazon-kinesis-producer default_config.properties): 51,200 bytes.
DEFAULT_MAX_AGGREGATE_BYTES = 51_200

_WIRE_VARINT = 0
_WIRE_FIXED64 = 1
_WIRE_LENGTH = 2
_WIRE_FIXED32 = 5
# Tags used as byte literals when encoding: 0x0A pk table entry (field 1, length-delimited), 0x1A
# record (field 3, length-delimited), and inside a record 0x08 key index (field 1, varint) and
# 0x1A data (field 3, length-delimited).


class CorruptAggregate(ValueError):
    """An aggregated record whose digest or protobuf is broken: none of its user records are trusted."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    partition_key: str
    explicit_hash_key: str | None
    data: bytes
    sub_sequence: int


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Lengths inside a 1 MiB record rarely pass 2**14: their varints are looked up, not computed.
_SMALL_VARINTS = [_encode_varint(v) for v in range(1 << 14)]


def _varint(value: int) -> bytes:
    return _SMALL_VARINTS[value] if value < 1 << 14 else _encode_varint(value)


class AggregateBuilder:
    """Packs user records into one aggregated record of at most `max_bytes` (with its partition key)."""

    __slots__ = ("_body", "_count", "_first_key", "_keys", "_max_bytes", "_size")

    def __init__(self, max_bytes: int = DEFAULT_MAX_AGGREGATE_BYTES) -> None:
        self._max_bytes = max_bytes
        # partition key -> its encoded index field (tag 1, varint), ready to be spliced into records
        self._keys: dict[str, bytes] = {}
        self._body: list[bytes] = []
        self._count = 0
        self._first_key = ""
        # magic + digest; the outer partition key is counted when the first record arrives.
        self._size = len(MAGIC) + DIGEST_SIZE

    def __len__(self) -> int:
        return self._count

    @property
    def partition_key(self) -> str:
        """The outer record's partition key: the first user record's, as the KPL does."""
        return self._first_key

    @property
    def size(self) -> int:
        return self._size

    def try_add(self, partition_key: str, data: bytes) -> bool:
        """Adds the record if it fits; a False answer means: flush, then add to a fresh builder."""
        index_field = self._keys.get(partition_key)
        key_entry = b""
        added = 0
        if index_field is None:
            key_bytes = partition_key.encode()
            key_entry = b"\x0a" + _varint(len(key_bytes)) + key_bytes
            index_field = b"\x08" + _varint(len(self._keys))
            added = len(key_entry) + (len(key_bytes) if self._count == 0 else 0)
        data_len = _varint(len(data))
        inner_len = len(index_field) + 1 + len(data_len) + len(data)
        record_len = _varint(inner_len)
        added += 1 + len(record_len) + inner_len
        if self._size + added > self._max_bytes and self._count > 0:
            return False
        if key_entry:
            # Repeated protobuf fields may interleave: a key entry precedes the first record using it.
            self._keys[partition_key] = index_field
            self._body.append(key_entry)
            if self._count == 0:
                self._first_key = partition_key
        self._body.append(b"\x1a" + record_len + index_field + b"\x1a" + data_len + data)
        self._size += added
        self._count += 1
        return True

    def build(self) -> bytes:
        message = b"".join(self._body)
        return MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()


def is_aggregated(data: bytes) -> bool:
    return len(data) > len(MAGIC) + DIGEST_SIZE and data.startswith(MAGIC)


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise CorruptAggregate("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CorruptAggregate("varint longer than 64 bits")


def _skip_field(buf: bytes, wire: int, pos: int, end: int) -> int:
    if wire == _WIRE_VARINT:
        return _read_varint(buf, pos, end)[1]
    if wire == _WIRE_LENGTH:
        length, pos = _read_varint(buf, pos, end)
        pos += length
    elif wire == _WIRE_FIXED64:
        pos += 8
    elif wire == _WIRE_FIXED32:
        pos += 4
    else:
        raise CorruptAggregate(f"unsupported protobuf wire type {wire}")
    if pos > end:
        raise CorruptAggregate("field runs past the end of its message")
    return pos


def _read_record(buf: bytes, pos: int, end: int) -> tuple[int, int | None, bytes]:
    pk_index: int | None = None
    ehk_index: int | None = None
    data: bytes | None = None
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == _WIRE_VARINT:
            pk_index, pos = _read_varint(buf, pos, end)
        elif field == 2 and wire == _WIRE_VARINT:
            ehk_index, pos = _read_varint(buf, pos, end)
        elif field == 3 and wire == _WIRE_LENGTH:
            length, pos = _read_varint(buf, pos, end)
            if pos + length > end:
                raise CorruptAggregate("record data runs past the end of its record")
            data = buf[pos : pos + length]
            pos += length
        else:
            pos = _skip_field(buf, wire, pos, end)
    if pk_index is None or data is None:
        raise CorruptAggregate("record lacks its partition key index or data")
    return pk_index, ehk_index, data


def decode_aggregate(blob: bytes) -> list[UserRecord]:
    """All user records of an aggregated Kinesis record, or CorruptAggregate: never a partial list."""
    if not is_aggregated(blob):
        raise CorruptAggregate("not an aggregated record (magic prefix missing or too short)")
    message = blob[len(MAGIC) : -DIGEST_SIZE]
    if hashlib.md5(message, usedforsecurity=False).digest() != blob[-DIGEST_SIZE:]:
        raise CorruptAggregate("MD5 digest does not match the protobuf message")
    pk_table: list[str] = []
    ehk_table: list[str] = []
    raw_records: list[tuple[int, int | None, bytes]] = []
    end = len(message)
    pos = 0
    while pos < end:
        key, pos = _read_varint(message, pos, end)
        field, wire = key >> 3, key & 7
        if wire == _WIRE_LENGTH and field in (1, 2, 3):
            length, pos = _read_varint(message, pos, end)
            stop = pos + length
            if stop > end:
                raise CorruptAggregate("field runs past the end of the message")
            if field == 3:
                raw_records.append(_read_record(message, pos, stop))
            else:
                try:
                    text = message[pos:stop].decode()
                except UnicodeDecodeError as exc:
                    raise CorruptAggregate("a key table entry is not UTF-8") from exc
                (pk_table if field == 1 else ehk_table).append(text)
            pos = stop
        else:
            pos = _skip_field(message, wire, pos, end)
    if not raw_records:
        raise CorruptAggregate("aggregated record holds no user records")
    records = []
    for sub_sequence, (pk_index, ehk_index, data) in enumerate(raw_records):
        if pk_index >= len(pk_table) or (ehk_index is not None and ehk_index >= len(ehk_table)):
            raise CorruptAggregate(f"user record {sub_sequence} points past its key table")
        ehk = ehk_table[ehk_index] if ehk_index is not None else None
        records.append(UserRecord(pk_table[pk_index], ehk, data, sub_sequence))
    return records
