"""Data access for writing to Kinesis: the only producer module that talks to boto3."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from producer.batching import OutgoingRecord
from producer.shard_map import ShardRange


class KinesisError(Exception):
    """Base of what can go wrong talking to Kinesis, in our terms rather than botocore's."""


class StreamNotFound(KinesisError):
    """The stream does not exist (or is not visible with these credentials): retrying will not help."""


class KinesisRejected(KinesisError):
    """The call as a whole was refused in a way that will not pass on retry (validation, access)."""


class KinesisUnavailable(KinesisError):
    """The call as a whole failed in a way worth retrying: throttling, 5xx, a dropped connection."""


_RETRYABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottlingException",
        "ThrottlingException",
    }
)


@dataclass(frozen=True, slots=True)
class PutOutcome:
    """One entry of a PutRecords answer: where it landed, or why it did not."""

    shard_id: str | None
    sequence_number: str | None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


def _translate(exc: ClientError, stream_name: str) -> KinesisError:
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ResourceNotFoundException":
        return StreamNotFound(f"stream {stream_name!r} not found: run `tickstream up` first")
    if (
        code in _RETRYABLE_CALL_ERRORS
        or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
    ):
        return KinesisUnavailable(f"{code}: {exc}")
    return KinesisRejected(f"{code}: {exc}")


class KinesisStreamWriter:
    def __init__(self, client: Any, stream_name: str) -> None:
        self._client = client
        self.stream_name = stream_name

    def open_shards(self) -> list[ShardRange]:
        shards: list[ShardRange] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        try:
            while True:
                page = self._client.list_shards(**kwargs)
                shards.extend(
                    ShardRange(
                        s["ShardId"],
                        int(s["HashKeyRange"]["StartingHashKey"]),
                        int(s["HashKeyRange"]["EndingHashKey"]),
                    )
                    for s in page["Shards"]
                    if "EndingSequenceNumber" not in s["SequenceNumberRange"]
                )
                if not page.get("NextToken"):
                    return shards
                kwargs = {"NextToken": page["NextToken"]}
        except ClientError as exc:
            raise _translate(exc, self.stream_name) from exc
        except BotoCoreError as exc:
            raise KinesisUnavailable(str(exc)) from exc

    def put_records(self, records: Sequence[OutgoingRecord]) -> list[PutOutcome]:
        entries = []
        for record in records:
            entry: dict[str, Any] = {"Data": record.data, "PartitionKey": record.partition_key}
            if record.explicit_hash_key is not None:
                entry["ExplicitHashKey"] = record.explicit_hash_key
            entries.append(entry)
        try:
            answer = self._client.put_records(StreamName=self.stream_name, Records=entries)
        except ClientError as exc:
            raise _translate(exc, self.stream_name) from exc
        except BotoCoreError as exc:
            raise KinesisUnavailable(str(exc)) from exc
        outcomes = [
            PutOutcome(r.get("ShardId"), r.get("SequenceNumber"), r.get("ErrorCode"), r.get("ErrorMessage"))
            for r in answer["Records"]
        ]
        if len(outcomes) != len(records):
            raise KinesisUnavailable(f"PutRecords answered {len(outcomes)} entries for {len(records)} sent")
        return outcomes
