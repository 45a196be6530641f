"""The alarm notifier's configuration, read from its environment once per cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class NotifierSettings:
    webhook_url: str | None = None  # given directly (locally) ...
    webhook_parameter: str | None = None  # ... or the SSM SecureString holding it (on AWS)

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> NotifierSettings:
        return cls(env.get("ALERT_WEBHOOK_URL") or None, env.get("ALERT_WEBHOOK_PARAMETER") or None)
