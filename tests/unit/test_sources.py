"""Synthetic and CSV sources: determinism, unique ids, and clear errors for bad rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from producer.sources import SKIPPED_ROWS_KEPT, BadCsvRow, CsvReplay, Jump, SyntheticMarket

START = 1_795_000_000_000


def market(**overrides: object) -> SyntheticMarket:
    settings: dict[str, object] = {
        "symbols": ["AAPL", "MSFT", "GOOG"],
        "rate": 500.0,
        "seed": 3,
        "start_ms": START,
        "count": 2000,
    }
    settings.update(overrides)
    return SyntheticMarket(**settings)  # type: ignore[arg-type]


def test_same_seed_and_start_give_the_same_ticks() -> None:
    assert list(market().ticks()) == list(market().ticks())
    assert list(market().ticks()) != list(market(seed=4).ticks())


def test_ids_are_unique_and_differ_between_runs() -> None:
    first = [t.id for t in market().ticks()]
    assert len(set(first)) == len(first)
    assert not set(first) & {t.id for t in market(start_ms=START + 1).ticks()}


def test_prices_are_cents_sizes_positive_times_ordered_and_rate_respected() -> None:
    ticks = list(market(count=None, duration_s=20.0).ticks())
    assert 8000 < len(ticks) < 12000
    assert all(t.price == t.price.quantize(Decimal("0.01")) and t.price > 0 for t in ticks)
    assert all(t.size >= 1 for t in ticks)
    assert [t.ts_ms for t in ticks] == sorted(t.ts_ms for t in ticks)
    assert ticks[0].ts_ms >= START
    assert ticks[-1].ts_ms < START + 20_000


def test_bad_symbol_in_the_market_is_refused() -> None:
    with pytest.raises(ValueError, match="symbol"):
        list(market(symbols=["BRK/B"]).ticks())


def test_a_market_without_symbols_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="no symbols"):
        market(symbols=[])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ticks.csv"
    path.write_text(text)
    return path


def test_csv_replay_reads_ticks_and_gives_stable_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path, "symbol,price,size,ts\nAAPL,189.23,100,1795475844085\nMSFT,410.5,,2026-11-02T14:30:00\n"
    )
    ticks = list(CsvReplay(path).ticks())
    assert [(t.symbol, t.price, t.size) for t in ticks] == [
        ("AAPL", Decimal("189.23"), Decimal(100)),
        ("MSFT", Decimal("410.5"), Decimal(0)),
    ]
    assert [t.id for t in CsvReplay(path).ticks()] == [t.id for t in ticks]
    assert len({t.id for t in ticks}) == 2


def test_csv_keeps_given_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "symbol,price,size,ts,id\nAAPL,1,1,1000,trade-9\n")
    assert [t.id for t in CsvReplay(path).ticks()] == ["trade-9"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("AA/PL,1,1,1000", "symbol"),
        ("AAPL,abc,1,1000", "price"),
        ("AAPL,-2,1,1000", "price"),
        ("AAPL,1,-1,1000", "size"),
        ("AAPL,1,1,soon", "ts"),
    ],
)
def test_bad_csv_row_names_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, f"symbol,price,size,ts\nAAPL,1,1,1000\n{row}\n")
    with pytest.raises(BadCsvRow, match=rf"ticks\.csv:3: .*{message}"):
        list(CsvReplay(path).ticks())


def test_skip_bad_counts_and_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, "symbol,price,size,ts\nAAPL,1,1,1000\nAAPL,0,1,1000\nBAD/,1,1,1\nMSFT,2,2,2000\n")
    replay = CsvReplay(path, skip_bad=True)
    assert [t.symbol for t in replay.ticks()] == ["AAPL", "MSFT"]
    assert replay.bad_rows == 2
    assert [row.line for row in replay.skipped] == [3, 4]
    assert "ticks.csv:3: price" in str(replay.skipped[0])
    assert "ticks.csv:4: symbol" in str(replay.skipped[1])


def test_skip_bad_names_the_first_rows_and_counts_the_rest(tmp_path: Path) -> None:
    bad = SKIPPED_ROWS_KEPT + 5
    path = write(tmp_path, "symbol,price,size,ts\n" + "AAPL,x,1,1000\n" * bad + "MSFT,2,2,2000\n")
    replay = CsvReplay(path, skip_bad=True)
    assert [t.symbol for t in replay.ticks()] == ["MSFT"]
    assert replay.bad_rows == bad
    assert [row.line for row in replay.skipped] == list(range(2, 2 + SKIPPED_ROWS_KEPT))


def test_missing_column_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BadCsvRow, match="lacks column"):
        list(CsvReplay(write(tmp_path, "symbol,price,ts\nAAPL,1,1000\n")).ticks())


def test_a_jump_moves_only_its_symbol_by_its_percent_from_its_time() -> None:
    plain = SyntheticMarket(["J", "K"], 50.0, 4, 0, duration_s=60)
    jumped = SyntheticMarket(["J", "K"], 50.0, 4, 0, duration_s=60, jumps=(Jump.parse("J:10:30"),))
    for before, after in zip(plain.ticks(), jumped.ticks(), strict=True):
        if before.symbol == "J" and before.ts_ms >= 30_000:
            assert abs(after.price / before.price - Decimal("1.1")) < Decimal("0.001")
        else:
            assert after == before


@pytest.mark.parametrize(
    "text", ["J:10", "J:ten:30", "bad symbol:5:1", "J:-95:1", "J:5:-1", "J:5:inf", "J:nan:1"]
)
def test_a_malformed_jump_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="jump"):
        Jump.parse(text)


def test_a_csv_rows_id_comes_from_its_numbers_as_written(tmp_path: Path) -> None:
    """The ids of rows without one are those earlier versions gave (pinned), though 100.0, 1e2 and
    0.1e3 are now all stored as 100: a replay of the file after an upgrade counts nothing twice."""
    rows = ["AAA,100.0,1.50,1795475844085", "AAA,1e2,2E+1,1795475844086", "AAA,0.1e3,-0.0,1795475844087"]
    path = tmp_path / "spelled.csv"
    path.write_text("\n".join(["symbol,price,size,ts", *rows, "AAA,7,,1795475844088"]) + "\n")
    ticks = list(CsvReplay(path).ticks())
    assert [t.id for t in ticks] == [
        "csv-092b600d46ae:2",
        "csv-e7fdac4adcc6:3",
        "csv-648022d51bc6:4",
        "csv-b8f559f4d3e3:5",
    ]
    assert [(str(t.price), str(t.size)) for t in ticks] == [
        ("100", "1.5"),
        ("100", "20"),
        ("100", "0"),
        ("7", "0"),
    ]
