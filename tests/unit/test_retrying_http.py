"""Reading Retry-After as servers send it: seconds, or an HTTP date with or without a zone."""

from __future__ import annotations

from datetime import UTC, datetime

from webclients.retrying_http import retry_after_s


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120.0
    assert retry_after_s("Tue, 24 Nov 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_s("Tue, 24 Nov 2026 12:00:30 -0000", now) == 30.0
    assert retry_after_s("Tue, 24 Nov 2026 11:59:00 GMT", now) == 0.0
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None
