"""The scheduled quote poller on a real moto server: the template's EventBridge rule run by the
local runner, the API key read from SSM, quotes served over HTTP by a local server, ticks on
the stream and bars in the table.

The test chooses the times at which the runner's schedule clock is stepped (the runner's own
loop steps it with the wall clock), so a minute-rate schedule fires without waiting minutes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from local_aws.runner.runner import LocalRunner
from local_aws.stack import StackOutputs
from stores.shard_reader import ShardReader, user_records
from tests.support.iam_policies import granted, role_policies
from tests.support.local_stack import LocalStack, run_cli
from tickstream.aws_clients import AwsClients
from tickstream.commands.consume import local_runner
from tickstream.settings import Settings

pytestmark = pytest.mark.integration

STACK = "quotes"
KEY_PARAMETER = "/tickstream/quotes/api-key"
KEY = "key-from-ssm-4711"
RECORDED = Path(__file__).parent.parent / "fixtures" / "quotes"


@dataclass(frozen=True)
class PollerStack:
    env: dict[str, str]
    outputs: StackOutputs


@pytest.fixture(scope="module")
def poller_stack(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> PollerStack:
    # The packaged sources.yaml names Alpha Vantage: a schedule that fires while a test runs the
    # CLI's `consume` polls this instead (a closed port on 127.0.0.1), never the internet.
    nowhere = tmp_path_factory.mktemp("quotes") / "nowhere.yaml"
    nowhere.write_text(
        yaml.safe_dump(
            {
                "provider": "alphavantage",
                "url": "http://127.0.0.1:9/query",
                "api_key_env": "K",
                "symbols": ["X"],
            }
        )
    )
    env = {**local_stack.env, "TICKSTREAM_STACK": STACK, "QUOTE_SOURCES_FILE": str(nowhere)}
    local_stack.client("ssm").put_parameter(Name=KEY_PARAMETER, Value=KEY, Type="SecureString")
    outputs = local_stack.deploy(
        STACK, 1, "QuotePollMinutes=1", f"QuoteApiKeyParameter={KEY_PARAMETER}", env=env
    )
    return PollerStack(env, outputs)


def sources(tmp_path: Path, http_server: HTTPServer, symbols: list[str], calls_per_minute: int) -> Path:
    path = tmp_path / "sources.yaml"
    config = {
        "provider": "alphavantage",
        "url": http_server.url_for("/query"),
        "api_key_env": "ALPHA_VANTAGE_API_KEY",  # not set: the key must come from SSM
        "calls_per_minute": calls_per_minute,
        "symbols": symbols,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def quote(symbol: str, price: str, volume: int = 1_000_000) -> dict[str, Any]:
    return {
        "Global Quote": {
            "01. symbol": symbol,
            "05. price": price,
            "06. volume": str(volume),
            "07. latest trading day": "2026-11-20",
        }
    }


def serve(http_server: HTTPServer, symbol: str, answer: dict[str, Any]) -> None:
    http_server.expect_request(
        "/query", query_string={"function": "GLOBAL_QUOTE", "symbol": symbol, "apikey": KEY}
    ).respond_with_json(answer)


def runner(stack: PollerStack, sources_file: Path) -> LocalRunner:
    settings = Settings.from_environment({**stack.env, "QUOTE_SOURCES_FILE": str(sources_file)})
    return local_runner(AwsClients(settings), settings, stack.outputs)


def poll_at(
    stack: PollerStack, sources_file: Path, start_s: float, *steps_s: float, record: Path | None = None
) -> dict[str, int]:
    """Steps the schedule in a process of its own (a new execution environment); its counts.
    With `record`, the AWS calls the handler made are written there."""
    recording = ["--record", str(record)] if record is not None else []
    poller = ["--function", stack.outputs.QuotePollerFunctionName]  # not the chart builder's sweep
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.scheduled_polls",
            *recording,
            *poller,
            str(start_s),
            *map(str, steps_s),
        ],
        env={**stack.env, "QUOTE_SOURCES_FILE": str(sources_file)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts: dict[str, int] = json.loads(done.stdout.splitlines()[-1])[stack.outputs.QuotePollerFunctionName]
    return counts


def stream_ticks(local_stack: LocalStack, stream_name: str) -> list[dict[str, Any]]:
    reader = ShardReader(local_stack.client("kinesis"), stream_name)
    return [
        json.loads(user.data, parse_float=Decimal)
        for shard in reader.shards()
        for record in reader.read_shard(shard.shard_id)
        for user in user_records(record)
    ]


def poll_lines(local_stack: LocalStack, function_name: str, message: str) -> list[dict[str, Any]]:
    events = local_stack.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{function_name}")[
        "events"
    ]
    lines = [json.loads(e["message"]) for e in events if e["message"].startswith("{")]
    return [line for line in lines if line.get("message") == message]


def test_the_templates_schedule_reaches_the_runner_with_its_retry_settings(
    poller_stack: PollerStack, tmp_path: Path, http_server: HTTPServer
) -> None:
    schedules = runner(poller_stack, sources(tmp_path, http_server, ["IBM"], 5)).start_schedules(0.0)
    # The poller's, beside the chart builder's sweep.
    (schedule,) = [
        s for s in schedules if s.target.function.name == poller_stack.outputs.QuotePollerFunctionName
    ]
    target = schedule.target
    assert target.function.name == poller_stack.outputs.QuotePollerFunctionName
    assert target.function.handler == "functions.quote_poller.handler.handler"
    assert target.function.timeout_s == 150
    assert target.period_s == 60
    # EventInvokeConfig in the template: a failed poll is not retried, and an event is good for 60 s.
    assert (target.max_retries, target.max_event_age_s) == (0, 60)
    assert schedule.next_fire_s == 60.0


def test_the_poll_failures_alarm_spans_three_polls(
    local_stack: LocalStack, poller_stack: PollerStack
) -> None:
    (alarm,) = local_stack.client("cloudwatch").describe_alarms(AlarmNames=[f"{STACK}-quote-poll-failures"])[
        "MetricAlarms"
    ]
    # QuotePollMinutes=1: one poll a minute, so three one-minute periods.
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (60, 3)
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "quote-poller"}]
    assert alarm["AlarmActions"] == [poller_stack.outputs.AlarmTopicArn]


def test_scheduled_polls_take_symbols_in_turn_and_send_each_quote_once(
    local_stack: LocalStack,
    poller_stack: PollerStack,
    tmp_path: Path,
    http_server: HTTPServer,
) -> None:
    symbols = ["IBM", "AAPL", "MSFT"]
    for symbol, price in zip(symbols, ["227.42", "231.10", "415.03"], strict=True):
        serve(http_server, symbol, quote(symbol, price))
    config = sources(tmp_path, http_server, symbols, calls_per_minute=2)
    start = float(int(time.time()) // 60 * 60)
    for minute in (1, 2):
        assert poll_at(poller_stack, config, start + 60 * (minute - 1), start + 60 * minute)["invokes"] == 1

    polled = [request.args["symbol"] for request, _ in http_server.log]
    # Two calls a minute for three symbols: each poll takes the next two, so two polls see all.
    assert len(polled) == 4
    assert set(polled) == set(symbols)
    assert all(request.args["apikey"] == KEY for request, _ in http_server.log)
    ticks = stream_ticks(local_stack, poller_stack.outputs.StreamName)
    # The symbol polled twice gave the same quote: one tick each.
    assert sorted(t["symbol"] for t in ticks) == sorted(symbols)
    assert {t["price"] for t in ticks} == {Decimal("227.42"), Decimal("231.10"), Decimal("415.03")}

    marks = local_stack.client("dynamodb").scan(TableName=poller_stack.outputs.QuoteStateTableName)["Items"]
    assert sorted(m["pk"]["S"] for m in marks) == sorted(f"alphavantage#{s}" for s in symbols)

    # The same quotes again send nothing.
    counts = poll_at(poller_stack, config, start + 120, start + 180)
    assert (counts["fired"], counts["invokes"], counts["errors"]) == (1, 1, 0)
    assert len(stream_ticks(local_stack, poller_stack.outputs.StreamName)) == 3
    sent = [line["ticks_sent"] for line in poll_lines(local_stack, "quotes-quote-poller", "poll")]
    assert sorted(sent) == [0, 1, 2]

    # The aggregator turns the polled quotes into bars like any other ticks.
    # A minute may turn meanwhile: the schedule then polls the same quotes again and sends nothing.
    consumed = run_cli(["consume", "--until-idle"], {**poller_stack.env, "QUOTE_SOURCES_FILE": str(config)})
    assert consumed.returncode == 0, consumed.stderr
    bars = local_stack.client("dynamodb").scan(TableName=poller_stack.outputs.BarsTableName)["Items"]
    assert {b["symbol"]["S"] for b in bars if b["interval"]["S"] == "1m"} == set(symbols)


def test_a_bad_answer_is_logged_and_counted_by_reason_and_the_poll_goes_on(
    local_stack: LocalStack,
    poller_stack: PollerStack,
    tmp_path: Path,
    http_server: HTTPServer,
) -> None:
    note = json.loads((RECORDED / "av_rate_limit_note.json").read_text())
    serve(http_server, "NOTED", note)
    serve(http_server, "DELL", quote("DELL", "118.70"))
    config = sources(tmp_path, http_server, ["NOTED", "DELL"], calls_per_minute=5)
    start = float(int(time.time()) // 60 * 60)
    assert poll_at(poller_stack, config, start, start + 60)["errors"] == 0

    ticks = stream_ticks(local_stack, poller_stack.outputs.StreamName)
    assert [t["price"] for t in ticks if t["symbol"] == "DELL"] == [Decimal("118.70")]
    assert not [t for t in ticks if t["symbol"] == "NOTED"]
    (failure,) = [
        line
        for line in poll_lines(local_stack, "quotes-quote-poller", "no tick")
        if line["symbol"] == "NOTED"
    ]
    assert (failure["symbol"], failure["reason"]) == ("NOTED", "rate_limited")
    assert "Alpha Vantage" in failure["detail"]

    shown = run_cli(["logs", "quote-poller", "--filter", "no tick"], poller_stack.env)
    assert shown.returncode == 0, shown.stderr
    assert '"symbol":"NOTED"' in shown.stdout
    status = run_cli(["status"], poller_stack.env)
    assert status.returncode == 0, status.stderr
    assert re.search(
        r"quotes\s+\d+ symbol\(s\) polled, \d+ tick\(s\) sent, "
        r"1 without a tick \(rate_limited 1\), last 5 min",
        status.stdout,
    ), status.stdout
    assert "alarms  0 of 11 in ALARM" in status.stdout

    group = "/aws/lambda/quotes-quote-poller"
    everything = local_stack.client("logs").filter_log_events(logGroupName=group)["events"]
    assert everything
    assert not [e for e in everything if KEY in e["message"]]

    cloudwatch = local_stack.client("cloudwatch")
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=f"tickstream/{STACK}",
        MetricName="QuotePollFailuresByReason",
        Dimensions=[
            {"Name": "service", "Value": "quote-poller"},
            {"Name": "reason", "Value": "rate_limited"},
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(p["Sum"] for p in points) == 1
    # What the poller publishes is on the stack's dashboard under the same names.
    body = json.loads(cloudwatch.get_dashboard(DashboardName=f"tickstream-{STACK}")["DashboardBody"])
    charted = {(m[0], m[1], m[3]) for widget in body["widgets"] for m in widget["properties"]["metrics"]}
    published = {
        (m["Namespace"], m["MetricName"], d["Value"])
        for m in cloudwatch.get_paginator("list_metrics").paginate().build_full_result()["Metrics"]
        for d in m["Dimensions"]
    }
    must_show = {
        (f"tickstream/{STACK}", name, "quote-poller")
        for name in ("QuoteSymbolsPolled", "QuoteTicksSent", "QuotePollFailures")
    }
    assert must_show <= charted
    assert must_show <= published


def test_a_failed_poll_is_not_retried_as_its_invoke_config_says(
    local_stack: LocalStack, poller_stack: PollerStack, tmp_path: Path
) -> None:
    start = float(int(time.time()) // 60 * 60)
    counts = poll_at(poller_stack, tmp_path / "missing.yaml", start, start + 60, start + 120)
    # MaximumRetryAttempts 0: no second try a minute later, only the next scheduled poll.
    assert (counts["fired"], counts["invokes"], counts["errors"], counts["retried"]) == (2, 2, 2, 0)
    assert counts["dropped"] == 2
    group = f"/aws/lambda/{poller_stack.outputs.QuotePollerFunctionName}"
    events = local_stack.client("logs").filter_log_events(logGroupName=group)["events"]
    assert any("[ERROR]" in e["message"] and "missing.yaml" in e["message"] for e in events)


def test_the_pollers_role_allows_exactly_the_calls_it_makes(
    local_stack: LocalStack, poller_stack: PollerStack, tmp_path: Path, http_server: HTTPServer
) -> None:
    serve(http_server, "HPQ", quote("HPQ", "35.10"))
    config = sources(tmp_path, http_server, ["HPQ"], calls_per_minute=5)
    start = float(int(time.time()) // 60 * 60)
    calls_file = tmp_path / "calls.json"
    assert poll_at(poller_stack, config, start, start + 60, record=calls_file)["errors"] == 0
    outputs = poller_stack.outputs
    dynamodb = local_stack.client("dynamodb")
    arns = {
        outputs.StreamName: outputs.StreamArn,
        outputs.QuoteStateTableName: dynamodb.describe_table(TableName=outputs.QuoteStateTableName)["Table"][
            "TableArn"
        ],
        KEY_PARAMETER: f"arn:aws:ssm:us-east-1:123456789012:parameter{KEY_PARAMETER}",
    }
    made = set()
    for call in json.loads(calls_file.read_text()):
        named = call.get("StreamName") or call.get("TableName") or call.get("Name")
        for table in call.get("Tables", [named]):
            made.add((f"{call['service']}:{call['operation']}", arns[table]))
    assert made == {
        ("ssm:GetParameter", arns[KEY_PARAMETER]),
        ("kinesis:ListShards", outputs.StreamArn),
        ("kinesis:PutRecords", outputs.StreamArn),
        ("dynamodb:BatchGetItem", arns[outputs.QuoteStateTableName]),
        ("dynamodb:PutItem", arns[outputs.QuoteStateTableName]),
    }
    poller = role_policies(local_stack, outputs.QuotePollerFunctionName)
    aggregator = role_policies(local_stack, outputs.AggregatorFunctionName)
    for action, resource in made:
        assert granted(poller, action, resource), (action, resource)
        # The aggregator lists the shards it reads; everything else here is the poller's alone.
        if action != "kinesis:ListShards":
            assert not granted(aggregator, action, resource), (action, resource)
    # Nothing beyond: not the bars, not other parameters, no reads of the stream.
    bars = dynamodb.describe_table(TableName=outputs.BarsTableName)["Table"]["TableArn"]
    assert not granted(poller, "dynamodb:PutItem", bars)
    assert not granted(poller, "dynamodb:DeleteItem", arns[outputs.QuoteStateTableName])
    assert not granted(poller, "ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/other")
    assert not granted(poller, "kinesis:GetRecords", outputs.StreamArn)
    assert not granted(
        poller,
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-abcdef",
    )


def test_the_default_stack_has_no_poller(local_stack: LocalStack) -> None:
    assert local_stack.outputs.QuotePollerFunctionName == ""
    assert local_stack.outputs.QuoteStateTableName == ""
    names = [f["FunctionName"] for f in local_stack.client("lambda").list_functions()["Functions"]]
    assert "tickstream-quote-poller" not in names
    assert "tickstream-aggregator" in names
    refused = run_cli(["logs", "quote-poller"], local_stack.env)
    assert refused.returncode == 2
    assert "this stack has no quote-poller" in refused.stderr


def test_up_refuses_two_sources_of_the_key_before_creating_anything(local_stack: LocalStack) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": "twokeys"}
    keys = ["QuotePollMinutes=1", "QuoteApiKeyParameter=/k", "QuoteApiKeySecret=k"]
    refused = run_cli(["up", *(a for k in keys for a in ("--parameter", k))], env)
    assert refused.returncode == 2
    assert (
        "rule OneQuoteKeySource: Set QuoteApiKeyParameter or QuoteApiKeySecret, not both." in refused.stderr
    )
    stacks = {s["StackName"] for s in local_stack.client("cloudformation").describe_stacks()["Stacks"]}
    assert not {"twokeys", "twokeys-artifacts"} & stacks
