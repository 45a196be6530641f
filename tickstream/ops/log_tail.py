"""CloudWatch Logs of a function, read back the way `sam logs --tail` and `aws logs tail` show them."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# How often --follow asks for new events; `aws logs tail --follow` polls about this often too.
FOLLOW_POLL_SECONDS = 1.0
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class LogReadError(RuntimeError):
    """The log group could not be read."""


class LogGroupMissing(LogReadError):
    """No such log group: the function has not been deployed, or has never run."""


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    stream: str
    message: str
    event_id: str

    def line(self) -> str:
        moment = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(timespec="milliseconds")
        return f"{moment} {self.stream} {self.message.rstrip()}"


def parse_since(text: str, now_ms: int) -> int:
    """`10m`, `2h`, `1d`, `1h30m` ago, or an ISO-8601 time (no zone = UTC), as epoch ms."""
    spec = text.strip()
    parts = _DURATION.findall(spec)
    if parts and "".join(n + u for n, u in parts) == spec:
        since_ms = now_ms - 1000 * sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
        if since_ms < 0:
            raise ValueError(f"--since {text!r} reaches before 1970: give a shorter duration")
        return since_ms
    try:
        moment = datetime.fromisoformat(spec)
    except ValueError as exc:
        raise ValueError(f"--since {text!r}: give a duration like 10m, 2h, 1d or an ISO-8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class LogTail:
    """Reads one log group, oldest first, optionally keeping only lines containing a text."""

    def __init__(self, client: Any, group: str) -> None:
        self._client = client
        self._group = group

    def events(self, since_ms: int, text: str | None = None) -> Iterator[LogEvent]:
        """Events from `since_ms`, oldest first; with `text`, CloudWatch itself narrows them.

        A quoted filter pattern is CloudWatch's exact-phrase match; a text with a double quote
        in it cannot be quoted simply, so it is matched here only. Either way the substring
        check below is what decides.
        """
        request: dict[str, Any] = {"logGroupName": self._group, "startTime": since_ms}
        if text and '"' not in text:
            request["filterPattern"] = f'"{text}"'
        while True:
            try:
                page = self._client.filter_log_events(**request)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                    raise LogGroupMissing(f"log group {self._group} does not exist yet") from exc
                raise LogReadError(f"reading {self._group}: {exc}") from exc
            except BotoCoreError as exc:
                raise LogReadError(f"reading {self._group}: {exc}") from exc
            # Sorted by time only: a stable sort keeps each stream's own order (END before REPORT).
            for raw in sorted(page.get("events", []), key=lambda e: int(e["timestamp"])):
                event = LogEvent(raw["timestamp"], raw["logStreamName"], raw["message"], raw["eventId"])
                if text is None or text in event.message:
                    yield event
            token = page.get("nextToken")
            if not token:
                return
            request["nextToken"] = token

    def follow(self, since_ms: int, text: str | None, stop: threading.Event) -> Iterator[LogEvent]:
        """Events as they arrive until `stop` is set, each shown once.

        Each poll starts at the newest millisecond already shown, since more events may still
        land in it; the ids remembered are only those of that millisecond.
        """
        shown: dict[str, int] = {}
        start = since_ms
        while not stop.is_set():
            for event in self.events(start, text):
                if event.event_id not in shown:
                    shown[event.event_id] = event.timestamp_ms
                    yield event
            if shown:
                start = max(start, *shown.values())
                shown = {key: ms for key, ms in shown.items() if ms >= start}
            stop.wait(FOLLOW_POLL_SECONDS)
