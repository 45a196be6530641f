"""The tick contract: what is accepted, what is rejected and with which reason."""

from __future__ import annotations

import re
import sys
from decimal import Decimal

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from hypothesis import given
from hypothesis import strategies as st

from functions.aggregator.logic import RawRecord, explode
from market.ticks import (
    MAX_AHEAD_OF_ARRIVAL_MS,
    InvalidTick,
    RejectReason,
    Tick,
    decode_tick,
    encode_tick,
    tick_from_object,
)

GOOD = {"symbol": "AAPL", "price": 189.23, "size": 100, "ts": 1795475844085, "id": "p7f3:000000042"}


def test_native_tick_is_accepted_with_exact_decimals() -> None:
    tick = decode_tick(b'{"symbol":"AAPL","price":9999999.99999999,"size":0.00000001,"ts":1795475844085}')
    assert tick == Tick("AAPL", Decimal("9999999.99999999"), Decimal("0.00000001"), 1795475844085)
    assert str(tick.price) == "9999999.99999999"


@pytest.mark.parametrize(
    "text",
    [
        b'{"symbol":"A","price":1.000000001,"ts":1}',
        b'{"symbol":"A","price":1.0000000000000001,"ts":1}',
        b'{"symbol":"A","price":10000000000000001e-16,"ts":1}',
        b'{"symbol":"A","price":1e-9,"ts":1}',
        b'{"symbol":"A","price":1,"size":0.000000001,"ts":1}',
        b'{"symbol":"A","price" : 1.0000000000000001,"ts":1}',
        b'{"symbol":"A","pr\\u0069ce":1.0000000000000001,"ts":1}',
        b'{"symbol":"A","id":"\\"price\\":1","price":1.0000000000000001,"ts":1}',
        # Underflow: a double reads these as 0.0, which is not what was sent.
        b'{"symbol":"A","price":1,"size":1e-400,"ts":1}',
        b'{"symbol":"A","price":1,"size":1.5E-400,"ts":1}',
        b'{"symbol":"A","price":1e-400,"ts":1}',
        # More digits than the decimal module's default 28: rounding them must not pass them.
        b'{"symbol":"A","price":1.000000000000000000000000000001,"ts":1}',
        b'{"symbol":"A","price":9999999.9999999999999999999999,"ts":1}',
        b'{"symbol":"A","price":1,"size":99999999999999999999999999999e-22,"ts":1}',
    ],
)
def test_too_precise_numbers_are_rejected_not_rounded(text: bytes) -> None:
    with pytest.raises(InvalidTick, match="decimal places"):
        decode_tick(text)


@given(
    st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("9999999.99999999"), places=8),
    st.decimals(min_value=0, max_value=Decimal("9999999.99999999"), places=8),
)
def test_numbers_within_bounds_arrive_exactly_as_sent(price: Decimal, size: Decimal) -> None:
    text = f'{{"symbol":"A","price":{price},"size":{size},"ts":1}}'.encode()
    tick = decode_tick(text)
    assert (tick.price, tick.size) == (price, size)


def test_aws_tutorial_record_is_accepted() -> None:
    tick = decode_tick(b'{"EVENT_TIME": "2020-03-11T06:27:36.443754", "TICKER": "AAPL", "PRICE": 54.96}')
    assert tick == Tick("AAPL", Decimal("54.96"), Decimal(0), 1583908056443)


def test_absent_size_means_zero_and_iso_without_zone_is_utc() -> None:
    tick = tick_from_object({"symbol": "X.Y-Z", "price": 1, "ts": "1970-01-01T00:00:01"})
    assert (tick.size, tick.ts_ms) == (Decimal(0), 1000)
    assert tick_from_object({"symbol": "A", "price": 1, "ts": "1970-01-01T01:00:01+01:00"}).ts_ms == 1000


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("symbol", "BRK/B", RejectReason.BAD_SYMBOL),
        ("symbol", "..", RejectReason.BAD_SYMBOL),
        ("symbol", "<script>", RejectReason.BAD_SYMBOL),
        ("symbol", "A B", RejectReason.BAD_SYMBOL),
        ("symbol", "", RejectReason.BAD_SYMBOL),
        ("symbol", "A" * 33, RejectReason.BAD_SYMBOL),
        ("symbol", 42, RejectReason.BAD_SYMBOL),
        ("price", float("nan"), RejectReason.BAD_PRICE),
        ("price", float("inf"), RejectReason.BAD_PRICE),
        ("price", Decimal("NaN"), RejectReason.BAD_PRICE),
        ("price", 0, RejectReason.BAD_PRICE),
        ("price", -1.5, RejectReason.BAD_PRICE),
        ("price", "1.5", RejectReason.BAD_PRICE),
        ("price", True, RejectReason.BAD_PRICE),
        ("price", None, RejectReason.BAD_PRICE),
        ("price", Decimal("1E+999"), RejectReason.BAD_PRICE),
        ("price", Decimal("10000000"), RejectReason.BAD_PRICE),
        ("price", Decimal("0.000000001"), RejectReason.BAD_PRICE),
        ("size", Decimal("1E+7"), RejectReason.BAD_SIZE),
        ("size", Decimal("1.123456789"), RejectReason.BAD_SIZE),
        ("size", -1, RejectReason.BAD_SIZE),
        ("size", float("-inf"), RejectReason.BAD_SIZE),
        ("size", "100", RejectReason.BAD_SIZE),
        ("ts", "yesterday", RejectReason.BAD_TIMESTAMP),
        ("ts", 1.5e12, RejectReason.BAD_TIMESTAMP),
        ("ts", True, RejectReason.BAD_TIMESTAMP),
        ("ts", -1, RejectReason.BAD_TIMESTAMP),
        ("ts", 10**15, RejectReason.BAD_TIMESTAMP),
        ("ts", None, RejectReason.BAD_TIMESTAMP),
        ("id", "", RejectReason.BAD_ID),
        ("id", "x" * 129, RejectReason.BAD_ID),
        ("id", 7, RejectReason.BAD_ID),
    ],
)
def test_bad_fields_are_rejected_with_reason_and_field_name(
    field: str, value: object, reason: RejectReason
) -> None:
    with pytest.raises(InvalidTick) as caught:
        tick_from_object({**GOOD, field: value})
    assert caught.value.reason is reason
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe{}", RejectReason.BAD_UTF8),
        (b'{"symbol": "AAPL", ', RejectReason.MALFORMED_JSON),
        (b'{"symbol":"A","price":NaN,"ts":1}', RejectReason.MALFORMED_JSON),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
        (b'"AAPL"', RejectReason.NOT_AN_OBJECT),
        (b"[" * 120_000, RejectReason.MALFORMED_JSON),
        (b'{"a":' * 50_000, RejectReason.MALFORMED_JSON),
        (b'{"symbol":"A","price":1,"ts":1,"id":"\\ud800"}', RejectReason.BAD_ID),
        (b'{"symbol":"A","price":1,"ts":1,"id":"a\\udfffb"}', RejectReason.BAD_ID),
        (b'{"symbol":"A","price":1,"size":-1e-400,"ts":1}', RejectReason.BAD_SIZE),
    ],
)
def test_undecodable_records_are_rejected(data: bytes, reason: RejectReason) -> None:
    with pytest.raises(InvalidTick) as caught:
        decode_tick(data)
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"symbol":"A","price":-1.000000001,"ts":1}', "price -1.000000001 must be greater than 0"),
        (b'{"symbol":"A","price":1,"size":-5.0000000001,"ts":1}', "size -5.0000000001 must be 0 or more"),
    ],
)
def test_a_rejected_number_is_named_as_sent_not_as_a_python_object(data: bytes, message: str) -> None:
    with pytest.raises(InvalidTick, match="^" + re.escape(message) + "$"):
        decode_tick(data)


@pytest.mark.parametrize("limit", [1_000, 100_000])
def test_how_deep_a_record_may_nest_does_not_depend_on_the_recursion_limit(limit: int) -> None:
    """A helper found a record nested 1,100 deep read as a tick under a test runner (which
    raises the limit) and rejected elsewhere: a replay could change a bar."""
    deep = b'{"symbol":"A","price":1,"ts":1,"x":' + b"[" * 300 + b"]" * 300 + b"}"
    bracketed_id = b'{"symbol":"A","price":1,"ts":1,"id":"' + b"[" * 128 + b'"}'
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        with pytest.raises(InvalidTick) as caught:
            decode_tick(deep)
        assert decode_tick(bracketed_id).id == "[" * 128
    finally:
        sys.setrecursionlimit(before)
    assert caught.value.reason is RejectReason.MALFORMED_JSON


symbols = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,31}", fullmatch=True)
positive = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(9_999_999), allow_nan=False, places=4)
ticks = st.builds(
    Tick,
    symbol=symbols,
    price=positive,
    size=st.decimals(min_value=0, max_value=9_999_999, allow_nan=False, places=2),
    ts_ms=st.integers(min_value=0, max_value=253_402_300_799_999),
    id=st.none() | st.text(min_size=1, max_size=128),
)


@given(ticks)
def test_encode_then_decode_gives_the_same_tick(tick: Tick) -> None:
    assert decode_tick(encode_tick(tick)) == tick


def test_sizes_in_exponent_form_within_bounds_are_exact() -> None:
    tick = decode_tick(b'{"symbol":"A","price":1.5e2,"size":25E-2,"ts":1}')
    assert (tick.price, tick.size) == (Decimal("150"), Decimal("0.25"))


@pytest.mark.parametrize(
    "poison",
    [
        b'{"symbol":"A","price":1,"ts":1,"id":"\\ud800"}',
        b"[" * 120_000,
        b'{"symbol":"A","price":1,"size":1e-400,"ts":1}',
        b'{"symbol":"A","price":1,"size":-1e-400,"ts":1}',
    ],
)
def test_poison_in_an_aggregate_is_quarantined_and_its_neighbours_kept(poison: bytes) -> None:
    aggregator = RecordAggregator()
    valid = [encode_tick(Tick("A", Decimal("1.5"), Decimal(2), 60_000 + n, f"v:{n}")) for n in range(3)]
    for data in (valid[0], poison, valid[1], valid[2]):
        assert aggregator.add_user_record("A", data) is None
    blob = aggregator.clear_and_get().get_contents()[2]
    ticks, rejections = explode([RawRecord("shardId-0", "7", 0, "A", blob)])
    assert [ticks.tick(i).id for i in range(len(ticks))] == ["v:0", "v:1", "v:2"]
    assert [(r.sub_sequence, r.data) for r in rejections] == [(1, poison)]


def test_a_tick_more_than_five_minutes_ahead_of_its_arrival_is_quarantined_not_charted() -> None:
    arrival = 1_795_000_000_000
    near, far = arrival + MAX_AHEAD_OF_ARRIVAL_MS, arrival + MAX_AHEAD_OF_ARRIVAL_MS + 1
    aggregator = RecordAggregator()
    datas = [encode_tick(Tick("A", Decimal(1), Decimal(1), ts, f"f{ts}")) for ts in (arrival, near, far)]
    for data in datas:
        aggregator.add_user_record("A", data)
    blob = aggregator.clear_and_get().get_contents()[2]
    year_9999 = encode_tick(Tick("A", Decimal(1), Decimal(1), 253_402_214_400_000, "y"))
    ticks, rejections = explode(
        [RawRecord("s", "1", arrival, "A", blob), RawRecord("s", "2", arrival, "A", year_9999)]
    )
    assert [ticks.tick(i).ts_ms for i in range(len(ticks))] == [arrival, near]
    assert [(r.sequence_number, r.sub_sequence, r.reason) for r in rejections] == [
        ("1", 2, "future_timestamp"),
        ("2", 0, "future_timestamp"),
    ]
    assert "min after the record reached the stream" in rejections[0].message
