"""The KPL aggregated record format: written by hand, read with protobuf's C parser.

Format (amazon-kinesis-producer, aggregation-format.md): 4 magic bytes, a protobuf
`AggregatedRecord {repeated string partition_key_table = 1; repeated string
explicit_hash_key_table = 2; repeated Record records = 3}` with `Record {uint64
partition_key_index = 1; uint64 explicit_hash_key_index = 2; bytes data = 3; repeated Tag tags
= 4}`, then the MD5 of the protobuf bytes. We encode it ourselves because the aws-kinesis-agg
aggregator alone runs below the producer's 300k ticks/s budget (see BENCHMARKS.md), and decode
it with the protobuf runtime against a descriptor of our own (the library's generated module
imports only after its aggregator has patched sys.path). Tests check both directions against
aws-kinesis-agg. The decoder is strict: where aws-kinesis-agg hands a corrupt aggregate back as
one plain record, we raise, so the caller can quarantine it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from itertools import repeat
from typing import Any, NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16
# KPL's AggregationMaxSize default (amazon-kinesis-producer default_config.properties): 51,200 bytes.
DEFAULT_MAX_AGGREGATE_BYTES = 51_200

# Tags used as byte literals when encoding: 0x0A pk table entry (field 1, length-delimited), 0x1A
# record (field 3, length-delimited), and inside a record 0x08 key index (field 1, varint) and
# 0x1A data (field 3, length-delimited).


class CorruptAggregate(ValueError):
    """An aggregated record whose digest or protobuf is broken: none of its user records are trusted."""


class UserRecord(NamedTuple):
    """One user record of an aggregate; a NamedTuple as one is built per tick."""

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


def _message_classes() -> tuple[Any, Any, Any]:
    """Message classes for protobuf's C parser, from descriptors of our own.

    AggregatedRecord is the format itself. AggregatedBodies reads the same bytes with each user
    record left as raw bytes, and FlatRecords reads user records laid end to end as parallel
    lists: together they let the hot path skip building a Python object per user record.
    Key tables are declared as bytes (the wire is the same as for string) so that UTF-8 is
    checked here, strictly, rather than by the runtime.
    """
    field = descriptor_pb2.FieldDescriptorProto
    spec = descriptor_pb2.FileDescriptorProto(
        name="tickstream_kpl.proto", package="tickstream.kpl", syntax="proto2"
    )
    tag = spec.message_type.add(name="Tag")
    tag.field.add(name="key", number=1, type=field.TYPE_BYTES, label=field.LABEL_REQUIRED)
    tag.field.add(name="value", number=2, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)
    record = spec.message_type.add(name="Record")
    record.field.add(name="partition_key_index", number=1, type=field.TYPE_UINT64, label=field.LABEL_REQUIRED)
    record.field.add(
        name="explicit_hash_key_index", number=2, type=field.TYPE_UINT64, label=field.LABEL_OPTIONAL
    )
    record.field.add(name="data", number=3, type=field.TYPE_BYTES, label=field.LABEL_REQUIRED)
    record.field.add(
        name="tags",
        number=4,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".tickstream.kpl.Tag",
    )
    for name in ("AggregatedRecord", "AggregatedBodies"):
        aggregate = spec.message_type.add(name=name)
        aggregate.field.add(
            name="partition_key_table", number=1, type=field.TYPE_BYTES, label=field.LABEL_REPEATED
        )
        aggregate.field.add(
            name="explicit_hash_key_table", number=2, type=field.TYPE_BYTES, label=field.LABEL_REPEATED
        )
        records = aggregate.field.add(name="records", number=3, label=field.LABEL_REPEATED)
        if name == "AggregatedRecord":
            records.type, records.type_name = field.TYPE_MESSAGE, ".tickstream.kpl.Record"
        else:
            records.type = field.TYPE_BYTES
    flat = spec.message_type.add(name="FlatRecords")
    flat.field.add(name="partition_key_index", number=1, type=field.TYPE_UINT64, label=field.LABEL_REPEATED)
    flat.field.add(name="data", number=3, type=field.TYPE_BYTES, label=field.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(spec)
    return tuple(  # type: ignore[return-value]
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tickstream.kpl.{name}"))
        for name in ("AggregatedRecord", "AggregatedBodies", "FlatRecords")
    )


_AggregatedRecord, _AggregatedBodies, _FlatRecords = _message_classes()


def _verified_message(blob: bytes) -> bytes:
    """The protobuf bytes of an aggregated record whose magic and MD5 digest check out."""
    if not is_aggregated(blob):
        raise CorruptAggregate("not an aggregated record (magic prefix missing or too short)")
    message = blob[len(MAGIC) : -DIGEST_SIZE]
    if hashlib.md5(message, usedforsecurity=False).digest() != blob[-DIGEST_SIZE:]:
        raise CorruptAggregate("MD5 digest does not match the protobuf message")
    return message


def decode_aggregate(blob: bytes) -> list[UserRecord]:
    """All user records of an aggregated Kinesis record, or CorruptAggregate: never a partial list."""
    return _decode_message(_verified_message(blob))


def _decode_message(message: bytes) -> list[UserRecord]:
    try:
        parsed = _AggregatedRecord.FromString(message)
    except DecodeError as exc:
        raise CorruptAggregate(f"protobuf wire format is corrupt: {exc}") from exc
    if not parsed.IsInitialized():
        raise CorruptAggregate("a user record lacks its partition key index or data")
    if not parsed.records:
        raise CorruptAggregate("aggregated record holds no user records")
    try:
        pk_table = [key.decode() for key in parsed.partition_key_table]
        ehk_table = [key.decode() for key in parsed.explicit_hash_key_table]
    except UnicodeDecodeError as exc:
        raise CorruptAggregate("a key table entry is not UTF-8") from exc
    keys = len(pk_table)
    records = []
    for sub_sequence, user in enumerate(parsed.records):
        index = user.partition_key_index
        if index >= keys:
            raise CorruptAggregate(f"user record {sub_sequence} points past its key table")
        ehk = None
        if user.HasField("explicit_hash_key_index"):
            if user.explicit_hash_key_index >= len(ehk_table):
                raise CorruptAggregate(f"user record {sub_sequence} points past its key table")
            ehk = ehk_table[user.explicit_hash_key_index]
        records.append(UserRecord(pk_table[index], ehk, user.data, sub_sequence))
    return records


def user_record_data(blob: bytes) -> list[bytes]:
    """The data of every user record in sub-sequence order, as strictly checked as decode_aggregate.

    The fast way reads the user records as raw bytes and all their fields at once, then proves
    the reading right: each user record must be byte for byte the canonical encoding of its key
    index and data (as KPL and we write them), so it cannot mean anything else. Anything else
    (explicit hash keys, tags, unusual encodings, corruption) goes through decode_aggregate.
    """
    message = _verified_message(blob)
    try:
        outer = _AggregatedBodies.FromString(message)
        bodies = list(outer.records)
        flat = _FlatRecords.FromString(b"".join(bodies))
    except DecodeError:
        return [user.data for user in _decode_message(message)]
    keys = list(flat.partition_key_index)
    datas = list(flat.data)
    if (
        bodies
        and len(keys) == len(datas) == len(bodies)
        and not outer.explicit_hash_key_table
        and max(keys) < len(outer.partition_key_table)
        and max(keys) < 1 << 14
        and max(map(len, datas)) < 1 << 14
        and _canonical_bodies(keys, datas) == bodies
        and _utf8(outer.partition_key_table)
    ):
        return datas
    return [user.data for user in _decode_message(message)]


def _canonical_bodies(keys: list[int], datas: list[bytes]) -> list[bytes]:
    """Each user record encoded as KPL writes it: key index field, then data field."""
    return list(
        map(
            b"".join,
            zip(
                repeat(b"\x08"),
                map(_SMALL_VARINTS.__getitem__, keys),
                repeat(b"\x1a"),
                map(_SMALL_VARINTS.__getitem__, map(len, datas)),
                datas,
                strict=False,  # repeat() is endless; keys and datas are of equal length
            ),
        )
    )


def _utf8(keys: Iterable[bytes]) -> bool:
    try:
        for key in keys:
            key.decode()
    except UnicodeDecodeError:
        return False
    return True
