"""docker-compose.yml is valid Compose, and each of its services runs a command that works.

No Docker engine runs here: the file is checked against the Compose specification's JSON
schema (fetched by `make test` from the docker-compose wheel on PyPI), and each tickstream
service's command is run as it is written, against a real moto server, with only the
addresses changed from the compose network's to the test's own.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from local_aws.embedded import free_local_port
from tests.support.local_stack import TICKSTREAM, LocalStack, run_cli
from tickstream.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
SCHEMA = Path(sys.prefix) / "share" / "compose-spec" / "compose_spec.json"


def _validator() -> jsonschema.Draft201909Validator:
    """The schema declares draft 2019-09 (with a trailing '#' jsonschema does not look up)."""
    return jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    assert SCHEMA.exists(), f"{SCHEMA} is fetched by `make test`"
    _validator().validate(_compose())
    services = _compose()["services"]
    assert set(services) == {"aws", "up", "producer", "runner", "viewer"}
    assert services["aws"]["ports"] == ["127.0.0.1:4566:4566"]
    assert services["up"]["depends_on"]["aws"]["condition"] == "service_healthy"
    for name in ("producer", "runner", "viewer"):
        assert services[name]["depends_on"]["up"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["AWS_ENDPOINT_URL"] == "http://aws:4566"


def test_a_file_that_breaks_the_specification_is_refused() -> None:
    broken = _compose()
    broken["services"]["up"]["depends_on"]["aws"]["condition"] = "when_ready"
    with pytest.raises(jsonschema.ValidationError):
        _validator().validate(broken)


def _environment(local_stack: LocalStack, service: dict[str, Any], **overrides: str) -> dict[str, str]:
    """The service's environment with the test's endpoint and stack instead of the compose network's."""
    env = {**local_stack.env, **{k: str(v) for k, v in service["environment"].items()}}
    env.pop("AWS_ENDPOINT_URL")  # the tests' moto is the embedded one, on TICKSTREAM_PORT
    env["TICKSTREAM_STACK"] = "compose"
    env.update(overrides)
    return env


def _run_then_stop(
    command: list[str], env: dict[str, str], seconds: float
) -> subprocess.CompletedProcess[str]:
    """Runs a long-lived command for `seconds` from the moment it says it has started (its first
    line on stderr, printed once its stop handlers are in place), then stops it as compose would."""
    process = subprocess.Popen(
        [*TICKSTREAM, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    started = process.stderr.readline()
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, started + stderr)


def test_each_services_command_runs_the_pipeline(local_stack: LocalStack) -> None:
    services = _compose()["services"]
    up = services["up"]
    assert run_cli(up["command"], _environment(local_stack, up)).returncode == 0

    producer = services["producer"]
    produced = _run_then_stop(producer["command"], _environment(local_stack, producer), 4)
    assert produced.returncode == 0, produced.stderr
    assert "accepted" in produced.stdout, produced.stdout

    runner = services["runner"]
    consumed = _run_then_stop(runner["command"], _environment(local_stack, runner), 8)
    assert consumed.returncode == 0, consumed.stderr
    assert "invocations" in consumed.stdout
    logs = run_cli(["logs", "aggregator"], _environment(local_stack, runner))
    assert "START RequestId: " in logs.stdout
    # The compose runner keeps following; here the open windows are closed so the site exists.
    assert run_cli(["consume", "--until-idle"], _environment(local_stack, runner)).returncode == 0

    viewer = services["viewer"]
    port = free_local_port()
    env = _environment(local_stack, viewer, TICKSTREAM_VIEW_HOST="127.0.0.1", TICKSTREAM_VIEW_PORT=str(port))
    process = subprocess.Popen(
        [*TICKSTREAM, *viewer["command"]], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert f"http://127.0.0.1:{port}/" in process.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert "AAPL" in page.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=30)
