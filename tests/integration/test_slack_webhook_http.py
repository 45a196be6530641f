"""The alert webhook against a real local HTTP server: delivered, retried, or given up without raising."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from alerts.slack_webhook import SlackWebhook
from webclients.retrying_http import RetryingHttp

BODY = {"text": ":rotating_light: AAPL moved +4.50%"}


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    http = HTTPServer(host="127.0.0.1", port=0)
    http.start()
    try:
        yield http
    finally:
        http.clear()
        http.stop()


def webhook(server: HTTPServer, sleeps: list[float], attempts: int = 3) -> SlackWebhook:
    url = server.url_for("/services/T000/B000/secret-token")
    return SlackWebhook(url, RetryingHttp(sleep=sleeps.append, attempts=attempts))


def test_an_alert_is_posted_as_json(server: HTTPServer) -> None:
    path = "/services/T000/B000/secret-token"
    server.expect_request(path, method="POST", json=BODY).respond_with_data("ok")
    delivery = webhook(server, []).post(BODY)
    assert delivery.delivered
    server.check_assertions()
    (request, _), *_ = server.log
    assert json.loads(request.data) == BODY


def test_server_errors_are_retried_with_backoff(server: HTTPServer) -> None:
    path = "/services/T000/B000/secret-token"
    server.expect_ordered_request(path).respond_with_data("busy", status=503)
    throttled = {"Retry-After": "3"}
    server.expect_ordered_request(path).respond_with_data("slow down", status=429, headers=throttled)
    server.expect_ordered_request(path).respond_with_data("ok")
    sleeps: list[float] = []
    assert webhook(server, sleeps).post(BODY).delivered
    assert sleeps == [1.0, 3.0]


def test_a_webhook_that_stays_down_is_given_up_without_raising_or_leaking_its_url(server: HTTPServer) -> None:
    server.expect_request("/services/T000/B000/secret-token").respond_with_data("down", status=500)
    sleeps: list[float] = []
    delivery = webhook(server, sleeps).post(BODY)
    assert not delivery.delivered
    assert delivery.detail == "HTTP 500 INTERNAL SERVER ERROR after 3 attempts"
    assert len(server.log) == 3
    unreachable = SlackWebhook("http://127.0.0.1:9/services/secret-token", RetryingHttp(sleep=sleeps.append))
    refused = unreachable.post(BODY)
    assert not refused.delivered
    assert "secret-token" not in refused.detail


def test_a_refused_post_is_not_retried(server: HTTPServer) -> None:
    server.expect_request("/services/T000/B000/secret-token").respond_with_data("no_service", status=404)
    delivery = webhook(server, []).post(BODY)
    assert (delivery.delivered, delivery.detail) == (False, "HTTP 404 NOT FOUND")
    assert len(server.log) == 1
