"""The aggregator handler with transient faults, for integration tests that point a function at it.

Every fifth invocation fails before the real handler runs; every seventh fails after it has
written (a crash between the writes and the answer). Each fault happens once per event, so the
retry of the same event succeeds, as a transient fault would.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from functions.aggregator.handler import handler as real_handler

_invocations = 0
_faulted: set[str] = set()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _invocations  # noqa: PLW0603 - per-process count, as a warm Lambda keeps module state
    _invocations += 1
    fingerprint = hashlib.sha1(json.dumps(event, sort_keys=True).encode()).hexdigest()
    if _invocations % 5 == 0 and fingerprint not in _faulted:
        _faulted.add(fingerprint)
        raise RuntimeError("injected transient fault before the handler ran")
    response: dict[str, Any] = real_handler(event, context)
    if _invocations % 7 == 0 and fingerprint not in _faulted:
        _faulted.add(fingerprint)
        raise RuntimeError("injected crash after the handler wrote")
    return response
