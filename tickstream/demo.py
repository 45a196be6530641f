"""The demo's proof: read every shard back and compare what landed with what the producer sent."""

from __future__ import annotations

from collections import Counter

import orjson
from rich.console import Console
from rich.table import Table

from consumers.shard_reader import ShardReader, user_records
from producer.pipeline import ProduceStats
from tickstream.aws_clients import AwsClients


def landed_by_shard(reader: ShardReader, run_id: str) -> tuple[Counter[str], Counter[str]]:
    """Ticks of this run per shard, and per shard the symbols seen (a symbol must sit on one shard)."""
    ticks: Counter[str] = Counter()
    symbols: Counter[str] = Counter()
    prefix = f"{run_id}:"
    for shard in reader.shards():
        seen = set()
        for record in reader.read_shard(shard.shard_id):
            for user in user_records(record):
                tick = orjson.loads(user.data)
                if str(tick.get("id", "")).startswith(prefix):
                    ticks[shard.shard_id] += 1
                    seen.add(tick["symbol"])
        symbols.update(seen)
    return ticks, symbols


def run_demo(out: Console, clients: AwsClients, stream_name: str, run_id: str, stats: ProduceStats) -> bool:
    reader = ShardReader(clients.client("kinesis"), stream_name)
    landed, symbol_shards = landed_by_shard(reader, run_id)
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
