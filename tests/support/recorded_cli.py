"""The tickstream CLI with every AWS call the Lambda handlers make recorded, for the IAM tests.

Handlers build their clients from boto3's default session, as they do in Lambda; the local
runner and the CLI use sessions of their own. So a hook on the default session sees exactly the
calls the functions' execution roles must allow.

    python -m tests.support.recorded_cli CALLS.json consume --until-idle
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import boto3

from tickstream.cli import app


def _resource_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that name what a call touches: tables, buckets and keys."""
    named: dict[str, Any] = {k: params[k] for k in ("TableName", "Bucket", "Key") if k in params}
    if "RequestItems" in params:
        named["Tables"] = sorted(params["RequestItems"])
    return named


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        call = {
            "service": model.service_model.signing_name,
            "operation": model.name,
            **_resource_params(params),
        }
        with lock:
            calls.append(call)

    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-parameter-build", record)
    sys.argv = ["tickstream", *args]
    try:
        app()
    finally:
        out.write_text(json.dumps(calls))


if __name__ == "__main__":
    main()
