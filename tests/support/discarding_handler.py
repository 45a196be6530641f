"""The aggregator handler failing on every event that holds one given record, as a bug would.

Lambda retries, bisects down to that record alone, retries it and gives it up to the OnFailure
destination; the records around it are taken. DISCARD_SEQUENCE names the record.
"""

from __future__ import annotations

import os
from typing import Any

from functions.aggregator.handler import handler as real_handler


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    doomed = os.environ["DISCARD_SEQUENCE"]
    if any(record["kinesis"]["sequenceNumber"] == doomed for record in event.get("Records", [])):
        raise RuntimeError(f"injected failure on record {doomed}")
    response: dict[str, Any] = real_handler(event, context)
    return response
