"""Operating the pipeline on a real moto server: the functions' logs and metrics, read back as users do."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.local_stack import TICKSTREAM, LocalStack, run_cli
from tickstream.stack import StackDeployer, StackOutputs

pytestmark = pytest.mark.integration

REPORT = re.compile(
    r"REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: 512 MB\tMax Memory Used: \d+ MB"
)


@dataclass(frozen=True)
class OpsStack:
    env: dict[str, str]
    outputs: StackOutputs


@pytest.fixture(scope="module")
def ops_stack(local_stack: LocalStack) -> OpsStack:
    """2,000 ticks and one record that is not JSON, produced and consumed."""
    env = {**local_stack.env, "TICKSTREAM_STACK": "ops"}
    assert run_cli(["up", "--shards", "1"], env).returncode == 0
    outputs = StackDeployer(local_stack.client("cloudformation"), "ops").outputs()
    produced = run_cli(["produce", "--symbols", "OPS", "--count", "2000", "--pace", "max"], env)
    assert produced.returncode == 0, produced.stderr
    local_stack.client("kinesis").put_record(
        StreamName=outputs.StreamName, Data=b"{not json", PartitionKey="OPS"
    )
    consumed = run_cli(["consume", "--until-idle"], env)
    assert consumed.returncode == 0, consumed.stderr
    return OpsStack(env, outputs)


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
    assert "DLQ     0 message(s)" in status.stdout
