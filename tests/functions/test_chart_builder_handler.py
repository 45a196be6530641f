"""The chart builder's handler fed the events Lambda sends it: EventBridge's scheduled event (the
sweep), DynamoDB stream batches, and events that are neither."""

from __future__ import annotations

import time

import pytest

import functions.chart_builder.handler as chart_handler
from functions.chart_builder.handler import event_time, is_sweep
from functions.chart_builder.service import ChartBuilder
from local_aws.runner.invoker import LocalContext
from tests.support.chart_doubles import T0, DrawLog, VersionedBars, render


def test_the_sweep_and_a_stream_batch_each_carry_their_own_time() -> None:
    sweep = {
        "version": "0",
        "id": "1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": "2026-11-02T14:31:00Z",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"],
        "detail": {},
    }
    assert is_sweep(sweep)
    assert event_time(sweep) == T0 + 60
    batch = {"Records": [{"dynamodb": {"ApproximateCreationDateTime": t}} for t in (T0 + 5.5, T0 + 9.9, T0)]}
    assert not is_sweep(batch)
    assert event_time(batch) == T0 + 9


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"detail-type": "Something Else", "source": "aws.events"},
        {"Records": "not a list"},
    ],
)
def test_an_event_that_is_neither_a_stream_batch_nor_the_sweep_is_ignored(
    event: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chart_handler.metrics, "namespace", "tickstream/test")  # the template sets it
    site = DrawLog()
    chart_handler._built = (
        ChartBuilder(VersionedBars(), site, render=render, refresh_floor_s=60),
        None,
    )
    try:
        answer = chart_handler.handler(event, LocalContext("charts", "arn", 1024, 120))
    finally:
        chart_handler._built = None
    assert answer == {"batchItemFailures": []}
    assert site.manifest is None


def test_times_that_are_missing_or_beyond_the_page_are_replaced_by_the_clock() -> None:
    sweep = {"source": "aws.events", "detail-type": "Scheduled Event"}
    before = int(time.time())
    assert event_time({**sweep, "time": "2026-11-02T14:31:00"}) == T0 + 60  # no zone: UTC
    assert event_time({**sweep, "time": "soon"}) >= before
    assert event_time(sweep) >= before
    assert event_time({"Records": [{"dynamodb": {"ApproximateCreationDateTime": 1e20}}]}) >= before
    assert (
        event_time({"Records": [{"dynamodb": None}, {"dynamodb": {"ApproximateCreationDateTime": "x"}}]})
        >= before
    )
