"""The column decoder: all or nothing, and when all, exactly what decode_tick says record by record."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.tick_batches import decode_columns
from market.ticks import Tick, decode_tick, encode_tick

symbols = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,31}", fullmatch=True)
ticks = st.builds(
    Tick,
    symbol=symbols,
    price=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("9999999.99999999"), places=8),
    size=st.decimals(min_value=0, max_value=Decimal("9999999.99999999"), places=8),
    ts_ms=st.integers(min_value=0, max_value=253_402_300_799_999),
    id=st.none() | st.text(min_size=1, max_size=128),
)
# Records that are not native ticks, or that only the exact path reads right.
awkward = st.sampled_from(
    [
        b'{"symbol":"A","price":1.0000000000000001,"ts":1}',
        b'{"symbol":"A","price":10000000000000001e-16,"ts":1}',
        b'{"symbol":"A","price":1.000000001,"ts":1}',
        b'{"symbol":"A","price":0,"ts":1}',
        b'{"symbol":"A","price":true,"ts":1}',
        b'{"symbol":"A","price":1,"size":-1,"ts":1}',
        b'{"symbol":"A","price":1,"ts":"2020-03-11T06:27:36"}',
        b'{"symbol":"A","price":1,"ts":-1}',
        b'{"symbol":"A","price":1,"ts":1,"id":""}',
        b'{"symbol":"A b","price":1,"ts":1}',
        b'{"TICKER":"A","PRICE":1.5,"EVENT_TIME":"2020-03-11T06:27:36.443754"}',
        b'{"symbol":"A","price":1e400,"ts":1}',
        b"[1]",
        b"\xff",
        b'{"symbol":',
        b'{"symbol":"A","price":1,"size":1e-400,"ts":1}',
        b'{"symbol":"A","price":1,"size":-1E-400,"ts":1}',
    ]
)


@given(st.lists(ticks, min_size=1, max_size=30))
def test_native_ticks_decode_as_columns_equal_to_decode_tick(batch: list[Tick]) -> None:
    datas = [encode_tick(tick) for tick in batch]
    columns = decode_columns(datas)
    if columns is None:
        # Only a run of 17 digits and points (a long id, a price of 15 digits) or what reads as a
        # negative exponent (an id holding "1e-") may send it the slow way.
        assert re.search(rb"[0-9.]{17}|[0-9.][eE]-", b"".join(datas))
        return
    assert [columns.tick(i) for i in range(len(columns))] == [decode_tick(d) for d in datas] == batch


@given(st.lists(ticks, max_size=10), awkward, st.lists(ticks, max_size=10))
def test_one_awkward_record_sends_the_whole_batch_record_by_record(
    before: list[Tick], odd: bytes, after: list[Tick]
) -> None:
    assert decode_columns([*map(encode_tick, before), odd, *map(encode_tick, after)]) is None


def test_a_plain_batch_takes_the_fast_way() -> None:
    datas = [
        b'{"symbol":"AAPL","price":189.23,"size":100,"ts":1795475844085,"id":"p:1"}',
        b'{"symbol":"MSFT","price":9999999.99999999,"ts":1795475844086}',
        b'{"symbol":"A+B","price":3,"size":0.5,"ts":1795475844087,"id":null}',
    ]
    columns = decode_columns(datas)
    assert columns is not None
    assert columns.prices == [Decimal("189.23"), Decimal("9999999.99999999"), Decimal(3)]
    assert [str(p) for p in columns.prices] == ["189.23", "9999999.99999999", "3"]
    assert columns.sizes == [Decimal(100), Decimal(0), Decimal("0.5")]
    assert columns.ids == ["p:1", None, None]


@pytest.mark.parametrize("datas", [[], [b'{"symbol":"A","price":1,"ts":1,"id":"' + b"x" * 129 + b'"}']])
def test_empty_or_overlong_id_batches_decline(datas: list[bytes]) -> None:
    assert decode_columns(datas) is None
