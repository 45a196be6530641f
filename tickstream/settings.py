"""Settings read once from the environment at start; everything else receives them as arguments.

Real AWS is reached only when asked for (`--aws`); otherwise every client points at the local
stack, so a stray credential in the environment can never touch a real account by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_PORT = 4566
DEFAULT_REGION = "us-east-1"
# A region's name as AWS spells them (us-east-1, us-gov-west-1, eusc-de-east-1): moto answers a
# request for another name (US-EAST-1, local) with a 500 page, not an error naming the variable.
REGION_NAME = re.compile(r"[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}")
DEFAULT_STACK = "tickstream"
# Our packages and infra/ side by side: the checkout, or site-packages when installed from the
# wheel, which ships infra/*.yaml as the data-only `infra` package (pyproject.toml).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "infra" / "template.yaml"


class SettingsError(ValueError):
    """An environment value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    endpoint_url: str | None
    embedded: bool
    port: int
    region: str
    profile: str | None
    stack_name: str
    state_dir: Path
    template_path: Path
    local_credentials: bool
    alert_webhook_url: str | None = None  # ALERT_WEBHOOK_URL: where locally run chart builders post alerts
    quote_sources_file: Path | None = None  # QUOTE_SOURCES_FILE: what a locally run quote poller polls
    # TICKSTREAM_KILL_AFTER_WRITES: `consume` ends itself after this many DynamoDB/S3 writes (tests)
    kill_after_writes: int | None = None

    @property
    def target(self) -> str:
        if self.endpoint_url is None:
            return f"AWS ({self.region}{', profile ' + self.profile if self.profile else ''})"
        # The region too: each is a stack of its own there (AWS_REGION=eu-west-1 finds no other's).
        return f"{'embedded moto' if self.embedded else 'endpoint'} {self.endpoint_url} ({self.region})"

    @classmethod
    def from_environment(
        cls,
        env: Mapping[str, str],
        *,
        real_aws: bool = False,
        local_regions: Callable[[], Collection[str]] | None = None,
    ) -> Settings:
        """`local_regions`, when given: the regions the embedded moto serves (it answers a request
        for another, eu-wst-1, with a 500 page, not an error naming the variable), asked for only
        when the embedded moto is the target."""
        port = _port(env.get("TICKSTREAM_PORT", str(DEFAULT_PORT)))
        endpoint = env.get("AWS_ENDPOINT_URL") or None
        if endpoint is not None:
            try:
                parsed = urlparse(endpoint)
                parsed.port  # noqa: B018 - parsing the port is what raises for a bad one
            except ValueError as exc:
                raise SettingsError(f"AWS_ENDPOINT_URL={endpoint!r} is not a URL: {exc}") from exc
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise SettingsError(f"AWS_ENDPOINT_URL={endpoint!r} must be an http(s) URL")
        if real_aws and endpoint is not None:
            raise SettingsError("--aws targets AWS itself: unset AWS_ENDPOINT_URL, or drop --aws to use it")
        embedded = not real_aws and endpoint is None
        if embedded:
            endpoint = f"http://127.0.0.1:{port}"
        stack = env.get("TICKSTREAM_STACK", DEFAULT_STACK)
        if not stack.replace("-", "").isalnum() or not stack[:1].isalpha():
            raise SettingsError(f"TICKSTREAM_STACK={stack!r} is not a CloudFormation stack name")
        # The embedded moto takes any credentials: it is given throwaway ones, never the user's
        # profile or keys, which would be looked up (an SSO profile wants a login) for nothing.
        # Otherwise the profile boto3 would use: AWS_DEFAULT_PROFILE before AWS_PROFILE (botocore's
        # configprovider), here to know whether the shell has credentials and to name it.
        profile = None if embedded else env.get("AWS_DEFAULT_PROFILE") or env.get("AWS_PROFILE") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        variable = "AWS_REGION" if env.get("AWS_REGION") else "AWS_DEFAULT_REGION"
        if not REGION_NAME.fullmatch(region):
            raise SettingsError(f"{variable}={region!r} is not an AWS region name (like us-east-1)")
        if embedded and local_regions is not None and region not in local_regions():
            raise SettingsError(f"{variable}={region!r} is not a region the embedded moto knows (a typo?)")
        return cls(
            endpoint_url=endpoint,
            embedded=embedded,
            port=port,
            region=region,
            profile=profile,
            stack_name=stack,
            state_dir=Path(env.get("TICKSTREAM_STATE_DIR", ".tickstream")).resolve(),
            template_path=Path(env.get("TICKSTREAM_TEMPLATE", str(TEMPLATE_PATH))),
            local_credentials=embedded
            or (not real_aws and "AWS_ACCESS_KEY_ID" not in env and profile is None),
            alert_webhook_url=env.get("ALERT_WEBHOOK_URL") or None,
            quote_sources_file=Path(env["QUOTE_SOURCES_FILE"]).resolve()
            if env.get("QUOTE_SOURCES_FILE")
            else None,
            kill_after_writes=_positive_writes(env.get("TICKSTREAM_KILL_AFTER_WRITES")),
        )


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SettingsError(f"TICKSTREAM_PORT={text!r} must be a TCP port number")
    return int(text)


def _positive_writes(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) == 0:
        raise SettingsError(f"TICKSTREAM_KILL_AFTER_WRITES={text!r} must be a whole number, 1 or more")
    return int(text)
