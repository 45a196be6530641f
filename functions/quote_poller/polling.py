"""Polling quote APIs into ticks: the `http:<config>` source of `tickstream produce`.

A config file names the provider, the symbols and the limits; each round fetches every symbol
once through the shared fetcher and turns the answers into ticks. A symbol whose answer is an
error, a rate-limit note, HTML or incomplete yields no tick and a PollFailure; the round goes on
with the other symbols. Each symbol has a mark, the newest quote it gave: a quote that is the
mark again, or older than it, is not emitted again. The CLI keeps marks in memory; the scheduled
poller Lambda keeps them in its state table between invocations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from market.quote_payloads import (
    ALPHA_VANTAGE,
    JsonFields,
    QuoteError,
    alpha_vantage_global_quote,
    alpha_vantage_intraday,
    generic_json,
    parse_json,
)
from market.ticks import InvalidTick, Tick, validate_symbol
from webclients.retrying_http import FetchError, OutOfTime, RateLimiter, RetryingHttp

ALPHA_VANTAGE_URL = "https://www.alphavantage.co/query"
ALPHA_VANTAGE_FUNCTIONS = ("GLOBAL_QUOTE", "TIME_SERIES_INTRADAY")
# Alpha Vantage's free tier: 5 calls a minute (https://www.alphavantage.co/premium/).
ALPHA_VANTAGE_CALLS_PER_MINUTE = 5
# api_key_env may not name these: the key is sent to the quote source, and AWS's variables hold
# the process's own credentials (on Lambda, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN).
FORBIDDEN_KEY_PREFIXES = ("AWS_",)


class SourceConfigError(ValueError):
    """The source config file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class QuoteSourceConfig:
    provider: str  # "alphavantage" or a generic JSON provider's name
    symbols: tuple[str, ...]
    url: str  # for JSON providers a template with {symbol}
    calls_per_minute: int
    poll_seconds: float
    function: str = "GLOBAL_QUOTE"
    interval: str = "5min"
    api_key: str = field(default="", repr=False)
    fields: JsonFields | None = None

    @classmethod
    def from_file(cls, path: Path, env: Mapping[str, str], api_key: str | None = None) -> QuoteSourceConfig:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            # One line: a YAML error spans several (the line, a caret under the column).
            raise SourceConfigError(f"{path}: {' '.join(str(exc).split())}") from exc
        if not isinstance(data, dict):
            raise SourceConfigError(f"{path}: expected a mapping of settings")
        return cls.from_mapping(data, env, api_key)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], env: Mapping[str, str], api_key: str | None = None
    ) -> QuoteSourceConfig:
        """The API key comes from the environment variable the config names, never from the file,
        unless it is given (the poller Lambda reads it from SSM or Secrets Manager)."""
        provider = str(data.get("provider", ""))
        symbols = data.get("symbols")
        if not provider:
            raise SourceConfigError("'provider' is required: alphavantage, or a name for a JSON API")
        if not isinstance(symbols, list) or not symbols:
            raise SourceConfigError("'symbols' must be a non-empty list")
        try:
            checked = tuple(validate_symbol(str(s)) for s in symbols)
        except InvalidTick as exc:
            raise SourceConfigError(f"symbols: {exc}") from exc
        key_variable = data.get("api_key_env")
        if key_variable and str(key_variable).upper().startswith(FORBIDDEN_KEY_PREFIXES):
            raise SourceConfigError(
                f"api_key_env {key_variable}: AWS's own variables are never sent to a quote source"
            )
        if api_key is None:
            api_key = env.get(str(key_variable), "") if key_variable else ""
            if key_variable and not api_key:
                raise SourceConfigError(f"the API key variable {key_variable} is not set")
        poll_seconds = _positive(data, "poll_seconds", 60)
        if provider == ALPHA_VANTAGE:
            function = str(data.get("function", "GLOBAL_QUOTE"))
            if function not in ALPHA_VANTAGE_FUNCTIONS:
                raise SourceConfigError(f"function {function!r}: expected one of {ALPHA_VANTAGE_FUNCTIONS}")
            if not api_key:
                raise SourceConfigError("Alpha Vantage needs 'api_key_env', the variable holding the key")
            return cls(
                provider,
                checked,
                str(data.get("url", ALPHA_VANTAGE_URL)),
                _calls_per_minute(data, ALPHA_VANTAGE_CALLS_PER_MINUTE),
                poll_seconds,
                function=function,
                interval=str(data.get("interval", "5min")),
                api_key=api_key,
            )
        url, price = data.get("url"), data.get("price")
        if not isinstance(url, str) or "{symbol}" not in url:
            raise SourceConfigError("'url' must be a URL template containing {symbol}")
        try:
            url.format(symbol="X", api_key="K")
        except (KeyError, IndexError, ValueError) as exc:
            raise SourceConfigError(f"'url' may use {{symbol}} and {{api_key}} only: {exc!r}") from exc
        if not isinstance(price, str):
            raise SourceConfigError("'price' must be the dotted path of the price in the answer")
        size, time_path = data.get("size"), data.get("time")
        return cls(
            provider,
            checked,
            url,
            _calls_per_minute(data, 60),
            poll_seconds,
            api_key=api_key,
            fields=JsonFields(price, str(size) if size else None, str(time_path) if time_path else None),
        )

    def request(self, symbol: str) -> tuple[str, dict[str, str]]:
        if self.provider == ALPHA_VANTAGE:
            params = {"function": self.function, "symbol": symbol, "apikey": self.api_key}
            if self.function == "TIME_SERIES_INTRADAY":
                params["interval"] = self.interval
            return self.url, params
        return self.url.format(symbol=symbol, api_key=self.api_key), {}


def _positive(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SourceConfigError(f"{key!r} must be a positive number, not {value!r}")
    return float(value)


def _calls_per_minute(data: Mapping[str, Any], default: int) -> int:
    calls = _positive(data, "calls_per_minute", default)
    if calls != int(calls):
        raise SourceConfigError(f"'calls_per_minute' must be a whole number, not {calls}")
    return int(calls)


@dataclass(frozen=True)
class PollFailure:
    symbol: str
    reason: str  # the metric dimension: rate_limited, not_json, http_error, ...
    message: str  # redacted of the API key


@dataclass(frozen=True)
class QuoteMark:
    """The newest quote a symbol has given, by id and time."""

    quote_id: str
    ts_ms: int


def fresh_ticks(ticks: Sequence[Tick], mark: QuoteMark | None) -> tuple[list[Tick], QuoteMark | None]:
    """The ticks newer than the mark, oldest first, and the mark after them.

    A daily quote polled again has the same id (its time is the fetch's, always newer); an
    intraday answer repeats the intervals it gave before, which are not newer than the mark.
    """
    fresh = []
    for tick in sorted(ticks, key=lambda t: t.ts_ms):
        if tick.id is None:
            continue
        if mark is not None and (tick.id == mark.quote_id or tick.ts_ms <= mark.ts_ms):
            continue
        fresh.append(tick)
        mark = QuoteMark(tick.id, tick.ts_ms)
    return fresh, mark


def symbols_due(symbols: Sequence[str], calls: int, slot: int) -> tuple[str, ...]:
    """What one scheduled poll fetches: every symbol if `calls` allows, else the next `calls` of
    them in turn, so that each symbol comes round once in every ceil(len / calls) slots."""
    if calls < 1:
        raise ValueError("a poll needs at least one call")
    if len(symbols) <= calls:
        return tuple(symbols)
    start = (slot * calls) % len(symbols)
    return tuple(symbols[(start + i) % len(symbols)] for i in range(calls))


@dataclass
class PollRound:
    ticks: list[Tick]
    failures: list[PollFailure]
    changed: dict[str, QuoteMark] = field(default_factory=dict)  # marks moved by this round


class QuotePoller:
    def __init__(
        self,
        config: QuoteSourceConfig,
        fetcher: RetryingHttp,
        clock_ms: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._fetcher = fetcher
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._monotonic = monotonic  # the clock of deadlines, as the fetcher's
        self.marks: dict[str, QuoteMark] = {}

    @classmethod
    def for_config(cls, config: QuoteSourceConfig) -> QuotePoller:
        limiter = RateLimiter(config.calls_per_minute)
        return cls(config, RetryingHttp(limiter, secrets=[config.api_key]))

    def poll(self, symbols: Sequence[str] | None = None, deadline: float | None = None) -> PollRound:
        """One round over the symbols (all by default); only ticks newer than each symbol's mark.

        `deadline` (on the monotonic clock) ends the round early: symbols left are failures of reason
        out_of_time, and no wait runs past it.
        """
        found = PollRound([], [])
        for symbol in self.config.symbols if symbols is None else symbols:
            url, params = self.config.request(symbol)
            try:
                if deadline is not None and self._monotonic() >= deadline:
                    raise OutOfTime("no time left in this poll")
                body = self._fetcher.get(url, params, deadline)
                ticks = self._parse(body, symbol)
            except (QuoteError, FetchError) as exc:
                found.failures.append(PollFailure(symbol, exc.reason, self._fetcher.redact(str(exc))))
                continue
            fresh, mark = fresh_ticks(ticks, self.marks.get(symbol))
            if fresh and mark is not None:
                self.marks[symbol] = found.changed[symbol] = mark
            found.ticks.extend(fresh)
        return found

    def ticks(
        self, stop: threading.Event, on_failure: Callable[[PollFailure], None], rounds: int | None = None
    ) -> Iterator[Tick]:
        """Polls every `poll_seconds` until stopped (or for `rounds` rounds)."""
        done = 0
        while not stop.is_set() and (rounds is None or done < rounds):
            result = self.poll()
            for failure in result.failures:
                on_failure(failure)
            yield from result.ticks
            done += 1
            if rounds is None or done < rounds:
                stop.wait(self.config.poll_seconds)

    def _parse(self, body: bytes, symbol: str) -> list[Tick]:
        payload = parse_json(body)
        if self.config.provider == ALPHA_VANTAGE:
            if self.config.function == "GLOBAL_QUOTE":
                return [alpha_vantage_global_quote(payload, symbol, self._clock_ms())]
            return alpha_vantage_intraday(payload, symbol)
        if self.config.fields is None:
            raise SourceConfigError(f"provider {self.config.provider!r} has no field paths")
        return [generic_json(payload, symbol, self.config.fields, self.config.provider, self._clock_ms())]
