"""What the runner makes of an invocation for CloudWatch, and how `tickstream logs` reads times."""

from __future__ import annotations

import contextlib
import io

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from local_aws.runner.metrics import LAMBDA_NAMESPACE, emf_metrics, lambda_metrics
from tickstream.ops.log_tail import parse_since

NOW_MS = 1_795_000_000_000


def powertools_output() -> str:
    """What the handlers print: Powertools' own EMF lines, among other output."""
    metrics = Metrics(namespace="tickstream", service="aggregator")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print('{"level":"INFO","message":"batch"}')
        metrics.add_metric("TicksProcessed", MetricUnit.Count, 7)
        metrics.add_metric("TicksProcessed", MetricUnit.Count, 3)
        metrics.add_metric("IteratorAgeMilliseconds", MetricUnit.Milliseconds, 250)
        with single_metric(
            name="TicksRejectedByReason", unit=MetricUnit.Count, value=2, namespace="tickstream"
        ) as metric:
            metric.add_dimension("reason", "bad_price")
        metrics.flush_metrics()
    return printed.getvalue()


def test_emf_lines_become_metric_data_with_their_dimensions() -> None:
    data = emf_metrics(powertools_output() + "not json\n{}\n")
    processed = [d for d in data if d.name == "TicksProcessed"]
    assert sorted(d.value for d in processed) == [3.0, 7.0]
    assert {d.dimensions for d in processed} == {(("service", "aggregator"),)}
    assert all(d.namespace == "tickstream" and d.unit == "Count" for d in processed)
    (age,) = [d for d in data if d.name == "IteratorAgeMilliseconds"]
    assert (age.value, age.unit) == (250.0, "Milliseconds")
    (rejected,) = [d for d in data if d.name == "TicksRejectedByReason"]
    assert ("reason", "bad_price") in rejected.dimensions
    assert rejected.value == 2.0


def test_lambda_reports_iterator_age_of_the_last_record_in_the_batch() -> None:
    event = {
        "Records": [
            {"kinesis": {"approximateArrivalTimestamp": (NOW_MS - 9_000) / 1000}},
            {"kinesis": {"approximateArrivalTimestamp": (NOW_MS - 4_000) / 1000}},
        ]
    }
    data = {d.name: d for d in lambda_metrics("fn", event, 12.5, failed=True, now_ms=NOW_MS)}
    assert data["IteratorAge"].value == 4_000
    assert data["Errors"].value == 1
    assert data["Duration"].value == 12.5
    assert data["Invocations"].namespace == LAMBDA_NAMESPACE
    assert data["Invocations"].dimensions == (("FunctionName", "fn"),)


def test_dynamodb_batches_age_by_creation_time_and_window_ends_have_no_age() -> None:
    event = {"Records": [{"dynamodb": {"ApproximateCreationDateTime": (NOW_MS - 1_500) / 1000}}]}
    ages = [d for d in lambda_metrics("fn", event, 1.0, False, NOW_MS) if d.name == "IteratorAge"]
    assert [d.value for d in ages] == [1_500]
    assert not [
        d for d in lambda_metrics("fn", {"Records": []}, 1.0, False, NOW_MS) if d.name == "IteratorAge"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW_MS - 600_000),
        ("1h30m", NOW_MS - 5_400_000),
        ("2d", NOW_MS - 172_800_000),
        ("45s", NOW_MS - 45_000),
        ("2026-11-24T01:00:00", 1_795_482_000_000),
        ("2026-11-24T01:00:00+01:00", 1_795_478_400_000),
    ],
)
def test_since_takes_durations_and_times(text: str, expected: int) -> None:
    assert parse_since(text, NOW_MS) == expected


@pytest.mark.parametrize("text", ["", "10x", "m10", "yesterday", "99999999999d"])
def test_since_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="--since"):
        parse_since(text, NOW_MS)
