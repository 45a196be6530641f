"""Settings: local by default, real AWS only when asked, bad values named."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lambda_build.artifacts import build_code_zip
from local_aws.embedded import (
    EmbeddedAws,
    EmbeddedAwsError,
    bypass_proxies_for_loopback,
    free_local_port,
    regions_moto_serves,
)
from tickstream.cli import app
from tickstream.commands.consume import hidden_from_handlers
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


def test_the_embedded_stack_ignores_the_shells_profile_and_keys_and_an_endpoint_keeps_them() -> None:
    shell = {"AWS_PROFILE": "work", "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE"}
    embedded = Settings.from_environment(shell)
    assert (embedded.local_credentials, embedded.profile) == (True, None)
    elsewhere = Settings.from_environment({**shell, "AWS_ENDPOINT_URL": "http://localhost:4567"})
    assert (elsewhere.local_credentials, elsewhere.profile) == (False, "work")
    # As botocore reads them: AWS_DEFAULT_PROFILE first, and a profile alone means credentials.
    default = Settings.from_environment(
        {"AWS_DEFAULT_PROFILE": "first", "AWS_PROFILE": "second", "AWS_ENDPOINT_URL": "http://localhost:4567"}
    )
    assert (default.local_credentials, default.profile) == (False, "first")


def test_handlers_see_no_aws_variable_of_the_shell_locally_and_no_per_service_endpoint_elsewhere() -> None:
    embedded = Settings.from_environment({})
    endpoint = Settings.from_environment({"AWS_ENDPOINT_URL": "http://localhost:4567"})
    real = Settings.from_environment({}, real_aws=True)
    assert [hidden_from_handlers(s) for s in (embedded, endpoint, real)] == [
        ("AWS_", "POWERTOOLS_", "TICKSTREAM_"),
        ("AWS_ENDPOINT_URL_", "POWERTOOLS_", "TICKSTREAM_"),
        ("POWERTOOLS_", "TICKSTREAM_"),
    ]


def test_a_region_the_embedded_moto_does_not_know_is_refused_by_name() -> None:
    known = regions_moto_serves()
    assert {"us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"} <= known
    with pytest.raises(SettingsError, match="AWS_REGION='eu-wst-1' is not a region the embedded moto"):
        Settings.from_environment({"AWS_REGION": "eu-wst-1"}, local_regions=lambda: known)
    assert (
        Settings.from_environment({"AWS_DEFAULT_REGION": "eu-west-1"}, local_regions=lambda: known).region
        == "eu-west-1"
    )
    # Elsewhere the endpoint, or AWS itself, answers for its own regions.
    endpoint = {"AWS_REGION": "eu-wst-1", "AWS_ENDPOINT_URL": "http://localhost:4567"}
    assert Settings.from_environment(endpoint, local_regions=lambda: known).region == "eu-wst-1"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, "127.0.0.1,localhost"),
        ({"NO_PROXY": "quotes.corp.test,localhost"}, "quotes.corp.test,localhost,127.0.0.1"),
        ({"no_proxy": "a.test", "NO_PROXY": "b.test"}, "a.test,b.test,127.0.0.1,localhost"),
    ],
)
def test_loopback_is_added_to_both_no_proxy_lists_keeping_what_either_held(
    before: dict[str, str], after: str
) -> None:
    environ = dict(before)
    bypass_proxies_for_loopback(environ)
    bypass_proxies_for_loopback(environ)
    assert environ == {"no_proxy": after, "NO_PROXY": after}


def test_a_no_proxy_of_star_is_left_alone() -> None:
    environ = {"NO_PROXY": "*"}
    bypass_proxies_for_loopback(environ)
    assert environ == {"NO_PROXY": "*"}


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"TICKSTREAM_PORT": "70000"}, "TICKSTREAM_PORT"),
        ({"TICKSTREAM_PORT": "abc"}, "TICKSTREAM_PORT"),
        ({"AWS_ENDPOINT_URL": "localhost:4566"}, "AWS_ENDPOINT_URL"),
        ({"TICKSTREAM_STACK": "my stack"}, "TICKSTREAM_STACK"),
        ({"AWS_REGION": "US-EAST-1"}, "AWS_REGION"),
        ({"AWS_DEFAULT_REGION": "local"}, "AWS_DEFAULT_REGION"),
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


def test_a_state_folder_that_cannot_be_made_is_an_expected_error_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(EmbeddedAwsError, match="TICKSTREAM_STATE_DIR"):
        EmbeddedAws(blocker / "state", free_local_port()).start()


def test_a_command_help_works_whatever_the_environment_and_the_command_says_what_is_wrong() -> None:
    runner = CliRunner()
    helped = runner.invoke(app, ["status", "--help"], env={"TICKSTREAM_PORT": "abc"})
    assert helped.exit_code == 0
    assert "status [OPTIONS]" in helped.output
    failed = runner.invoke(app, ["status"], env={"TICKSTREAM_PORT": "abc"})
    assert failed.exit_code == 2
    assert "TICKSTREAM_PORT='abc'" in failed.output


@pytest.mark.parametrize("option", [["--rate", "inf"], ["--rate", "1e300"], ["--duration", "inf"]])
def test_produce_refuses_rates_and_durations_without_an_end(option: list[str]) -> None:
    refused = CliRunner().invoke(app, ["produce", *option])
    assert refused.exit_code == 2
    assert "Invalid value" in refused.output
