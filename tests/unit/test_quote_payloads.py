"""Quote API answers into ticks, from recorded answers: normal, rate-limit note, error, HTML, empty."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.quote_payloads import (
    BadQuote,
    JsonFields,
    MissingField,
    NoData,
    NotJson,
    QuoteError,
    RateLimitNote,
    alpha_vantage_global_quote,
    alpha_vantage_intraday,
    generic_json,
    parse_json,
)
from market.ticks import Tick

RECORDED = Path(__file__).parent.parent / "fixtures" / "quotes"
FETCHED_MS = 1_795_500_000_000


def recorded(name: str) -> object:
    return parse_json((RECORDED / name).read_bytes())


def test_global_quote_is_one_tick_at_fetch_time_identified_by_day_volume_and_price() -> None:
    tick = alpha_vantage_global_quote(recorded("av_global_quote.json"), "IBM", FETCHED_MS)
    assert (tick.symbol, tick.price, tick.size, tick.ts_ms) == (
        "IBM",
        Decimal("227.42"),
        Decimal(0),
        FETCHED_MS,
    )
    assert tick.id == "alphavantage:IBM:2026-11-20:3188202:227.4200"
    later = alpha_vantage_global_quote(recorded("av_global_quote.json"), "IBM", FETCHED_MS + 60_000)
    assert later.id == tick.id  # the same quote polled again is the same tick


def test_intraday_series_is_one_tick_per_interval_oldest_first_in_utc() -> None:
    ticks = alpha_vantage_intraday(recorded("av_intraday.json"), "IBM")
    assert [t.price for t in ticks] == [Decimal("227.30"), Decimal("227.42")]
    assert [t.size for t in ticks] == [Decimal(98213), Decimal(412087)]
    # 16:00 in New York on 2026-11-20 (EST, UTC-5) is 21:00 UTC.
    assert ticks[-1].ts_ms == int(datetime(2026, 11, 20, 21, 0, tzinfo=UTC).timestamp() * 1000)
    assert ticks[-1].id == f"alphavantage:IBM:{ticks[-1].ts_ms}"


@pytest.mark.parametrize(
    ("name", "error", "reason"),
    [
        ("av_rate_limit_note.json", RateLimitNote, "rate_limited"),
        ("av_error_message.json", QuoteError, "provider_error"),
        ("av_unknown_symbol.json", NoData, "no_data"),
    ],
)
def test_alpha_vantage_answers_with_http_200_but_no_quote_are_errors_with_a_reason(
    name: str, error: type[QuoteError], reason: str
) -> None:
    with pytest.raises(error) as raised:
        alpha_vantage_global_quote(recorded(name), "IBM", FETCHED_MS)
    assert raised.value.reason == reason


def test_html_and_empty_answers_are_refused_before_any_parsing() -> None:
    with pytest.raises(NotJson, match="not JSON") as html:
        parse_json((RECORDED / "gateway_error.html").read_bytes())
    assert html.value.reason == "not_json"
    with pytest.raises(NoData):
        parse_json(b"  \n")


def test_missing_fields_are_named() -> None:
    with pytest.raises(MissingField, match=r"05\. price"):
        alpha_vantage_global_quote({"Global Quote": {"01. symbol": "IBM"}}, "IBM", FETCHED_MS)
    with pytest.raises(MissingField, match="Time Series"):
        alpha_vantage_intraday({"Meta Data": {}}, "IBM")
    with pytest.raises(MissingField, match=r"data\.last"):
        generic_json({"data": {}}, "X", JsonFields("data.last"), "feed", FETCHED_MS)


def test_generic_json_follows_the_field_paths_and_reads_epoch_seconds() -> None:
    fields = JsonFields(price="data.last", size="data.volume", time="data.ts")
    tick = generic_json(recorded("generic_quote.json"), "BTC-USD", fields, "feed", FETCHED_MS)
    assert (tick.price, tick.size, tick.ts_ms) == (Decimal("97123.45"), Decimal("0.25"), 1_795_500_000_000)
    assert tick.id == "feed:BTC-USD:1795500000000"
    listed = generic_json({"quotes": [{"p": 3}]}, "X", JsonFields("quotes.0.p"), "feed", FETCHED_MS)
    assert (listed.price, listed.ts_ms) == (Decimal(3), FETCHED_MS)


def test_a_quote_that_is_not_a_valid_tick_is_a_bad_quote() -> None:
    with pytest.raises(BadQuote, match="price"):
        generic_json({"p": "-1"}, "X", JsonFields("p"), "feed", FETCHED_MS)
    with pytest.raises(BadQuote, match="time"):
        generic_json({"p": "1", "t": True}, "X", JsonFields("p", time="t"), "feed", FETCHED_MS)


# Leaves a provider could send where a number or a time belongs.
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(
        ["", "NaN", "-Infinity", "1e999999", "-0", "0.0000000001", "9" * 60, "2026-11-20", "\u0661"]
    )
    | st.text(max_size=20)
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
)
GLOBAL_QUOTE = st.fixed_dictionaries(
    {
        "Global Quote": st.fixed_dictionaries(
            {"05. price": JSON, "06. volume": JSON, "07. latest trading day": JSON}
        )
    }
)
INTRADAY = st.fixed_dictionaries(
    {
        "Meta Data": st.fixed_dictionaries(
            {"6. Time Zone": st.sampled_from(["US/Eastern", "UTC", "Mars/Base", ""])}
        ),
        "Time Series (5min)": st.dictionaries(
            st.sampled_from(["2026-11-20 16:00:00", "2026-02-30 10:00:00", "0001-01-01 00:00:00", "soon"]),
            st.fixed_dictionaries({"4. close": JSON, "5. volume": JSON}) | JSON,
            max_size=3,
        ),
    }
)
GENERIC = st.fixed_dictionaries({"a": st.fixed_dictionaries({"b": JSON}), "c": JSON, "d": JSON})


@given(st.binary(max_size=200))
def test_any_bytes_are_json_or_a_quote_error(body: bytes) -> None:
    try:
        parse_json(body)
    except QuoteError as exc:
        reason = str(exc)
    else:
        reason = "json"
    assert reason  # an error carries a reason to log, never an empty one


@given(GLOBAL_QUOTE | INTRADAY | GENERIC | JSON)
def test_any_answer_of_any_shape_gives_ticks_or_a_quote_error_never_a_crash(payload: object) -> None:
    """Each parser is called on answers shaped like its provider's with hostile leaves, so the
    parsing itself is reached (not only the JSON decoding) and every outcome is a tick or a reason."""
    parsers: tuple[Callable[[], list[Tick]], ...] = (
        lambda: [alpha_vantage_global_quote(payload, "IBM", FETCHED_MS)],
        lambda: alpha_vantage_intraday(payload, "IBM"),
        lambda: [generic_json(payload, "IBM", JsonFields("a.b", "c", "d"), "feed", FETCHED_MS)],
    )
    for parse in parsers:
        try:
            ticks = parse()
        except QuoteError:
            continue
        assert all(t.symbol == "IBM" and t.price > 0 for t in ticks)


def test_the_hostile_shapes_reach_a_tick_when_their_leaves_are_good() -> None:
    """The strategies above are not all errors: good leaves in the same shapes parse."""
    assert alpha_vantage_global_quote(
        {"Global Quote": {"05. price": "1.5", "06. volume": "10", "07. latest trading day": "2026-11-20"}},
        "IBM",
        FETCHED_MS,
    ).price == Decimal("1.5")
    assert alpha_vantage_intraday(
        {
            "Meta Data": {"6. Time Zone": "UTC"},
            "Time Series (5min)": {"2026-11-20 16:00:00": {"4. close": "2", "5. volume": "3"}},
        },
        "IBM",
    )[0].size == Decimal(3)
    assert generic_json(
        {"a": {"b": "4"}, "c": "5", "d": 1795500000}, "IBM", JsonFields("a.b", "c", "d"), "feed", FETCHED_MS
    ).price == Decimal(4)
