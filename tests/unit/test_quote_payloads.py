"""Quote API answers into ticks, from recorded answers: normal, rate-limit note, error, HTML, empty."""

from __future__ import annotations

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


@given(st.binary(max_size=200))
def test_any_answer_gives_ticks_or_a_quote_error_never_a_crash(body: bytes) -> None:
    try:
        alpha_vantage_global_quote(parse_json(body), "IBM", FETCHED_MS)
        generic_json(parse_json(body), "IBM", JsonFields("a.b", "c", "d"), "feed", FETCHED_MS)
    except QuoteError:
        pass
