"""The chart builder's configuration, read from its environment once per cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class ChartSettingsError(ValueError):
    """A missing environment variable; the message names it."""


@dataclass(frozen=True)
class ChartSettings:
    bars_table: str
    site_bucket: str

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ChartSettings:
        missing = [name for name in ("BARS_TABLE", "SITE_BUCKET") if not env.get(name)]
        if missing:
            raise ChartSettingsError(f"environment lacks {', '.join(missing)}")
        return cls(env["BARS_TABLE"], env["SITE_BUCKET"])
