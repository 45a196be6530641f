"""`tickstream up` behaves as CloudFormation does: parameters left unstated keep their deployed
values, bad values are refused before anything is created, and the local stack follows its
template (mapping, schedule) after every update."""

from __future__ import annotations

import io
import socket
import zipfile
from pathlib import Path
from typing import Any

import pytest

import local_aws.deploy
from lambda_build.artifacts import build_code_zip
from local_aws.embedded import free_local_port
from local_aws.stack import StackDeployer, StackNotFound
from tests.support.local_stack import LocalStack, clean_environment, run_cli, run_cli_in_process

pytestmark = pytest.mark.integration


def _up(local_stack: LocalStack, stack: str, *args: str) -> str:
    done = run_cli_in_process(["up", *args], {**local_stack.env, "TICKSTREAM_STACK": stack})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _parameters(local_stack: LocalStack, stack: str) -> dict[str, str]:
    return StackDeployer(local_stack.client("cloudformation"), stack).deployed_parameters()


def _open_shards(local_stack: LocalStack, stack: str) -> int:
    outputs = StackDeployer(local_stack.client("cloudformation"), stack).outputs()
    shards = local_stack.client("kinesis").list_shards(StreamName=outputs.StreamName)["Shards"]
    return sum(1 for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"])


def _aggregator_mapping(local_stack: LocalStack, stack: str) -> dict[str, Any]:
    outputs = StackDeployer(local_stack.client("cloudformation"), stack).outputs()
    (mapping,) = local_stack.client("lambda").list_event_source_mappings(
        FunctionName=outputs.AggregatorFunctionName
    )["EventSourceMappings"]
    return dict(mapping)


def test_a_plain_up_keeps_the_shards_and_parameters_an_earlier_up_set(local_stack: LocalStack) -> None:
    _up(local_stack, "keep", "--shards", "2", "--parameter", "TumblingWindowSeconds=30")
    again = _up(local_stack, "keep")
    assert "unchanged" in again
    assert "(2 shards)" in again
    assert _parameters(local_stack, "keep")["ShardCount"] == "2"
    assert _parameters(local_stack, "keep")["TumblingWindowSeconds"] == "30"
    assert _open_shards(local_stack, "keep") == 2
    assert _aggregator_mapping(local_stack, "keep")["TumblingWindowInSeconds"] == 30

    changed = _up(local_stack, "keep", "--parameter", "TumblingWindowSeconds=45")
    assert "changed: TumblingWindowSeconds 30 -> 45" in changed
    assert _aggregator_mapping(local_stack, "keep")["TumblingWindowInSeconds"] == 45

    resharded = _up(local_stack, "keep", "--shards", "3")
    assert "resharded the stream: ShardCount 2 -> 3" in resharded
    assert _open_shards(local_stack, "keep") == 3
    assert _parameters(local_stack, "keep")["TumblingWindowSeconds"] == "45"


def test_a_changed_poll_rate_reaches_the_schedule_rule(local_stack: LocalStack) -> None:
    _up(local_stack, "rate", "--shards", "1", "--parameter", "QuotePollMinutes=5")
    _up(local_stack, "rate", "--parameter", "QuotePollMinutes=10")
    rules = local_stack.client("events").list_rules(NamePrefix="rate-")["Rules"]
    # The chart builder's sweep keeps its one minute.
    assert sorted(r["ScheduleExpression"] for r in rules) == ["rate(1 minute)", "rate(10 minutes)"]


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ("AlertEmail=notanemail", "Parameter 'AlertEmail' must match pattern"),
        ("TumblingWindowSeconds=5000", "'TumblingWindowSeconds' must be a number not greater than 900"),
        ("BarIntervals=2m", "Parameter 'BarIntervals' must match pattern"),
        ("QuotePollMinutes=3", "Parameter 'QuotePollMinutes' must be one of AllowedValues"),
    ],
)
def test_bad_parameter_values_are_refused_before_anything_is_created(
    local_stack: LocalStack, parameter: str, message: str
) -> None:
    stack = "refused"
    done = run_cli(["up", "--parameter", parameter], {**local_stack.env, "TICKSTREAM_STACK": stack})
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    for name in (stack, f"{stack}-artifacts"):
        with pytest.raises(StackNotFound):
            StackDeployer(local_stack.client("cloudformation"), name).describe()


def test_a_bad_value_on_a_fresh_port_starts_no_server(tmp_path: Path) -> None:
    port = free_local_port()
    env = clean_environment(TICKSTREAM_PORT=str(port), TICKSTREAM_STATE_DIR=str(tmp_path / "state"))
    done = run_cli(["up", "--parameter", "TumblingWindowSeconds=nan"], env)
    assert done.returncode == 2
    assert "Parameter 'TumblingWindowSeconds' must be a number" in done.stderr
    assert not (tmp_path / "state").exists()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # still free: nothing was started on it


def _newer_code() -> bytes:
    """The code zip with a comment: other bytes, so another key, as after a `git pull`."""
    buffer = io.BytesIO(build_code_zip())
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.comment = b"a newer version"
    return buffer.getvalue()


def test_new_code_updates_a_stack_deployed_with_older_code(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's update parses every changed function, the quote poller's too when its condition is
    false; it once failed there on the role that was never created, so an upgrade could not deploy."""
    _up(local_stack, "upgrade", "--shards", "1")
    lambda_client = local_stack.client("lambda")
    outputs = StackDeployer(local_stack.client("cloudformation"), "upgrade").outputs()
    before = lambda_client.get_function(FunctionName=outputs.AggregatorFunctionName)["Code"]["Location"]
    monkeypatch.setattr(local_aws.deploy, "build_code_zip", _newer_code)
    assert "updated" in _up(local_stack, "upgrade")
    after = lambda_client.get_function(FunctionName=outputs.AggregatorFunctionName)["Code"]["Location"]
    assert after != before
    described = StackDeployer(local_stack.client("cloudformation"), "upgrade").describe()
    assert "QuotePollerFunctionName" not in {o["OutputKey"] for o in described.get("Outputs", [])}
    # Turned on later, the poller is created then: it was left out, not created half.
    _up(local_stack, "upgrade", "--parameter", "QuotePollMinutes=5")
    poller = StackDeployer(local_stack.client("cloudformation"), "upgrade").outputs().QuotePollerFunctionName
    assert (
        lambda_client.get_function(FunctionName=poller)["Configuration"]["FunctionName"]
        == "upgrade-quote-poller"
    )


@pytest.mark.parametrize(
    "history",
    [
        ["QuotePollMinutes=5", "QuotePollMinutes=1", "QuotePollMinutes=0", "QuotePollMinutes=5"],
        ["AlertEmail=a@example.com", "AlertEmail=b@example.com", "AlertEmail="],
    ],
    ids=["poll-rates", "alert-emails"],
)
def test_any_parameter_history_deploys(local_stack: LocalStack, history: list[str]) -> None:
    """Alarms and subscriptions moto has no model for are held as nothing: an update that left
    one out would have moto delete it, which fails; a changed rate or address must not."""
    stack = f"history-{len(history)}"
    _up(local_stack, stack, "--shards", "1")
    topic = StackDeployer(local_stack.client("cloudformation"), stack).outputs().AlarmTopicArn
    sns = local_stack.client("sns")
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")  # a user's own
    for parameter in history:
        assert "updated" in _up(local_stack, stack, "--parameter", parameter)
    assert "unchanged" in _up(local_stack, stack)
    # No address the template subscribed before stays subscribed; the user's own one does.
    subscribed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sorted((s["Protocol"], s["Endpoint"].rsplit(":", 1)[-1]) for s in subscribed) == [
        ("email", "oncall@example.com"),
        ("lambda", f"{stack}-alarm-notifier"),
    ]


@pytest.mark.parametrize(
    "history", [[], ["QuotePollMinutes=5", "QuotePollMinutes=0"]], ids=["plain", "poller-off"]
)
def test_a_stack_an_older_version_deployed_takes_new_code(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, history: list[str]
) -> None:
    """Versions before this one sent moto every resource of the template, whatever its condition."""
    stack = f"older-{len(history)}"
    with monkeypatch.context() as older:
        older.setattr(
            local_aws.deploy, "without_unmet_conditions", lambda template, _context, _held: template
        )
        _up(local_stack, stack, "--shards", "1")
        for parameter in history:
            _up(local_stack, stack, "--parameter", parameter)
    monkeypatch.setattr(local_aws.deploy, "build_code_zip", _newer_code)
    assert "updated" in _up(local_stack, stack)
    assert "unchanged" in _up(local_stack, stack)


def test_the_local_stack_runs_whatever_aws_settings_the_shell_holds(tmp_path: Path) -> None:
    """A shell set up for other work: a profile this machine does not have (as after an SSO
    config moves), keys and a session token of its own, config files botocore cannot parse (and
    HOME's too), botocore settings of values it refuses, a DynamoDB endpoint of its own
    (DynamoDB Local), a company HTTP proxy that cannot reach this machine's loopback, Powertools
    settings for other work. The
    embedded default uses none of them in the CLI, moto's server or the handlers, so every
    command runs and the handlers' bars land in the embedded stack; a clean shell then finds
    the same server working."""
    garbage = tmp_path / "garbage.ini"
    garbage.write_bytes(b"[default\n\xff\xfe not ini")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]  # nothing listens there once the socket closes
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_bytes(garbage.read_bytes())
    (home / ".aws" / "credentials").write_bytes(garbage.read_bytes())
    state = {"TICKSTREAM_PORT": str(free_local_port()), "TICKSTREAM_STATE_DIR": str(tmp_path / "state")}
    hostile = clean_environment(
        **state,
        HOME=str(home),
        AWS_DEFAULTS_MODE="garbage",
        AWS_STS_REGIONAL_ENDPOINTS="garbage",
        AWS_REQUEST_CHECKSUM_CALCULATION="garbage",
        AWS_PROFILE="profile-this-machine-lacks",
        AWS_DEFAULT_PROFILE="profile-this-machine-lacks",
        AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        AWS_SESSION_TOKEN="a-token-of-the-shell",
        AWS_CONFIG_FILE=str(garbage),
        AWS_SHARED_CREDENTIALS_FILE=str(garbage),
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{dead_port}",
        HTTP_PROXY=f"http://127.0.0.1:{dead_port}",
        http_proxy=f"http://127.0.0.1:{dead_port}",
        NO_PROXY="internal.example.com",
        POWERTOOLS_LOG_LEVEL="garbage",
    )
    try:
        for args in (
            ["up", "--shards", "1"],
            ["produce", "--count", "300", "--symbols", "AAA,BBB", "--pace", "max"],
            ["consume", "--until-idle"],
            ["status"],
        ):
            done = run_cli(args, hostile)
            assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        assert "0 function error(s)" in done.stdout
        assert "rejected  0 tick(s)" in done.stdout
        assert "DLQ     0 message(s)" in done.stdout
        clean = run_cli(["status"], clean_environment(**state))
        assert clean.returncode == 0, clean.stdout + clean.stderr
    finally:
        run_cli(["down"], clean_environment(**state))
