"""Metrics of an invocation as CloudWatch would get them: the function's EMF lines, and Lambda's own.

On AWS, CloudWatch Logs turns a function's Embedded Metric Format lines into metrics, and Lambda
publishes Invocations, Errors, Duration and, for stream sources, IteratorAge (the age of the last
record in the batch when it was processed, AWS/Lambda namespace, by FunctionName). Locally the
runner does both, so `tickstream status` and the template's alarms read the same metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LAMBDA_NAMESPACE = "AWS/Lambda"


@dataclass(frozen=True)
class MetricDatum:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    value: float
    unit: str
    timestamp_ms: int

    def as_put_metric_data(self) -> dict[str, Any]:
        return {
            "MetricName": self.name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            "Value": self.value,
            "Unit": self.unit,
            "Timestamp": self.timestamp_ms / 1000,
        }


def emf_metrics(output: str) -> list[MetricDatum]:
    """Every metric value in the EMF lines of a function's output; other lines are ignored."""
    found: list[MetricDatum] = []
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict):
            found += _metrics_of_document(document)
    return found


def _metrics_of_document(document: Mapping[str, Any]) -> list[MetricDatum]:
    meta = document.get("_aws")
    if not isinstance(meta, dict):
        return []
    timestamp = int(meta.get("Timestamp", 0))
    found = []
    for directive in meta.get("CloudWatchMetrics", []):
        namespace = directive.get("Namespace", "")
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics", []):
            name = metric.get("Name")
            values = document.get(name)
            values = values if isinstance(values, list) else [values]
            for dimension_names in dimension_sets:
                dimensions = tuple((d, str(document.get(d, ""))) for d in dimension_names)
                found += [
                    MetricDatum(namespace, name, dimensions, float(v), metric.get("Unit", "None"), timestamp)
                    for v in values
                    if isinstance(v, int | float) and not isinstance(v, bool)
                ]
    return found


def lambda_metrics(
    function_name: str, event: Mapping[str, Any], duration_ms: float, failed: bool, now_ms: int
) -> list[MetricDatum]:
    """What Lambda publishes about one invocation of a stream-mapped function."""
    dimensions = (("FunctionName", function_name),)

    def datum(name: str, value: float, unit: str) -> MetricDatum:
        return MetricDatum(LAMBDA_NAMESPACE, name, dimensions, value, unit, now_ms)

    found = [
        datum("Invocations", 1, "Count"),
        datum("Errors", 1 if failed else 0, "Count"),
        datum("Duration", duration_ms, "Milliseconds"),
    ]
    arrivals = list(_arrival_seconds(event.get("Records") or []))
    if arrivals:
        found.append(datum("IteratorAge", max(0.0, now_ms - arrivals[-1] * 1000), "Milliseconds"))
    return found


def _arrival_seconds(records: Iterable[Mapping[str, Any]]) -> Iterable[float]:
    for record in records:
        if "kinesis" in record:
            yield float(record["kinesis"]["approximateArrivalTimestamp"])
        elif "dynamodb" in record and "ApproximateCreationDateTime" in record["dynamodb"]:
            yield float(record["dynamodb"]["ApproximateCreationDateTime"])
