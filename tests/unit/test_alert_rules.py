"""Alert rules as pure functions: no alert without a qualifying move, and the cooldown holds."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.rules import (
    Close,
    Rule,
    RuleConfigError,
    cooled_down,
    evaluate,
    message,
    parse_rules,
)
from alerts.service import AlertService
from alerts.slack_webhook import Delivery
from market.bars import BarAccumulator, StoredBar

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2)


def closes_of(values: list[Decimal]) -> list[Close]:
    return [Close(i * 60_000, v) for i, v in enumerate(values)]


def move_rule(percent: Decimal, bars_back: int, direction: str = "any") -> Rule:
    return Rule("move", "1m", direction, None, bars_back=bars_back, move_percent=percent)


@given(
    st.lists(prices, min_size=1, max_size=12),
    st.decimals(min_value=Decimal("0.1"), max_value=Decimal(50), places=1),
    st.integers(min_value=1, max_value=10),
    st.sampled_from(["up", "down", "any"]),
)
def test_a_move_alert_fires_exactly_when_the_close_moved_enough_the_right_way(
    values: list[Decimal], percent: Decimal, bars_back: int, direction: str
) -> None:
    alert = evaluate(move_rule(percent, bars_back, direction), "X", closes_of(values))
    if len(values) <= bars_back:
        assert alert is None
        return
    old, new = values[-1 - bars_back], values[-1]
    big_enough = abs(new - old) * 100 >= percent * old
    right_way = direction == "any" or (direction == "up" and new > old) or (direction == "down" and new < old)
    assert (alert is not None) == (big_enough and right_way)
    if alert is not None:
        assert (alert.price, alert.reference) == (new, old)
        assert abs(alert.change_pct) >= percent - Decimal("1e-20")


@given(st.lists(prices, min_size=2, max_size=6), prices, st.sampled_from(["up", "down", "any"]))
def test_a_level_alert_fires_only_when_the_last_two_closes_straddle_the_level(
    values: list[Decimal], level: Decimal, direction: str
) -> None:
    rule = Rule("level", "1m", direction, None, level=level)
    alert = evaluate(rule, "X", closes_of(values))
    previous, newest = values[-2], values[-1]
    up, down = previous < level <= newest, previous > level >= newest
    assert (alert is not None) == {"up": up, "down": down, "any": up or down}[direction]


@given(
    st.lists(st.integers(min_value=0, max_value=10_000_000), max_size=60).map(sorted),
    st.integers(min_value=0, max_value=3_600_000),
)
def test_the_cooldown_lets_one_message_through_per_period(triggers: list[int], cooldown_ms: int) -> None:
    last: int | None = None
    fired = []
    for now in triggers:
        if cooled_down(last, now, cooldown_ms):
            fired.append(now)
            last = now
        else:
            assert last is not None
            assert now - last < cooldown_ms
    assert all(b - a >= cooldown_ms for a, b in itertools.pairwise(fired))
    assert fired[:1] == triggers[:1]


def test_rules_file_parses_to_rules_for_their_series() -> None:
    rules = parse_rules(
        {
            "cooldown_minutes": 15,
            "rules": [
                {"name": "big-move", "interval": "1m", "bars_back": 5, "move_percent": 3},
                {
                    "name": "aapl-200",
                    "symbols": ["AAPL"],
                    "interval": "5m",
                    "crosses": 200,
                    "direction": "up",
                },
            ],
        }
    )
    assert rules.cooldown_ms == 15 * 60_000
    assert [r.name for r in rules.for_series("AAPL", "1m")] == ["big-move"]
    assert [r.name for r in rules.for_series("AAPL", "5m")] == ["aapl-200"]
    assert rules.for_series("MSFT", "5m") == []
    assert rules.rules[0].closes_needed == 6


@pytest.mark.parametrize(
    ("rules", "complaint"),
    [
        ({}, "list under 'rules'"),
        ({"rules": [{"name": "a", "move_percent": 3, "crosses": 10}]}, "either"),
        ({"rules": [{"name": "a", "move_percent": -3}]}, "positive"),
        ({"rules": [{"name": "a", "move_percent": 3, "interval": "2m"}]}, "interval"),
        ({"rules": [{"name": "a", "crosses": 3, "direction": "sideways"}]}, "direction"),
        ({"rules": [{"name": "a", "crosses": 3, "symbols": ["no spaces"]}]}, "symbol"),
        ({"rules": [{"name": "a", "crosses": 3}, {"name": "a", "crosses": 4}]}, "unique"),
        ({"rules": [{"name": "a", "move_percent": 3, "bars_back": 0}]}, "bars_back"),
        ({"cooldown_minutes": -1, "rules": []}, "cooldown"),
    ],
)
def test_rule_mistakes_are_named(rules: dict[str, object], complaint: str) -> None:
    with pytest.raises(RuleConfigError, match=complaint):
        parse_rules(rules)


def test_the_message_says_symbol_move_price_and_links_the_chart() -> None:
    closes = closes_of([Decimal(100), Decimal(101), Decimal("104.5")])
    alert = evaluate(move_rule(Decimal(3), 2), "AAPL", closes)
    assert alert is not None
    text = message(alert, "https://charts.example.com/#AAPL")["text"]
    assert "AAPL moved +4.50% (from 100) to 104.5 on its 1m bars" in text
    assert "[rule move]" in text
    assert "<https://charts.example.com/#AAPL|chart>" in text


class _Closes:
    """Bars of one series whose closes are the given values."""

    def __init__(self, values: list[int]) -> None:
        self._values = values

    def query_bars(self, symbol: str, interval: str, newest: int) -> list[StoredBar]:
        return [
            StoredBar(symbol, interval, i * 60, BarAccumulator.of_tick(Decimal(v), Decimal(1), (i, 0, 0)))
            for i, v in enumerate(self._values)
        ]


class _Claims:
    def claim(self, rule: str, symbol: str, now_ms: int, cooldown_ms: int) -> bool:
        return True


class _Posts:
    def __init__(self) -> None:
        self.deadlines: list[float | None] = []

    def post(self, body: dict[str, Any], deadline: float | None = None) -> Delivery:
        self.deadlines.append(deadline)
        return Delivery(True)


def test_an_alert_is_posted_with_the_deadline_of_its_invocation() -> None:
    """The chart builder's timeout bounds the post: cut off by Lambda, an alert whose cooldown is
    claimed would be lost without being counted."""
    rules = parse_rules(
        {"rules": [{"name": "big-move", "interval": "1m", "bars_back": 1, "move_percent": 3}]}
    )
    posts = _Posts()
    service = AlertService(rules, _Closes([100, 110]), _Claims(), posts, lambda s, i: "")
    report = service.check([("AAA", "1m")], 0, deadline=123.5)
    assert [a.symbol for a in report.sent] == ["AAA"]
    assert posts.deadlines == [123.5]
