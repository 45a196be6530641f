"""The Lambda artifacts run as Lambda would run them, against a real moto server.

Two ways in, both tested: the zips `make package` builds (unpacked into an empty folder), and the
folders `sam build` makes from infra/template.yaml as a SAM user runs it (the SAM CLI lives in
.venv-sam). Each handler, named as the built template names it, is invoked by a Python that sees
only that folder, the standard library and the runtime's own boto3: a module missing from the
artifact, a compiled library left behind, or a wheel built for the wrong platform fails here
instead of on AWS.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from lambda_build.contents import (
    AGGREGATOR,
    ALARM_NOTIFIER,
    CHART_BUILDER,
    LAMBDA_UNZIPPED_LIMIT,
    QUOTE_POLLER,
    FunctionPackage,
)
from local_aws.runner.alarm_actions import sns_event
from local_aws.stack import StackDeployer, StackOutputs, load_template
from stores.bars_table import BarsTable
from tests.support.iam_policies import granted, role_policies
from tests.support.local_stack import LocalStack, run_cli
from tests.unit.test_alarm_notices import alarm
from tickstream.settings import PROJECT_ROOT, TEMPLATE_PATH

pytestmark = pytest.mark.integration

BUILD = PROJECT_ROOT / "build"
RUNNER = Path(__file__).parent.parent / "support" / "run_packaged_handler.py"
SAM = PROJECT_ROOT / ".venv-sam" / "bin" / "sam"
# The import names of what every Lambda Python runtime already has (RUNTIME_PROVIDED's modules).
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def _unpacked(function: FunctionPackage, into: Path) -> Path:
    archive = function.zip_path(BUILD)
    assert archive.exists(), f"{archive} is missing: `make test` runs `make package` first"
    task = into / function.name
    with zipfile.ZipFile(archive) as unzip:
        unzip.extractall(task)
    return task


def _sam(args: list[str], cwd: Path) -> str:
    assert SAM.exists(), "`make test` installs the SAM CLI into .venv-sam"
    done = subprocess.run(
        [str(SAM), *args],
        cwd=cwd,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam validate --lint` and `sam build` of the template, run from the project root as documented."""
    assert "is a valid SAM Template" in _sam(["validate", "--lint", "-t", str(TEMPLATE_PATH)], PROJECT_ROOT)
    build = tmp_path_factory.mktemp("sam") / "build"
    built = _sam(["build", "-t", str(TEMPLATE_PATH), "--build-dir", str(build)], PROJECT_ROOT)
    assert "Build Succeeded" in built
    return build


@dataclass(frozen=True)
class Task:
    folder: Path
    handler: str
    source: str  # short, for names that must differ between the two ways in


@pytest.fixture(params=["make-package-zip", "sam-build"])
def artifact(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[FunctionPackage], Task]:
    """How a function's code reaches Lambda: an unpacked `make package` zip, or `sam build`'s folder."""

    def task(function: FunctionPackage) -> Task:
        if request.param == "make-package-zip":
            return Task(_unpacked(function, tmp_path), function.handler, "zip")
        build: Path = request.getfixturevalue("sam_build")
        resource = load_template(build / "template.yaml")["Resources"][function.logical_id]
        assert resource["Properties"]["CodeUri"] == function.logical_id
        return Task(build / function.logical_id, resource["Properties"]["Handler"], "sam")

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


def _lambda_environment(local_stack: LocalStack) -> dict[str, str]:
    """What every function's environment has here: a PATH, the region, and moto for AWS."""
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_ENDPOINT_URL": local_stack.endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _distributions(task: Path) -> set[str]:
    return {p.name.split("-", 1)[0].lower().replace("_", "-") for p in task.glob("*.dist-info")}


@pytest.fixture(scope="module")
def pkg_stack(local_stack: LocalStack) -> StackOutputs:
    env = {**local_stack.env, "TICKSTREAM_STACK": "pkg"}
    local_stack.deploy("pkg", 1, env=env)
    produced = run_cli(["produce", "--symbols", "PKG", "--count", "500", "--pace", "max"], env)
    assert produced.returncode == 0, produced.stderr
    return StackDeployer(local_stack.client("cloudformation"), "pkg").outputs()


def test_artifacts_are_within_lambdas_limits_and_leave_out_the_runtimes_packages(tmp_path: Path) -> None:
    aggregator = _unpacked(AGGREGATOR, tmp_path)
    charts = _unpacked(CHART_BUILDER, tmp_path)
    poller = _unpacked(QUOTE_POLLER, tmp_path)
    assert AGGREGATOR.zip_path(BUILD).stat().st_size <= 10 * 1024 * 1024
    assert QUOTE_POLLER.zip_path(BUILD).stat().st_size <= 10 * 1024 * 1024
    assert sum(p.stat().st_size for p in charts.rglob("*") if p.is_file()) <= LAMBDA_UNZIPPED_LIMIT
    assert not {"pandas", "numpy", "matplotlib", "mplfinance"} & _distributions(aggregator)
    assert not {"pandas", "numpy", "matplotlib", "mplfinance"} & _distributions(poller)
    for task in (aggregator, charts, poller):
        assert not {"boto3", "botocore", "s3transfer"} & _distributions(task)
        assert not list(task.rglob("*.pyc"))
        assert not (task / "tickstream").exists()
        assert not (task / "local_aws").exists()
    assert (charts / "pandas").is_dir()


def test_packaged_handlers_aggregate_and_draw_from_the_artifacts_alone(
    local_stack: LocalStack,
    pkg_stack: StackOutputs,
    tmp_path: Path,
    artifact: Callable[[FunctionPackage], Task],
) -> None:
    outputs = pkg_stack
    runtime = _runtime(tmp_path)
    lambda_env = {
        **_lambda_environment(local_stack),
        "BARS_TABLE": outputs.BarsTableName,
        "LEDGER_TABLE": outputs.LedgerTableName,
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
    aggregator = artifact(AGGREGATOR)
    aggregated = _invoke(
        aggregator.folder,
        runtime,
        aggregator.handler,
        kinesis_event,
        lambda_env,
        ["orjson", "google.protobuf", "boto3"],
    )
    assert aggregated["answer"] == {"batchItemFailures": []}
    assert aggregated["origins"]["orjson"].startswith(str(aggregator.folder))
    assert aggregated["origins"]["google.protobuf"].startswith(str(aggregator.folder))
    assert aggregated["origins"]["boto3"].startswith(str(runtime))
    bars = BarsTable(local_stack.client("dynamodb"), outputs.BarsTableName).query_bars("PKG", "1m", 1000)
    assert sum(b.acc.trades for b in bars if b.acc is not None) == 500

    charts = artifact(CHART_BUILDER)
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
    drawn = _invoke(charts.folder, runtime, charts.handler, bar_changes, lambda_env, modules)
    assert drawn["answer"] == {"batchItemFailures": []}
    assert drawn["origins"]["numpy"].startswith(str(charts.folder))
    assert drawn["origins"]["mplfinance"].startswith(str(charts.folder))
    assert drawn["origins"]["requests"].startswith(str(charts.folder))
    assert (charts.folder / "alerts" / "rules.yaml").exists()
    png = local_stack.client("s3").get_object(Bucket=outputs.SiteBucketName, Key="charts/PKG/1m.png")["Body"]
    assert png.read().startswith(b"\x89PNG\r\n\x1a\n")


def test_packaged_quote_poller_puts_a_quote_with_its_key_from_secrets_manager(
    local_stack: LocalStack,
    tmp_path: Path,
    http_server: HTTPServer,
    artifact: Callable[[FunctionPackage], Task],
) -> None:
    poller = artifact(QUOTE_POLLER)
    stack = f"pkgpoll-{poller.source}"
    key = "key-in-secrets-manager-99"
    secret = local_stack.client("secretsmanager").create_secret(
        Name=f"tickstream/{stack}-key", SecretString=key
    )
    env = {**local_stack.env, "TICKSTREAM_STACK": stack}
    parameters = ["QuotePollMinutes=5", f"QuoteApiKeySecret=tickstream/{stack}-key"]
    outputs = local_stack.deploy(stack, 1, *parameters, env=env)
    http_server.expect_request(
        "/query", query_string={"function": "GLOBAL_QUOTE", "symbol": "PKGQ", "apikey": key}
    ).respond_with_json(
        {"Global Quote": {"05. price": "12.34", "06. volume": "100", "07. latest trading day": "2026-11-20"}}
    )
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        yaml.safe_dump(
            {
                "provider": "alphavantage",
                "url": http_server.url_for("/query"),
                "api_key_env": "UNSET",
                "symbols": ["PKGQ"],
            }
        )
    )
    lambda_env = {
        **_lambda_environment(local_stack),
        "STREAM_NAME": outputs.StreamName,
        "QUOTE_STATE_TABLE": outputs.QuoteStateTableName,
        "QUOTE_POLL_MINUTES": "5",
        "QUOTE_API_KEY_SECRET": f"tickstream/{stack}-key",
        "QUOTE_SOURCES_FILE": str(sources),
        "POWERTOOLS_SERVICE_NAME": "quote-poller",
        "POWERTOOLS_METRICS_NAMESPACE": f"tickstream/{stack}",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    scheduled = {"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-24T06:05:00Z"}
    modules = ["requests", "yaml", "orjson", "google.protobuf", "tzdata", "boto3"]
    polled = _invoke(poller.folder, _runtime(tmp_path), poller.handler, scheduled, lambda_env, modules)
    assert polled["answer"] == {"symbols": ["PKGQ"], "ticks_sent": 1, "failures": {}}
    for module in modules[:-1]:
        assert polled["origins"][module].startswith(str(poller.folder)), module
    assert polled["origins"]["boto3"].startswith(str(tmp_path / "runtime"))
    kinesis = local_stack.client("kinesis")
    iterator = kinesis.get_shard_iterator(
        StreamName=outputs.StreamName, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    (record,) = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert b'"symbol":"PKGQ","price":12.34' in record["Data"]
    # The role reads this secret (its ARN ends in six random characters) and no other.
    policies = role_policies(local_stack, outputs.QuotePollerFunctionName)
    assert granted(policies, "secretsmanager:GetSecretValue", secret["ARN"])
    assert not granted(
        policies, "secretsmanager:GetSecretValue", secret["ARN"].replace(f"{stack}-key", "other-key")
    )
    assert not granted(policies, "ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/x")


def test_packaged_alarm_notifier_posts_with_the_url_from_its_ssm_parameter(
    local_stack: LocalStack,
    tmp_path: Path,
    http_server: HTTPServer,
    artifact: Callable[[FunctionPackage], Task],
) -> None:
    notifier = artifact(ALARM_NOTIFIER)
    stack = f"pkgalarm-{notifier.source}"
    parameter = f"/tickstream/{stack}/alert-webhook"
    http_server.expect_request("/services/T/B/pkg-token", method="POST").respond_with_data("ok")
    local_stack.client("ssm").put_parameter(
        Name=parameter, Type="SecureString", Value=http_server.url_for("/services/T/B/pkg-token")
    )
    outputs = local_stack.deploy(stack, 1, f"AlertWebhookParameter={parameter}", env=local_stack.env)
    lambda_env = {
        **_lambda_environment(local_stack),
        "ALERT_WEBHOOK_PARAMETER": parameter,
        "POWERTOOLS_SERVICE_NAME": "alarm-notifier",
        "POWERTOOLS_METRICS_NAMESPACE": f"tickstream/{stack}",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    topic = "arn:aws:sns:us-east-1:123456789012:alarms"
    event = sns_event(topic, topic + ":sub", "ALARM", alarm(), 0.0)
    modules = ["requests", "aws_lambda_powertools", "boto3"]
    posted = _invoke(notifier.folder, _runtime(tmp_path), notifier.handler, event, lambda_env, modules)
    assert posted["answer"] == {"sent": 1, "failed": 0, "skipped": 0, "unreadable": 0}
    for module in modules[:-1]:
        assert posted["origins"][module].startswith(str(notifier.folder)), module
    (request, _), *_ = http_server.log
    assert request.get_json()["text"].startswith(":red_circle: *ALARM* prod-aggregator-errors")
    # The role reads this parameter and no other.
    policies = role_policies(local_stack, outputs.AlarmNotifierFunctionName)
    assert granted(policies, "ssm:GetParameter", f"arn:aws:ssm:us-east-1:123456789012:parameter{parameter}")
    assert not granted(policies, "ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/x")
