"""tickstream: market ticks through Kinesis into exactly-once OHLC bars and candlestick charts,
on the embedded local AWS (moto) or, with --aws, on AWS itself.

Start with `tickstream up`, then `produce`, `consume --until-idle`, `status` and `view`."""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    from functions.quote_poller.polling import PollFailure
    from local_aws.runner.runner import LocalRunner
    from local_aws.stack import StackDeployer, StackOutputs
    from market.ticks import Tick
    from producer.pipeline import ProduceOptions, ProduceStats
    from producer.sources import CsvReplay, SyntheticMarket
    from tickstream.aws_clients import AwsClients

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producer.pace import Pace
from tickstream.settings import Settings, SettingsError

DEFAULT_SYMBOLS = "AAPL,MSFT,GOOG,AMZN,NVDA,META,TSLA,JPM"
# The demo's backfill: two hours of event time before now, so the charts have candles to show.
HISTORY_MS = 2 * 3_600_000
HISTORY_RATE = 10.0
# The demo's price alert: NVDA's live ticks trade 6 % above where its history ended, which the
# default rule (2 % against the close 5 one-minute bars before) reports.
DEMO_JUMP = ("NVDA", 6.0, 0.0)

# A bug's traceback shows no local variables: they may hold an API key or a webhook URL.
app = typer.Typer(
    help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False
)
# Off a terminal rich assumes 80 columns; the demo's tables want more.
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)


class State:
    settings: Settings
    debug: bool = False


state = State()


def show_error(message: str) -> None:
    """`error: message` on one line of stderr; brackets and colons in it are printed as they are."""
    err.print(f"[bold red]error:[/] {escape(message)}", emoji=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    show_error(message)
    return typer.Exit(code)


def _show_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"tickstream {version('tickstream')}")
        raise typer.Exit


@app.callback()
def main(
    aws: Annotated[
        bool, typer.Option("--aws", help="Use real AWS (region and profile from the environment).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback behind an error.")] = False,
    _version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """tickstream: market ticks through Kinesis into OHLC bars and charts, on AWS or locally."""
    state.debug = debug
    try:
        state.settings = Settings.from_environment(os.environ, real_aws=aws)
    except SettingsError as exc:
        raise fail(str(exc)) from exc


def _deployer(clients: AwsClients, settings: Settings) -> StackDeployer:
    from local_aws.stack import StackDeployer

    return StackDeployer(clients.client("cloudformation"), settings.stack_name)


@app.command()
def up(
    shards: Annotated[
        int | None,
        typer.Option(min=1, max=500, help="Open shards of the tick stream (default: as deployed, else 4)."),
    ] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option(help="Key=Value of a template parameter, e.g. QuotePollMinutes=1 (repeatable)."),
    ] = None,
) -> None:
    """Start the embedded AWS (unless AWS_ENDPOINT_URL is set) and deploy infra/template.yaml to it."""
    bring_up(state.settings, shards, parameter or [])


def bring_up(settings: Settings, shards: int | None, parameters: list[str]) -> None:
    """What `up` does, and `demo` first."""
    from local_aws.deploy import check_given, deploy_stack
    from local_aws.embedded import EmbeddedAws
    from tickstream.aws_clients import AwsClients

    check_given(settings, parameters)  # a typo starts no server and creates nothing
    if settings.embedded:
        local = EmbeddedAws(settings.state_dir, settings.port)
        started = local.start()
        out.print(f"{'started' if started else 'reusing'} moto server at {local.url} (log {local.log_file})")
    if settings.endpoint_url is None:
        raise fail(
            "up and demo deploy to a local stack only; deploy to AWS with `sam build && sam deploy --guided`"
        )
    deployment = deploy_stack(AwsClients(settings), settings, shards, parameters)
    for key, (before, after) in sorted(deployment.changed.items()):
        what = "resharded the stream" if key == "ShardCount" else "changed"
        out.print(f"{what}: {key} {before} -> {after}")
    out.print(
        f"stack {settings.stack_name} {deployment.action} on {settings.target}: "
        f"stream {deployment.outputs.StreamName} ({deployment.parameters['ShardCount']} shards)"
    )


@app.command()
def down() -> None:
    """Stop the embedded AWS that `up` started (its state goes with it)."""
    from local_aws.embedded import EmbeddedAws

    settings = state.settings
    if not settings.embedded:
        raise fail("down stops the embedded moto server only; delete a remote stack with your usual tools")
    stopped = EmbeddedAws(settings.state_dir, settings.port).stop()
    out.print("stopped moto server" if stopped else "no moto server of ours was running")


@app.command()
def status() -> None:
    """Stream and shards, DLQ depth, and where everything is."""
    from stores.shard_reader import ShardReader
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.health import HEALTH_WINDOW_S, HealthReader

    clients = AwsClients(state.settings)
    outputs = _deployer(clients, state.settings).outputs()
    shards = ShardReader(clients.client("kinesis"), outputs.StreamName).shards()
    dlq = clients.client("sqs").get_queue_attributes(
        QueueUrl=outputs.DeadLetterQueueUrl, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    out.print(f"target  {state.settings.target}")
    out.print(f"stream  {outputs.StreamName}: {sum(s.is_open for s in shards)} open / {len(shards)} shards")
    table = Table("shard", "state", "parent", "hash keys from", "to")
    for s in shards:
        table.add_row(
            s.shard_id,
            "open" if s.is_open else "closed",
            s.parent_shard_id or "",
            f"{s.starting_hash_key:.3e}",
            f"{s.ending_hash_key:.3e}",
        )
    out.print(table)
    out.print(f"bars    table {outputs.BarsTableName}")
    out.print(f"data    s3://{outputs.DataBucketName}/   site s3://{outputs.SiteBucketName}/")
    waiting = "" if dlq == "0" else ": fix the cause, then `tickstream redrive`"
    out.print(f"DLQ     {dlq} message(s) in {outputs.DeadLetterQueueUrl}{waiting}")
    health = HealthReader(clients.client("cloudwatch"), clients.client("logs")).read(
        f"tickstream/{state.settings.stack_name}",
        outputs.AggregatorFunctionName,
        outputs.ChartBuilderFunctionName,
        outputs.AlarmTopicArn,
        time.time(),
        outputs.QuotePollerFunctionName or None,
    )
    age = "n/a (no batch)" if health.iterator_age_ms is None else f"{health.iterator_age_ms:,.0f} ms"
    window = f"last {HEALTH_WINDOW_S // 60} min"
    out.print(f"flow    {health.ticks_per_second:,.1f} ticks/s aggregated, {window}; iterator age {age}")
    out.print(
        f"rejected  {health.rejected:,} tick(s) quarantined to "
        f"s3://{outputs.DataBucketName}/rejected/, {window}"
    )
    out.print(f"errors  {health.errors} function error(s), {window}")
    if health.last_error is not None:
        out.print(f"last error  {health.last_error.line()}", markup=False, highlight=False)
    firing = health.alarms_firing
    named = f": {', '.join(firing)}" if firing else ""
    out.print(f"alarms  {len(firing)} of {len(health.alarms)} in ALARM{named}")
    if health.quotes is not None:
        quotes = health.quotes
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(quotes.failures.items()))
        out.print(
            f"quotes  {quotes.symbols_polled} symbol(s) polled, {quotes.ticks_sent} tick(s) sent, "
            f"{sum(quotes.failures.values())} without a tick{f' ({reasons})' if reasons else ''}, {window}"
        )
    out.print(f"charts  {site_url(state.settings, outputs)}")


def handler_environment(settings: Settings, outputs: StackOutputs) -> dict[str, str]:
    """What in-process handlers need to reach the same local stack as the runner.

    Tracing is off: the local stack has no X-Ray daemon for Powertools Tracer to send to. Chart
    links in alerts point at the local site, and alerts go to ALERT_WEBHOOK_URL when it is set.
    The quote poller polls the source QUOTE_SOURCES_FILE names instead of its packaged one.
    """
    from tickstream.aws_clients import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    environment = {
        "AWS_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "SITE_URL": site_url(settings, outputs).removesuffix("index.html"),
    }
    if settings.alert_webhook_url is not None:
        environment["ALERT_WEBHOOK_URL"] = settings.alert_webhook_url
    if settings.quote_sources_file is not None:
        environment["QUOTE_SOURCES_FILE"] = str(settings.quote_sources_file)
    if settings.endpoint_url is not None:
        environment["AWS_ENDPOINT_URL"] = settings.endpoint_url
    if settings.local_credentials:
        environment.update(AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_KEY)
    return environment


def local_runner(
    clients: AwsClients, settings: Settings, outputs: StackOutputs, functions: frozenset[str] | None = None
) -> LocalRunner:
    """The runner of the stack's mappings and schedules (of all its functions, or of `functions`),
    its handlers reaching the same local stack."""
    from local_aws.deploy import runner_checkpoints_table
    from local_aws.runner.runner import LocalRunner

    return LocalRunner(
        clients.client,
        outputs.function_names() if functions is None else functions,
        runner_checkpoints_table(clients, settings),
        handler_environment(settings, outputs),
    )


def run_consumer(
    clients: AwsClients, settings: Settings, outputs: StackOutputs, until_idle: bool
) -> LocalRunner:
    from local_aws.stack import StackError

    try:
        runner = local_runner(clients, settings, outputs)
    except StackError as exc:
        raise fail(f"{exc}: the runner's checkpoints table is deployed by `tickstream up`") from exc
    stop = _install_stop_handlers("finishing the batches in flight, then stopping")
    if not until_idle:
        err.print("following the stream: running its event source mappings (Ctrl-C stops)")
    runner.run(until_idle=until_idle, stop=stop)
    return runner


@app.command()
def consume(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep polling for new records (the default).")
    ] = False,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once every shard is caught up.")
    ] = False,
) -> None:
    """Run the template's event source mappings locally, with Lambda's semantics."""
    if follow and until_idle:
        raise fail("--follow and --until-idle exclude each other")
    consume_stack(state.settings, until_idle)


def consume_stack(settings: Settings, until_idle: bool) -> None:
    """What `consume` does, and `demo` with its own webhook receiver; then what each mapping and
    schedule did."""
    from local_aws.runner.kill_switch import KillAfterWrites
    from tickstream.aws_clients import AwsClients

    clients = AwsClients(settings)
    if settings.kill_after_writes is not None:
        KillAfterWrites(settings.kill_after_writes).install(clients.session)
    outputs = _deployer(clients, settings).outputs()
    runner = run_consumer(clients, settings, outputs, until_idle=until_idle)
    for run in runner.runs:
        stats = run.stats()
        out.print(
            f"{run.mapping.function.name}: {stats.invokes} invocations, {stats.records_done} records done, "
            f"{stats.windows_closed} windows closed, {stats.records_discarded} discarded "
            f"({stats.failure_messages} OnFailure messages)"
        )
    for schedule in runner.schedules:
        fired = schedule.stats
        out.print(
            f"{schedule.target.function.name}: {fired.fired} scheduled events, {fired.invokes} invocations, "
            f"{fired.errors} errors, {fired.retried} retried, {fired.dropped} dropped"
        )


@app.command()
def redrive() -> None:
    """Bring the ticks of batches Lambda gave up on (the dead-letter queue) into the bars, once."""
    from functions.aggregator.data_lake import DataLake
    from functions.aggregator.ledger import Ledger, LedgerError
    from functions.aggregator.service import Aggregator, AggregatorConfig
    from functions.aggregator.settings import AggregatorSettings, AggregatorSettingsError
    from stores.bars_table import BarsTable
    from stores.shard_reader import ShardReader
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.redrive import DeadLetterQueue, RedriveError
    from tickstream.ops.redrive import redrive as recover_discarded

    clients = AwsClients(state.settings)
    outputs = _deployer(clients, state.settings).outputs()
    function = clients.client("lambda").get_function_configuration(
        FunctionName=outputs.AggregatorFunctionName
    )
    try:
        settings = AggregatorSettings.from_environment(function.get("Environment", {}).get("Variables", {}))
    except AggregatorSettingsError as exc:
        raise fail(f"the deployed aggregator's {exc}") from exc
    aggregator = Aggregator(
        Ledger(clients.client("dynamodb"), settings.ledger_table),
        BarsTable(clients.client("dynamodb"), settings.bars_table),
        DataLake(clients.client("s3"), settings.data_bucket),
        AggregatorConfig(settings.intervals, settings.late_after_ms),
    )
    try:
        summary = recover_discarded(
            DeadLetterQueue(clients.client("sqs"), outputs.DeadLetterQueueUrl),
            ShardReader(clients.client("kinesis"), outputs.StreamName),
            aggregator,
            outputs.StreamArn,
            outputs.BarsTableStreamArn,
            lambda: build_charts(clients, outputs, None),
            out.print,
        )
    except (RedriveError, LedgerError) as exc:
        raise fail(str(exc)) from exc
    out.print(
        f"redrive: {summary.ranges} discarded range(s), {summary.records} records, "
        f"{summary.recovered} ticks recovered, {summary.already_held} already in the bars, "
        f"{summary.unknowable} unknowable (no tick id), {summary.rejected} rejected; "
        f"{summary.chart_batches} chart batch(es), {summary.charts_drawn} chart(s) drawn"
    )
    if summary.left:
        for reason in summary.left[:20]:
            err.print(f"left in the queue: {reason}", markup=False, highlight=False)
        raise fail(
            f"{len(summary.left)} message(s) left in {outputs.DeadLetterQueueUrl}: run the redrive again"
        )


def build_charts(
    clients: AwsClients, outputs: StackOutputs, symbol: str | None, pending: bool = False
) -> int:
    """Draws a symbol's charts, every symbol's, or (pending) those the chart builder left waiting."""
    from functions.chart_builder.service import (  # matplotlib: only when drawing
        ChartBuilder,
        draw_in_parallel,
    )
    from stores.bars_table import BarsTable
    from stores.site_bucket import SiteBucket

    table = BarsTable(clients.client("dynamodb"), outputs.BarsTableName)

    builder = ChartBuilder(table, SiteBucket(clients.client("s3"), outputs.SiteBucketName))
    if pending:
        series = builder.pending()
    else:
        series = {(s, i) for s, i in table.list_series() if symbol is None or s == symbol}
    if symbol is not None and not series:
        raise fail(
            f"no bars of {symbol} in {outputs.BarsTableName}: run `tickstream produce --symbols {symbol}` "
            "and `tickstream consume --until-idle` first"
        )
    rebuilt = builder.rebuild(series, int(time.time()), draw=draw_in_parallel)
    for (name, interval), reason in sorted(rebuilt.failed.items()):
        err.print(f"not drawn: {name} {interval}: {reason}", markup=False, highlight=False)
    return rebuilt.drawn


def site_url(settings: Settings, outputs: StackOutputs) -> str:
    return f"{settings.endpoint_url}/{outputs.SiteBucketName}/index.html"


@app.command()
def charts(
    symbol: Annotated[str | None, typer.Option(help="Rebuild this symbol's charts only.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every symbol's charts.")] = False,
    pending: Annotated[
        bool, typer.Option("--pending", help="Draw the charts left waiting for their interval to pass.")
    ] = False,
) -> None:
    """Rebuild charts now from the bars table, and the site's index and manifest."""
    from market.ticks import InvalidTick, validate_symbol
    from tickstream.aws_clients import AwsClients

    if [symbol is not None, all_, pending].count(True) != 1:
        raise fail("give one of --symbol SYMBOL, --all or --pending")
    if symbol is not None:
        try:
            validate_symbol(symbol)
        except InvalidTick as exc:
            raise fail(str(exc)) from exc
    clients = AwsClients(state.settings)
    outputs = _deployer(clients, state.settings).outputs()
    drawn = build_charts(clients, outputs, symbol, pending)
    out.print(f"rendered {drawn} chart(s); site: {site_url(state.settings, outputs)}")


# Short names for the template's functions, as `tickstream logs aggregator` takes them.
FUNCTION_ALIASES = {
    "aggregator": "AggregatorFunctionName",
    "charts": "ChartBuilderFunctionName",
    "quote-poller": "QuotePollerFunctionName",
}


def function_name(outputs: StackOutputs, name: str) -> str:
    """`aggregator`, `charts` or `quote-poller`, or a deployed function's full name."""
    alias = FUNCTION_ALIASES.get(name)
    if alias is not None:
        deployed = str(getattr(outputs, alias))
        if not deployed:
            raise fail(
                f"this stack has no {name}: deploy it with `tickstream up --parameter QuotePollMinutes=1`"
            )
        return deployed
    known = outputs.function_names()
    if name not in known:
        raise fail(f"unknown function {name!r}: give {', '.join(FUNCTION_ALIASES)} or one of {sorted(known)}")
    return name


@app.command()
def logs(
    function: Annotated[
        str, typer.Argument(help="aggregator, charts, quote-poller, or a function's full name.")
    ],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    since: Annotated[str, typer.Option(help="From this long ago (10m, 2h, 1d) or an ISO-8601 time.")] = "10m",
    filter_: Annotated[str | None, typer.Option("--filter", help="Only lines containing this text.")] = None,
) -> None:
    """CloudWatch Logs of a function (/aws/lambda/<name>), like `sam logs --tail`."""
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.log_tail import LogTail, parse_since

    try:
        since_ms = parse_since(since, int(time.time() * 1000))
    except ValueError as exc:
        raise fail(str(exc)) from exc
    clients = AwsClients(state.settings)
    outputs = _deployer(clients, state.settings).outputs()
    tail = LogTail(clients.client("logs"), f"/aws/lambda/{function_name(outputs, function)}")
    if follow:
        stop = _install_stop_handlers()
        for event in tail.follow(since_ms, filter_, stop):
            typer.echo(event.line())
    else:
        for event in tail.events(since_ms, filter_):
            typer.echo(event.line())


@app.command()
def view(
    port: Annotated[
        int,
        typer.Option(envvar="TICKSTREAM_VIEW_PORT", min=0, max=65535, help="Port to serve the charts on."),
    ] = 8080,
    host: Annotated[
        str, typer.Option(envvar="TICKSTREAM_VIEW_HOST", help="Address to listen on; 0.0.0.0 in a container.")
    ] = "127.0.0.1",
) -> None:
    """Serve the chart site from its bucket at http://HOST:PORT/ until stopped."""
    from stores.site_bucket import SiteBucket
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.site_viewer import SiteViewer

    clients = AwsClients(state.settings)
    outputs = _deployer(clients, state.settings).outputs()
    try:
        viewer = SiteViewer(SiteBucket(clients.client("s3"), outputs.SiteBucketName), host, port)
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        step = "give a free port with --port or TICKSTREAM_VIEW_PORT" if taken else "check --host and --port"
        raise fail(f"cannot listen on {host}:{port} ({exc.strerror}): {step}") from exc
    out.print(f"charts of stack {state.settings.stack_name} at http://{host}:{viewer.port}/ (Ctrl-C stops)")
    viewer.serve_until(_install_stop_handlers())


def _polled_ticks(config_path: Path, duration: float | None, stop: threading.Event) -> Iterator[Tick]:
    """A quote API polled every poll_seconds; a symbol that fails is reported and skipped."""
    from functions.quote_poller.polling import QuotePoller, QuoteSourceConfig, SourceConfigError

    try:
        config = QuoteSourceConfig.from_file(config_path, os.environ)
    except SourceConfigError as exc:
        raise fail(f"--source http:{config_path}: {exc}") from exc
    rounds = None if duration is None else max(1, math.ceil(duration / config.poll_seconds))

    def report(failure: PollFailure) -> None:
        err.print(f"{failure.symbol}: no tick ({failure.reason}): {failure.message}", markup=False)

    return QuotePoller.for_config(config).ticks(stop, report, rounds)


def _synthetic_market(
    symbols: str,
    rate: float,
    seed: int,
    start: str | None,
    count: int | None,
    duration: float | None,
    jumps: list[str],
) -> SyntheticMarket:
    """The market `produce --source synthetic` asked for, or the option that is wrong and why."""
    from producer.sources import Jump, SyntheticMarket

    names = [s.strip() for s in symbols.split(",") if s.strip()]
    try:
        parsed = tuple(Jump.parse(j) for j in jumps)
    except ValueError as exc:
        raise fail(f"--jump: {exc}") from exc
    try:
        market = SyntheticMarket(names, rate, seed, _start_ms(start), count, duration, jumps=parsed)
    except ValueError as exc:
        raise fail(f"--symbols {symbols!r}: {exc}") from exc
    for jump in parsed:
        if jump.symbol not in names:
            raise fail(f"--jump: {jump.symbol} is not one of --symbols {','.join(names)}: add it there")
    return market


def _source_file(source: str, expected: str) -> Path:
    """The file of `--source csv:<path>` or `http:<path>`; one that is not there fails now."""
    path = Path(source.partition(":")[2])
    if not path.is_file():
        raise fail(f"--source {source}: no such file; give {expected}")
    return path


def _start_ms(text: str | None) -> int:
    from market.ticks import InvalidTick, validate_timestamp

    if text is None:
        return int(time.time() * 1000)
    try:
        return validate_timestamp(int(text) if text.isdigit() else text)
    except InvalidTick as exc:
        raise fail(f"--start: {exc}: give epoch ms or an ISO-8601 time, e.g. 2026-11-02T14:30:00Z") from exc


def _install_stop_handlers(finishing: str = "stopping") -> threading.Event:
    """SIGINT and SIGTERM end the command's loop; `finishing` says what it does before it exits."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        err.print(f"{signal.Signals(signum).name}: {finishing}")
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop


def where_prices_stand(
    clients: AwsClients, outputs: StackOutputs, symbols: Sequence[str]
) -> dict[str, tuple[Decimal, int]]:
    """Each symbol's last 1m close and the time of its last tick: where a new synthetic run goes on.

    A producer may be allowed to put records and nothing else (the stack's ProducerPolicyArn): when
    the bars cannot be read, the run says so and draws its prices from the seed.
    """
    from stores.bars_table import BarsTable, BarsTableError

    table = BarsTable(clients.client("dynamodb"), outputs.BarsTableName)
    standing = {}
    try:
        for symbol in symbols:
            newest = table.query_bars(symbol, "1m", 1)
            if newest and newest[0].acc is not None:
                standing[symbol] = (newest[0].acc.close, newest[0].acc.last_ts)
    except BarsTableError as exc:
        err.print(f"prices drawn from the seed: the bars table cannot be read ({exc})", markup=False)
        return {}
    return standing


def _noting_prices(ticks: Iterator[Tick], prices: dict[str, Decimal]) -> Iterator[Tick]:
    """Passes ticks on, keeping each symbol's last price: where the next run starts."""
    for tick in ticks:
        prices[tick.symbol] = tick.price
        yield tick


def _csv_pace_note(replay: CsvReplay, pace: Pace) -> str:
    """What a replay will take: at max pace as fast as the stream takes it, in real time the file's
    span of event time, said before the first tick so nobody waits on a silent command."""
    from producer.sources import BadCsvRow

    if pace is Pace.MAX:
        return f"replaying {replay.path} at max pace (--pace realtime follows its event times)"
    try:
        span_s = replay.event_time_span_ms() / 1000
    except (BadCsvRow, OSError) as exc:
        raise fail(str(exc)) from exc
    ends = datetime.now(UTC).timestamp() + span_s
    return (
        f"replaying {replay.path} in real time: {span_s:,.0f} s of event time, done about "
        f"{datetime.fromtimestamp(ends, UTC):%H:%M:%S} UTC (--pace max sends it at once)"
    )


def _report_skipped(replay: CsvReplay) -> None:
    """The bad rows `--skip-bad` skipped: the first ones by line, then how many more."""
    if not replay.bad_rows:
        return
    out.print(f"skipped {replay.bad_rows} bad CSV row(s):")
    for row in replay.skipped:
        out.print(f"  {row}", markup=False, highlight=False, soft_wrap=True)
    if replay.bad_rows > len(replay.skipped):
        out.print(f"  and {replay.bad_rows - len(replay.skipped)} more")


def _summary(stats: ProduceStats) -> str:
    rate = stats.ticks_accepted / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    errors = ", ".join(f"{code} x{n}" for code, n in sorted(stats.entry_errors.items()))
    return (
        f"produced {stats.ticks_read} ticks: {stats.ticks_accepted} accepted "
        f"in {stats.records_accepted} records "
        f"({stats.put_calls} PutRecords calls), {stats.ticks_retried} retried, {stats.ticks_failed} failed"
        f"{'; entry errors: ' + errors if errors else ''}; {rate:,.0f} ticks/s over {stats.elapsed_s:.1f}s"
    )


def run_producer(
    ticks: Iterator[Tick],
    options: ProduceOptions,
    clients: AwsClients,
    stream_name: str,
    total: int | None,
    stop: threading.Event,
) -> ProduceStats:
    from producer.kinesis_writer import KinesisStreamWriter
    from producer.pipeline import Producer

    producer = Producer(KinesisStreamWriter(clients.client("kinesis"), stream_name), options)
    if not sys.stdout.isatty():
        return producer.run(ticks, stop)
    columns = (
        TextColumn("[bold]producing"),
        BarColumn(),
        TextColumn(
            "{task.fields[accepted]:,} accepted  {task.fields[rate]:,.0f} ticks/s  "
            "{task.fields[failed]} failed"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task("produce", total=total, accepted=0, rate=0.0, failed=0)

        def show(stats: ProduceStats) -> None:
            rate = stats.ticks_accepted / stats.elapsed_s if stats.elapsed_s else 0.0
            progress.update(
                task,
                completed=stats.ticks_read,
                accepted=stats.ticks_accepted,
                rate=rate,
                failed=stats.ticks_failed,
            )

        return producer.run(ticks, stop, show)


@app.command()
def produce(
    source: Annotated[
        str, typer.Option(help="'synthetic', 'csv:<path>', or 'http:<config.yaml>' to poll a quote API.")
    ] = "synthetic",
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols (synthetic).")] = DEFAULT_SYMBOLS,
    rate: Annotated[
        float, typer.Option(min=0.001, help="Ticks per second of event time (synthetic).")
    ] = 1000.0,
    duration: Annotated[
        float | None, typer.Option(min=0.0, help="Seconds of ticks (synthetic), or of polling (http).")
    ] = None,
    count: Annotated[int | None, typer.Option(min=0, help="Number of ticks (synthetic).")] = None,
    seed: Annotated[int, typer.Option(help="Same seed and --start give the same ticks.")] = 1,
    start: Annotated[
        str | None, typer.Option(help="First event time: epoch ms or ISO-8601 (default now).")
    ] = None,
    pace: Annotated[
        Pace | None,
        typer.Option(
            help="realtime follows event time; max sends as fast as possible "
            "(default: realtime, max for csv: files)."
        ),
    ] = None,
    aggregate: Annotated[
        bool, typer.Option(help="KPL-aggregate per shard (--no-aggregate: plain records).")
    ] = True,
    skip_bad: Annotated[bool, typer.Option(help="Count and skip bad CSV rows instead of stopping.")] = False,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="Tries per record before it counts as failed.")
    ] = 10,
    linger_ms: Annotated[int, typer.Option(min=0, help="Longest a partly full aggregate waits.")] = 100,
    jump: Annotated[
        list[str] | None,
        typer.Option(help="SYMBOL:PERCENT:SECONDS, a sudden move to try alerts (synthetic; repeatable)."),
    ] = None,
) -> None:
    """Push ticks into the stream; exits non-zero if any tick was not accepted."""
    from market.ticks import InvalidTick
    from producer.pipeline import ProduceOptions, SourceFailed
    from producer.sources import CsvReplay
    from tickstream.aws_clients import AwsClients

    pace = pace or (Pace.MAX if source.startswith("csv:") else Pace.REALTIME)
    options = ProduceOptions(
        aggregate=aggregate, pace=pace, linger_s=linger_ms / 1000, max_attempts=max_attempts
    )
    csv_source: CsvReplay | None = None
    market: SyntheticMarket | None = None
    ticks: Iterator[Tick] = iter(())
    stop = _install_stop_handlers("flushing buffered ticks, then stopping")
    # The arguments and the source are checked before the stack is read: a typo fails first.
    if source == "synthetic":
        market = _synthetic_market(symbols, rate, seed, start, count, duration, jump or [])
        total = count if count is not None else (int(duration * rate) if duration is not None else None)
    elif source.startswith("csv:"):
        path = _source_file(source, "a CSV file with a symbol,price,size,ts header")
        csv_source = CsvReplay(path, skip_bad=skip_bad)
        ticks, total = csv_source.ticks(), None
        err.print(_csv_pace_note(csv_source, pace), markup=False, highlight=False, soft_wrap=True)
    elif source.startswith("http:"):
        path = _source_file(source, "a quote source config such as functions/quote_poller/sources.yaml")
        ticks, total = _polled_ticks(path, duration, stop), None
    else:
        raise fail(f"--source {source!r}: expected 'synthetic', 'csv:<path>' or 'http:<config>'")
    clients = AwsClients(state.settings)
    outputs = _deployer(clients, state.settings).outputs()
    if market is not None:
        standing = where_prices_stand(clients, outputs, market.symbols)
        prices = {symbol: close for symbol, (close, _) in standing.items()}
        ticks = dataclasses.replace(market, start_prices=prices).ticks()
    if source == "synthetic" and duration is None and count is None:
        err.print("no --duration or --count: producing until interrupted (Ctrl-C flushes and stops)")
    try:
        stats = run_producer(ticks, options, clients, outputs.StreamName, total, stop)
    except SourceFailed as exc:  # what the source gave before it failed was sent: say what became of it
        out.print(_summary(exc.stats))
        raise fail(str(exc)) from exc
    except InvalidTick as exc:
        raise fail(str(exc)) from exc
    out.print(_summary(stats))
    if csv_source is not None:
        _report_skipped(csv_source)
    if stats.fatal_error:
        show_error(stats.fatal_error)
    if not stats.complete:
        raise typer.Exit(1)


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(min=1.0, help="Seconds of ticks to produce.")] = 5.0,
    rate: Annotated[float, typer.Option(min=1.0, help="Ticks per second.")] = 2000.0,
) -> None:
    """The main job end to end on the embedded default: up, produce, consume, bars checked against pandas."""
    from producer.pipeline import ProduceOptions
    from producer.sources import Jump, SyntheticMarket
    from tickstream.aws_clients import AwsClients
    from tickstream.demo.show import read_stream, show_alerts, show_bars, show_landing  # pandas: the demo's
    from tickstream.demo.webhook_receiver import WebhookReceiver

    bring_up(state.settings, None, [])
    clients = AwsClients(state.settings)
    outputs = _deployer(clients, state.settings).outputs()
    symbols = DEFAULT_SYMBOLS.split(",")
    seed, now_ms = int(time.time()), _start_ms(None)
    standing = where_prices_stand(clients, outputs, symbols)
    # History only where the stack has none yet: a second demo continues the first one's prices
    # and never writes a second, unrelated path into bars that already exist.
    history_start = max([now_ms - HISTORY_MS, *(ts + 1 for _, ts in standing.values())])
    prices = {symbol: close for symbol, (close, _) in standing.items()}
    stop = _install_stop_handlers("flushing buffered ticks, then stopping")
    backfill_complete = True
    if history_start < now_ms:
        history = SyntheticMarket(
            symbols,
            HISTORY_RATE,
            seed=seed,
            start_ms=history_start,
            duration_s=(now_ms - history_start) / 1000,
            start_prices=dict(prices),
        )
        out.print(
            f"backfilling {(now_ms - history_start) / 60_000:,.0f} min of history at "
            f"{HISTORY_RATE:.0f} ticks/s of event time"
            + (", continuing the prices in the bars table" if prices else "")
        )
        backfill = run_producer(
            _noting_prices(history.ticks(), prices),
            ProduceOptions(pace=Pace.MAX),
            clients,
            outputs.StreamName,
            None,
            stop,
        )
        out.print(_summary(backfill))
        backfill_complete = backfill.complete
    market = SyntheticMarket(
        symbols,
        rate,
        seed=seed,
        start_ms=now_ms,
        duration_s=seconds,
        jumps=(Jump(*DEMO_JUMP),),
        start_prices=prices,
    )
    out.print(
        f"producing {seconds:.0f}s of ticks at {rate:,.0f}/s "
        f"for {len(market.symbols)} symbols (run {market.run_id()})"
    )
    stats = run_producer(
        market.ticks(), ProduceOptions(), clients, outputs.StreamName, int(seconds * rate), stop
    )
    out.print(_summary(stats))
    landed = show_landing(out, read_stream(clients, outputs.StreamName), market.run_id(), stats)
    out.print(
        "consuming until idle (the aggregator's and the chart builder's event source mappings, run locally)"
    )
    with WebhookReceiver() as receiver:
        settings = state.settings
        if settings.alert_webhook_url is None:
            settings = dataclasses.replace(settings, alert_webhook_url=receiver.url)
        consume_stack(settings, until_idle=True)
        show_alerts(out, receiver.received(), DEMO_JUMP[0])
    bars_ok = show_bars(out, clients, outputs, read_stream(clients, outputs.StreamName))
    site = site_url(state.settings, outputs)
    # What the chart builder's one-minute sweep draws once each chart's interval has passed.
    late = build_charts(clients, outputs, None, pending=True)
    out.print(
        "charts drawn by the chart builder's stream mapping, each at most once per its interval; "
        f"{late} left waiting drawn now (`tickstream charts --pending`); open the site at {site}"
    )
    out.print(
        f"demo finished at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; `tickstream down` stops the local AWS"
    )
    if not (backfill_complete and landed and bars_ok):
        raise typer.Exit(1)


def expected_errors() -> tuple[type[Exception], ...]:
    """What commands end in when the stack, the endpoint, the credentials or the input is not
    right, as opposed to a bug: each is reported in one line with the next step, without a
    traceback. Imported here, once a command has failed, so that no command pays for them."""
    from lambda_build.artifacts import ArtifactError
    from local_aws.embedded import EmbeddedAwsError
    from local_aws.runner.aws_io import RunnerIOError
    from local_aws.stack import StackError
    from producer.kinesis_writer import KinesisError
    from stores.bars_table import BarsTableError
    from stores.shard_reader import StreamReadError
    from stores.site_bucket import SiteError
    from tickstream.failures import BOTOCORE_ERRORS
    from tickstream.ops.health import HealthReadError
    from tickstream.ops.log_tail import LogReadError

    return (
        *BOTOCORE_ERRORS,
        StackError,
        ArtifactError,
        EmbeddedAwsError,
        StreamReadError,
        BarsTableError,
        SiteError,
        RunnerIOError,
        HealthReadError,
        LogReadError,
        KinesisError,
    )


def run() -> None:
    """The `tickstream` command: the commands, with their expected errors reported in one line
    (exit 2); `--debug` adds the traceback."""
    try:
        app()
    except Exception as exc:
        if not isinstance(exc, expected_errors()):
            raise
        from tickstream.failures import explain

        if state.debug:
            traceback.print_exception(exc)
        show_error(explain(exc, state.settings))
        sys.exit(2)
