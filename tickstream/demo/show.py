"""The demo's proofs: every tick landed on its shard, the bars equal a pandas recomputation, and
the injected jump sent a price alert."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from local_aws.stack import StackOutputs
from market.bars import DEFAULT_INTERVALS
from producer.pipeline import ProduceStats
from stores.bars_table import BarsTable
from stores.shard_reader import ShardReader, StreamRecord, user_records
from tickstream.aws_clients import AwsClients
from tickstream.demo.bars_reference import public_values, reference_from_stream


def read_stream(clients: AwsClients, stream_name: str) -> list[StreamRecord]:
    """Every record of every shard, in shard order; the demo's stream is small enough to hold."""
    reader = ShardReader(clients.client("kinesis"), stream_name)
    return [r for shard in reader.shards() for r in reader.read_shard(shard.shard_id)]


def landed_by_shard(records: Iterable[StreamRecord], run_id: str) -> tuple[Counter[str], Counter[str]]:
    """Ticks of this run per shard, and per shard the symbols seen (a symbol must sit on one shard)."""
    ticks: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    prefix = f"{run_id}:"
    for record in records:
        for user in user_records(record):
            tick = orjson.loads(user.data)
            if str(tick.get("id", "")).startswith(prefix):
                ticks[record.shard_id] += 1
                seen.add((record.shard_id, tick["symbol"]))
    return ticks, Counter(symbol for _, symbol in seen)


def show_landing(out: Console, records: Iterable[StreamRecord], run_id: str, stats: ProduceStats) -> bool:
    landed, symbol_shards = landed_by_shard(records, run_id)
    table = Table("shard", "accepted by Kinesis", "read back", title=f"ticks of run {run_id} per shard")
    for shard_id in sorted(set(landed) | set(stats.accepted_by_shard)):
        table.add_row(shard_id, f"{stats.accepted_by_shard[shard_id]:,}", f"{landed[shard_id]:,}")
    table.add_row("total", f"{stats.ticks_accepted:,}", f"{sum(landed.values()):,}", style="bold")
    out.print(table)
    split = sorted(s for s, n in symbol_shards.items() if n > 1)
    ok = stats.complete and landed == stats.accepted_by_shard and not split
    if split:
        out.print(f"[red]symbols on more than one shard: {', '.join(split)}[/]")
    out.print(
        "[green]every tick landed on its shard[/]" if ok else "[red]what landed differs from what was sent[/]"
    )
    return ok


def _utc(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M")


def show_bars(
    out: Console, clients: AwsClients, outputs: StackOutputs, records: Iterable[StreamRecord]
) -> bool:
    """Bars per symbol, and whether every stored bar equals the pandas recomputation of the stream."""
    expected = reference_from_stream(records, DEFAULT_INTERVALS)
    stored = BarsTable(clients.client("dynamodb"), outputs.BarsTableName).scan_bars()
    got = {(b.symbol, b.interval, b.start): public_values(b.acc) for b in stored if b.acc is not None}
    table = Table(
        "symbol", "last 1m bar", "close", "1m volume", "day open", "high", "low", "close", "volume", "trades"
    )
    for symbol in sorted({b.symbol for b in stored}):
        minute = max((b for b in stored if b.symbol == symbol and b.interval == "1m"), key=lambda b: b.start)
        day = max((b for b in stored if b.symbol == symbol and b.interval == "1d"), key=lambda b: b.start)
        if minute.acc is None or day.acc is None:
            continue
        m, d = minute.acc, day.acc
        table.add_row(
            symbol,
            _utc(minute.start),
            f"{m.close}",
            f"{m.volume:,}",
            f"{d.open}",
            f"{d.high}",
            f"{d.low}",
            f"{d.close}",
            f"{d.volume:,}",
            f"{d.trades:,}",
        )
    out.print(table)
    wrong = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
    if wrong:
        out.print(
            f"[red]{len(wrong)} of {len(expected)} bars differ from the pandas reference, e.g. {wrong[:3]}[/]"
        )
        return False
    out.print(
        f"[green]all {len(got)} bars ({', '.join(DEFAULT_INTERVALS)}) equal the pandas recomputation "
        "(stream decoded by awslabs' deaggregator)[/]"
    )
    return True


def show_alerts(out: Console, received: list[Any], jumped: str) -> None:
    """What the chart builder posted to the local webhook receiver (a Slack webhook on AWS)."""
    if not received:
        out.print(
            f"no alert posted this run: an earlier demo on this stack reported {jumped}'s jump within "
            f"the rule's cooldown, or {jumped} has fewer 1m bars than the rule looks back "
            "(alerts/rules.yaml); `tickstream logs charts --filter alert` tells"
        )
    for body in received:
        out.print(
            "alert posted to the local webhook receiver:", body.get("text", body), markup=False, emoji=False
        )


def show_alarm_messages(out: Console, received: list[Any], alarm: str) -> bool:
    """What the alarm notifier posted for the alarm the demo forced (Slack's &gt; shown as >);
    False unless it was the alarm and its recovery."""
    if len(received) != 2:
        out.print(
            f"[red]{len(received)} message(s) for {alarm}, not its alarm and recovery:[/] "
            "`tickstream logs alarm-notifier` says what the notifier did with them"
        )
    for body in received:
        text = html.unescape(str(body.get("text", body)))
        out.print("alarm posted to the local webhook receiver:", text, markup=False, emoji=False)
    return len(received) == 2
