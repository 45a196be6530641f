"""A deterministic crash, for proving that no crash point loses or doubles a tick.

With TICKSTREAM_KILL_AFTER_WRITES=k, `tickstream consume` ends its process, as SIGKILL would
(no cleanup, no flush, exit status 137), right after the k-th DynamoDB or S3 write any part of it
makes: the runner's checkpoints, the handlers' bars, day files and quarantine, the chart
builder's site. A test runs k = 1, 2, ... until a run ends on its own, restarting after each
kill, and compares the bars with a reference. Local only: nothing deployed reads the variable.
"""

from __future__ import annotations

import os
from typing import Any

import boto3

# The calls that change DynamoDB or S3 (reads, and writes elsewhere such as logs, do not count).
WRITE_OPERATIONS = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "CompleteMultipartUpload",
    }
)
# What a shell reports for a process ended by SIGKILL: 128 + 9.
KILLED_EXIT_STATUS = 137


class KillAfterWrites:
    def __init__(self, writes: int) -> None:
        self._left = writes

    def install(self, *sessions: boto3.Session) -> None:
        """On these sessions and on boto3's default one, which the handlers' clients come from."""
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        for session in (*sessions, boto3.DEFAULT_SESSION):
            for service in ("dynamodb", "s3"):
                session.events.register(f"after-call.{service}", self._after_call)

    def _after_call(self, model: Any, **_: Any) -> None:
        if model.name in WRITE_OPERATIONS:
            self._left -= 1
            if self._left == 0:
                os._exit(KILLED_EXIT_STATUS)
