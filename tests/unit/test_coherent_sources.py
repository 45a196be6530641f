"""Runs that follow each other continue each symbol's price, and the demo's reference decodes the
stream apart from the aggregator (awslabs' own aggregator builds the records here)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from aws_kinesis_agg.aggregator import RecordAggregator
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from market.ticks import Tick, encode_tick
from producer.sources import SyntheticMarket
from stores.shard_reader import StreamRecord
from tickstream.commands.produce import where_prices_stand
from tickstream.demo.bars_reference import reference_bars, reference_from_stream

START_MS = 1_764_460_800_000  # 2025-11-30 00:00 UTC


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["AAA", "BBB", "CCC"]),
        st.decimals(min_value=Decimal("1.00"), max_value=Decimal("5000.00"), places=2),
        min_size=1,
    ),
    st.integers(min_value=0, max_value=2**32),
)
def test_a_run_starts_where_the_prices_stand(start_prices: dict[str, Decimal], seed: int) -> None:
    symbols = ["AAA", "BBB", "CCC"]
    market = SyntheticMarket(symbols, 100.0, seed, START_MS, count=300, start_prices=start_prices)
    first: dict[str, Decimal] = {}
    for tick in market.ticks():
        first.setdefault(tick.symbol, tick.price)
    for symbol, price in start_prices.items():
        if symbol in first:  # within a few seconds of event time a price moves far less than 1 %
            assert abs(first[symbol] - price) <= max(price * Decimal("0.01"), Decimal("0.02")), symbol


def test_start_prices_change_no_tick_id() -> None:
    plain = SyntheticMarket(["AAA"], 10.0, 7, START_MS, count=50)
    continued = SyntheticMarket(["AAA"], 10.0, 7, START_MS, count=50, start_prices={"AAA": Decimal("12.34")})
    assert [t.id for t in plain.ticks()] == [t.id for t in continued.ticks()]


def test_the_reference_decodes_awslabs_aggregates_and_plain_records_alike() -> None:
    ticks = list(SyntheticMarket(["AAA", "BBB"], 50.0, 3, START_MS, count=400).ticks())
    aggregator = RecordAggregator()
    records: list[StreamRecord] = []
    arrival = datetime.fromtimestamp(START_MS / 1000, UTC)
    for tick in ticks[:300]:
        full = aggregator.add_user_record(tick.symbol, encode_tick(tick))
        if full is not None:
            records.append(StreamRecord("s-0", str(len(records) + 1), "agg", full.get_contents()[2], arrival))
    last = aggregator.clear_and_get()
    if last is not None:
        records.append(StreamRecord("s-0", str(len(records) + 1), "agg", last.get_contents()[2], arrival))
    for tick in ticks[300:]:
        records.append(StreamRecord("s-0", str(len(records) + 1), tick.symbol, encode_tick(tick), arrival))
    duplicate = Tick(ticks[0].symbol, Decimal("999.99"), Decimal(1), ticks[0].ts_ms, ticks[0].id)
    records.append(StreamRecord("s-0", str(len(records) + 1), "dup", encode_tick(duplicate), arrival))

    rows = [(t.symbol, t.price, t.size, t.ts_ms, n, 0) for n, t in enumerate(ticks)]
    assert reference_from_stream(records, ["1m", "5m"]) == reference_bars(rows, ["1m", "5m"])


class _DeniedDynamoDB:
    """A producer's credentials (ProducerPolicyArn) may put records and read nothing else."""

    def query(self, **_kwargs: object) -> dict[str, object]:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Query")


class _ProducerClients:
    def client(self, service: str) -> _DeniedDynamoDB:
        assert service == "dynamodb"
        return _DeniedDynamoDB()


def test_a_producer_that_may_not_read_bars_draws_its_prices_from_the_seed() -> None:
    outputs = SimpleNamespace(BarsTableName="bars")
    assert where_prices_stand(_ProducerClients(), outputs, ["AAA"]) == {}  # type: ignore[arg-type]
