"""What a failed command prints: one line saying what happened and what to run next.

This is the one place that turns botocore's errors into such a line, whether a command let one
through or a data-access module wrapped it in its own error (`raise ... from exc`). The next
step depends on the target: the embedded moto server, AWS_ENDPOINT_URL, or AWS (`--aws`).
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as EndpointUnreachable
from botocore.parsers import ResponseParserError

from local_aws.stack import StackNotFound
from tickstream.settings import Settings

# botocore's errors, all of which a command may meet; ResponseParserError is not a BotoCoreError.
BOTOCORE_ERRORS = (BotoCoreError, ClientError, ResponseParserError)
_NO_CREDENTIALS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)
# Error codes with which AWS refuses the caller's credentials themselves, not one action.
_REJECTED_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AuthFailure",
    }
)


def explain(exc: BaseException, settings: Settings) -> str:
    """`exc` as one line ending in the next step, for the target `settings` name."""
    cause = _botocore_cause(exc)
    if isinstance(cause, ConnectionClosedError) and exc is not cause:
        # A call that got no answer after others did: say which call, then where to look.
        return f"{exc}; {_unreachable(settings, cause)}"
    if cause is not None:
        line = _explain_botocore(cause, settings)
        if line is not None:
            return line
    if isinstance(exc, StackNotFound):
        if settings.endpoint_url is None:
            return f"{exc}: deploy it with `sam build && sam deploy --guided`, or set TICKSTREAM_STACK"
        return f"{exc}: run `tickstream up` first"
    return str(exc)


def _botocore_cause(exc: BaseException) -> BaseException | None:
    """The botocore error behind `exc`: `exc` itself, or the one a domain error was raised from."""
    current: BaseException | None = exc
    while current is not None and not isinstance(current, BOTOCORE_ERRORS):
        current = current.__cause__
    return current


def _explain_botocore(cause: BaseException, settings: Settings) -> str | None:
    """The line for the botocore errors a user fixes by what they run or set; None for the rest."""
    if isinstance(cause, EndpointUnreachable | ConnectionClosedError):
        return _unreachable(settings, cause)
    if _not_an_aws_answer(cause):
        return _not_aws(settings)
    if isinstance(cause, ProfileNotFound):
        return (
            f"{cause}: set AWS_PROFILE to one that `aws configure list-profiles` shows, or unset it "
            "(and AWS_DEFAULT_PROFILE, which botocore reads first)"
        )
    if isinstance(cause, _NO_CREDENTIALS):
        local = "" if settings.endpoint_url is not None else "; or drop --aws to use the local stack"
        return (
            f"no usable AWS credentials ({cause}): run `aws configure` or `aws sso login`, "
            f"or set AWS_PROFILE{local}"
        )
    if isinstance(cause, ClientError) and _error_code(cause) in _REJECTED_CREDENTIALS:
        return (
            f"AWS refused the credentials ({_error_code(cause)}): refresh them with `aws sso login` "
            "or `aws configure`, or set AWS_PROFILE to another profile"
        )
    return None


# The title of the page moto's server (werkzeug) answers an exception in moto with.
MOTO_CRASH_PAGE = "500 Internal Server Error"


def _not_an_aws_answer(cause: BaseException) -> bool:
    """A body botocore cannot parse, or a web page: AWS APIs (and moto) answer XML or JSON. A 500
    page is left out, as moto's own crashes are answered with one (unparsed where XML was due)."""
    if isinstance(cause, ResponseParserError):
        return MOTO_CRASH_PAGE not in str(cause)
    if not isinstance(cause, ClientError):
        return False
    metadata = cause.response.get("ResponseMetadata", {})
    content_type = str(metadata.get("HTTPHeaders", {}).get("content-type", ""))
    return content_type.startswith("text/html") and metadata.get("HTTPStatusCode") != 500


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unreachable(settings: Settings, cause: BaseException) -> str:
    if settings.endpoint_url is None:
        return f"cannot reach AWS in {settings.region} ({cause}): check the network and AWS_REGION"
    if settings.embedded:
        return (
            f"nothing answers at {settings.endpoint_url}: run `tickstream up` first, "
            "or set AWS_ENDPOINT_URL to where your stack runs"
        )
    return (
        f"nothing answers at AWS_ENDPOINT_URL={settings.endpoint_url}: start your stack there, "
        "or unset AWS_ENDPOINT_URL and run `tickstream up`"
    )


def _not_aws(settings: Settings) -> str:
    if settings.endpoint_url is None:
        return f"an answer from AWS in {settings.region} was not AWS's: is a proxy in the way?"
    if settings.embedded:
        return (
            f"{settings.endpoint_url} answers, but not as AWS does: port {settings.port} is taken by "
            "something other than moto; set TICKSTREAM_PORT to a free port and run `tickstream up`, "
            "or set AWS_ENDPOINT_URL to where your stack runs (e.g. LocalStack)"
        )
    return (
        f"AWS_ENDPOINT_URL={settings.endpoint_url} answers, but not as AWS does: point it at moto "
        "or LocalStack, or unset it and run `tickstream up`"
    )
