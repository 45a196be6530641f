"""Calls a handler in-process as Lambda would: its own environment, a context, a timeout, JSON in and out.

The handler runs in a worker thread so the timeout can be enforced; a timed-out handler cannot
be stopped in Python and may finish its writes later, which the aggregator's bookkeeping makes
harmless (a late write of a retried batch is a no-op). The function's next invocation waits for
it to end: Lambda never runs a retry beside the attempt it replaces (that one is stopped), and
two handlers writing the same bars at once would each slow the other into its own timeout.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

HandlerFn = Callable[[dict[str, Any], Any], Any]


class LocalContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, function_arn: str, memory_mb: int, timeout_s: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# Where Powertools keeps "is this invocation a cold start" (Logger's `cold_start` key, Metrics'
# ColdStart metric): one flag per process, flipped by the first handler that logs. Lambda gives
# each function its own process; here they share one, so each invoker sets the flags itself.
_POWERTOOLS_COLD_START_FLAGS = (
    ("aws_lambda_powertools.logging.logger", "is_cold_start"),
    ("aws_lambda_powertools.metrics.provider.cold_start", "is_cold_start"),
)


def powertools_cold_start(cold: bool) -> None:
    """Tells Powertools, if it is loaded, whether the coming invocation is its function's first."""
    for module_name, flag in _POWERTOOLS_COLD_START_FLAGS:
        module = sys.modules.get(module_name)
        if module is not None:
            setattr(module, flag, cold)


def load_handler(path: str) -> HandlerFn:
    """`functions.aggregator.handler.handler` -> the function, imported once (a cold start)."""
    module_name, _, attribute = path.rpartition(".")
    handler: HandlerFn = getattr(importlib.import_module(module_name), attribute)
    return handler


@dataclass(frozen=True)
class InvocationRecord:
    """What Lambda would log about one invocation, beside the function's own output."""

    request_id: str
    started_ms: int
    duration_ms: float
    init_ms: float | None
    output: str
    error: str | None
    max_memory_mb: int


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """Everything written to file descriptors 1 and 2 meanwhile, as Lambda's runtime collects it.

    Descriptors rather than sys.stdout: loggers keep a reference to the stream they started with.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    text: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


class InProcessInvoker:
    def __init__(
        self,
        handler_path: str,
        function_name: str,
        function_arn: str,
        memory_mb: int,
        timeout_s: int,
        environment: Mapping[str, str],
        hidden: tuple[str, ...] = (),
    ) -> None:
        """`hidden`: prefixes of the shell's variables the handler does not see (only those of
        `environment` under them). ("AWS_",) seals it off the shell's AWS settings, as a function
        on Lambda sees only its own variables and Lambda's reserved ones."""
        self._handler_path = handler_path
        self._hidden = hidden
        self._handler: HandlerFn | None = None
        self._cold_ms: float | None = None
        self.function_name = function_name
        self._function_arn = function_arn
        self._memory_mb = memory_mb
        self._timeout_s = timeout_s
        self._environment = dict(environment)
        self.last_record: InvocationRecord | None = None
        self._worker: threading.Thread | None = None
        self._unrestored: dict[str, str | None] = {}

    def invoke(self, event: dict[str, Any]) -> tuple[Any, str | None]:
        """(response, None) or (None, error message), the event and response passed through JSON."""
        if self._worker is not None:
            self._worker.join()  # a handler that timed out, still running: its environment is busy
            self._worker = None
            _restore(self._unrestored)
            self._unrestored = {}
        payload = json.loads(json.dumps(event))
        context = LocalContext(self.function_name, self._function_arn, self._memory_mb, self._timeout_s)
        outcome: dict[str, Any] = {}
        hidden = [k for k in os.environ if k.startswith(self._hidden)] if self._hidden else []
        saved = {k: os.environ.get(k) for k in (*self._environment, *hidden)}
        for key in hidden:
            del os.environ[key]
        os.environ.update(self._environment)
        started = time.time()
        init_ms: float | None = None
        error: str | None = None
        try:
            with captured_output() as output:
                error = self._call(payload, context, outcome)
                if self._cold_ms is not None:
                    init_ms, self._cold_ms = self._cold_ms, None
        finally:
            if self._worker is None:
                _restore(saved)
            else:
                # The handler runs on past its timeout: it keeps its environment (sealed off the
                # shell's AWS_ variables) until it ends, which the next invocation waits for.
                self._unrestored = saved
        error = error or outcome.get("error")
        self.last_record = InvocationRecord(
            context.aws_request_id,
            int(started * 1000),
            (time.time() - started) * 1000,
            init_ms,
            "".join(output),
            error,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        )
        if error is not None:
            return None, error
        return outcome.get("response"), None

    def _call(self, payload: dict[str, Any], context: LocalContext, outcome: dict[str, Any]) -> str | None:
        """Runs the handler on a worker thread; a message when it ran past its timeout."""
        powertools_cold_start(self._handler is None)
        if self._handler is None:
            loading = time.perf_counter()
            try:
                self._handler = load_handler(self._handler_path)
            except Exception as exc:  # an init error fails this invocation, and the next tries again
                return f"{type(exc).__name__}: {exc} (loading {self._handler_path})"
            self._cold_ms = (time.perf_counter() - loading) * 1000
        handler = self._handler

        def call() -> None:
            try:
                outcome["response"] = json.loads(json.dumps(handler(payload, context)))
            except Exception as exc:  # any handler error is an invocation error, as in Lambda
                outcome["error"] = f"{type(exc).__name__}: {exc}"

        worker = threading.Thread(target=call, name=f"invoke-{self.function_name}", daemon=True)
        worker.start()
        worker.join(self._timeout_s)
        if worker.is_alive():
            self._worker = worker
            return f"Task timed out after {self._timeout_s:.2f} seconds"
        self._worker = None
        return None


def _restore(saved: Mapping[str, str | None]) -> None:
    """Puts variables back as they were: set to their value, or unset."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
