"""Data access for the local runner: the only runner module that talks to boto3."""

from __future__ import annotations

import base64
import math
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from local_aws.runner.async_invocations import DEFAULT_ASYNC_RETRIES, DEFAULT_MAX_EVENT_AGE_S, AsyncTarget
from local_aws.runner.events import FunctionConfig, Mapping, SourceRecord
from local_aws.runner.invoker import InvocationRecord
from local_aws.runner.metrics import MetricDatum
from local_aws.runner.schedules import ScheduledTarget, UnsupportedSchedule, rate_seconds
from local_aws.runner.shard_processor import Fetch, ShardCheckpoint
from stores.shard_reader import MAX_RECORDS_PER_GET, ShardInfo, ShardReader


class RunnerIOError(RuntimeError):
    """The local stack could not be read or written; the message names the call."""


def stream_mappings(lambda_client: Any, function_names: frozenset[str]) -> list[Mapping]:
    """Enabled Kinesis and DynamoDB Streams mappings of these functions, with their functions' settings."""
    found = []
    try:
        for page in lambda_client.get_paginator("list_event_source_mappings").paginate():
            for esm in page["EventSourceMappings"]:
                source = esm["EventSourceArn"]
                if (
                    not (":kinesis:" in source or ":dynamodb:" in source)
                    or esm.get("State", "Enabled") != "Enabled"
                ):
                    continue
                if esm["FunctionArn"].rsplit(":", 1)[-1] not in function_names:
                    continue
                function = lambda_client.get_function_configuration(FunctionName=esm["FunctionArn"])
                found.append(_mapping(esm, function))
    except (ClientError, BotoCoreError) as exc:
        raise RunnerIOError(f"reading event source mappings: {exc}") from exc
    return found


def _function_config(function: dict[str, Any]) -> FunctionConfig:
    """A GetFunctionConfiguration answer, with Lambda's defaults for what it leaves out."""
    return FunctionConfig(
        name=function["FunctionName"],
        arn=function["FunctionArn"],
        handler=function["Handler"],
        timeout_s=int(function.get("Timeout", 3)),
        memory_mb=int(function.get("MemorySize", 128)),
        environment=dict(function.get("Environment", {}).get("Variables", {})),
    )


def _mapping(esm: dict[str, Any], function: dict[str, Any]) -> Mapping:
    arn = esm["FunctionArn"]
    return Mapping(
        uuid=esm["UUID"],
        function=_function_config({**function, "FunctionArn": arn}),
        source_arn=esm["EventSourceArn"],
        region=arn.split(":")[3],
        starting_position=esm.get("StartingPosition", "TRIM_HORIZON"),
        batch_size=int(esm.get("BatchSize", 100)),
        batching_window_s=int(esm.get("MaximumBatchingWindowInSeconds", 0)),
        tumbling_window_s=int(esm.get("TumblingWindowInSeconds", 0)),
        report_item_failures="ReportBatchItemFailures" in esm.get("FunctionResponseTypes", []),
        bisect=bool(esm.get("BisectBatchOnFunctionError", False)),
        max_retries=int(esm.get("MaximumRetryAttempts", -1)),
        max_record_age_s=int(esm.get("MaximumRecordAgeInSeconds", -1)),
        destination_arn=esm.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") or None,
    )


def scheduled_targets(
    events: Any, lambda_client: Any, function_names: frozenset[str]
) -> list[ScheduledTarget]:
    """Enabled schedule rules of the default bus whose targets are these functions."""
    found = []
    try:
        for page in events.get_paginator("list_rules").paginate():
            for rule in page["Rules"]:
                expression = rule.get("ScheduleExpression")
                if not expression or rule.get("State") != "ENABLED":
                    continue
                targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
                for target in targets:
                    name = target["Arn"].rsplit(":", 1)[-1] if ":function:" in target["Arn"] else None
                    if name not in function_names:
                        continue
                    if "InputPath" in target or "InputTransformer" in target:
                        raise RunnerIOError(f"rule {rule['Name']}: only constant Input is run locally")
                    found.append(_scheduled_target(rule, target, expression, lambda_client))
    except (ClientError, BotoCoreError) as exc:
        raise RunnerIOError(f"reading schedule rules: {exc}") from exc
    except UnsupportedSchedule as exc:
        raise RunnerIOError(str(exc)) from exc
    return found


def _scheduled_target(
    rule: dict[str, Any], target: dict[str, Any], expression: str, lambda_client: Any
) -> ScheduledTarget:
    invoked = async_target(lambda_client, target["Arn"])
    return ScheduledTarget(
        rule_arn=rule["Arn"],
        period_s=rate_seconds(expression),
        constant_input=target.get("Input"),
        function=invoked.function,
        max_retries=invoked.max_retries,
        max_event_age_s=invoked.max_event_age_s,
        on_failure_arn=invoked.on_failure_arn,
    )


def async_target(lambda_client: Any, function_arn: str) -> AsyncTarget:
    """A function as asynchronous invocations reach it: its configuration and its invoke config."""
    function = lambda_client.get_function_configuration(FunctionName=function_arn)
    try:
        invoke_config = lambda_client.get_function_event_invoke_config(FunctionName=function_arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        invoke_config = {}
    return AsyncTarget(
        _function_config(function),
        max_retries=int(invoke_config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)),
        max_event_age_s=int(invoke_config.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)),
        on_failure_arn=invoke_config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        or None,
    )


class PolledShard(ABC):
    """Reads one shard after a sequence number, keeping the iterator between calls as a poller does.

    A request after another sequence number than the last record read (a restarted runner, a
    checkpoint moved back) gets a fresh iterator. No next iterator means the shard is closed
    and read to its end. Subclasses say how to get an iterator and a page of records.
    """

    max_per_get = MAX_RECORDS_PER_GET

    def __init__(self, client: Any, shard_id: str, starting_position: str) -> None:
        self._client = client
        self.shard_id = shard_id
        self._starting_position = starting_position
        self._iterator: str | None = None
        self._iterator_after: str | None = None
        self._started = False

    def fetch(self, after: str | None, limit: int) -> Fetch:
        if not self._started or self._iterator_after != after:
            self._iterator = self._call("get_shard_iterator", **self._iterator_request(after))[
                "ShardIterator"
            ]
            self._iterator_after = after
            self._started = True
        if self._iterator is None:
            return Fetch([], closed=True)
        page = self._call("get_records", ShardIterator=self._iterator, Limit=min(limit, self.max_per_get))
        records = [self._record(r) for r in page["Records"]]
        self._iterator = page.get("NextShardIterator")
        if records:
            self._iterator_after = records[-1].sequence_number
        return Fetch(records, closed=self._iterator is None)

    @abstractmethod
    def _iterator_request(self, after: str | None) -> dict[str, Any]:
        """GetShardIterator's arguments: from the starting position, or after a sequence number."""

    @abstractmethod
    def _record(self, raw: dict[str, Any]) -> SourceRecord:
        """One record of a GetRecords answer, as the runner carries it."""

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"{operation} on {self.shard_id}: {exc}") from exc


class KinesisShardSource(PolledShard):
    def __init__(self, client: Any, stream_name: str, shard_id: str, starting_position: str) -> None:
        super().__init__(client, shard_id, starting_position)
        self._stream = stream_name

    def _iterator_request(self, after: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {"StreamName": self._stream, "ShardId": self.shard_id}
        if after is None:
            return {**request, "ShardIteratorType": self._starting_position}
        return {**request, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}

    def _record(self, raw: dict[str, Any]) -> SourceRecord:
        arrival = raw["ApproximateArrivalTimestamp"].timestamp()
        return SourceRecord(self.shard_id, raw["SequenceNumber"], raw["PartitionKey"], raw["Data"], arrival)


# GetRecords on a DynamoDB stream returns at most 1,000 records (DynamoDB Streams API reference).
MAX_STREAM_RECORDS_PER_GET = 1_000


def dynamodb_stream_shards(client: Any, stream_arn: str) -> list[ShardInfo]:
    shards: list[ShardInfo] = []
    kwargs: dict[str, Any] = {"StreamArn": stream_arn}
    try:
        while True:
            description = client.describe_stream(**kwargs)["StreamDescription"]
            for s in description["Shards"]:
                ended = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                shards.append(ShardInfo(s["ShardId"], s.get("ParentShardId"), None, 0, 0, not ended))
            if not description.get("LastEvaluatedShardId"):
                return shards
            kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
    except (ClientError, BotoCoreError) as exc:
        raise RunnerIOError(f"describing stream {stream_arn}: {exc}") from exc


class DynamoStreamSource(PolledShard):
    max_per_get = MAX_STREAM_RECORDS_PER_GET

    def __init__(self, client: Any, stream_arn: str, shard_id: str, starting_position: str) -> None:
        super().__init__(client, shard_id, starting_position)
        self._stream_arn = stream_arn

    def _iterator_request(self, after: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {"StreamArn": self._stream_arn, "ShardId": self.shard_id}
        if after is None:
            return {**request, "ShardIteratorType": self._starting_position}
        return {**request, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}

    def _record(self, raw: dict[str, Any]) -> SourceRecord:
        created = _epoch(raw["dynamodb"].get("ApproximateCreationDateTime"))
        data = orjson.dumps(_lambda_shape(raw), default=_base64_of_bytes)
        return SourceRecord(self.shard_id, raw["dynamodb"]["SequenceNumber"], "", data, created)


def _base64_of_bytes(value: Any) -> str:
    """Binary attributes (B, BS) reach Lambda base64-encoded, as in AWS's stream events."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _epoch(moment: Any) -> float:
    return float(moment.timestamp()) if moment is not None else time.time()


def _lambda_shape(record: dict[str, Any]) -> dict[str, Any]:
    """A stream record as Lambda passes it: the API's datetime becomes epoch seconds."""
    dynamodb = dict(record["dynamodb"])
    if "ApproximateCreationDateTime" in dynamodb:
        dynamodb["ApproximateCreationDateTime"] = _epoch(dynamodb["ApproximateCreationDateTime"])
    shaped = {k: v for k, v in record.items() if k != "dynamodb"}
    shaped["dynamodb"] = dynamodb
    return shaped


class DynamoCheckpoints:
    """Checkpoints per (mapping, shard) in the RunnerCheckpointsTable: a killed runner resumes from them."""

    def __init__(self, client: Any, table_name: str, mapping_uuid: str) -> None:
        self._client = client
        self._table = table_name
        self._uuid = mapping_uuid

    def load(self, shard_id: str) -> ShardCheckpoint:
        try:
            item = self._client.get_item(
                TableName=self._table,
                Key={"mapping_shard": {"S": f"{self._uuid}#{shard_id}"}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"reading checkpoint of {shard_id}: {exc}") from exc
        if not item:
            return ShardCheckpoint()
        return ShardCheckpoint(item.get("sequence", {}).get("S"), item.get("finished", {}).get("BOOL", False))

    def save(self, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        item: dict[str, Any] = {
            "mapping_shard": {"S": f"{self._uuid}#{shard_id}"},
            "finished": {"BOOL": checkpoint.finished},
        }
        if checkpoint.sequence is not None:
            item["sequence"] = {"S": checkpoint.sequence}
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"writing checkpoint of {shard_id}: {exc}") from exc


class SqsDestination:
    """An SQS OnFailure destination, found by its ARN."""

    def __init__(self, client: Any, queue_arn: str) -> None:
        self._client = client
        _, _, _, _, account, name = queue_arn.split(":", 5)
        try:
            self._url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"finding OnFailure queue {queue_arn}: {exc}") from exc

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=orjson.dumps(message).decode())
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"sending to the OnFailure destination: {exc}") from exc


def stream_reader(kinesis: Any, stream_arn: str) -> ShardReader:
    return ShardReader(kinesis, stream_arn.rsplit("/", 1)[1])


class LambdaLogWriter:
    """Writes an invocation to /aws/lambda/<function> as Lambda does: START, the output, END, REPORT.

    The log group is the template's; streams are the runtime's own, one per process here as one
    per execution environment there.
    """

    def __init__(self, client: Any, function_name: str, memory_mb: int) -> None:
        self._client = client
        self._group = f"/aws/lambda/{function_name}"
        self._memory_mb = memory_mb
        self._stream: str | None = None

    def write(self, record: InvocationRecord) -> None:
        request = record.request_id
        lines = [f"START RequestId: {request} Version: $LATEST"]
        lines += [line for line in record.output.splitlines() if line.strip()]
        if record.error is not None:
            lines.append(f"[ERROR] {record.error}")
        lines.append(f"END RequestId: {request}")
        report = (
            f"REPORT RequestId: {request}\tDuration: {record.duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, math.ceil(record.duration_ms))} ms\t"
            f"Memory Size: {self._memory_mb} MB\t"
            f"Max Memory Used: {record.max_memory_mb} MB"
        )
        if record.init_ms is not None:
            report += f"\tInit Duration: {record.init_ms:.2f} ms"
        lines.append(report)
        ended = record.started_ms + int(record.duration_ms)
        events = [{"timestamp": record.started_ms, "message": line} for line in lines[:-2]]
        events += [{"timestamp": ended, "message": line} for line in lines[-2:]]
        try:
            if self._stream is None:
                self._stream = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex
                self._client.create_log_stream(logGroupName=self._group, logStreamName=self._stream)
            self._client.put_log_events(
                logGroupName=self._group, logStreamName=self._stream, logEvents=events
            )
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"writing logs to {self._group}: {exc}") from exc


# PutMetricData takes at most 1,000 metrics per request (CloudWatch API reference, PutMetricData).
MAX_METRICS_PER_PUT = 1000


class CloudWatchMetrics:
    """Publishes metric data to CloudWatch, grouped by namespace as PutMetricData requires."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def put(self, data: Sequence[MetricDatum]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for datum in data:
            by_namespace.setdefault(datum.namespace, []).append(datum.as_put_metric_data())
        try:
            for namespace, items in by_namespace.items():
                for start in range(0, len(items), MAX_METRICS_PER_PUT):
                    self._client.put_metric_data(
                        Namespace=namespace, MetricData=items[start : start + MAX_METRICS_PER_PUT]
                    )
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"publishing metrics: {exc}") from exc


def alarm_subscribers(
    sns: Any, lambda_client: Any, function_names: frozenset[str]
) -> dict[str, list[tuple[str, AsyncTarget]]]:
    """By topic ARN: the subscriptions (ARN, function) of these functions to SNS topics."""
    found: dict[str, list[tuple[str, AsyncTarget]]] = {}
    try:
        for page in sns.get_paginator("list_subscriptions").paginate():
            for subscription in page["Subscriptions"]:
                endpoint = subscription.get("Endpoint", "")
                if (
                    subscription.get("Protocol") != "lambda"
                    or endpoint.rsplit(":", 1)[-1] not in function_names
                ):
                    continue
                found.setdefault(subscription["TopicArn"], []).append(
                    (subscription["SubscriptionArn"], async_target(lambda_client, endpoint))
                )
    except (ClientError, BotoCoreError) as exc:
        raise RunnerIOError(f"reading SNS subscriptions: {exc}") from exc
    return found


def metric_alarms(cloudwatch: Any) -> list[dict[str, Any]]:
    try:
        pages = cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
        return [alarm for page in pages for alarm in page["MetricAlarms"]]
    except (ClientError, BotoCoreError) as exc:
        raise RunnerIOError(f"reading the alarms: {exc}") from exc


class AlarmStateMarks:
    """The state of each alarm the runner last acted on, in the RunnerCheckpointsTable."""

    PREFIX = "alarm#"

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def load(self) -> dict[str, str]:
        try:
            pages = self._client.get_paginator("scan").paginate(TableName=self._table, ConsistentRead=True)
            items = [item for page in pages for item in page["Items"]]
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"reading the alarm states acted on: {exc}") from exc
        return {
            item["mapping_shard"]["S"].removeprefix(self.PREFIX): item["state"]["S"]
            for item in items
            if item["mapping_shard"]["S"].startswith(self.PREFIX) and "state" in item
        }

    def save(self, alarm_name: str, state: str) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={"mapping_shard": {"S": self.PREFIX + alarm_name}, "state": {"S": state}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise RunnerIOError(f"writing the state of alarm {alarm_name}: {exc}") from exc
