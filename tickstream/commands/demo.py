"""`demo`: the main job end to end on the embedded default, its bars checked against pandas.

Each command imports what it uses when it runs, so `--help` and the other commands do not pay for it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from producer.pace import Pace
from tickstream.commands.charts import build_charts
from tickstream.commands.consume import consume_stack
from tickstream.commands.produce import (
    DEFAULT_SYMBOLS,
    noting_prices,
    run_producer,
    start_ms,
    summary,
    where_prices_stand,
)
from tickstream.commands.up import bring_up, deployer, site_url
from tickstream.console import install_stop_handlers, out, state

if TYPE_CHECKING:
    from local_aws.stack import StackOutputs
    from tickstream.aws_clients import AwsClients
    from tickstream.settings import Settings


# The demo's backfill: two hours of event time before now, so the charts have candles to show.
HISTORY_MS = 2 * 3_600_000

HISTORY_RATE = 10.0

# The demo's price alert: NVDA's live ticks trade 6 % above where its history ended, which the
# default rule (2 % against the close 5 one-minute bars before) reports.
DEMO_JUMP = ("NVDA", 6.0, 0.0)
FORCED_REASON = "forced by the demo, as `aws cloudwatch set-alarm-state` does"


def force_an_alarm(
    clients: AwsClients, settings: Settings, outputs: StackOutputs, received: Callable[[], list[Any]]
) -> tuple[str, list[Any]]:
    """The dead-letter queue's alarm set to ALARM and back to OK, each change delivered to the
    alarm notifier as CloudWatch and SNS would: the chat messages a team would get. Its name, and
    what `received` got for those two changes (an alarm left in ALARM, by a demo stopped
    half-way, is set to OK first, which posts a recovery of its own)."""
    from local_aws.runner.runner import ALARM_READ_S
    from tickstream.commands.consume import local_runner

    name = f"{settings.stack_name}-dead-letter-queue"
    runner = local_runner(clients, settings, outputs, frozenset({outputs.AlarmNotifierFunctionName}))
    runner.start_alarms()
    cloudwatch = clients.client("cloudwatch")
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    steps = ["OK", "ALARM", "OK"] if alarm["StateValue"] == "ALARM" else ["ALARM", "OK"]
    now, start = time.time(), 0
    for value in steps:
        if value == "ALARM":
            start = len(received())
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=value, StateReason=FORCED_REASON)
        now += ALARM_READ_S
        runner.step_alarms(now)
    return name, received()[start:]


def demo(
    seconds: Annotated[
        float, typer.Option(min=1.0, metavar="SECONDS", help="Seconds of ticks to produce.")
    ] = 5.0,
    rate: Annotated[float, typer.Option(min=1.0, metavar="TICKS_PER_S", help="Ticks per second.")] = 2000.0,
) -> None:
    """Run the main job end to end locally; bars checked against pandas.

    On the embedded default: up, produce, consume, then the bars against a pandas recomputation."""
    from producer.pipeline import ProduceOptions
    from producer.sources import Jump, SyntheticMarket
    from tickstream.aws_clients import AwsClients
    from tickstream.demo.show import (  # pandas: the demo's
        read_stream,
        show_alarm_messages,
        show_alerts,
        show_bars,
        show_landing,
    )
    from tickstream.demo.webhook_receiver import WebhookReceiver

    bring_up(state.settings, None, [])
    clients = AwsClients(state.settings)
    outputs = deployer(clients, state.settings).outputs()
    symbols = DEFAULT_SYMBOLS.split(",")
    seed, now_ms = int(time.time()), start_ms(None)
    standing = where_prices_stand(clients, outputs, symbols)
    # History only where the stack has none yet: a second demo continues the first one's prices
    # and never writes a second, unrelated path into bars that already exist.
    history_start = max([now_ms - HISTORY_MS, *(ts + 1 for _, ts in standing.values())])
    prices = {symbol: close for symbol, (close, _) in standing.items()}
    stop = install_stop_handlers("flushing buffered ticks, then stopping")
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
        out().print(
            f"backfilling {(now_ms - history_start) / 60_000:,.0f} min of history at "
            f"{HISTORY_RATE:.0f} ticks/s of event time"
            + (", continuing the prices in the bars table" if prices else "")
        )
        backfill = run_producer(
            noting_prices(history.ticks(), prices),
            ProduceOptions(pace=Pace.MAX),
            clients,
            outputs.StreamName,
            None,
            stop,
        )
        out().print(summary(backfill))
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
    out().print(
        f"producing {seconds:.0f}s of ticks at {rate:,.0f}/s "
        f"for {len(market.symbols)} symbols (run {market.run_id()})"
    )
    stats = run_producer(
        market.ticks(), ProduceOptions(), clients, outputs.StreamName, int(seconds * rate), stop
    )
    out().print(summary(stats))
    landed = show_landing(out(), read_stream(clients, outputs.StreamName), market.run_id(), stats)
    out().print(
        "consuming until idle (the aggregator's and the chart builder's event source mappings, run locally)"
    )
    with WebhookReceiver() as receiver:
        settings = state.settings
        if settings.alert_webhook_url is None:
            settings = dataclasses.replace(settings, alert_webhook_url=receiver.url)
        consume_stack(settings, until_idle=True)
        show_alerts(out(), receiver.received(), DEMO_JUMP[0])
        forced, messages = force_an_alarm(clients, settings, outputs, receiver.received)
        alarm_ok = show_alarm_messages(out(), messages, forced)
    bars_ok = show_bars(out(), clients, outputs, read_stream(clients, outputs.StreamName))
    site = site_url(state.settings, outputs)
    # What the chart builder's one-minute sweep draws once each chart's interval has passed.
    late = build_charts(clients, outputs, None, pending=True)
    out().print(
        "charts drawn by the chart builder's stream mapping, each at most once per its interval; "
        f"{late} left waiting drawn now (`tickstream charts --pending`); open the site at {site}"
    )
    out().print(
        f"demo finished at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; `tickstream down` stops the local AWS"
    )
    if not (backfill_complete and landed and bars_ok and alarm_ok):
        raise typer.Exit(1)
