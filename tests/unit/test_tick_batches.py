"""The column decoder: all or nothing, and when all, exactly what decode_tick says record by record."""

from __future__ import annotations

import re
from decimal import Decimal

import orjson
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
        # Found by a helper's attack on the msgspec batch: bad UTF-8 in a field msgspec skips,
        # a 16-digit mantissa before an exponent (rounded by a double to 8 decimals), nesting
        # deeper than Python's stack in a skipped field (a valid tick to decode_tick).
        b'{"symbol":"A","price":1,"ts":1,"x":"\xff"}',
        b'{"symbol":"A","price":1,"ts":1,"\xed\xa0\x80":1}',
        b'{"symbol":"A","price":9477255422360239e-9,"ts":1}',
        b'{"symbol":"A","price":1,"size":9529981115890309E-9,"ts":1}',
        b'{"symbol":"A","price":1,"ts":1,"x":' + b"[" * 1000 + b"]" * 1000 + b"}",
        b'{"symbol":"A","price":1,"ts":1,"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ]
)


@given(st.lists(ticks, min_size=1, max_size=30))
def test_native_ticks_decode_as_columns_equal_to_decode_tick(batch: list[Tick]) -> None:
    datas = [encode_tick(tick) for tick in batch]
    columns = decode_columns(datas)
    if columns is None:
        # Only a run of 17 digits and points (a long id, a price of 15 digits) or of 16 digits
        # before an e, an escape, a bracket or a brace in an id, or a zero written as a float
        # (0E-8) may send it the slow way.
        joined = b"".join(datas)
        braces_in_ids = joined.count(b"{") + joined.count(b"}") > 2 * len(datas)
        assert re.search(rb"[0-9.]{17}|[0-9]{16}[eE]|\\|\[|:-?0E", joined) or braces_in_ids, datas
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


# Pieces of JSON that, spliced into records, make records that are not one JSON value each but
# may still parse once joined with commas inside brackets.
FRAGMENTS = st.sampled_from(
    [b"{", b"}", b"[", b"]", b",", b"{}", b'"x":', b'"', b"[{}", b"{}]}", b"},{", b" "]
)


@st.composite
def recut_records(draw: st.DrawFn) -> list[bytes]:
    """Native ticks' bytes joined by commas, fragments spliced in, then cut anywhere: sometimes
    at the commas between ticks (valid records), mostly not."""
    text = b",".join(map(encode_tick, draw(st.lists(ticks, min_size=1, max_size=6))))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(FRAGMENTS) + text[at:]
    if draw(st.booleans()):
        return text.split(b",")
    cuts = sorted(set(draw(st.lists(st.integers(1, len(text) - 1), max_size=8))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@given(recut_records())
def test_a_batch_is_decoded_only_when_each_record_alone_is_that_tick(datas: list[bytes]) -> None:
    columns = decode_columns(datas)
    if columns is not None:
        assert len(columns) == len(datas)
        assert [columns.tick(i) for i in range(len(columns))] == [decode_tick(d) for d in datas]


def test_records_that_only_parse_joined_send_the_batch_record_by_record() -> None:
    tick = b'"symbol":"A","price":1,"ts":1795475844085'
    merged = [b"{" + tick + b',"x":[{}', b"{}]}", b"{" + tick + b"},{" + tick + b"}"]
    assert len(orjson.loads(b"[" + b",".join(merged) + b"]")) == 3  # as many objects as records, joined
    assert decode_columns(merged) is None
    split = [b"{" + tick, b'"id":"a"},{' + tick + b"}"]  # two objects, two of each brace
    assert len(orjson.loads(b"[" + b",".join(split) + b"]")) == 2
    assert decode_columns(split) is None
    swallowed = [b"{" + tick + b',"y":"}', b'{","z":1}']  # one object once joined: "y" is "},{"
    assert len(orjson.loads(b"[" + b",".join(swallowed) + b"]")) == 1
    assert decode_columns(swallowed) is None


def _spellings(value: Decimal, zeros: int) -> list[str]:
    """Ways a producer may write the value: trailing zeros, exponents, a float's repr."""
    plain = format(value, "f")
    scaled = int(value.scaleb(8))
    texts = [plain + ("" if "." in plain else ".") + "0" * zeros, f"{scaled}e-8", f"{scaled}E-08"]
    if value == value.to_integral_value():
        texts += [str(int(value)), f"{int(value)}E+0", f"{value:E}"]
    if Decimal(repr(float(value))) == value:
        texts.append(repr(float(value)))
    return texts


@given(
    st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("9999999.99999999"), places=8),
    st.integers(0, 3),
    st.data(),
)
def test_a_number_reads_as_one_text_whatever_its_spelling_path_or_order(
    value: Decimal, zeros: int, data: st.DataObject
) -> None:
    """The text of a bar's price in its S3 row must not depend on how the tick was written, which
    path decoded it or which spelling the process met first (the memos key 100 and 100.0 alike):
    a replay would rewrite the row with other bytes."""
    whole = value == value.to_integral_value()
    expected = str(int(value)) if whole else str(value.normalize())
    for text in data.draw(st.permutations(_spellings(value, zeros))):
        record = f'{{"symbol":"A","price":{text},"size":{text},"ts":1}}'.encode()
        columns = decode_columns([record])
        batch = [] if columns is None else [columns.tick(0)]
        for tick in [decode_tick(record), *batch]:
            assert (str(tick.price), str(tick.size)) == (expected, expected), text


@pytest.mark.parametrize("text", [b"0", b"-0", b"0.0", b"-0.0", b"0e5", b"-0E-8", b"0.00000000"])
def test_a_zero_size_reads_as_0_whatever_its_sign_or_spelling(text: bytes) -> None:
    tick = decode_tick(b'{"symbol":"A","price":1,"size":' + text + b',"ts":1}')
    assert str(tick.size) == "0"
