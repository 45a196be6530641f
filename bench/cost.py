"""`make cost`: what a million ticks costs on AWS, from the requests one real-time run makes.

Runs the pipeline on the embedded moto: the demo's 8 symbols at 1,000 ticks/s over 4 shards,
produced in real time for RUN_SECONDS while `tickstream consume` follows the stream with the
template's 60 s tumbling windows and records every call the handlers make. The counts are then
priced: Kinesis PUT payload units from the records in the stream, DynamoDB request units from
the sizes of the items written and read, S3 requests, Lambda requests and GB-seconds from the
REPORT lines, and CloudWatch Logs bytes ingested. Lambda durations are this machine's, not
Lambda's: the GB-seconds are an estimate, the request counts are not.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run import Row, render, write_section
from consumers.shard_reader import ShardReader
from producer.kinesis_writer import KinesisStreamWriter
from producer.pipeline import Pace, ProduceOptions, Producer
from producer.sources import SyntheticMarket
from tickstream.aws_clients import AwsClients
from tickstream.deploy import deploy_stack
from tickstream.embedded_aws import EmbeddedAws, free_local_port
from tickstream.log_tail import LogTail
from tickstream.settings import PROJECT_ROOT, Settings
from tickstream.stack import StackOutputs

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM"]
RATE = 1_000
SHARDS = 4
RUN_SECONDS = 180
# Long enough for every shard's last 60 s window to close after the producer stops.
DRAIN_SECONDS = 75

# us-east-1 list prices as AWS published them in 2025 (aws.amazon.com/<service>/pricing).
KINESIS_SHARD_HOUR = 0.015
KINESIS_PER_MILLION_PUT_UNITS = 0.014
KINESIS_PUT_UNIT_BYTES = 25 * 1024
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND_X86 = 0.0000166667
DYNAMODB_PER_MILLION_WRITE_UNITS = 0.625
DYNAMODB_PER_MILLION_READ_UNITS = 0.125
S3_PER_THOUSAND_PUTS = 0.005
S3_PER_THOUSAND_GETS = 0.0004
LOGS_PER_GB_INGESTED = 0.50
PRICE_NOTE = "us-east-1 list price"
REPORT = re.compile(r"Billed Duration: (\d+) ms\tMemory Size: (\d+) MB")


@dataclass
class Usage:
    ticks: int = 0
    kinesis_records: int = 0
    kinesis_put_units: int = 0
    lambda_requests: int = 0
    lambda_gb_seconds: float = 0.0
    write_units: int = 0
    read_units: float = 0.0
    s3_puts: int = 0
    s3_gets: int = 0
    log_bytes: int = 0

    def dollars(self) -> dict[str, float]:
        hours = self.ticks / RATE / 3600
        return {
            "Kinesis shard-hours (4 shards, at this rate)": SHARDS * hours * KINESIS_SHARD_HOUR,
            "Kinesis PUT payload units": self.kinesis_put_units / 1e6 * KINESIS_PER_MILLION_PUT_UNITS,
            "Lambda requests": self.lambda_requests / 1e6 * LAMBDA_PER_MILLION_REQUESTS,
            "Lambda GB-seconds (x86_64)": self.lambda_gb_seconds * LAMBDA_PER_GB_SECOND_X86,
            "DynamoDB write request units": self.write_units / 1e6 * DYNAMODB_PER_MILLION_WRITE_UNITS,
            "DynamoDB read request units": self.read_units / 1e6 * DYNAMODB_PER_MILLION_READ_UNITS,
            "S3 PUT requests": self.s3_puts / 1e3 * S3_PER_THOUSAND_PUTS,
            "S3 GET requests": self.s3_gets / 1e3 * S3_PER_THOUSAND_GETS,
            "CloudWatch Logs ingested": self.log_bytes / 1e9 * LOGS_PER_GB_INGESTED,
        }


def _consume(env: dict[str, str], calls: Path, follow: bool) -> subprocess.Popen[str]:
    mode = "--follow" if follow else "--until-idle"
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.recorded_cli", str(calls), "consume", mode],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _handler_usage(calls: list[dict[str, Any]], usage: Usage) -> None:
    for call in calls:
        operation = call["operation"]
        if operation == "PutItem":
            usage.write_units += math.ceil(call["ItemBytes"] / 1024)
        elif operation in ("BatchGetItem", "Query"):
            # Eventually consistent: half a unit per 4 KB read (per item for BatchGetItem).
            usage.read_units += sum(0.5 * math.ceil(size / 4096) for size in call["ReadBytes"])
        elif operation == "PutObject":
            usage.s3_puts += 1
        elif operation == "GetObject":
            usage.s3_gets += 1


def _lambda_usage(clients: AwsClients, outputs: StackOutputs, usage: Usage) -> None:
    for function in (outputs.AggregatorFunctionName, outputs.ChartBuilderFunctionName):
        for event in LogTail(clients.client("logs"), f"/aws/lambda/{function}").events(0, None):
            usage.log_bytes += len(event.message.encode())
            report = REPORT.search(event.message)
            if report:
                usage.lambda_requests += 1
                usage.lambda_gb_seconds += int(report.group(1)) / 1000 * int(report.group(2)) / 1024


def _stream_usage(clients: AwsClients, outputs: StackOutputs, usage: Usage) -> None:
    reader = ShardReader(clients.client("kinesis"), outputs.StreamName)
    for shard in reader.shards():
        for record in reader.read_shard(shard.shard_id):
            usage.kinesis_records += 1
            usage.kinesis_put_units += math.ceil(len(record.data) / KINESIS_PUT_UNIT_BYTES)


def measure() -> Usage:
    with tempfile.TemporaryDirectory() as state:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TICKSTREAM_"))},
            "TICKSTREAM_PORT": str(free_local_port()),
            "TICKSTREAM_STATE_DIR": state,
            "TICKSTREAM_STACK": "cost",
        }
        settings = Settings.from_environment(env)
        local = EmbeddedAws(settings.state_dir, settings.port)
        local.start()
        try:
            clients = AwsClients(settings)
            outputs = deploy_stack(clients, settings, shards=SHARDS).outputs
            following, draining = Path(state) / "follow.json", Path(state) / "drain.json"
            runner = _consume(env, following, follow=True)
            market = SyntheticMarket(SYMBOLS, RATE, 7, int(time.time() * 1000), None, RUN_SECONDS)
            writer = KinesisStreamWriter(clients.client("kinesis"), outputs.StreamName)
            stats = Producer(writer, ProduceOptions(aggregate=True, pace=Pace.REALTIME)).run(market.ticks())
            time.sleep(DRAIN_SECONDS)
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=300)
            if _consume(env, draining, follow=False).wait(timeout=600) != 0:
                raise RuntimeError("consume --until-idle failed")
            usage = Usage(ticks=stats.ticks_accepted)
            calls = json.loads(following.read_text()) + json.loads(draining.read_text())
            _handler_usage(calls, usage)
            _lambda_usage(clients, outputs, usage)
            _stream_usage(clients, outputs, usage)
        finally:
            local.stop()
    return usage


def rows(usage: Usage) -> list[Row]:
    per_million = 1e6 / usage.ticks
    dollars = usage.dollars()
    counted = [
        Row("ticks produced (8 symbols, 1,000/s, real time)", usage.ticks, "ticks"),
        Row("Kinesis records (KPL aggregates)", usage.kinesis_records * per_million, "per 1M ticks"),
        Row("Kinesis PUT payload units", usage.kinesis_put_units * per_million, "per 1M ticks"),
        Row("Lambda invocations (both functions)", usage.lambda_requests * per_million, "per 1M ticks"),
        Row(
            "Lambda GB-seconds",
            usage.lambda_gb_seconds * per_million,
            "per 1M ticks",
            "this machine's durations",
        ),
        Row("DynamoDB write request units", usage.write_units * per_million, "per 1M ticks"),
        Row("DynamoDB read request units", usage.read_units * per_million, "per 1M ticks"),
        Row("S3 PUT requests", usage.s3_puts * per_million, "per 1M ticks"),
        Row("S3 GET requests", usage.s3_gets * per_million, "per 1M ticks"),
        Row("CloudWatch Logs bytes", usage.log_bytes * per_million, "per 1M ticks"),
    ]
    priced = [
        Row(what, cost * per_million, "USD per 1M ticks", "us-east-1 list price")
        for what, cost in dollars.items()
    ]
    total = Row("total", sum(dollars.values()) * per_million, "USD per 1M ticks")
    return [*counted, *priced, total]


def main() -> None:
    method = (
        f"One run: 8 symbols at {RATE:,} ticks/s over {SHARDS} shards for {RUN_SECONDS} s in real time, "
        "the local runner following with 60 s windows; request units from the item sizes the handlers "
        "wrote and read. Fixed monthly costs (shard-hours when idle, 7 alarms, the dashboard, storage) "
        "are not per tick and not included except the shard-hours at this rate."
    )
    body = render("cost", "Cost per million ticks", rows(measure()), "make cost", method)
    print(body)
    write_section("cost", body)


if __name__ == "__main__":
    main()
