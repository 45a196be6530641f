"""`produce`: ticks from a source (synthetic, a CSV file, a quote API) into the stream.

Each command imports what it uses when it runs, so `--help` and the other commands do not pay for it."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from producer.pace import Pace
from tickstream.commands.up import deployer
from tickstream.console import err, fail, install_stop_handlers, out, show_error, state

if TYPE_CHECKING:
    from functions.quote_poller.polling import PollFailure
    from local_aws.stack import StackOutputs
    from market.ticks import Tick
    from producer.pipeline import ProduceOptions, ProduceStats
    from producer.sources import CsvReplay, SyntheticMarket
    from tickstream.aws_clients import AwsClients


# Bounds that keep every option finite: a million ticks/s is past what one producer can send,
# and a year of ticks is longer than anyone runs one.
MAX_RATE = 1_000_000.0
MAX_DURATION_S = 365 * 86_400.0
DEFAULT_SYMBOLS = "AAPL,MSFT,GOOG,AMZN,NVDA,META,TSLA,JPM"


def _polled_ticks(config_path: Path, duration: float | None, stop: threading.Event) -> Iterator[Tick]:
    """A quote API polled every poll_seconds; a symbol that fails is reported and skipped."""
    from functions.quote_poller.polling import QuotePoller, QuoteSourceConfig, SourceConfigError

    try:
        config = QuoteSourceConfig.from_file(config_path, os.environ)
    except SourceConfigError as exc:
        raise fail(f"--source http:{config_path}: {exc}") from exc
    rounds = None if duration is None else max(1, math.ceil(duration / config.poll_seconds))

    def report(failure: PollFailure) -> None:
        err().print(f"{failure.symbol}: no tick ({failure.reason}): {failure.message}", markup=False)

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
        market = SyntheticMarket(names, rate, seed, start_ms(start), count, duration, jumps=parsed)
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


def start_ms(text: str | None) -> int:
    from market.ticks import InvalidTick, validate_timestamp

    if text is None:
        return int(time.time() * 1000)
    try:
        return validate_timestamp(int(text) if text.isdigit() else text)
    except InvalidTick as exc:
        raise fail(f"--start: {exc}: give epoch ms or an ISO-8601 time, e.g. 2026-11-02T14:30:00Z") from exc


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
        err().print(f"prices drawn from the seed: the bars table cannot be read ({exc})", markup=False)
        return {}
    return standing


def noting_prices(ticks: Iterator[Tick], prices: dict[str, Decimal]) -> Iterator[Tick]:
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
    out().print(f"skipped {replay.bad_rows} bad CSV row(s):")
    for row in replay.skipped:
        out().print(f"  {row}", markup=False, highlight=False, soft_wrap=True)
    if replay.bad_rows > len(replay.skipped):
        out().print(f"  and {replay.bad_rows - len(replay.skipped)} more")


def summary(stats: ProduceStats) -> str:
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
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]producing"),
        BarColumn(),
        TextColumn(
            "{task.fields[accepted]:,} accepted  {task.fields[rate]:,.0f} ticks/s  "
            "{task.fields[failed]} failed"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out(), transient=True) as progress:
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


def produce(
    source: Annotated[
        str,
        typer.Option(
            metavar="SOURCE", help="'synthetic', 'csv:<path>', or 'http:<config.yaml>' to poll a quote API."
        ),
    ] = "synthetic",
    symbols: Annotated[
        str, typer.Option(metavar="A,B,...", help="Comma-separated symbols (synthetic).")
    ] = DEFAULT_SYMBOLS,
    rate: Annotated[
        float,
        typer.Option(
            min=0.001, max=MAX_RATE, metavar="TICKS_PER_S", help="Ticks per second of event time (synthetic)."
        ),
    ] = 1000.0,
    duration: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=MAX_DURATION_S,
            metavar="SECONDS",
            help="Seconds of ticks (synthetic), or of polling (http).",
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option(min=0, metavar="N", help="Number of ticks (synthetic).")
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Same seed and --start give the same ticks.")] = 1,
    start: Annotated[
        str | None, typer.Option(metavar="TIME", help="First event time: epoch ms or ISO-8601 (default now).")
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
        int, typer.Option(min=1, metavar="N", help="Tries per record before it counts as failed.")
    ] = 10,
    linger_ms: Annotated[
        int, typer.Option(min=0, metavar="MS", help="Longest a partly full aggregate waits.")
    ] = 100,
    jump: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SYMBOL:PERCENT:SECONDS", help="A sudden move to try alerts (synthetic; repeatable)."
        ),
    ] = None,
) -> None:
    """Push ticks into the stream; exit 1 if any tick was not accepted."""
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
    stop = install_stop_handlers("flushing buffered ticks, then stopping")
    # The arguments and the source are checked before the stack is read: a typo fails first.
    if source == "synthetic":
        market = _synthetic_market(symbols, rate, seed, start, count, duration, jump or [])
        total = count if count is not None else (int(duration * rate) if duration is not None else None)
    elif source.startswith("csv:"):
        path = _source_file(source, "a CSV file with a symbol,price,size,ts header")
        csv_source = CsvReplay(path, skip_bad=skip_bad)
        ticks, total = csv_source.ticks(), None
        err().print(_csv_pace_note(csv_source, pace), markup=False, highlight=False, soft_wrap=True)
    elif source.startswith("http:"):
        path = _source_file(source, "a quote source config such as functions/quote_poller/sources.yaml")
        ticks, total = _polled_ticks(path, duration, stop), None
    else:
        raise fail(f"--source {source!r}: expected 'synthetic', 'csv:<path>' or 'http:<config>'")
    clients = AwsClients(state.settings)
    outputs = deployer(clients, state.settings).outputs()
    if market is not None:
        standing = where_prices_stand(clients, outputs, market.symbols)
        prices = {symbol: close for symbol, (close, _) in standing.items()}
        ticks = dataclasses.replace(market, start_prices=prices).ticks()
    if source == "synthetic" and duration is None and count is None:
        err().print("no --duration or --count: producing until interrupted (Ctrl-C flushes and stops)")
    try:
        stats = run_producer(ticks, options, clients, outputs.StreamName, total, stop)
    except SourceFailed as exc:  # what the source gave before it failed was sent: say what became of it
        out().print(summary(exc.stats))
        raise fail(str(exc)) from exc
    except InvalidTick as exc:
        raise fail(str(exc)) from exc
    out().print(summary(stats))
    if csv_source is not None:
        _report_skipped(csv_source)
    if stats.fatal_error:
        show_error(stats.fatal_error)
    if not stats.complete:
        raise typer.Exit(1)
