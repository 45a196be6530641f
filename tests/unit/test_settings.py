"""Settings: local by default, real AWS only when asked, bad values named."""

from __future__ import annotations

import io
import zipfile

import pytest

from lambda_build.artifacts import build_code_zip
from tickstream.settings import Settings, SettingsError


def test_default_is_the_embedded_moto_server_with_throwaway_credentials() -> None:
    settings = Settings.from_environment({})
    assert (settings.embedded, settings.endpoint_url, settings.local_credentials) == (
        True,
        "http://127.0.0.1:4566",
        True,
    )


def test_aws_endpoint_url_is_used_instead_of_starting_moto() -> None:
    settings = Settings.from_environment(
        {"AWS_ENDPOINT_URL": "http://localhost:4567", "AWS_REGION": "eu-west-1"}
    )
    assert (settings.embedded, settings.endpoint_url, settings.region) == (
        False,
        "http://localhost:4567",
        "eu-west-1",
    )


def test_real_aws_only_when_asked_and_never_with_local_credentials() -> None:
    settings = Settings.from_environment({"AWS_PROFILE": "prod"}, real_aws=True)
    assert (settings.endpoint_url, settings.local_credentials, settings.profile) == (None, False, "prod")
    with pytest.raises(SettingsError, match="AWS_ENDPOINT_URL"):
        Settings.from_environment({"AWS_ENDPOINT_URL": "http://localhost:4566"}, real_aws=True)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"TICKSTREAM_PORT": "70000"}, "TICKSTREAM_PORT"),
        ({"TICKSTREAM_PORT": "abc"}, "TICKSTREAM_PORT"),
        ({"AWS_ENDPOINT_URL": "localhost:4566"}, "AWS_ENDPOINT_URL"),
        ({"TICKSTREAM_STACK": "my stack"}, "TICKSTREAM_STACK"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_environment(env)


def test_the_local_code_zip_holds_the_data_files_the_handlers_read() -> None:
    with zipfile.ZipFile(io.BytesIO(build_code_zip())) as code:
        names = set(code.namelist())
    assert {
        "alerts/rules.yaml",
        "functions/quote_poller/sources.yaml",
        "functions/chart_builder/handler.py",
    } <= names
    assert not [n for n in names if "__pycache__" in n or n.startswith("tickstream/")]
