"""Alerts out to a Slack-compatible incoming webhook: retried with backoff, then given up.

Never raises: a webhook that is down must not fail the bar pipeline, so each post ends in a
Delivery that the caller logs and counts. The URL carries the webhook's secret token, so it is
redacted from every message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from requests.utils import requote_uri

from webclients.retrying_http import FetchError, RetryingHttp, redact


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    detail: str = ""


class SlackWebhook:
    def __init__(self, url: str, http: RetryingHttp | None = None) -> None:
        self._url = url
        self._http = http or RetryingHttp()
        # Connection errors quote the URL, its path or its query, as given or as requests quotes
        # them (a space as %20); the token is in the path, or for some services the query.
        quoted = requote_uri(url)
        parts = [url, quoted, *urlsplit(url)[2:4], *urlsplit(quoted)[2:4], unquote(urlsplit(url).path)]
        self._secrets = sorted({p for p in parts if len(p) > 1}, key=len, reverse=True)

    def post(self, body: dict[str, Any], deadline: float | None = None) -> Delivery:
        """`deadline` (time.monotonic) bounds the waits between tries: past it, the post is given up."""
        try:
            self._http.post_json(self._url, body, deadline)
        except FetchError as exc:
            return Delivery(False, redact(str(exc), self._secrets))
        return Delivery(True)
