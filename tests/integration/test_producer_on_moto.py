"""The producer against a real moto server over HTTP, driven through the `tickstream` command."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
from pytest_httpserver import HTTPServer

from market.ticks import encode_tick
from producer.shard_map import ShardMap, ShardRange
from producer.sources import SyntheticMarket
from tests.support.fault_proxy import FaultProxy
from tests.support.local_stack import TICKSTREAM, LocalStack, run_cli, run_cli_in_process

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM", "A+B", "X.Y-Z", "BRK.B", "V"]
START = "2026-11-02T14:30:00"
START_MS = 1793629800000


def produce_args(count: int, seed: int, *extra: str) -> list[str]:
    return [
        "produce",
        "--count",
        str(count),
        "--seed",
        str(seed),
        "--start",
        START,
        "--symbols",
        ",".join(SYMBOLS),
        "--rate",
        "5000",
        "--pace",
        "max",
        *extra,
    ]


def expected(count: int, seed: int) -> list[bytes]:
    market = SyntheticMarket(SYMBOLS, 5000.0, seed, START_MS, count=count)
    return [encode_tick(t) for t in market.ticks()]


def landed(stack: LocalStack, wanted: set[bytes]) -> list[tuple[str, bytes]]:
    return [(u.shard_id, u.data) for u in stack.read_everything() if u.data in wanted]


def test_50k_ticks_over_4_shards_land_whole_on_their_shard_in_order(local_stack: LocalStack) -> None:
    done = run_cli(produce_args(50_000, seed=11), local_stack.env)
    assert done.returncode == 0, done.stderr
    assert "50000 accepted" in done.stdout

    sent = expected(50_000, seed=11)
    records = landed(local_stack, set(sent))
    assert Counter(data for _, data in records) == Counter(sent)

    shard_map = ShardMap(
        ShardRange(s.shard_id, s.starting_hash_key, s.ending_hash_key)
        for s in local_stack.reader().shards()
        if s.is_open
    )
    assert len(shard_map.shards) == 4
    shards_of: defaultdict[str, set[str]] = defaultdict(set)
    order_of: defaultdict[str, list[str]] = defaultdict(list)
    for shard_id, data in records:
        tick = orjson.loads(data)
        shards_of[tick["symbol"]].add(shard_id)
        order_of[tick["symbol"]].append(tick["id"])
    assert {s: sorted(ids) for s, ids in shards_of.items()} == {
        s: [shard_map.shard_for(s).shard_id] for s in SYMBOLS
    }
    assert len({shard for shards in shards_of.values() for shard in shards}) > 1
    assert all(ids == sorted(ids) for ids in order_of.values())


def test_throttled_and_failed_entries_are_retried_alone_without_loss_or_duplicates(
    local_stack: LocalStack,
) -> None:
    with FaultProxy(local_stack.endpoint, entry_failure_rate=0.2, call_failure_rate=0.05, seed=3) as proxy:
        env = {**local_stack.env, "AWS_ENDPOINT_URL": proxy.url}
        done = run_cli(produce_args(20_000, 12, "--linger-ms", "5"), env)
    assert done.returncode == 0, done.stderr
    log = proxy.log
    assert sum(log.failed.values()) > 20
    assert log.calls_refused > 0
    # Every entry went out once more per failure it got, and never again after it was accepted.
    assert all(log.sent[d] == log.failed[d] + 1 for d in log.sent)
    assert "ProvisionedThroughputExceededException" in done.stdout
    assert "InternalFailure" in done.stdout
    assert "0 failed" in done.stdout

    sent = expected(20_000, seed=12)
    assert Counter(data for _, data in landed(local_stack, set(sent))) == Counter(sent)


def test_no_aggregate_sends_one_plain_record_per_tick(local_stack: LocalStack) -> None:
    done = run_cli(produce_args(300, 13, "--no-aggregate"), local_stack.env)
    assert done.returncode == 0, done.stderr
    sent = expected(300, seed=13)
    views = [u for u in local_stack.read_everything() if u.data in set(sent)]
    assert sorted(u.data for u in views) == sorted(sent)
    assert all(u.sub_sequence is None for u in views)


def test_up_again_changes_nothing_and_status_shows_the_shards(local_stack: LocalStack) -> None:
    again = run_cli_in_process(["up", "--shards", "4"], local_stack.env)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout
    assert local_stack.outputs.StreamName in again.stdout
    status = run_cli(["status"], local_stack.env)
    assert status.returncode == 0, status.stderr
    assert "4 open / 4 shards" in status.stdout
    assert "shardId-000000000003" in status.stdout


def test_bad_csv_row_stops_with_file_and_line_unless_skipped(local_stack: LocalStack, tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("symbol,price,size,ts\nAAPL,189.5,10,1795475844085\nAA PL,1,1,1795475844086\n")
    refused = run_cli(["produce", "--source", f"csv:{path}", "--pace", "max"], local_stack.env)
    assert refused.returncode != 0
    assert "day.csv:3" in refused.stderr
    assert "symbol" in refused.stderr
    assert "1 accepted" in refused.stdout  # the row before the bad one was sent, and said so
    skipped = run_cli(["produce", "--source", f"csv:{path}", "--pace", "max", "--skip-bad"], local_stack.env)
    assert skipped.returncode == 0, skipped.stderr
    assert "1 accepted" in skipped.stdout
    assert "skipped 1 bad CSV row" in skipped.stdout
    assert f"{path}:3: symbol 'AA PL'" in skipped.stdout


def test_sigterm_flushes_what_is_buffered(local_stack: LocalStack) -> None:
    args = ["produce", "--symbols", "SIG1,SIG2", "--rate", "200", "--seed", "14", "--start", START]
    process = subprocess.Popen(
        [*TICKSTREAM, *args], env=local_stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(4)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "flushing" in stderr
    read = int(stdout.split("produced ")[1].split(" ticks")[0])
    assert read > 50
    assert f"{read} accepted" in stdout
    ours = [u for u in local_stack.read_everything() if orjson.loads(u.data)["symbol"] in ("SIG1", "SIG2")]
    assert len(ours) == read


def test_unknown_stack_gives_a_clear_error(local_stack: LocalStack) -> None:
    done = run_cli(["produce", "--count", "1"], {**local_stack.env, "TICKSTREAM_STACK": "nothere"})
    assert done.returncode != 0
    assert "tickstream up" in done.stderr


def test_http_source_polls_a_quote_api_into_the_stream(
    local_stack: LocalStack, http_server: HTTPServer, tmp_path: Path
) -> None:
    recorded = Path(__file__).parent.parent / "fixtures" / "quotes"
    http_server.expect_request(
        "/query", query_string={"function": "GLOBAL_QUOTE", "symbol": "HTQ", "apikey": "k1"}
    ).respond_with_data((recorded / "av_global_quote.json").read_bytes())
    http_server.expect_request(
        "/query", query_string={"function": "GLOBAL_QUOTE", "symbol": "HTN", "apikey": "k1"}
    ).respond_with_data((recorded / "av_rate_limit_note.json").read_bytes())
    config = tmp_path / "alpha-vantage.yaml"
    url = http_server.url_for("/query")
    config.write_text(f"provider: alphavantage\nsymbols: [HTQ, HTN]\nurl: {url}\napi_key_env: AV_KEY\n")
    done = run_cli(
        ["produce", "--source", f"http:{config}", "--duration", "1"], {**local_stack.env, "AV_KEY": "k1"}
    )
    assert done.returncode == 0, done.stderr
    assert "1 accepted" in done.stdout
    assert "HTN: no tick (rate_limited)" in done.stderr
    assert "k1" not in done.stdout + done.stderr
    ours = [orjson.loads(u.data) for u in local_stack.read_everything() if b'"HTQ"' in u.data]
    assert [(t["price"], t["id"]) for t in ours] == [(227.42, "alphavantage:HTQ:2026-11-20:3188202:227.4200")]


def test_a_csv_file_is_sent_at_max_pace_unless_asked_and_says_how_long_real_time_takes(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    path = tmp_path / "hour.csv"
    # Two ticks an hour of event time apart: in real time this replay would take an hour.
    path.write_text("symbol,price,size,ts\nPACE,10,1,1795475844085\nPACE,11,1,1795479444085\n")
    done = run_cli(["produce", "--source", f"csv:{path}"], local_stack.env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"replaying {path} at max pace" in done.stderr
    assert "2 accepted" in done.stdout
    realtime = subprocess.Popen(
        [*TICKSTREAM, "produce", "--source", f"csv:{path}", "--pace", "realtime"],
        env=local_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert realtime.stderr is not None
        note = realtime.stderr.readline()
        assert f"replaying {path} in real time: 3,600 s of event time, done about" in note
    finally:
        realtime.send_signal(signal.SIGTERM)
        realtime.wait(timeout=60)
