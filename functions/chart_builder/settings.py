"""The chart builder's configuration, read from its environment once per cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alerts.rules import DEFAULT_RULES_FILE


class ChartSettingsError(ValueError):
    """A missing or malformed environment variable; the message names it."""


@dataclass(frozen=True)
class ChartSettings:
    bars_table: str
    site_bucket: str
    site_url: str  # the site's base URL, for the chart links in alerts
    alert_table: str | None = None  # no table: alerts are off
    alert_rules_file: Path = DEFAULT_RULES_FILE  # the deployed alerts/rules.yaml unless ALERT_RULES_FILE
    alert_webhook_url: str | None = None  # given directly (locally) ...
    alert_webhook_parameter: str | None = None  # ... or the SSM SecureString holding it (on AWS)
    refresh_floor_s: int = (
        60  # no chart is drawn more often (functions.chart_builder.cadence); CHART_REFRESH_MINUTES
    )

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ChartSettings:
        missing = [name for name in ("BARS_TABLE", "SITE_BUCKET") if not env.get(name)]
        if missing:
            raise ChartSettingsError(f"environment lacks {', '.join(missing)}")
        site_url = env.get("SITE_URL") or f"https://{env['SITE_BUCKET']}.s3.amazonaws.com/"
        minutes = env.get("CHART_REFRESH_MINUTES") or "1"
        if not minutes.isdigit() or int(minutes) < 1:
            raise ChartSettingsError(f"CHART_REFRESH_MINUTES must be a whole number of minutes: {minutes!r}")
        return cls(
            env["BARS_TABLE"],
            env["SITE_BUCKET"],
            site_url if site_url.endswith("/") else site_url + "/",
            env.get("ALERT_TABLE") or None,
            Path(env["ALERT_RULES_FILE"]) if env.get("ALERT_RULES_FILE") else DEFAULT_RULES_FILE,
            env.get("ALERT_WEBHOOK_URL") or None,
            env.get("ALERT_WEBHOOK_PARAMETER") or None,
            int(minutes) * 60,
        )
