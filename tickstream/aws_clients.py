"""boto3 clients built from Settings: the local endpoint and throwaway credentials unless --aws."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from local_aws.embedded import sealed_botocore_session
from tickstream.settings import Settings

# Credentials moto accepts; they are only ever sent to a local endpoint (Settings.local_credentials).
LOCAL_ACCESS_KEY = "testing"
LOCAL_SECRET_KEY = "testing"


class AwsClients:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        credentials: dict[str, Any] = {}
        if settings.local_credentials:
            credentials = {"aws_access_key_id": LOCAL_ACCESS_KEY, "aws_secret_access_key": LOCAL_SECRET_KEY}
        if settings.embedded:
            credentials["botocore_session"] = sealed_botocore_session()
        self.session = boto3.Session(
            region_name=settings.region, profile_name=settings.profile, **credentials
        )
        self._config = Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=16,
        )
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self._settings.endpoint_url, config=self._config
            )
        return self._clients[service]
