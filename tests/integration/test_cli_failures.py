"""Every command fails politely: a mistake ends in a short `error:` line on stderr that says what
happened and what to run next, exit code 2, and no traceback unless `--debug` asks for one."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from local_aws.embedded import free_local_port
from tests.support.local_stack import LocalStack, clean_environment, run_cli

pytestmark = pytest.mark.integration


def fails(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI run to its end; a minute is far more than any of these mistakes may take."""
    return run_cli(args, env, timeout=60)


def assert_polite(done: subprocess.CompletedProcess[str], *says: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, done.stderr
    assert lines[-1].startswith("error: "), done.stderr
    for text in says:
        assert text in done.stderr


@pytest.fixture
def nothing_running(tmp_path: Path) -> dict[str, str]:
    """The embedded default, on a port where nothing listens: as before `tickstream up`."""
    return clean_environment(TICKSTREAM_PORT=str(free_local_port()), TICKSTREAM_STATE_DIR=str(tmp_path))


@pytest.fixture
def not_aws(http_server: HTTPServer) -> HTTPServer:
    """Something on the port that is not AWS (as a web server on 4566 would be): 404 to everything."""
    http_server.expect_request(re.compile(".*")).respond_with_data(
        "<html>not here</html>", status=404, content_type="text/html"
    )
    return http_server


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["consume", "--until-idle"],
        ["produce", "--count", "1"],
        ["logs", "aggregator"],
        ["charts", "--all"],
        ["view"],
    ],
)
def test_before_up_every_command_says_to_run_up(command: list[str], nothing_running: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{nothing_running['TICKSTREAM_PORT']}"
    assert_polite(
        fails(command, nothing_running), f"nothing answers at {endpoint}: run `tickstream up` first"
    )


def test_an_endpoint_url_where_nothing_answers_is_named(nothing_running: dict[str, str]) -> None:
    endpoint = f"http://127.0.0.1:{free_local_port()}"
    done = fails(["status"], {**nothing_running, "AWS_ENDPOINT_URL": endpoint})
    assert_polite(done, f"AWS_ENDPOINT_URL={endpoint}", "unset AWS_ENDPOINT_URL and run `tickstream up`")


def test_no_stack_at_a_running_endpoint_says_to_run_up(local_stack: LocalStack) -> None:
    done = fails(["status"], {**local_stack.env, "TICKSTREAM_STACK": "nostack"})
    assert_polite(done, f"no stack nostack at {local_stack.endpoint} (us-east-1): run `tickstream up` first")


def test_aws_without_credentials_says_how_to_get_them(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    env = clean_environment(
        AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty), AWS_EC2_METADATA_DISABLED="true"
    )
    assert_polite(fails(["--aws", "status"], env), "no usable AWS credentials", "aws configure", "drop --aws")


@pytest.mark.parametrize("command", [["up"], ["status"], ["view"]])
def test_a_port_held_by_something_else_names_the_two_ways_out(
    command: list[str], not_aws: HTTPServer, tmp_path: Path
) -> None:
    env = clean_environment(TICKSTREAM_PORT=str(not_aws.port), TICKSTREAM_STATE_DIR=str(tmp_path))
    assert_polite(fails(command, env), f"127.0.0.1:{not_aws.port}", "TICKSTREAM_PORT", "AWS_ENDPOINT_URL")


def test_view_on_a_port_in_use_says_how_to_pick_another(local_stack: LocalStack, not_aws: HTTPServer) -> None:
    done = fails(["view", "--port", str(not_aws.port)], local_stack.env)
    assert_polite(done, f"cannot listen on 127.0.0.1:{not_aws.port}", "--port or TICKSTREAM_VIEW_PORT")


# Checked before the stack is read: with nothing running, the argument is still what is reported.
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["produce", "--symbols", ""], "--symbols '': no symbols: give one or more"),
        (["produce", "--symbols", " , "], "--symbols ' , ': no symbols: give one or more"),
        (["produce", "--start", "yesterday"], "--start: ts 'yesterday' is not an ISO-8601 time: give"),
        (["produce", "--jump", "NVDA"], "--jump: jump 'NVDA': expected SYMBOL:PERCENT:SECONDS, e.g."),
        (["produce", "--jump", "NVDA:six:30"], "PERCENT and SECONDS must be numbers, e.g. NVDA:6:30"),
        (["produce", "--symbols", "AAPL", "--jump", "NVDA:6:30"], "NVDA is not one of --symbols AAPL"),
        (["produce", "--source", "csv:/nope/ticks.csv"], "--source csv:/nope/ticks.csv: no such file"),
        (
            ["produce", "--source", "http:/nope/feed.yaml"],
            "--source http:/nope/feed.yaml: no such file",
        ),
        (["logs", "aggregator", "--since", "yesterday"], "--since 'yesterday': give a duration like 10m"),
    ],
)
def test_a_bad_argument_is_refused_before_any_aws_call(
    args: list[str], says: str, nothing_running: dict[str, str]
) -> None:
    assert_polite(fails(args, nothing_running), says)


def test_charts_of_a_symbol_without_bars_says_how_to_get_them(local_stack: LocalStack) -> None:
    done = fails(["charts", "--symbol", "NOBARS"], local_stack.env)
    assert_polite(done, "no bars of NOBARS", "`tickstream produce --symbols NOBARS`", "tickstream consume")


def test_logs_of_an_unknown_function_names_the_known_ones(local_stack: LocalStack) -> None:
    done = fails(["logs", "nosuchfunction"], local_stack.env)
    assert_polite(done, "unknown function 'nosuchfunction'", local_stack.outputs.AggregatorFunctionName)


def test_debug_shows_the_traceback_behind_the_line(nothing_running: dict[str, str]) -> None:
    done = fails(["--debug", "status"], nothing_running)
    assert done.returncode == 2
    assert "Traceback" in done.stderr
    assert "EndpointConnectionError" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: nothing answers at")


def test_version_prints_the_installed_version() -> None:
    done = run_cli(["--version"], clean_environment())
    assert (done.returncode, done.stdout) == (0, f"tickstream {version('tickstream')}\n")
