"""Alert rules and their evaluation: pure functions of a series' recent closes, and the cooldown.

Two kinds of rule, for some symbols or for all:
- a move: the newest close moved at least `move_percent` against the close `bars_back` bars
  before it, on one interval (up, down or either way);
- a level: the newest close crossed `level` from the previous close (up, down or either way).
A triggered rule fires at most once per rule and symbol within the cooldown, so a volatile
minute that updates its bar twenty times sends one message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from market.bars import INTERVAL_SECONDS
from market.ticks import InvalidTick, validate_symbol

# The rules deployed with the code, beside this module.
DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "rules.yaml"
DIRECTIONS = ("up", "down", "any")
DEFAULT_COOLDOWN_MINUTES = 30
HUNDRED = Decimal(100)


class RuleConfigError(ValueError):
    """The rules file is not a valid set of rules; the message names the rule and the field."""


@dataclass(frozen=True)
class Close:
    """One bar of a series as a rule sees it."""

    start_ms: int
    close: Decimal


@dataclass(frozen=True)
class Rule:
    name: str
    interval: str
    direction: str
    symbols: frozenset[str] | None  # None: every symbol
    bars_back: int = 1
    move_percent: Decimal | None = None
    level: Decimal | None = None

    def watches(self, symbol: str, interval: str) -> bool:
        return interval == self.interval and (self.symbols is None or symbol in self.symbols)

    @property
    def closes_needed(self) -> int:
        return self.bars_back + 1


@dataclass(frozen=True)
class Alert:
    rule: str
    symbol: str
    interval: str
    price: Decimal  # the newest close
    reference: Decimal  # the close it moved from (a move), or the level crossed
    change_pct: Decimal  # against the close `bars_back` bars before, or the previous close
    bar_start_ms: int
    kind: str  # "move" or "level"


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    cooldown_ms: int

    def for_series(self, symbol: str, interval: str) -> list[Rule]:
        return [r for r in self.rules if r.watches(symbol, interval)]


def _decimal(value: object, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise RuleConfigError(f"{where}: {value!r} is not a number") from exc
    if not number.is_finite() or number <= 0:
        raise RuleConfigError(f"{where}: {value!r} must be a positive number")
    return number


def _rule(entry: Mapping[str, Any], index: int) -> Rule:
    name = str(entry.get("name") or f"rule {index + 1}")
    interval = str(entry.get("interval", "1m"))
    if interval not in INTERVAL_SECONDS:
        raise RuleConfigError(f"{name}: interval {interval!r}: choose from {', '.join(INTERVAL_SECONDS)}")
    direction = str(entry.get("direction", "any"))
    if direction not in DIRECTIONS:
        raise RuleConfigError(f"{name}: direction {direction!r}: choose from {', '.join(DIRECTIONS)}")
    symbols_entry = entry.get("symbols", "all")
    symbols: frozenset[str] | None = None
    if symbols_entry != "all":
        if not isinstance(symbols_entry, list) or not symbols_entry:
            raise RuleConfigError(f"{name}: symbols must be 'all' or a non-empty list")
        try:
            symbols = frozenset(validate_symbol(str(s)) for s in symbols_entry)
        except InvalidTick as exc:
            raise RuleConfigError(f"{name}: {exc}") from exc
    has_move, has_level = "move_percent" in entry, "crosses" in entry
    if has_move == has_level:
        raise RuleConfigError(f"{name}: give either move_percent (with bars_back) or crosses")
    if has_level:
        return Rule(name, interval, direction, symbols, level=_decimal(entry["crosses"], f"{name}: crosses"))
    bars_back = entry.get("bars_back", 1)
    if not isinstance(bars_back, int) or isinstance(bars_back, bool) or not 1 <= bars_back <= 1000:
        raise RuleConfigError(f"{name}: bars_back must be a whole number from 1 to 1000")
    move = _decimal(entry["move_percent"], f"{name}: move_percent")
    return Rule(name, interval, direction, symbols, bars_back=bars_back, move_percent=move)


def parse_rules(data: object) -> RuleSet:
    """The rules file's content (YAML or JSON, already loaded)."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleConfigError("expected a mapping with a list under 'rules'")
    rules: list[Rule] = []
    for index, entry in enumerate(data["rules"]):
        if not isinstance(entry, dict):
            raise RuleConfigError(f"rule {index + 1} is not a mapping")
        rules.append(_rule(entry, index))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise RuleConfigError("rule names must be unique: the cooldown is kept per rule and symbol")
    minutes = data.get("cooldown_minutes", DEFAULT_COOLDOWN_MINUTES)
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or minutes < 0:
        raise RuleConfigError("cooldown_minutes must be a number of minutes, 0 or more")
    return RuleSet(tuple(rules), int(minutes * 60_000))


def _moved(direction: str, old: Decimal, new: Decimal) -> bool:
    return direction == "any" or (direction == "up") == (new > old)


def evaluate(rule: Rule, symbol: str, closes: Sequence[Close]) -> Alert | None:
    """The alert the newest close triggers, if any; `closes` are the series' newest bars, oldest first."""
    if len(closes) < rule.closes_needed:
        return None
    newest = closes[-1]
    if rule.move_percent is not None:
        old = closes[-rule.closes_needed].close
        # Compared without dividing, so a move of exactly move_percent is never lost to rounding.
        if abs(newest.close - old) * HUNDRED < rule.move_percent * old:
            return None
        if not _moved(rule.direction, old, newest.close):
            return None
        change = (newest.close - old) / old * HUNDRED
        return Alert(rule.name, symbol, rule.interval, newest.close, old, change, newest.start_ms, "move")
    if rule.level is None:
        return None
    previous = closes[-2].close
    crossed_up = previous < rule.level <= newest.close
    crossed_down = previous > rule.level >= newest.close
    wanted = {"up": crossed_up, "down": crossed_down, "any": crossed_up or crossed_down}[rule.direction]
    if not wanted:
        return None
    change = (newest.close - previous) / previous * HUNDRED
    return Alert(rule.name, symbol, rule.interval, newest.close, rule.level, change, newest.start_ms, "level")


def cooled_down(last_fired_ms: int | None, now_ms: int, cooldown_ms: int) -> bool:
    """Whether a rule may fire again for a symbol that last fired at `last_fired_ms`."""
    return last_fired_ms is None or now_ms - last_fired_ms >= cooldown_ms


def message(alert: Alert, chart_url: str) -> dict[str, str]:
    """A Slack-compatible incoming-webhook body: symbol, move, price and the chart."""
    sign = "+" if alert.change_pct >= 0 else ""
    if alert.kind == "move":
        what = f"moved {sign}{alert.change_pct:.2f}% (from {alert.reference})"
    else:
        side = "above" if alert.price >= alert.reference else "below"
        what = f"crossed {side} {alert.reference} ({sign}{alert.change_pct:.2f}%)"
    text = (
        f":rotating_light: {alert.symbol} {what} to {alert.price} on its {alert.interval} bars "
        f"[rule {alert.rule}] <{chart_url}|chart>"
    )
    return {"text": text}
