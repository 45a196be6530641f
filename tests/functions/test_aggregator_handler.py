"""The aggregator's handler fed Kinesis events in the shape Lambda sends them.

The envelope is AWS's recorded tumbling-window example (tests/fixtures/kinesis_window_event.json);
the records carry our ticks. The stores are the in-memory ones, so what is checked is the
handler's part: the event read, the window state carried, the response Lambda acts on.
"""

from __future__ import annotations

import base64
import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import functions.aggregator.handler as aggregator_handler
from functions.aggregator.ledger import LedgerError
from functions.aggregator.service import Aggregator, AggregatorConfig, BarsNotWritten
from local_aws.runner.invoker import LocalContext
from market.bars import DEFAULT_INTERVALS, StoredBar
from market.ticks import Tick, encode_tick
from tests.support.memory_stores import MemoryDataLake, MemoryLedger

RECORDED = json.loads((Path(__file__).parents[1] / "fixtures" / "kinesis_window_event.json").read_text())
SHARD = RECORDED["shardId"]
MINUTE_MS = 60_000
BASE_MS = 1_795_000_020_000  # a minute boundary
FIRST_SEQUENCE = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898


def _event(
    ticks: list[Tick], *, window: bool, final: bool = False, state: Any = None, first: int = 0
) -> dict[str, Any]:
    """One record per tick, sequence numbers increasing from `first`, in the recorded event's envelope."""
    event: dict[str, Any] = copy.deepcopy(RECORDED)
    template = event["Records"][0]
    records = []
    for n, tick in enumerate(ticks):
        record = copy.deepcopy(template)
        sequence = str(FIRST_SEQUENCE + first + n)
        record["kinesis"]["sequenceNumber"] = sequence
        record["kinesis"]["partitionKey"] = tick.symbol
        record["kinesis"]["data"] = base64.b64encode(encode_tick(tick)).decode()
        record["kinesis"]["approximateArrivalTimestamp"] = (BASE_MS + 10 * MINUTE_MS) / 1000
        record["eventID"] = f"{SHARD}:{sequence}"
        records.append(record)
    event["Records"] = records
    if window:
        event["isFinalInvokeForWindow"] = final
        event["state"] = state if state is not None else {}
    else:
        for key in ("window", "state", "isFinalInvokeForWindow", "isWindowTerminatedEarly"):
            del event[key]
    return event


def _ticks() -> list[Tick]:
    """Two minutes of one symbol, then one of another."""
    return [
        Tick("AAA", Decimal("10.5"), Decimal(1), BASE_MS + 1_000, "a1"),
        Tick("AAA", Decimal("11"), Decimal(2), BASE_MS + 2_000, "a2"),
        Tick("AAA", Decimal("9.75"), Decimal(1), BASE_MS + MINUTE_MS + 1_000, "a3"),
        Tick("BBB", Decimal("200"), Decimal(5), BASE_MS + 2 * MINUTE_MS, "b1"),
    ]


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> MemoryLedger:
    """The handler built on memory stores, as its cold start would build it on DynamoDB and S3."""
    table = MemoryLedger()
    aggregator = Aggregator(
        table, table.projections, MemoryDataLake(), AggregatorConfig(DEFAULT_INTERVALS, MINUTE_MS)
    )
    monkeypatch.setattr(aggregator_handler, "_built", aggregator)
    monkeypatch.setattr(aggregator_handler.metrics, "namespace", "tickstream/test")  # the template sets it
    return table


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = aggregator_handler.handler(event, LocalContext("aggregator", "arn", 512, 60))
    return answer


def _minutes(table: MemoryLedger) -> dict[tuple[str, int], tuple[Decimal, Decimal, Decimal, Decimal]]:
    return {
        (bar.symbol, bar.start): (bar.acc.open, bar.acc.high, bar.acc.low, bar.acc.close)
        for (_, interval, _), bar in table.projections.items.items()
        if interval == "1m" and bar.acc is not None
    }


def test_a_window_carries_its_bars_in_the_state_until_its_final_invoke(ledger: MemoryLedger) -> None:
    ticks = _ticks()
    first = _invoke(_event(ticks[:2], window=True))
    assert first["batchItemFailures"] == []
    assert ledger.puts == 0  # nothing is written before the window ends
    final = _invoke(_event(ticks[2:], window=True, final=True, state=first["state"], first=2))
    assert final["batchItemFailures"] == []
    assert final["state"] == _invoke(_event([], window=True))["state"]  # the next window starts empty
    start = BASE_MS // 1000
    assert _minutes(ledger) == {
        ("AAA", start): (Decimal("10.5"), Decimal("11"), Decimal("10.5"), Decimal("11")),
        ("AAA", start + 60): (Decimal("9.75"),) * 4,
        ("BBB", start + 120): (Decimal("200"),) * 4,
    }


def test_without_a_window_each_batch_is_written_as_it_comes(ledger: MemoryLedger) -> None:
    answer = _invoke(_event(_ticks()[:1], window=False))
    assert answer == {"batchItemFailures": []}
    assert len(_minutes(ledger)) == 1


def test_a_batch_whose_bars_fail_names_the_first_record_of_the_failed_minutes(
    ledger: MemoryLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda retries from the named record to the batch's end: the lowest record of any minute
    not written, whatever minutes were written before it."""
    written = ledger.put_bar

    def put_bar(bar: StoredBar, now: float | None = None) -> None:
        if bar.start > BASE_MS // 1000:  # AAA's second minute and BBB's fail; AAA's first is written
            raise LedgerError("throttled")
        written(bar, now)

    monkeypatch.setattr(ledger, "put_bar", put_bar)
    answer = _invoke(_event(_ticks(), window=False))
    assert len(_minutes(ledger)) == 1
    assert answer["batchItemFailures"] == [{"itemIdentifier": str(FIRST_SEQUENCE + 2)}]


def test_a_final_invoke_whose_bars_fail_fails_so_lambda_retries_the_window_with_its_state(
    ledger: MemoryLedger,
) -> None:
    first = _invoke(_event(_ticks()[:2], window=True))
    ledger.fail_after = 0
    with pytest.raises(BarsNotWritten):
        _invoke(_event(_ticks()[2:], window=True, final=True, state=first["state"], first=2))


def test_a_record_that_is_not_a_tick_is_quarantined_not_failed(ledger: MemoryLedger) -> None:
    event = _event(_ticks()[:1], window=False)
    poison = copy.deepcopy(event["Records"][0])
    poison["kinesis"]["data"] = base64.b64encode(b"\xff{not json").decode()
    poison["kinesis"]["sequenceNumber"] = str(FIRST_SEQUENCE + 1)
    event["Records"].append(poison)
    assert _invoke(event) == {"batchItemFailures": []}
    assert len(_minutes(ledger)) == 1
