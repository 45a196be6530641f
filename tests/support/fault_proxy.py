"""An HTTP proxy in front of moto that fails PutRecords entries, as Kinesis does and moto never does.

Failed entries are not forwarded, so moto stores exactly what a real stream would have
accepted; the proxy's log says which entries were sent how often and which failed.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import random
import threading
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PUT_RECORDS = "Kinesis_20131202.PutRecords"
ENTRY_ERRORS = (
    ("ProvisionedThroughputExceededException", "Rate exceeded for shard in stream."),
    ("InternalFailure", "Internal service failure."),
)


@dataclass
class FaultLog:
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    calls_refused: int = 0


class FaultProxy:
    def __init__(self, upstream: str, entry_failure_rate: float, call_failure_rate: float, seed: int) -> None:
        self.upstream = upstream
        self.entry_failure_rate = entry_failure_rate
        self.call_failure_rate = call_failure_rate
        self.log = FaultLog()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy._handle(self)

            def do_GET(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        if request.headers.get("X-Amz-Target") != PUT_RECORDS:
            self._reply(request, *self._forward(request, body))
            return
        with self._lock:
            refuse_call = self._rng.random() < self.call_failure_rate
            if refuse_call:
                self.log.calls_refused += 1
            payload = json.loads(body)
            verdicts = []
            for entry in payload["Records"]:
                digest = hashlib.sha1(entry["Data"].encode()).hexdigest()
                if not refuse_call:
                    self.log.sent[digest] += 1
                failure = (
                    None
                    if refuse_call or self._rng.random() >= self.entry_failure_rate
                    else ENTRY_ERRORS[self._rng.randrange(len(ENTRY_ERRORS))]
                )
                if failure:
                    self.log.failed[digest] += 1
                verdicts.append(failure)
        if refuse_call:
            error = {"__type": "InternalFailure", "message": "injected 500"}
            self._reply(request, 500, json.dumps(error).encode(), "application/x-amz-json-1.1")
            return
        passing = [e for e, v in zip(payload["Records"], verdicts, strict=True) if v is None]
        answers: list[dict[str, Any]] = []
        if passing:
            status, answer, _ = self._forward(request, json.dumps({**payload, "Records": passing}).encode())
            if status != 200:
                self._reply(request, status, answer, "application/x-amz-json-1.1")
                return
            answers = json.loads(answer)["Records"]
        merged = []
        for verdict in verdicts:
            merged.append(
                answers.pop(0) if verdict is None else {"ErrorCode": verdict[0], "ErrorMessage": verdict[1]}
            )
        result = {"FailedRecordCount": sum(v is not None for v in verdicts), "Records": merged}
        self._reply(request, 200, json.dumps(result).encode(), "application/x-amz-json-1.1")

    def _forward(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        outgoing = urllib.request.Request(
            self.upstream + request.path, data=body if request.command == "POST" else None, headers=headers
        )
        outgoing.method = request.command
        try:
            with urllib.request.urlopen(outgoing, timeout=30) as answer:
                return answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")

    @staticmethod
    def _reply(
        request: http.server.BaseHTTPRequestHandler, status: int, body: bytes, content_type: str
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type or "application/x-amz-json-1.1")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
