"""Outbound HTTP (quote APIs, alert webhooks): one requests.Session, timeouts, retries, a rate limit.

The only module that imports requests. Retries are ours rather than urllib3's so that every
attempt, retried or not, passes the rate limiter: providers count each call against the quota.
Credentials never reach a message: every error text is redacted of the configured secrets.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3

# Statuses worth retrying: throttled, or the server's own trouble (RFC 9110 §15.6).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# (connect, read) seconds; connect slightly above a multiple of 3 s, TCP's retransmission step.
TIMEOUT_S = (3.05, 15.0)
# The shortest read a request is given when its deadline is near.
MIN_READ_S = 1.0
ATTEMPTS = 4
BACKOFF_S = 1.0
# A Retry-After beyond this is not waited for: the poll moves on and the next round tries again.
MAX_WAIT_S = 120.0


# A URL that cannot work: trying it again changes nothing.
_NEVER_RETRIED = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


def _never_sent(exc: requests.RequestException) -> bool:
    """The request cannot have reached the server: no connection was made."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.exceptions.ConnectionError) and isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret (API key, webhook URL or path) replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class FetchError(RuntimeError):
    """No usable answer after the retries, or a refusal; `reason` is the metric dimension."""

    reason = "http_error"


class OutOfTime(FetchError):
    """The wait for a retry or for the rate limit would run past the caller's deadline."""

    reason = "out_of_time"


class RateLimiter:
    """At most `calls` per `period_s` across every symbol: a sliding window of call times."""

    def __init__(
        self,
        calls: int,
        period_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls < 1:
            raise ValueError("a rate limit needs at least one call per period")
        self._calls, self._period = calls, period_s
        self._clock, self._sleep = clock, sleep
        self._times: deque[float] = deque()

    def acquire(self, deadline: float | None = None) -> None:
        """Takes a call from the window, waiting for one if needed; `deadline` is on the limiter's clock."""
        while True:
            now = self._clock()
            while self._times and now - self._times[0] >= self._period:
                self._times.popleft()
            if len(self._times) < self._calls:
                self._times.append(now)
                return
            wait = self._period - (now - self._times[0])
            if deadline is not None and now + wait > deadline:
                raise OutOfTime(f"the rate limit asks for a {wait:.0f} s wait, past the deadline")
            self._sleep(wait)


def retry_after_s(header: str | None, now: datetime) -> float | None:
    """Retry-After as seconds or as an HTTP date (RFC 9110 §10.2.3); None if absent or unreadable."""
    if not header:
        return None
    if header.strip().isdigit():
        return float(header.strip())
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse without a zone; HTTP dates are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class RetryingHttp:
    def __init__(
        self,
        limiter: RateLimiter | None = None,
        secrets: Iterable[str] = (),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = ATTEMPTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._secrets = [s for s in secrets if s]
        self._session = session or requests.Session()
        self._sleep = sleep
        self._attempts = attempts
        self._clock = clock

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def get(self, url: str, params: Mapping[str, str], deadline: float | None = None) -> bytes:
        """The body of a 2xx answer, retrying throttling, server errors and broken connections.

        `deadline` (on the clock given, time.monotonic by default) bounds every wait.
        """
        return self._call("GET", url, deadline, params=params)

    def post_json(self, url: str, body: Any, deadline: float | None = None) -> bytes:
        """Posts once more only when the last try cannot have arrived: a 429 or 5xx answer, or a
        connection never made. A post that timed out waiting for its answer, or whose connection
        dropped after it was sent, may have arrived: it is given up, not sent again. A redirect
        is not followed (requests would follow it with a GET, without the body)."""
        return self._call("POST", url, deadline, json=body, allow_redirects=False)

    def _call(self, method: str, url: str, deadline: float | None, **request: Any) -> bytes:
        problem = "no attempt"
        for attempt in range(self._attempts):
            if self._limiter is not None:
                self._limiter.acquire(deadline)
            wait = BACKOFF_S * 2**attempt
            timeout = TIMEOUT_S
            if deadline is not None:  # no read waits past the deadline either
                timeout = (TIMEOUT_S[0], max(MIN_READ_S, min(TIMEOUT_S[1], deadline - self._clock())))
            try:
                response = self._session.request(method, url, timeout=timeout, **request)
            except requests.RequestException as exc:
                problem = self.redact(f"{type(exc).__name__}: {exc}")
                if isinstance(exc, _NEVER_RETRIED) or (method == "POST" and not _never_sent(exc)):
                    raise FetchError(f"{problem}; not tried again") from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 300:
                        raise FetchError(f"HTTP {response.status_code} {response.reason}")
                    return response.content
                problem = f"HTTP {response.status_code} {response.reason}"
                asked = retry_after_s(response.headers.get("Retry-After"), datetime.now(UTC))
                if asked is not None:
                    if asked > MAX_WAIT_S:
                        raise FetchError(f"{problem}; Retry-After {asked:.0f} s is beyond {MAX_WAIT_S:.0f} s")
                    wait = asked
            if attempt + 1 < self._attempts:
                if deadline is not None and self._clock() + wait > deadline:
                    raise OutOfTime(f"{problem}; no time left for a {wait:.0f} s wait")
                self._sleep(wait)
        raise FetchError(f"{problem} after {self._attempts} attempts")
