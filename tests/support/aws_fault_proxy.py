"""An HTTP proxy in front of moto that fails chosen DynamoDB and S3 calls as AWS fails them.

Moto never throttles, never fails with a 500, never denies and never hangs. This proxy does,
for the calls a plan names, and passes every other call through untouched:
- throttling, a 500 and AccessDenied come back with the status, headers and body AWS sends
  (DynamoDB JSON with its x-amz-crc32, S3 XML), so botocore's own retry rules and error
  parsing decide what the code sees;
- a timeout is a call whose answer never comes: the connection is closed without a reply,
  before or after moto applied the call (seeded), which botocore retries as it retries a read
  timeout. Waiting out a real read timeout would take the clients' 30 or 60 s per fault.
Calls are told apart by the SigV4 credential scope (the service), X-Amz-Target or the S3
method and path (the operation), and the table or bucket they touch.
"""

from __future__ import annotations

import http.client
import http.server
import json
import random
import re
import threading
import urllib.parse
import uuid
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Fault(StrEnum):
    THROTTLE = "throttle"
    SERVER_ERROR = "500"
    ACCESS_DENIED = "access-denied"
    TIMEOUT = "timeout"


@dataclass(frozen=True, order=True)
class Target:
    """One kind of call: (service, operation, table or bucket)."""

    service: str
    operation: str
    resource: str

    def __str__(self) -> str:
        return f"{self.service}:{self.operation}:{self.resource}"


@dataclass
class FaultPlan:
    """For each target, the indices (0-based, counting every attempt botocore makes) of the
    calls that fail, and how."""

    failures: dict[Target, dict[int, Fault]]
    seed: int


@dataclass
class ProxyLog:
    calls: Counter[Target] = field(default_factory=Counter)
    injected: Counter[tuple[Target, Fault]] = field(default_factory=Counter)
    applied_then_dropped: int = 0


_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)

_DYNAMODB_ERRORS = {
    Fault.THROTTLE: (
        400,
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    Fault.SERVER_ERROR: (
        500,
        "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "Internal server error",
    ),
    Fault.ACCESS_DENIED: (
        400,
        "com.amazon.coral.service#AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/aggregator is not authorized to perform this action",
    ),
}
_DYNAMODB_THROTTLING = (
    400,
    "com.amazon.coral.availability#ThrottlingException",
    "Throughput exceeds the current capacity of your table or index.",
)
_S3_ERRORS = {
    Fault.THROTTLE: (503, "SlowDown", "Please reduce your request rate."),
    Fault.SERVER_ERROR: (500, "InternalError", "We encountered an internal error. Please try again."),
    Fault.ACCESS_DENIED: (403, "AccessDenied", "Access Denied"),
}


def classify(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Target | None:
    """The DynamoDB or S3 call a request is, or None for anything else; header names in lower case."""
    scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    service = scope.group(1) if scope else ""
    if service == "dynamodb":
        operation = headers.get("x-amz-target", "").rpartition(".")[2]
        payload = json.loads(body or b"{}")
        table = payload.get("TableName") or ",".join(sorted(payload.get("RequestItems", {})))
        return Target("dynamodb", operation, table)
    if service == "s3":
        parts = urllib.parse.urlsplit(path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        query = {k for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)} - {"x-id"}
        if key and not query and method in ("GET", "PUT"):
            return Target("s3", "GetObject" if method == "GET" else "PutObject", bucket)
        return Target("s3", f"{method} {'object' if key else 'bucket'}", bucket)
    return None


def error_reply(target: Target, fault: Fault, rng: random.Random) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body AWS answers a failed call of this service with."""
    request_id = str(uuid.UUID(int=rng.getrandbits(128)))
    if target.service == "dynamodb":
        status, kind, message = _DYNAMODB_ERRORS[fault]
        if fault is Fault.THROTTLE and rng.random() < 0.5:
            status, kind, message = _DYNAMODB_THROTTLING  # what an on-demand table answers
        body = json.dumps({"__type": kind, "message": message}).encode()
        return (
            status,
            {
                "Content-Type": "application/x-amz-json-1.0",
                "x-amzn-RequestId": request_id,
                "x-amz-crc32": str(zlib.crc32(body) & 0xFFFFFFFF),
            },
            body,
        )
    status, code, message = _S3_ERRORS[fault]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id[:16].upper()}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
    return status, {"Content-Type": "application/xml", "x-amz-request-id": request_id[:16].upper()}, body


class AwsFaultProxy:
    def __init__(self, upstream: str, plan: FaultPlan) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.plan = plan
        self.log = ProxyLog()
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self.first_call = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and 100-continue, as botocore expects

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> AwsFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        self.first_call.set()
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in request.headers.items()}
        target = classify(request.command, request.path, headers, body)
        fault = self._verdict(target) if target is not None else None
        if fault is None:
            self._reply(request, *self._forward(request, body))
        elif fault is Fault.TIMEOUT:
            with self._lock:
                applied = self._rng.random() < 0.5
                self.log.applied_then_dropped += applied
            if applied:
                self._forward(request, body)
            request.close_connection = True  # no answer at all: the client's read fails
        else:
            assert target is not None
            with self._lock:
                reply = error_reply(target, fault, self._rng)
            self._reply(request, *reply)

    def _verdict(self, target: Target) -> Fault | None:
        """The fault planned for this call of the target, counting every call of it so far."""
        with self._lock:
            index = self.log.calls[target]
            self.log.calls[target] += 1
            fault = self.plan.failures.get(target, {}).get(index)
            if fault is not None:
                self.log.injected[(target, fault)] += 1
            return fault

    def _forward(
        self, request: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            connection.request(request.command, request.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            return answer.status, dict(answer.getheaders()), data
        finally:
            connection.close()

    @staticmethod
    def _reply(
        request: http.server.BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        request.send_response(status)
        for name, value in headers.items():
            if name.lower() not in _HOP_BY_HOP | {"content-length", "server", "date"}:
                request.send_header(name, value)
        head_length = headers.get("Content-Length") or headers.get("content-length")
        length = head_length if request.command == "HEAD" and head_length else str(len(body))
        request.send_header("Content-Length", length)
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)
