"""Our KPL record encoder and decoder agree with aws-kinesis-agg, and corruption is never passed on."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records
from hypothesis import given
from hypothesis import strategies as st

from market.kpl_records import (
    DIGEST_SIZE,
    MAGIC,
    AggregateBuilder,
    CorruptAggregate,
    UserRecord,
    decode_aggregate,
    user_record_data,
)

user_records = st.lists(
    st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=300)), min_size=1, max_size=60
)


def build(records: list[tuple[str, bytes]], max_bytes: int = 1024 * 1024) -> bytes:
    builder = AggregateBuilder(max_bytes)
    for key, data in records:
        assert builder.try_add(key, data)
    return builder.build()


def lambda_record(blob: bytes) -> dict[str, object]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "k",
            "sequenceNumber": "1",
            "data": base64.b64encode(blob).decode(),
            "approximateArrivalTimestamp": 1.0,
        }
    }


@given(user_records)
def test_round_trip(records: list[tuple[str, bytes]]) -> None:
    decoded = decode_aggregate(build(records))
    assert [(r.partition_key, r.data) for r in decoded] == records
    assert [r.sub_sequence for r in decoded] == list(range(len(records)))


@given(user_records)
def test_aws_kinesis_agg_reads_what_we_write(records: list[tuple[str, bytes]]) -> None:
    theirs = deaggregate_records([lambda_record(build(records))])
    assert [(r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in theirs] == records


@given(user_records)
def test_we_read_what_aws_kinesis_agg_writes(records: list[tuple[str, bytes]]) -> None:
    aggregator = RecordAggregator()
    for key, data in records:
        assert aggregator.add_user_record(key, data) is None
    _, _, blob = aggregator.clear_and_get().get_contents()
    assert [(r.partition_key, r.data) for r in decode_aggregate(blob)] == records


@given(user_records, st.integers(min_value=200, max_value=5000))
def test_builder_never_exceeds_its_size_and_counts_exactly(
    records: list[tuple[str, bytes]], limit: int
) -> None:
    builder = AggregateBuilder(limit)
    for key, data in records:
        if not builder.try_add(key, data):
            break
    blob = builder.build()
    assert builder.size == len(blob) + len(builder.partition_key.encode())
    assert builder.size <= limit or len(builder) == 1


def test_bad_digest_is_refused_not_passed_through() -> None:
    blob = bytearray(build([("AAPL", b'{"a":1}'), ("MSFT", b'{"b":2}')]))
    blob[-1] ^= 0xFF
    with pytest.raises(CorruptAggregate, match="MD5"):
        decode_aggregate(bytes(blob))
    # The library, by contrast, hands the corrupt blob back as one "plain" record.
    assert len(deaggregate_records([lambda_record(bytes(blob))])) == 1


@pytest.mark.parametrize("decode", [decode_aggregate, user_record_data])
@pytest.mark.parametrize(
    ("message", "why"),
    [
        # Fields shifted between user records: the first has two key indexes and no data, the
        # second two data; counted together they look like two well-formed records.
        (b"\x0a\x01A\x1a\x05\x08\x00\x08\x80\x00\x1a\x06\x1a\x01X\x1a\x01Y", "lacks"),
        (b"\x1a\x05\x08\x00\x1a", "corrupt"),  # record claims 5 bytes, has 3
        (b"\x0a\x01A\x1a\x04\x08\x05\x1a\x00", "points past"),  # key index 5 of a 1-key table
        (b"\x0a\x01A\x1a\x02\x1a\x00", "lacks"),  # record without key index
        (b"\x0a\x01A\x1a\x03\x08\xff\xff", "corrupt"),  # truncated varint
        (b"\x0a\x01A", "no user records"),
        (b"\x0f\x00", "corrupt"),  # wire type 7 does not exist
        (b"\x0a\x02\xff\xfe\x1a\x04\x08\x00\x1a\x00", "UTF-8"),  # key table entry not UTF-8
    ],
)
def test_broken_protobuf_with_a_valid_digest_is_refused(
    decode: Callable[[bytes], list[UserRecord] | list[bytes]], message: bytes, why: str
) -> None:
    blob = MAGIC + message + hashlib.md5(message).digest()
    with pytest.raises(CorruptAggregate, match=why):
        decode(blob)


@given(user_records, st.booleans())
def test_the_fast_data_reader_agrees_with_the_strict_decoder(
    records: list[tuple[str, bytes]], explicit_hash_keys: bool
) -> None:
    aggregator = RecordAggregator()
    for number, (key, data) in enumerate(records):
        assert aggregator.add_user_record(key, data, str(number) if explicit_hash_keys else None) is None
    _, _, theirs = aggregator.clear_and_get().get_contents()
    for blob in (build(records), theirs):
        assert user_record_data(blob) == [r.data for r in decode_aggregate(blob)]


def test_plain_record_is_not_taken_for_an_aggregate() -> None:
    with pytest.raises(CorruptAggregate, match="not an aggregated record"):
        decode_aggregate(b'{"symbol":"AAPL"}' + b"\x00" * DIGEST_SIZE)
