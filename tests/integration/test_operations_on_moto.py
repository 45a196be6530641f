"""Operating the pipeline on a real moto server: the functions' logs and metrics, read back as users do."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local_aws.stack import StackOutputs
from tests.support.iam_policies import granted, role_policies
from tests.support.local_stack import TICKSTREAM, LocalStack, run_cli

pytestmark = pytest.mark.integration

REPORT = re.compile(
    r"REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 512 MB\tMax Memory Used: \d+ MB"
)


@dataclass(frozen=True)
class OpsStack:
    env: dict[str, str]
    outputs: StackOutputs
    handler_calls: list[dict[str, Any]]  # every AWS call the two handlers made, by tests.support.recorded_cli


@pytest.fixture(scope="module")
def ops_stack(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> OpsStack:
    """2,000 ticks and one record that is not JSON, produced and consumed."""
    env = {**local_stack.env, "TICKSTREAM_STACK": "ops"}
    outputs = local_stack.deploy("ops", 1, env=env)
    produced = run_cli(["produce", "--symbols", "OPS", "--count", "2000", "--pace", "max"], env)
    assert produced.returncode == 0, produced.stderr
    local_stack.client("kinesis").put_record(
        StreamName=outputs.StreamName, Data=b"{not json", PartitionKey="OPS"
    )
    calls = tmp_path_factory.mktemp("ops") / "handler-calls.json"
    consumed = subprocess.run(
        [sys.executable, "-m", "tests.support.recorded_cli", str(calls), "consume", "--until-idle"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert consumed.returncode == 0, consumed.stderr
    return OpsStack(env, outputs, json.loads(calls.read_text()))


def test_logs_show_lambdas_lines_around_the_functions_json(ops_stack: OpsStack) -> None:
    shown = run_cli(["logs", "aggregator", "--since", "10m"], ops_stack.env)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any("START RequestId: " in line and "Version: $LATEST" in line for line in lines)
    assert any("END RequestId: " in line for line in lines)
    assert any(REPORT.search(line) for line in lines), shown.stdout[-2000:]
    assert any('"cold_start":true' in line and '"shard_id":"shardId-000000000000"' in line for line in lines)
    assert all("[$LATEST]" in line for line in lines)

    reports = run_cli(["logs", "aggregator", "--filter", "REPORT RequestId"], ops_stack.env)
    assert reports.stdout.splitlines()
    assert all("REPORT" in line for line in reports.stdout.splitlines())
    charts = run_cli(["logs", "charts", "--since", "1h"], ops_stack.env)
    assert "START RequestId: " in charts.stdout
    unknown = run_cli(["logs", "nosuch"], ops_stack.env)
    assert unknown.returncode == 2
    assert "unknown function" in unknown.stderr


def test_logs_follow_prints_new_invocations_and_stops_on_sigterm(ops_stack: OpsStack) -> None:
    before = set(re.findall(r"START RequestId: (\S+)", run_cli(["logs", "aggregator"], ops_stack.env).stdout))
    follower = subprocess.Popen(
        [*TICKSTREAM, "logs", "aggregator", "--follow", "--since", "1m"],
        env=ops_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        produced = run_cli(["produce", "--symbols", "OPS", "--count", "100", "--pace", "max"], ops_stack.env)
        assert produced.returncode == 0
        assert run_cli(["consume", "--until-idle"], ops_stack.env).returncode == 0
        assert follower.stdout is not None
        deadline = time.monotonic() + 60
        new_request = None
        while new_request is None and time.monotonic() < deadline:
            line = follower.stdout.readline()
            found = re.search(r"START RequestId: (\S+)", line)
            if found and found.group(1) not in before:
                new_request = found.group(1)
        assert new_request is not None
    finally:
        follower.terminate()
        follower.wait(timeout=30)
    assert follower.returncode == 0


def test_metrics_reach_cloudwatch_and_status_shows_the_flow(
    local_stack: LocalStack, ops_stack: OpsStack
) -> None:
    cloudwatch = local_stack.client("cloudwatch")
    now = datetime.now(UTC)

    def total(namespace: str, name: str, dimensions: dict[str, str]) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
        return float(sum(p["Sum"] for p in points))

    aggregator = ops_stack.outputs.AggregatorFunctionName
    # The template gives each stack its own namespace: this one counts this stack's ticks only.
    assert total("tickstream/ops", "TicksProcessed", {"service": "aggregator"}) >= 2000
    rejected = {"service": "aggregator", "reason": "malformed_json"}
    assert total("tickstream/ops", "TicksRejectedByReason", rejected) == 1
    assert total("AWS/Lambda", "Invocations", {"FunctionName": aggregator}) >= 1
    assert total("tickstream/ops", "ChartsRendered", {"service": "charts"}) >= 1

    status = run_cli(["status"], ops_stack.env)
    assert status.returncode == 0, status.stderr
    flow = re.search(
        r"flow\s+([\d,.]+) ticks/s aggregated, last 5 min; iterator age ([\d,]+) ms", status.stdout
    )
    assert flow is not None, status.stdout
    assert float(flow.group(1).replace(",", "")) > 0
    assert re.search(r"rejected\s+1 tick\(s\) quarantined to s3://\S+/rejected/, last 5 min", status.stdout)
    assert "DLQ     0 message(s)" in status.stdout
    assert "amazonaws.com" not in status.stdout  # a local stack names no AWS endpoint
    assert "alarms  0 of 9 in ALARM" in status.stdout, status.stdout


def test_the_templates_alarms_watch_this_stack_and_status_reports_one_firing(
    local_stack: LocalStack, ops_stack: OpsStack
) -> None:
    cloudwatch = local_stack.client("cloudwatch")
    outputs = ops_stack.outputs
    alarms = {
        a["AlarmName"]: a
        for a in cloudwatch.describe_alarms(ActionPrefix=outputs.AlarmTopicArn)["MetricAlarms"]
    }
    assert set(alarms) == {
        f"ops-{name}"
        for name in (
            "aggregator-errors",
            "chart-builder-errors",
            "aggregator-iterator-age",
            "chart-builder-iterator-age",
            "aggregator-throttles",
            "chart-builder-throttles",
            "dead-letter-queue",
            "alarm-notifier-errors",
            "alarm-notifier-failures",
        )
    }
    watched = {
        (a["Namespace"], a["MetricName"], d["Value"]) for a in alarms.values() for d in a["Dimensions"]
    }
    queue_name = outputs.DeadLetterQueueUrl.rsplit("/", 1)[-1]
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue_name) in watched
    assert ("AWS/Lambda", "IteratorAge", outputs.AggregatorFunctionName) in watched
    # Well below the stream's 24 h retention: 10 minutes by default.
    assert alarms["ops-aggregator-iterator-age"]["Threshold"] == 600_000
    assert all(a["OKActions"] == [outputs.AlarmTopicArn] for a in alarms.values())

    cloudwatch.set_alarm_state(AlarmName="ops-dead-letter-queue", StateValue="ALARM", StateReason="test")
    status = run_cli(["status"], ops_stack.env)
    assert "alarms  1 of 9 in ALARM: ops-dead-letter-queue" in status.stdout, status.stdout
    cloudwatch.set_alarm_state(AlarmName="ops-dead-letter-queue", StateValue="OK", StateReason="test")


def test_the_dashboard_charts_metrics_this_stack_publishes(
    local_stack: LocalStack, ops_stack: OpsStack
) -> None:
    cloudwatch = local_stack.client("cloudwatch")
    body = json.loads(cloudwatch.get_dashboard(DashboardName="tickstream-ops")["DashboardBody"])
    charted = {(m[0], m[1], m[3]) for widget in body["widgets"] for m in widget["properties"]["metrics"]}
    published = {
        (m["Namespace"], m["MetricName"], d["Value"])
        for m in cloudwatch.get_paginator("list_metrics").paginate().build_full_result()["Metrics"]
        for d in m["Dimensions"]
    }
    aggregator, charts = ops_stack.outputs.AggregatorFunctionName, ops_stack.outputs.ChartBuilderFunctionName
    # What the ops run made happen must be on the dashboard under the names it was published with.
    must_show = {
        ("tickstream/ops", "TicksProcessed", "aggregator"),
        ("tickstream/ops", "TicksRejected", "aggregator"),
        ("tickstream/ops", "BarsWritten", "aggregator"),
        ("tickstream/ops", "ChartsRendered", "charts"),
        ("AWS/Lambda", "IteratorAge", aggregator),
        ("AWS/Lambda", "IteratorAge", charts),
        ("AWS/Lambda", "Errors", aggregator),
        ("AWS/Lambda", "Errors", charts),
    }
    assert must_show <= charted
    assert must_show <= published


def _action_and_resource(call: dict[str, Any], table_arns: dict[str, str]) -> list[tuple[str, str]]:
    action = f"{call['service']}:{call['operation']}"
    if call["service"] == "s3":
        return [(action, f"arn:aws:s3:::{call['Bucket']}/{call['Key']}")]
    tables = call.get("Tables") or [call["TableName"]]
    return [(action, table_arns[t]) for t in tables]


def test_each_role_allows_exactly_the_data_calls_its_handler_makes(
    local_stack: LocalStack, ops_stack: OpsStack
) -> None:
    outputs = ops_stack.outputs
    table_arn = local_stack.client("dynamodb").describe_table(TableName=outputs.BarsTableName)["Table"][
        "TableArn"
    ]
    alert_table_arn = local_stack.client("dynamodb").describe_table(TableName=outputs.AlertStateTableName)[
        "Table"
    ]["TableArn"]
    ledger_arn = local_stack.client("dynamodb").describe_table(TableName=outputs.LedgerTableName)["Table"][
        "TableArn"
    ]
    table_arns = {
        outputs.BarsTableName: table_arn,
        outputs.LedgerTableName: ledger_arn,
        outputs.AlertStateTableName: alert_table_arn,
    }
    aggregator = role_policies(local_stack, outputs.AggregatorFunctionName)
    charts = role_policies(local_stack, outputs.ChartBuilderFunctionName)

    calls = ops_stack.handler_calls
    made = {_call for c in calls for _call in _action_and_resource(c, table_arns)}
    folds = {_call for c in calls if c.get("ConsistentRead") for _call in _action_and_resource(c, table_arns)}
    chart_reads = {
        _call
        for c in calls
        if c["operation"] == "Query" and not c.get("ConsistentRead")
        for _call in _action_and_resource(c, table_arns)
    }
    by_function = {
        "aggregator": {c for c in made if c[0] in {"dynamodb:BatchGetItem", "dynamodb:PutItem"}}
        - {c for c in made if c[1] == alert_table_arn}
        | folds
        | {c for c in made if c[0].startswith("s3:") and outputs.DataBucketName in c[1]},
        "charts": chart_reads
        | {c for c in made if c[0] == "dynamodb:PutItem" and c[1] == alert_table_arn}
        | {c for c in made if c[0].startswith("s3:") and outputs.SiteBucketName in c[1]},
    }
    assert by_function["aggregator"] | by_function["charts"] == made, "a call no function should make"
    # The run read and wrote the ledger, projected and folded bars, put rows, quarantined the bad
    # record and published the site; the aggregator never reads the data bucket.
    assert {c for c in by_function["aggregator"] if c[0].startswith("dynamodb:")} == {
        ("dynamodb:BatchGetItem", ledger_arn),
        ("dynamodb:PutItem", ledger_arn),
        ("dynamodb:PutItem", table_arn),
        ("dynamodb:Query", table_arn),
    }
    assert {a for a, _ in by_function["aggregator"]} == {
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "s3:PutObject",
    }
    assert any("/rejected/" in r for _, r in by_function["aggregator"])
    assert {a for a, _ in by_function["charts"]} == {"dynamodb:Query", "s3:GetObject", "s3:PutObject"}

    # Both query the bars table (a fold; a chart's bars); every other call is one function's own.
    shared = {("dynamodb:Query", table_arn)}
    for action, resource in by_function["aggregator"]:
        assert granted(aggregator, action, resource), (action, resource)
        assert (action, resource) in shared or not granted(charts, action, resource), (action, resource)
    for action, resource in by_function["charts"]:
        assert granted(charts, action, resource), (action, resource)
        assert (action, resource) in shared or not granted(aggregator, action, resource), (action, resource)

    # Nothing beyond what the code does: not the other objects of the buckets, nor writes it never makes.
    data, site = outputs.DataBucketName, outputs.SiteBucketName
    assert not granted(aggregator, "s3:PutObject", f"arn:aws:s3:::{data}/elsewhere.json")
    assert not granted(aggregator, "s3:GetObject", f"arn:aws:s3:::{data}/rejected/x.json")
    assert not granted(charts, "s3:PutObject", f"arn:aws:s3:::{site}/other.html")
    assert not granted(aggregator, "dynamodb:BatchGetItem", table_arn)
    assert not granted(aggregator, "s3:GetObject", f"arn:aws:s3:::{data}/bars/x")
    assert not granted(charts, "dynamodb:Query", ledger_arn)
    for action in ("dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:Scan", "s3:DeleteObject"):
        assert not granted(aggregator, action, table_arn)
        assert not granted(aggregator, action, ledger_arn)
        assert not granted(aggregator, action, f"arn:aws:s3:::{data}/bars/x")
        assert not granted(charts, action, table_arn)
    # Lambda's side of the mappings runs with the same roles (AWS's documented permissions).
    assert granted(aggregator, "kinesis:GetRecords", outputs.StreamArn)
    assert granted(charts, "dynamodb:GetRecords", outputs.BarsTableStreamArn)
    assert granted(aggregator, "sqs:SendMessage", outputs.DeadLetterQueueArn)
    assert granted(charts, "sqs:SendMessage", outputs.DeadLetterQueueArn)
    assert not granted(charts, "kinesis:GetRecords", outputs.StreamArn)
    # Only the chart builder claims alert cooldowns; neither may read or delete them.
    assert granted(charts, "dynamodb:PutItem", alert_table_arn)
    assert not granted(aggregator, "dynamodb:PutItem", alert_table_arn)
    assert not granted(charts, "dynamodb:DeleteItem", alert_table_arn)
