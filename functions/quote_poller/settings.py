"""The quote poller's configuration, read from its environment once per cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The source deployed with the code (sources.yaml beside this file), unless QUOTE_SOURCES_FILE names another.
DEFAULT_SOURCES_FILE = Path(__file__).resolve().parent / "sources.yaml"
# The template's QuotePollMinutes goes up to a day; a minute is the finest rate EventBridge
# schedules (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html).
MAX_POLL_MINUTES = 1440


class PollerSettingsError(ValueError):
    """A missing or malformed environment variable; the message names it."""


@dataclass(frozen=True)
class PollerSettings:
    stream_name: str
    state_table: str
    poll_minutes: int  # the schedule's period: one poll's share of the provider's calls
    sources_file: Path = DEFAULT_SOURCES_FILE
    api_key_parameter: str | None = None  # an SSM SecureString holding the API key ...
    api_key_secret: str | None = None  # ... or a Secrets Manager secret; locally the config's variable

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> PollerSettings:
        missing = [name for name in ("STREAM_NAME", "QUOTE_STATE_TABLE") if not env.get(name)]
        if missing:
            raise PollerSettingsError(f"environment lacks {', '.join(missing)}")
        minutes = env.get("QUOTE_POLL_MINUTES", "1")
        if not minutes.isdigit() or not 1 <= int(minutes) <= MAX_POLL_MINUTES:
            raise PollerSettingsError(f"QUOTE_POLL_MINUTES={minutes!r} must be 1 to {MAX_POLL_MINUTES}")
        parameter = env.get("QUOTE_API_KEY_PARAMETER") or None
        secret = env.get("QUOTE_API_KEY_SECRET") or None
        if parameter and secret:
            raise PollerSettingsError("set QUOTE_API_KEY_PARAMETER or QUOTE_API_KEY_SECRET, not both")
        sources = env.get("QUOTE_SOURCES_FILE")
        return cls(
            env["STREAM_NAME"],
            env["QUOTE_STATE_TABLE"],
            int(minutes),
            Path(sources) if sources else DEFAULT_SOURCES_FILE,
            parameter,
            secret,
        )
