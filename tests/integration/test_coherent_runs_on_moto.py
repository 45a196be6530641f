"""Synthetic runs on an existing stack continue each symbol's price from its last bar: two runs
with different seeds in the same minutes never put unrelated price paths in one bar."""

from __future__ import annotations

import pytest

from local_aws.stack import StackDeployer
from stores.bars_table import BarsTable
from tests.support.local_stack import LocalStack, run_cli

pytestmark = pytest.mark.integration


def test_a_second_run_with_another_seed_continues_the_first_ones_prices(local_stack: LocalStack) -> None:
    env = {**local_stack.env, "TICKSTREAM_STACK": "coherent"}
    local_stack.deploy("coherent", 1, env=env)
    for seed in ("1", "2"):  # seeds 1 and 2 draw AAPL at 97.93 and 574.49 when nothing stands
        produced = run_cli(
            ["produce", "--symbols", "AAPL,MSFT", "--count", "400", "--rate", "100", "--pace", "max",
             "--seed", seed],
            env,
        )  # fmt: skip
        assert produced.returncode == 0, produced.stderr
        consumed = run_cli(["consume", "--until-idle"], env)
        assert consumed.returncode == 0, consumed.stderr
    outputs = StackDeployer(local_stack.client("cloudformation"), "coherent").outputs()
    bars = BarsTable(local_stack.client("dynamodb"), outputs.BarsTableName).scan_bars()
    days = [b.acc for b in bars if b.interval == "1d" and b.acc is not None]
    assert sum(a.trades for a in days) == 800
    for acc in days:
        assert acc.high <= acc.low * 102 / 100, (acc.low, acc.high)
