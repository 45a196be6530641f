"""Polling quote APIs over real HTTP: recorded answers served by a local server, never a patched requests.

The waits of retries and of the rate limit go to a recording sleep (and a clock it advances), so
the tests check what would have been waited without waiting it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from functions.quote_poller.polling import PollFailure, QuotePoller, QuoteSourceConfig, SourceConfigError
from webclients.retrying_http import RateLimiter, RetryingHttp

RECORDED = Path(__file__).parent.parent / "fixtures" / "quotes"
KEY = "demo-key-123"


class FakeTime:
    """A monotonic clock that only sleeping moves; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def alpha_vantage(http_server: HTTPServer, symbols: list[str], **extra: object) -> QuoteSourceConfig:
    return QuoteSourceConfig.from_mapping(
        {
            "provider": "alphavantage",
            "symbols": symbols,
            "url": http_server.url_for("/query"),
            "api_key_env": "AV_KEY",
            **extra,
        },
        {"AV_KEY": KEY},
    )


def poller(config: QuoteSourceConfig, fake: FakeTime) -> QuotePoller:
    limiter = RateLimiter(config.calls_per_minute, clock=fake.clock, sleep=fake.sleep)
    fetcher = RetryingHttp(limiter, secrets=[config.api_key], sleep=fake.sleep)
    return QuotePoller(config, fetcher, clock_ms=lambda: 1_795_500_000_000)


def answer(http_server: HTTPServer, symbol: str, recorded: str, status: int = 200, **headers: str) -> None:
    body = (RECORDED / recorded).read_bytes()
    content_type = "text/html" if recorded.endswith(".html") else "application/json"
    http_server.expect_ordered_request(
        "/query", query_string={"function": "GLOBAL_QUOTE", "symbol": symbol, "apikey": KEY}
    ).respond_with_data(body, status=status, headers=headers, content_type=content_type)


def test_a_quote_polled_twice_is_one_tick(http_server: HTTPServer) -> None:
    answer(http_server, "IBM", "av_global_quote.json")
    answer(http_server, "IBM", "av_global_quote.json")
    source = poller(alpha_vantage(http_server, ["IBM"]), FakeTime())
    first, second = source.poll(), source.poll()
    assert [str(t.price) for t in first.ticks] == ["227.42"]  # stored in one spelling
    assert second.ticks == []
    assert first.failures == second.failures == []
    http_server.check_assertions()


def test_every_bad_answer_is_a_named_failure_and_the_round_goes_on(http_server: HTTPServer) -> None:
    symbols = ["NOTE", "ERR", "HTML", "EMPTY", "NONE", "IBM"]
    answer(http_server, "NOTE", "av_rate_limit_note.json")
    answer(http_server, "ERR", "av_error_message.json")
    answer(http_server, "HTML", "gateway_error.html")
    http_server.expect_ordered_request(
        "/query", query_string={"function": "GLOBAL_QUOTE", "symbol": "EMPTY", "apikey": KEY}
    ).respond_with_data(b"")
    answer(http_server, "NONE", "av_unknown_symbol.json")
    answer(http_server, "IBM", "av_global_quote.json")
    result = poller(alpha_vantage(http_server, symbols), FakeTime()).poll()
    assert [t.symbol for t in result.ticks] == ["IBM"]
    assert [(f.symbol, f.reason) for f in result.failures] == [
        ("NOTE", "rate_limited"),
        ("ERR", "provider_error"),
        ("HTML", "not_json"),
        ("EMPTY", "no_data"),
        ("NONE", "no_data"),
    ]
    assert "5 requests per minute" in result.failures[0].message


def test_429_waits_as_retry_after_says_and_503_backs_off(http_server: HTTPServer) -> None:
    answer(http_server, "IBM", "av_rate_limit_note.json", status=429, **{"Retry-After": "7"})
    http_server.expect_ordered_request("/query").respond_with_data("busy", status=503)
    http_server.expect_ordered_request("/query").respond_with_data("busy", status=503)
    answer(http_server, "IBM", "av_global_quote.json")
    fake = FakeTime()
    result = poller(alpha_vantage(http_server, ["IBM"], calls_per_minute=100), fake).poll()
    assert [t.symbol for t in result.ticks] == ["IBM"]
    # Retry-After: 7, then exponential backoff from 1 s for the two 503s (attempts 2 and 3).
    assert fake.sleeps == [7.0, 2.0, 4.0]
    http_server.check_assertions()


def test_a_server_that_keeps_failing_gives_up_after_the_attempts(http_server: HTTPServer) -> None:
    http_server.expect_request("/query").respond_with_data("down", status=503)
    fake = FakeTime()
    result = poller(alpha_vantage(http_server, ["IBM"], calls_per_minute=100), fake).poll()
    assert result.ticks == []
    assert [(f.reason, f.message) for f in result.failures] == [
        ("http_error", "HTTP 503 SERVICE UNAVAILABLE after 4 attempts")
    ]
    assert len(http_server.log) == 4
    assert fake.sleeps == [1.0, 2.0, 4.0]


def test_a_retry_after_too_long_to_wait_ends_the_symbols_poll(http_server: HTTPServer) -> None:
    http_server.expect_request("/query").respond_with_data("", status=429, headers={"Retry-After": "3600"})
    result = poller(alpha_vantage(http_server, ["IBM"]), FakeTime()).poll()
    assert "Retry-After 3600 s" in result.failures[0].message
    assert len(http_server.log) == 1


def test_the_rate_limit_holds_across_symbols_retries_included(http_server: HTTPServer) -> None:
    symbols = ["A", "B", "C", "D", "E", "F"]
    http_server.expect_request("/query").respond_with_data((RECORDED / "av_global_quote.json").read_bytes())
    fake = FakeTime()
    poller(alpha_vantage(http_server, symbols), fake).poll()
    # Five calls a minute: the sixth waits until a minute after the first.
    assert fake.sleeps == [60.0]
    assert len(http_server.log) == 6


def test_the_api_key_never_appears_in_a_failure(http_server: HTTPServer) -> None:
    config = QuoteSourceConfig.from_mapping(
        {
            "provider": "alphavantage",
            "symbols": ["IBM"],
            "url": "http://127.0.0.1:9/query",  # the discard port: nothing listens
            "api_key_env": "AV_KEY",
        },
        {"AV_KEY": KEY},
    )
    failure = poller(config, FakeTime()).poll().failures[0]
    assert failure.reason == "http_error"
    assert "ConnectionError" in failure.message
    assert KEY not in failure.message
    assert "apikey=***" in failure.message


def test_a_generic_json_api_is_polled_through_its_url_template(http_server: HTTPServer) -> None:
    body = (RECORDED / "generic_quote.json").read_bytes()
    http_server.expect_request("/v1/quote/BTC-USD").respond_with_data(body)
    config = QuoteSourceConfig.from_mapping(
        {
            "provider": "feed",
            "symbols": ["BTC-USD"],
            "url": http_server.url_for("/v1/quote/{symbol}"),
            "price": "data.last",
            "size": "data.volume",
            "time": "data.ts",
            "poll_seconds": 0.01,
        },
        {},
    )
    failures: list[PollFailure] = []
    ticks = list(poller(config, FakeTime()).ticks(threading.Event(), failures.append, rounds=2))
    assert [(t.id, str(t.price)) for t in ticks] == [("feed:BTC-USD:1795500000000", "97123.45")]
    assert failures == []


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"provider": "alphavantage", "symbols": ["IBM"]}, "api_key_env"),
        ({"provider": "alphavantage", "symbols": ["IBM"], "api_key_env": "MISSING"}, "MISSING is not set"),
        (
            {"provider": "alphavantage", "symbols": ["IBM"], "api_key_env": "AWS_SECRET_ACCESS_KEY"},
            "AWS's own",
        ),
        (
            {
                "provider": "feed",
                "symbols": ["X"],
                "url": "http://x/{symbol}?k={api_key}",
                "price": "p",
                "api_key_env": "aws_session_token",
            },
            "AWS's own",
        ),
        ({"provider": "feed", "symbols": ["X"], "url": "http://x/quote", "price": "p"}, r"\{symbol\}"),
        ({"provider": "feed", "symbols": ["X"], "url": "http://x/{symbol}/{token}", "price": "p"}, "only"),
        ({"provider": "feed", "symbols": ["bad sym"], "url": "http://x/{symbol}", "price": "p"}, "symbols"),
        ({"provider": "alphavantage", "symbols": ["X"], "function": "FX", "api_key_env": "K"}, "function"),
        (
            {
                "provider": "feed",
                "symbols": ["X"],
                "url": "http://x/{symbol}",
                "price": "p",
                "poll_seconds": "a",
            },
            "poll",
        ),
        (
            {
                "provider": "feed",
                "symbols": ["X"],
                "url": "http://x/{symbol}",
                "price": "p",
                "calls_per_minute": 0,
            },
            "calls",
        ),
    ],
)
def test_config_mistakes_are_reported_before_any_request(settings: dict[str, object], complaint: str) -> None:
    with pytest.raises(SourceConfigError, match=complaint):
        QuoteSourceConfig.from_mapping(
            settings, {"K": "k", "AWS_SECRET_ACCESS_KEY": "secret", "aws_session_token": "token"}
        )
