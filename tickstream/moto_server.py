"""The embedded AWS: moto's server, with stream event source mappings stored but not run.

moto invokes a mapped function on every Kinesis put and DynamoDB stream write, through Docker
(none here), one record at a time and without Lambda's batching semantics; it logs a failure
into the function's log group each time. `tickstream consume` is what runs the mappings
locally, so moto keeps them as configuration only, the way DESIGN.md describes moto.
"""

from __future__ import annotations

from typing import Any

from moto.awslambda.models import LambdaBackend
from moto.server import main


def _stored_not_run(*_args: Any, **_kwargs: Any) -> None:
    """The local runner, not moto, delivers stream records to functions."""


if __name__ == "__main__":
    LambdaBackend.send_kinesis_message = _stored_not_run  # type: ignore[method-assign]
    LambdaBackend.send_dynamodb_items = _stored_not_run  # type: ignore[method-assign,assignment]
    main()
