"""The alarm notifier's configuration, read from its environment once per cold start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The stack's functions are named <stack>-<name> (infra/template.yaml); this one's name ends so.
OWN_NAME_SUFFIX = "-alarm-notifier"
DEFAULT_STACK = "tickstream"  # the CLI's stack when TICKSTREAM_STACK is not set
DEFAULT_LOCAL_PORT = ":4566"  # where the CLI's embedded AWS listens unless TICKSTREAM_PORT says


@dataclass(frozen=True)
class NotifierSettings:
    webhook_url: str | None = None  # given directly (locally) ...
    webhook_parameter: str | None = None  # ... or the SSM SecureString holding it (on AWS)
    cli_command: str = "tickstream"  # how the CLI reaches this stack, for the hints in messages

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> NotifierSettings:
        """On AWS (no AWS_ENDPOINT_URL) the hints say `--aws`, and they name the stack unless it
        is the CLI's default one, so a command copied from the chat reaches this stack. Locally
        they name the embedded AWS's port (TICKSTREAM_PORT, which only the local runner sets),
        or the endpoint, unless it is the default one."""
        stack = env.get("AWS_LAMBDA_FUNCTION_NAME", "").removesuffix(OWN_NAME_SUFFIX)
        prefix = "" if stack in ("", DEFAULT_STACK) else f"TICKSTREAM_STACK={stack} "
        endpoint = env.get("AWS_ENDPOINT_URL", "")
        port = env.get("TICKSTREAM_PORT", "")
        if port and f":{port}" != DEFAULT_LOCAL_PORT:
            prefix = f"TICKSTREAM_PORT={port} {prefix}"
        elif endpoint and not port and not endpoint.endswith(DEFAULT_LOCAL_PORT):
            prefix = f"AWS_ENDPOINT_URL={endpoint} {prefix}"
        command = prefix + ("tickstream" if endpoint else "tickstream --aws")
        return cls(env.get("ALERT_WEBHOOK_URL") or None, env.get("ALERT_WEBHOOK_PARAMETER") or None, command)
