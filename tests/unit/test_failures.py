"""The one line a failed command prints for errors only real AWS gives, which moto cannot stage."""

from __future__ import annotations

from botocore.exceptions import ClientError, ConnectionClosedError, ProfileNotFound
from botocore.parsers import ResponseParserError

from local_aws.stack import StackError, StackNotFound
from tickstream.failures import explain
from tickstream.settings import Settings

ON_AWS = Settings.from_environment({"AWS_REGION": "eu-west-1"}, real_aws=True)


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "DescribeStacks")


def wrapped(cause: Exception) -> StackError:
    """A domain error with `cause` behind it, as `raise ... from cause` in a data-access module leaves it."""
    error = StackError(f"reading stack tickstream: {cause}")
    error.__cause__ = cause
    return error


def test_expired_credentials_say_how_to_refresh_them() -> None:
    line = explain(wrapped(client_error("ExpiredToken")), ON_AWS)
    assert line.startswith("AWS refused the credentials (ExpiredToken): refresh them with `aws sso login`")


def test_a_denied_action_keeps_the_modules_own_message() -> None:
    assert explain(wrapped(client_error("AccessDenied")), ON_AWS).startswith("reading stack tickstream: ")


def test_a_missing_profile_says_which_profiles_there_are() -> None:
    line = explain(ProfileNotFound(profile="nope"), ON_AWS)
    assert line.startswith("The config profile (nope) could not be found: set AWS_PROFILE to one that")


def test_no_stack_on_aws_says_how_to_deploy_one_there() -> None:
    line = explain(
        StackNotFound("no stack tickstream at https://cloudformation.eu-west-1.amazonaws.com"), ON_AWS
    )
    assert line.endswith(": deploy it with `sam build && sam deploy --guided`, or set TICKSTREAM_STACK")


def test_a_call_left_without_answer_says_which_call_before_where_to_look() -> None:
    """A dropped connection after others were answered: the failed call's own words come first."""
    local = Settings.from_environment({"AWS_ENDPOINT_URL": "http://127.0.0.1:4599"})
    closed = ConnectionClosedError(endpoint_url="http://127.0.0.1:4599")
    line = explain(wrapped(closed), local)
    assert line.startswith(
        "reading stack tickstream: Connection was closed before we received a valid response"
    )
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:4599" in line


def test_moto_crashing_is_not_called_another_server_on_its_port() -> None:
    """moto answers its own exceptions with werkzeug's 500 page, which botocore cannot parse as
    XML; that is the stack's error, not a stranger on the port."""
    local = Settings.from_environment({"AWS_ENDPOINT_URL": "http://127.0.0.1:4599"})
    page = "b'<!doctype html>\\n<title>500 Internal Server Error</title>\\n<h1>Internal Server Error</h1>'"
    crashed = ResponseParserError(f"Unable to parse response (syntax error), invalid XML received:\n{page}")
    line = explain(wrapped(crashed), local)
    assert "other than" not in line
    assert "500 Internal Server Error" in line
    stranger = ResponseParserError("Unable to parse response, invalid XML received:\nb'<html>welcome</html>'")
    wrapped_stranger = StackError("updating stack tickstream")
    wrapped_stranger.__cause__ = stranger
    assert explain(wrapped_stranger, local) != "updating stack tickstream"
