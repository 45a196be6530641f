"""The artifacts `make package` builds run as Lambda would run them, against a real moto server.

Each zip is unpacked into an empty folder and its handler invoked by a Python that sees only
that folder, the standard library and the runtime's own boto3: a module missing from the
artifact, or a wheel built for the wrong platform, fails here instead of on AWS.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from consumers.aggregate.bars_table import BarsTable
from tests.support.local_stack import LocalStack, run_cli
from tickstream.lambda_packages import AGGREGATOR, CHART_BUILDER, LAMBDA_UNZIPPED_LIMIT, FunctionPackage
from tickstream.settings import PROJECT_ROOT
from tickstream.stack import StackDeployer, StackOutputs

pytestmark = pytest.mark.integration

BUILD = PROJECT_ROOT / "build"
RUNNER = Path(__file__).parent.parent / "support" / "run_packaged_handler.py"
# The import names of what every Lambda Python runtime already has (RUNTIME_PROVIDED's modules).
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def _unpacked(function: FunctionPackage, into: Path) -> Path:
    archive = function.zip_path(BUILD)
    assert archive.exists(), f"{archive} is missing: `make test` runs `make package` first"
    task = into / function.name
    with zipfile.ZipFile(archive) as unzip:
        unzip.extractall(task)
    return task


def _runtime(into: Path) -> Path:
    """A folder with links to this interpreter's boto3 and its dependencies, as the runtime has them."""
    runtime = into / "runtime"
    runtime.mkdir()
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        assert spec is not None
        assert spec.origin is not None
        source = Path(spec.origin)
        source = source.parent if source.name == "__init__.py" else source
        (runtime / source.name).symlink_to(source)
    return runtime


def _invoke(
    task: Path, runtime: Path, handler: str, event: dict[str, Any], env: dict[str, str], modules: list[str]
) -> dict[str, Any]:
    event_file = task.parent / f"{task.name}-event.json"
    event_file.write_text(json.dumps(event))
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-E",
            str(RUNNER),
            str(task),
            str(runtime),
            handler,
            str(event_file),
            *modules,
        ],
        env=env,
        cwd=task.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _distributions(task: Path) -> set[str]:
    return {p.name.split("-", 1)[0].lower().replace("_", "-") for p in task.glob("*.dist-info")}


@pytest.fixture(scope="module")
def pkg_stack(local_stack: LocalStack) -> StackOutputs:
    env = {**local_stack.env, "TICKSTREAM_STACK": "pkg"}
    assert run_cli(["up", "--shards", "1"], env).returncode == 0
    produced = run_cli(["produce", "--symbols", "PKG", "--count", "500", "--pace", "max"], env)
    assert produced.returncode == 0, produced.stderr
    return StackDeployer(local_stack.client("cloudformation"), "pkg").outputs()


def test_artifacts_are_within_lambdas_limits_and_leave_out_the_runtimes_packages(tmp_path: Path) -> None:
    aggregator = _unpacked(AGGREGATOR, tmp_path)
    charts = _unpacked(CHART_BUILDER, tmp_path)
    assert AGGREGATOR.zip_path(BUILD).stat().st_size <= 10 * 1024 * 1024
    assert sum(p.stat().st_size for p in charts.rglob("*") if p.is_file()) <= LAMBDA_UNZIPPED_LIMIT
    assert not {"pandas", "numpy", "matplotlib", "mplfinance"} & _distributions(aggregator)
    for task in (aggregator, charts):
        assert not {"boto3", "botocore", "s3transfer"} & _distributions(task)
        assert not list(task.rglob("*.pyc"))
        assert not (task / "tickstream").exists()
        assert not (task / "consumers" / "local_runner").exists()
    assert (charts / "pandas").is_dir()


def test_packaged_handlers_aggregate_and_draw_from_the_artifacts_alone(
    local_stack: LocalStack, pkg_stack: StackOutputs, tmp_path: Path
) -> None:
    outputs = pkg_stack
    runtime = _runtime(tmp_path)
    lambda_env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ENDPOINT_URL": local_stack.endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "BARS_TABLE": outputs.BarsTableName,
        "DATA_BUCKET": outputs.DataBucketName,
        "SITE_BUCKET": outputs.SiteBucketName,
        "ALERT_TABLE": outputs.AlertStateTableName,
        "BAR_INTERVALS": "1m,5m,1h,1d",
        "POWERTOOLS_SERVICE_NAME": "packaged",
        "POWERTOOLS_METRICS_NAMESPACE": "tickstream/pkg",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
    }
    records = local_stack.client("kinesis").get_records(
        ShardIterator=local_stack.client("kinesis").get_shard_iterator(
            StreamName=outputs.StreamName, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"],
        Limit=1000,
    )["Records"]
    assert records
    kinesis_event = {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": outputs.StreamArn,
            }
            for r in records
        ]
    }
    aggregator = _unpacked(AGGREGATOR, tmp_path)
    aggregated = _invoke(
        aggregator,
        runtime,
        AGGREGATOR.handler,
        kinesis_event,
        lambda_env,
        ["orjson", "google.protobuf", "boto3"],
    )
    assert aggregated["answer"] == {"batchItemFailures": []}
    assert aggregated["origins"]["orjson"].startswith(str(aggregator))
    assert aggregated["origins"]["google.protobuf"].startswith(str(aggregator))
    assert aggregated["origins"]["boto3"].startswith(str(runtime))
    bars = BarsTable(local_stack.client("dynamodb"), outputs.BarsTableName).query_bars("PKG", "1m", 1000)
    assert sum(b.acc.trades for b in bars if b.acc is not None) == 500

    charts = _unpacked(CHART_BUILDER, tmp_path)
    bar_changes = {
        "Records": [
            {
                "eventID": "1",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {"NewImage": {"symbol": {"S": "PKG"}, "interval": {"S": "1m"}}},
                "eventSourceARN": outputs.BarsTableStreamArn,
            }
        ]
    }
    modules = ["numpy", "mplfinance", "requests", "yaml"]
    drawn = _invoke(charts, runtime, CHART_BUILDER.handler, bar_changes, lambda_env, modules)
    assert drawn["answer"] == {"batchItemFailures": []}
    assert drawn["origins"]["numpy"].startswith(str(charts))
    assert drawn["origins"]["mplfinance"].startswith(str(charts))
    assert drawn["origins"]["requests"].startswith(str(charts))
    assert (charts / "alerts" / "rules.yaml").exists()
    png = local_stack.client("s3").get_object(Bucket=outputs.SiteBucketName, Key="charts/PKG/1m.png")["Body"]
    assert png.read().startswith(b"\x89PNG\r\n\x1a\n")
