"""Alerts out to a Slack-compatible incoming webhook: retried with backoff, then given up.

Never raises: a webhook that is down must not fail the bar pipeline, so each post ends in a
Delivery that the caller logs and counts. The URL carries the webhook's secret token, so it is
redacted from every message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webclients.retrying_http import FetchError, RetryingHttp, redact


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    detail: str = ""


class SlackWebhook:
    def __init__(self, url: str, http: RetryingHttp | None = None) -> None:
        self._url = url
        self._http = http or RetryingHttp()
        # Connection errors quote the URL or only its path; the token is in the path.
        self._secrets = [url, urlsplit(url).path]

    def post(self, body: dict[str, Any]) -> Delivery:
        try:
            self._http.post_json(self._url, body)
        except FetchError as exc:
            return Delivery(False, redact(str(exc), self._secrets))
        return Delivery(True)
