"""The tickstream CLI with every AWS call the Lambda handlers make recorded (IAM tests, `make cost`).

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


def attribute_bytes(value: dict[str, Any]) -> int:
    """A DynamoDB attribute value's size as DynamoDB bills it (names and values in bytes;
    numbers about one byte per two significant digits, plus one)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "").strip("0")) // 2 + 2
    if kind == "B":
        return len(inner)
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_bytes({kind[0]: v}) for v in inner)
    if kind == "M":
        return 3 + item_bytes(inner)
    if kind == "L":
        return 3 + sum(1 + attribute_bytes(v) for v in inner)
    return 1  # BOOL, NULL


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in item.items())


# The parameters that name what a call touches: a table, an object, a stream, an SSM parameter, a secret.
# ConsistentRead tells the aggregator's Query of the bars table (a fold) from the chart builder's.
RESOURCE_PARAMETERS = ("TableName", "Bucket", "Key", "StreamName", "Name", "SecretId", "ConsistentRead")


def _resource_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that name what a call touches, and item sizes."""
    named: dict[str, Any] = {k: params[k] for k in RESOURCE_PARAMETERS if k in params}
    if "RequestItems" in params:
        named["Tables"] = sorted(params["RequestItems"])
    if "Item" in params:
        named["ItemBytes"] = item_bytes(params["Item"])
    return named


def _read_sizes(parsed: dict[str, Any]) -> list[int]:
    """The sizes of the items a BatchGetItem or Query returned."""
    items = [i for found in parsed.get("Responses", {}).values() for i in found] + parsed.get("Items", [])
    return [item_bytes(i) for i in items]


def record_handler_calls() -> list[dict[str, Any]]:
    """Hooks boto3's default session; the list it returns fills with every call made through it."""
    calls: list[dict[str, Any]] = []
    lock = threading.Lock()

    # Parameters are seen before the call, answers after it, on the same thread: pair them there.
    pending = threading.local()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        call = {
            "service": model.service_model.signing_name,
            "operation": model.name,
            **_resource_params(params),
        }
        pending.call = call
        with lock:
            calls.append(call)

    def answered(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        call = getattr(pending, "call", None)
        if call is not None and call["operation"] == model.name and model.name in ("BatchGetItem", "Query"):
            call["ReadBytes"] = _read_sizes(parsed)

    boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-parameter-build", record)
    session.events.register("after-call", answered)
    return calls


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    calls = record_handler_calls()
    sys.argv = ["tickstream", *args]
    try:
        app()
    finally:
        out.write_text(json.dumps(calls))


if __name__ == "__main__":
    main()
