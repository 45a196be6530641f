"""The scheduled poller's own logic: marks (a quote is sent once), the rotation of symbols
within the provider's calls, deadlines, settings, and the order of put and mark."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.quote_poller.handler import slot_of
from functions.quote_poller.polling import (
    QuoteMark,
    QuotePoller,
    QuoteSourceConfig,
    SourceConfigError,
    fresh_ticks,
    symbols_due,
)
from functions.quote_poller.quote_state_table import QuoteStateTable, QuoteStateUnavailable
from functions.quote_poller.service import ScheduledPoll, TicksNotSent
from functions.quote_poller.settings import PollerSettings, PollerSettingsError
from market.ticks import Tick
from producer.pipeline import ProduceStats
from webclients.retrying_http import OutOfTime, RateLimiter, RetryingHttp

SYMBOLS = st.lists(st.from_regex(r"[A-Z]{1,5}", fullmatch=True), min_size=1, max_size=30, unique=True)


def tick(ts_ms: int, quote_id: str, symbol: str = "IBM") -> Tick:
    return Tick(symbol, Decimal("100"), Decimal(0), ts_ms, quote_id)


@given(
    st.lists(
        st.lists(st.tuples(st.integers(1, 50), st.integers(1, 5)), max_size=8),
        min_size=1,
        max_size=6,
    )
)
def test_a_quote_is_sent_at_most_once_and_never_older_than_one_sent(
    polls: list[list[tuple[int, int]]],
) -> None:
    """Polls return overlapping intervals (time, version); ids are per time, as intraday's are."""
    mark: QuoteMark | None = None
    sent: list[Tick] = []
    for answer in polls:
        fresh, mark = fresh_ticks([tick(ts, f"av:IBM:{ts}") for ts, _ in answer], mark)
        sent.extend(fresh)
    ids = [t.id for t in sent]
    assert len(ids) == len(set(ids))
    assert [t.ts_ms for t in sent] == sorted(t.ts_ms for t in sent)
    newest = max((ts for answer in polls for ts, _ in answer), default=None)
    assert (mark is None) == (newest is None)
    if mark is not None:
        assert mark.ts_ms == newest


def test_a_daily_quote_polled_again_is_not_sent_again_though_its_fetch_time_is_newer() -> None:
    first, mark = fresh_ticks([tick(1_000, "av:IBM:2026-11-20:3188202:227.42")], None)
    again, mark = fresh_ticks([tick(61_000, "av:IBM:2026-11-20:3188202:227.42")], mark)
    moved, _ = fresh_ticks([tick(121_000, "av:IBM:2026-11-20:3190000:227.50")], mark)
    assert (len(first), again, len(moved)) == (1, [], 1)


@given(SYMBOLS, st.integers(1, 10), st.integers(0, 10**9))
def test_consecutive_polls_cover_every_symbol_within_the_calls_allowed(
    symbols: list[str], calls: int, slot: int
) -> None:
    rounds = math.ceil(len(symbols) / calls)
    seen: set[str] = set()
    for offset in range(rounds):
        due = symbols_due(symbols, calls, slot + offset)
        assert len(due) == min(calls, len(symbols))
        assert len(set(due)) == len(due)
        seen.update(due)
    assert seen == set(symbols)


def test_the_slot_is_the_scheduled_minute_over_the_period() -> None:
    event = {"time": "2026-11-24T06:01:00Z"}
    minute = 1_795_500_060 // 60
    assert slot_of(event, 1, 0.0) == minute
    assert slot_of(event, 5, 0.0) == minute // 5
    assert slot_of({}, 1, 1_795_500_061.5) == minute


def test_settings_read_the_schedule_and_refuse_two_key_sources() -> None:
    env = {"STREAM_NAME": "s", "QUOTE_STATE_TABLE": "t", "QUOTE_POLL_MINUTES": "5"}
    settings = PollerSettings.from_environment({**env, "QUOTE_API_KEY_PARAMETER": "/k"})
    assert (settings.poll_minutes, settings.api_key_parameter, settings.api_key_secret) == (5, "/k", None)
    assert settings.sources_file.name == "sources.yaml"
    assert settings.sources_file.exists()
    with pytest.raises(PollerSettingsError, match="not both"):
        PollerSettings.from_environment({**env, "QUOTE_API_KEY_PARAMETER": "/k", "QUOTE_API_KEY_SECRET": "k"})
    with pytest.raises(PollerSettingsError, match="QUOTE_POLL_MINUTES"):
        PollerSettings.from_environment({**env, "QUOTE_POLL_MINUTES": "0"})
    with pytest.raises(PollerSettingsError, match="STREAM_NAME"):
        PollerSettings.from_environment({"QUOTE_STATE_TABLE": "t"})


def test_the_packaged_source_config_is_valid() -> None:
    default = PollerSettings.from_environment({"STREAM_NAME": "s", "QUOTE_STATE_TABLE": "t"}).sources_file
    config = QuoteSourceConfig.from_file(default, {}, api_key="from-ssm")
    assert config.provider == "alphavantage"
    assert config.api_key == "from-ssm"
    assert config.calls_per_minute == 5


class NoRequests(RetryingHttp):
    """A fetcher that must not be called."""

    def get(self, url: str, params: Mapping[str, str], deadline: float | None = None) -> bytes:
        raise AssertionError(f"fetched {params.get('symbol')} past the deadline")


def test_symbols_left_at_the_deadline_are_failures_of_their_own_reason() -> None:
    config = QuoteSourceConfig.from_mapping(
        {"provider": "alphavantage", "symbols": ["IBM", "DELL"], "api_key_env": "K"}, {"K": "secret"}
    )
    found = QuotePoller(config, NoRequests(), monotonic=lambda: 100.0).poll(deadline=99.0)
    assert [(f.symbol, f.reason) for f in found.failures] == [("IBM", "out_of_time"), ("DELL", "out_of_time")]


def test_no_wait_runs_past_the_deadline() -> None:
    slept: list[float] = []
    limiter = RateLimiter(1, clock=lambda: 0.0, sleep=slept.append)
    limiter.acquire(deadline=10.0)
    with pytest.raises(OutOfTime):
        limiter.acquire(deadline=10.0)  # the next call of the minute waits 60 s
    assert slept == []


class Marks:
    def __init__(self, stored: dict[str, QuoteMark]) -> None:
        self.stored = stored
        self.saved: list[dict[str, QuoteMark]] = []

    def load(self, provider: str, symbols: Sequence[str]) -> dict[str, QuoteMark]:
        return {s: m for s, m in self.stored.items() if s in symbols}

    def save(self, provider: str, marks: Mapping[str, QuoteMark]) -> None:
        self.saved.append(dict(marks))


class CannedAnswers(RetryingHttp):
    """Every symbol's answer is one quote of price 100 at 5 s after the epoch."""

    def get(self, url: str, params: Mapping[str, str], deadline: float | None = None) -> bytes:
        return b'{"last": 100, "size": 0, "time": 5}'


def canned(symbols: list[str]) -> QuotePoller:
    """The real poller over canned answers: provider `av`, so ids read `av:<symbol>:5000`."""
    config = QuoteSourceConfig.from_mapping(
        {
            "provider": "av",
            "symbols": symbols,
            "url": "http://quotes.invalid/{symbol}",
            "price": "last",
            "size": "size",
            "time": "time",
            "calls_per_minute": 5,
        },
        {},
    )
    return QuotePoller(config, CannedAnswers())


def stats(read: int, accepted: int) -> ProduceStats:
    return ProduceStats(ticks_read=read, ticks_accepted=accepted, ticks_failed=read - accepted)


def test_marks_are_saved_after_the_stream_took_every_tick_and_only_for_new_quotes() -> None:
    marks = Marks({"IBM": QuoteMark("av:IBM:5000", 5_000)})
    sent: list[Tick] = []

    def send(ticks: Iterable[Tick]) -> ProduceStats:
        sent.extend(ticks)
        return stats(len(sent), len(sent))

    report = ScheduledPoll(canned(["IBM", "DELL"]), marks, send, 5).run(slot=0, deadline=None)
    assert [t.symbol for t in sent] == ["DELL"]
    assert report.ticks_sent == 1
    assert marks.saved == [{"DELL": QuoteMark("av:DELL:5000", 5_000)}]


def test_ticks_the_stream_refused_leave_the_marks_so_the_next_poll_sends_them_again() -> None:
    marks = Marks({})
    poller = canned(["DELL"])
    refused = ScheduledPoll(poller, marks, lambda ticks: stats(len(list(ticks)), 0), 5)
    with pytest.raises(TicksNotSent):
        refused.run(slot=0, deadline=None)
    assert marks.saved == []
    sent: list[Tick] = []

    def send(ticks: Iterable[Tick]) -> ProduceStats:
        sent.extend(ticks)
        return stats(len(sent), len(sent))

    ScheduledPoll(poller, marks, send, 5).run(slot=1, deadline=None)
    assert [t.symbol for t in sent] == ["DELL"]


class ThrottledTable:
    """A DynamoDB client that leaves every key unprocessed for its first `throttled` answers."""

    def __init__(self, throttled: int) -> None:
        self.throttled = throttled
        self.asked: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        self.asked.append(len(request["Keys"]))
        if len(self.asked) <= self.throttled:
            return {"Responses": {table: []}, "UnprocessedKeys": {table: {"Keys": request["Keys"]}}}
        items = [{"pk": k["pk"], "quote_id": {"S": "q"}, "ts_ms": {"N": "7"}} for k in request["Keys"]]
        return {"Responses": {table: items}, "UnprocessedKeys": {}}


def test_unprocessed_marks_are_asked_again_with_backoff_and_never_forever() -> None:
    slept: list[float] = []
    client = ThrottledTable(throttled=2)
    marks = QuoteStateTable(client, "marks", sleep=slept.append).load("av", ["IBM", "DELL"])
    assert marks == {"IBM": QuoteMark("q", 7), "DELL": QuoteMark("q", 7)}
    assert client.asked == [2, 2, 2]
    assert slept == [0.1, 0.2]
    with pytest.raises(QuoteStateUnavailable, match="left unprocessed"):
        QuoteStateTable(ThrottledTable(throttled=99), "marks", sleep=slept.append).load("av", ["IBM"])


def test_a_source_file_that_is_not_yaml_is_refused_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "sources.yaml"
    broken.write_text("provider: alphavantage\nsymbols: [IBM\n  - x: : :\n")
    with pytest.raises(SourceConfigError) as refused:
        QuoteSourceConfig.from_file(broken, {})
    assert str(broken) in str(refused.value)
    assert "\n" not in str(refused.value)
