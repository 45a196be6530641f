"""`make cost`: what a million ticks costs on AWS, from a simulated day at 8, 100 and 1,000 symbols.

Each scale is a full day (1,440 windows of 60 s, the template's default) at about 1,000 ticks/s
in total, run through the product's aggregator and chart builder on metered in-memory clients
(bench.cost_day, bench.aws_meter): request counts, item sizes and request units are exact for the day; Lambda
GB-seconds come from this machine's CPU time (one core). The scales run two at a time, one per core.

    python -m bench.cost [SYMBOLS ...]     # default: 8 100 1000
    COST_WINDOWS=30 python -m bench.cost   # the day's first 30 windows only (say so when quoting)
    COST_CHART_REFRESH_MINUTES=15 python -m bench.cost 1000   # the template's ChartRefreshMinutes
    COST_WINDOW_SECONDS=300 python -m bench.cost 1000   # the template's TumblingWindowSeconds
    COST_SHARDS=8 python -m bench.cost 1000   # the template's ShardCount
"""

from __future__ import annotations

import functools
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from bench.aws_meter import Usage
from bench.cost_day import (
    AGGREGATOR_MEMORY_MB,
    CHART_REFRESH_MINUTES,
    CHARTS_MEMORY_MB,
    DATA_BUCKET,
    DAY_WINDOWS,
    KINESIS_SHARDS,
    SITE_BUCKET,
    WINDOW_S,
    DayResult,
    kinesis_put_units,
    lambda_gb_seconds,
    simulate_day,
)
from bench.prices import (
    DYNAMODB_PER_MILLION_READ_UNITS,
    DYNAMODB_PER_MILLION_WRITE_UNITS,
    KINESIS_PER_MILLION_PUT_UNITS,
    KINESIS_SHARD_HOUR,
    LAMBDA_PER_GB_SECOND_X86,
    LAMBDA_PER_MILLION_REQUESTS,
    PRICE_NOTE,
    S3_PER_THOUSAND_GETS,
    S3_PER_THOUSAND_PUTS,
)
from bench.run import Row, render, write_section

SCALES = (8, 100, 1_000)
TOP_TERMS = 5


def _usage(result: DayResult, scope: str) -> Usage:
    return result.usage.get(scope, Usage())


def dollars(result: DayResult) -> dict[str, float]:
    """Each term's cost for the day, in USD."""
    aggregator, charts = _usage(result, "aggregator"), _usage(result, "charts")
    hours = result.windows * WINDOW_S / 3600
    return {
        "Kinesis shard-hours": KINESIS_SHARDS * hours * KINESIS_SHARD_HOUR,
        "Kinesis PUT payload units": kinesis_put_units(result) / 1e6 * KINESIS_PER_MILLION_PUT_UNITS,
        "Lambda requests": (result.aggregator_invokes + result.charts_invokes)
        / 1e6
        * LAMBDA_PER_MILLION_REQUESTS,
        "aggregator GB-seconds": lambda_gb_seconds(result.aggregator_seconds, AGGREGATOR_MEMORY_MB)
        * LAMBDA_PER_GB_SECOND_X86,
        "chart builder GB-seconds": lambda_gb_seconds(result.charts_seconds, CHARTS_MEMORY_MB)
        * LAMBDA_PER_GB_SECOND_X86,
        "DynamoDB write units, aggregator": aggregator.write_units / 1e6 * DYNAMODB_PER_MILLION_WRITE_UNITS,
        "DynamoDB write units, chart builder (alerts)": charts.write_units
        / 1e6
        * DYNAMODB_PER_MILLION_WRITE_UNITS,
        "DynamoDB read units, aggregator": aggregator.read_units / 1e6 * DYNAMODB_PER_MILLION_READ_UNITS,
        "DynamoDB read units, chart builder": charts.read_units / 1e6 * DYNAMODB_PER_MILLION_READ_UNITS,
        "S3 PUTs, bar rows": aggregator.s3_puts[DATA_BUCKET] / 1e3 * S3_PER_THOUSAND_PUTS,
        "S3 GETs, bar rows": aggregator.s3_gets[DATA_BUCKET] / 1e3 * S3_PER_THOUSAND_GETS,
        "S3 PUTs, site": charts.s3_puts[SITE_BUCKET] / 1e3 * S3_PER_THOUSAND_PUTS,
        "S3 GETs, site": charts.s3_gets[SITE_BUCKET] / 1e3 * S3_PER_THOUSAND_GETS,
    }


def rows(result: DayResult) -> list[Row]:
    per_million = 1e6 / result.ticks
    aggregator, charts = _usage(result, "aggregator"), _usage(result, "charts")
    scale = f"{result.symbols:,} symbols"
    counted = [
        Row(
            f"{scale}: ticks simulated",
            result.ticks,
            "ticks",
            f"simulated in {result.wall_seconds / 60:.1f} min",
        ),
        Row(f"{scale}: Kinesis records", result.kinesis_records * per_million, "per 1M ticks"),
        Row(f"{scale}: aggregator invocations", result.aggregator_invokes * per_million, "per 1M ticks"),
        Row(f"{scale}: chart builder invocations", result.charts_invokes * per_million, "per 1M ticks"),
        Row(f"{scale}: chart renders", result.renders * per_million, "per 1M ticks"),
        Row(
            f"{scale}: aggregator GB-seconds",
            lambda_gb_seconds(result.aggregator_seconds, AGGREGATOR_MEMORY_MB) * per_million,
            "per 1M ticks",
            "this machine's CPU time",
        ),
        Row(
            f"{scale}: chart builder GB-seconds",
            lambda_gb_seconds(result.charts_seconds, CHARTS_MEMORY_MB) * per_million,
            "per 1M ticks",
            f"this machine's CPU time; {result.render_seconds_mean * 1000:.0f} ms per render "
            f"({result.renders_drawn} drawn)",
        ),
        Row(f"{scale}: DynamoDB PutItem", aggregator.requests["PutItem"] * per_million, "per 1M ticks"),
        Row(
            f"{scale}: DynamoDB write units",
            (aggregator.write_units + charts.write_units) * per_million,
            "per 1M ticks",
        ),
        Row(
            f"{scale}: DynamoDB BatchGetItem",
            aggregator.requests["BatchGetItem"] * per_million,
            "per 1M ticks",
        ),
        Row(f"{scale}: DynamoDB Query", charts.requests["Query"] * per_million, "per 1M ticks"),
        Row(f"{scale}: DynamoDB read units, aggregator", aggregator.read_units * per_million, "per 1M ticks"),
        Row(f"{scale}: DynamoDB read units, chart builder", charts.read_units * per_million, "per 1M ticks"),
        Row(f"{scale}: S3 PUT, bar rows", aggregator.s3_puts[DATA_BUCKET] * per_million, "per 1M ticks"),
        Row(f"{scale}: S3 GET, bar rows", aggregator.s3_gets[DATA_BUCKET] * per_million, "per 1M ticks"),
        Row(f"{scale}: S3 PUT, site", charts.s3_puts[SITE_BUCKET] * per_million, "per 1M ticks"),
        Row(f"{scale}: S3 GET, site", charts.s3_gets[SITE_BUCKET] * per_million, "per 1M ticks"),
        Row(
            f"{scale}: bytes read per chart render",
            charts.bytes_read / result.renders if result.renders else 0,
            "bytes",
            "mean, chart builder reads",
        ),
        *(
            Row(f"{scale}: largest {interval} item", size, "bytes", "written")
            for interval, size in sorted(result.max_item.items())
        ),
    ]
    terms = dollars(result)
    priced = [
        Row(f"{scale}: {what}", cost * per_million, "USD per 1M ticks", PRICE_NOTE)
        for what, cost in terms.items()
    ]
    total = Row(f"{scale}: total", sum(terms.values()) * per_million, "USD per 1M ticks")
    return [*counted, *priced, total]


def top_terms(result: DayResult) -> list[tuple[str, float]]:
    per_million = 1e6 / result.ticks
    ranked = sorted(dollars(result).items(), key=lambda item: -item[1])
    return [(what, cost * per_million) for what, cost in ranked[:TOP_TERMS]]


def _span(windows: int) -> str:
    if windows == DAY_WINDOWS:
        return f"A simulated day ({DAY_WINDOWS:,} windows)"
    return f"The first {windows:,} windows of a simulated day (not a whole day: COST_WINDOWS={windows})"


def main() -> None:
    scales = [int(a) for a in sys.argv[1:]] or list(SCALES)
    windows = int(os.environ.get("COST_WINDOWS", DAY_WINDOWS))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(functools.partial(simulate_day, windows=windows), scales))
    body_rows: list[Row] = []
    for result in results:
        body_rows += rows(result)
        total = sum(dollars(result).values()) * 1e6 / result.ticks
        took = result.wall_seconds
        print(f"{result.symbols:,} symbols: {total:.4f} USD per 1M ticks, simulated in {took:.0f} s")
        for what, cost in top_terms(result):
            print(f"  {what}: {cost:.4f}")
        print(f"  largest items: {result.max_item}")
    method = (
        f"{_span(windows)} (windows of {WINDOW_S} s, TumblingWindowSeconds, COST_WINDOW_SECONDS; "
        f"{KINESIS_SHARDS} shards, COST_SHARDS; about 1,000 ticks/s in total) per scale, "
        "the product's aggregator and chart builder (with its one-minute sweep; "
        f"ChartRefreshMinutes={CHART_REFRESH_MINUTES}, COST_CHART_REFRESH_MINUTES) "
        "on metered in-memory DynamoDB and S3 clients "
        "(bench.cost_day, bench.aws_meter; checked against moto by "
        "tests/integration/test_cost_meter_on_moto.py). "
        "Request counts and units are exact for the windows simulated; "
        "GB-seconds are this machine's CPU time on one core (not wall time, which other processes inflate). "
        "Not included: storage, CloudWatch, the alarms and dashboard, and the stream reads Lambda makes "
        f"(free). Whole run {(time.perf_counter() - started) / 60:.0f} min."
    )
    section, title = _section(windows)
    body = render(section, title, body_rows, "make cost", method)
    print(body)
    write_section(section, body)


def _section(windows: int) -> tuple[str, str]:
    """Its own section for each span and chart refresh, so that a shortened or variant run never
    replaces the whole day's figures."""
    if windows == DAY_WINDOWS and CHART_REFRESH_MINUTES == 1 and WINDOW_S == 60:
        return "cost", "Cost per million ticks, a simulated day"
    section = "cost" if windows == DAY_WINDOWS else f"cost-first-{windows}-windows"
    title = "a simulated day" if windows == DAY_WINDOWS else f"the first {windows} windows of a simulated day"
    if CHART_REFRESH_MINUTES != 1:
        section += f"-refresh-{CHART_REFRESH_MINUTES}"
        title += f", ChartRefreshMinutes={CHART_REFRESH_MINUTES}"
    if WINDOW_S != 60:
        section += f"-window-{WINDOW_S}"
        title += f", TumblingWindowSeconds={WINDOW_S}"
    if KINESIS_SHARDS != 4:
        section += f"-shards-{KINESIS_SHARDS}"
        title += f", ShardCount={KINESIS_SHARDS}"
    return section, f"Cost per million ticks, {title}"


if __name__ == "__main__":
    main()
