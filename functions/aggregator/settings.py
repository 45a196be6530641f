"""The aggregator's configuration, read from its environment once per cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from market.bars import DEFAULT_INTERVALS, parse_intervals


class AggregatorSettingsError(ValueError):
    """A missing or malformed environment variable; the message names it."""


@dataclass(frozen=True)
class AggregatorSettings:
    bars_table: str
    ledger_table: str
    data_bucket: str
    intervals: tuple[str, ...]
    late_after_ms: int

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> AggregatorSettings:
        missing = [name for name in ("BARS_TABLE", "LEDGER_TABLE", "DATA_BUCKET") if not env.get(name)]
        if missing:
            raise AggregatorSettingsError(f"environment lacks {', '.join(missing)}")
        try:
            intervals = parse_intervals(env.get("BAR_INTERVALS", ",".join(DEFAULT_INTERVALS)))
        except ValueError as exc:
            raise AggregatorSettingsError(f"BAR_INTERVALS: {exc}") from exc
        late = env.get("LATE_AFTER_MS", "60000")
        if not late.isdigit():
            raise AggregatorSettingsError(f"LATE_AFTER_MS={late!r} must be a whole number of milliseconds")
        return cls(env["BARS_TABLE"], env["LEDGER_TABLE"], env["DATA_BUCKET"], intervals, int(late))
