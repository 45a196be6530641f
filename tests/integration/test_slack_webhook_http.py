"""The alert webhook against a real local HTTP server: delivered, retried, or given up without raising."""

from __future__ import annotations

import json
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from alerts.slack_webhook import SlackWebhook
from webclients.retrying_http import RetryingHttp

BODY = {"text": ":rotating_light: AAPL moved +4.50%"}


def webhook(http_server: HTTPServer, sleeps: list[float], attempts: int = 3) -> SlackWebhook:
    url = http_server.url_for("/services/T000/B000/secret-token")
    return SlackWebhook(url, RetryingHttp(sleep=sleeps.append, attempts=attempts))


def test_an_alert_is_posted_as_json(http_server: HTTPServer) -> None:
    path = "/services/T000/B000/secret-token"
    http_server.expect_request(path, method="POST", json=BODY).respond_with_data("ok")
    delivery = webhook(http_server, []).post(BODY)
    assert delivery.delivered
    http_server.check_assertions()
    (request, _), *_ = http_server.log
    assert json.loads(request.data) == BODY


def test_server_errors_are_retried_with_backoff(http_server: HTTPServer) -> None:
    path = "/services/T000/B000/secret-token"
    http_server.expect_ordered_request(path).respond_with_data("busy", status=503)
    throttled = {"Retry-After": "3"}
    http_server.expect_ordered_request(path).respond_with_data("slow down", status=429, headers=throttled)
    http_server.expect_ordered_request(path).respond_with_data("ok")
    sleeps: list[float] = []
    assert webhook(http_server, sleeps).post(BODY).delivered
    assert sleeps == [1.0, 3.0]


def test_a_webhook_that_stays_down_is_given_up_without_leaking_its_url(http_server: HTTPServer) -> None:
    http_server.expect_request("/services/T000/B000/secret-token").respond_with_data("down", status=500)
    sleeps: list[float] = []
    delivery = webhook(http_server, sleeps).post(BODY)
    assert not delivery.delivered
    assert delivery.detail == "HTTP 500 INTERNAL SERVER ERROR after 3 attempts"
    assert len(http_server.log) == 3
    unreachable = SlackWebhook("http://127.0.0.1:9/services/secret-token", RetryingHttp(sleep=sleeps.append))
    refused = unreachable.post(BODY)
    assert not refused.delivered
    assert "secret-token" not in refused.detail


def test_a_refused_post_is_not_retried(http_server: HTTPServer) -> None:
    http_server.expect_request("/services/T000/B000/secret-token").respond_with_data("no_service", status=404)
    delivery = webhook(http_server, []).post(BODY)
    assert (delivery.delivered, delivery.detail) == (False, "HTTP 404 NOT FOUND")
    assert len(http_server.log) == 1


def test_a_redirect_is_not_followed_nor_called_delivered(http_server: HTTPServer) -> None:
    """requests would follow a 301 with a GET and no body, and call the post delivered."""
    http_server.expect_request("/services/T000/B000/secret-token").respond_with_data(
        "", status=301, headers={"Location": "/elsewhere"}
    )
    delivery = webhook(http_server, []).post(BODY)
    assert (delivery.delivered, delivery.detail) == (False, "HTTP 301 MOVED PERMANENTLY")
    assert [request.path for request, _ in http_server.log] == ["/services/T000/B000/secret-token"]


def test_a_post_left_without_answer_is_not_sent_again(
    http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It may have arrived: a second copy in the chat is worse than one counted as failed."""
    monkeypatch.setattr("webclients.retrying_http.TIMEOUT_S", (3.05, 0.2))

    arrived: list[bytes] = []

    def slow(request: Request) -> Response:
        arrived.append(request.data)
        time.sleep(0.5)
        return Response("ok")

    http_server.expect_request("/services/T000/B000/secret-token").respond_with_handler(slow)
    sleeps: list[float] = []
    delivery = webhook(http_server, sleeps).post(BODY)
    assert not delivery.delivered
    assert delivery.detail.startswith("ReadTimeout")
    assert delivery.detail.endswith("not tried again")
    assert (len(arrived), sleeps) == (1, [])
    assert "secret-token" not in delivery.detail


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook?token=SECRETTOKEN",
        "http://127.0.0.1:9/services/SECRET TOKEN",
        "http://127.0.0.1:9/services/SECRETTOKEN\u00e9",
        "http://127.0.0.1:9/services/SECRET%54OKEN",
    ],
)
def test_an_unusual_webhook_url_is_redacted_too(url: str) -> None:
    refused = SlackWebhook(url, RetryingHttp(sleep=lambda _: None, attempts=1)).post(BODY)
    assert not refused.delivered
    assert "SECRET" not in refused.detail
