"""How fast a source's ticks go out: apart from the pipeline, so the CLI can name it in its options
without importing what sends ticks."""

from __future__ import annotations

from enum import StrEnum


class Pace(StrEnum):
    REALTIME = "realtime"
    MAX = "max"
