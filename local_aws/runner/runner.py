"""Drives the stack's Kinesis and DynamoDB Streams event source mappings (one processor per
shard), its EventBridge schedules (one clock per rule) and its alarms' SNS actions.

Shards and schedules are visited in turn, one batch or invocation at a time, so handlers run
one at a time in this process (their environments differ). A child shard waits until its
parents are finished, as Lambda processes parents before children after a reshard.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from typing import Any

from local_aws.runner.alarm_actions import AlarmChange, changes, notification, sns_event
from local_aws.runner.async_invocations import AsyncQueue
from local_aws.runner.aws_io import (
    AlarmStateMarks,
    CloudWatchMetrics,
    DynamoCheckpoints,
    DynamoStreamSource,
    KinesisShardSource,
    LambdaLogWriter,
    SqsDestination,
    alarm_subscribers,
    dynamodb_stream_shards,
    metric_alarms,
    scheduled_targets,
    stream_mappings,
    stream_reader,
)
from local_aws.runner.events import FunctionConfig, Mapping
from local_aws.runner.invoker import InProcessInvoker
from local_aws.runner.metrics import emf_metrics, lambda_metrics
from local_aws.runner.schedules import ScheduleRun
from local_aws.runner.shard_processor import ProcessorStats, RecordSource, ShardProcessor
from stores.shard_reader import ShardInfo

# Lambda polls each shard at a base rate of once per second (Lambda developer guide, Kinesis polling).
POLL_INTERVAL_S = 1.0
SHARD_REFRESH_S = 10.0
# How often the runner reads the alarms' states: set-alarm-state acts at once on AWS.
ALARM_READ_S = 1.0


def ready_shards(shards: Iterable[ShardInfo], finished: MappingType[str, bool]) -> list[ShardInfo]:
    """Shards whose parents (if still in the stream) are finished: children wait for their parents."""
    listed = list(shards)
    known = {s.shard_id for s in listed}
    ready = []
    for shard in listed:
        parents = [p for p in (shard.parent_shard_id, shard.adjacent_parent_shard_id) if p and p in known]
        if all(finished.get(p, False) for p in parents):
            ready.append(shard)
    return ready


class LoggedInvoker:
    """Invokes, then does what Lambda and CloudWatch would: logs the invocation to the function's
    log group, turns its EMF lines into metrics, and publishes Lambda's own metrics of it."""

    def __init__(
        self,
        invoker: InProcessInvoker,
        logs: LambdaLogWriter,
        metrics: CloudWatchMetrics,
        function_name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._invoker = invoker
        self._logs = logs
        self._metrics = metrics
        self._function_name = function_name
        self._clock = clock

    def invoke(self, event: dict[str, Any]) -> tuple[Any, str | None]:
        answer = self._invoker.invoke(event)
        record = self._invoker.last_record
        if record is not None:
            self._logs.write(record)
            now_ms = int(self._clock() * 1000)
            self._metrics.put(
                emf_metrics(record.output)
                + lambda_metrics(
                    self._function_name, event, record.duration_ms, answer[1] is not None, now_ms
                )
            )
        return answer

    def invoke_error(self, event: dict[str, Any]) -> str | None:
        """Invokes as an asynchronous invocation does: only the error, if any, matters."""
        return self.invoke(event)[1]


@dataclass
class MappingRun:
    mapping: Mapping
    invoker: LoggedInvoker
    checkpoints: DynamoCheckpoints
    destination: SqsDestination | None
    processors: dict[str, ShardProcessor] = field(default_factory=dict)
    shards: dict[str, ShardInfo] = field(default_factory=dict)

    def stats(self) -> ProcessorStats:
        total = ProcessorStats()
        for processor in self.processors.values():
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(processor.stats, name))
        return total


@dataclass
class AlarmRun:
    """The alarms' SNS actions towards the functions subscribed to their topics."""

    subscribers: dict[str, list[tuple[str, str]]]  # topic ARN -> (subscription ARN, function name)
    queues: dict[str, tuple[AsyncQueue, LoggedInvoker, SqsDestination | None]]  # by function name
    marks: AlarmStateMarks
    last_seen: dict[str, str]
    next_read_s: float = 0.0
    published: int = 0

    def publish(self, change: AlarmChange, now_s: float) -> None:
        """What CloudWatch and SNS do for a change: the notification to each subscribed function."""
        _, _, _, region, account, _ = str(change.alarm.get("AlarmArn", "arn:aws:cloudwatch:::")).split(":", 5)
        subject, message = notification(change, region, account)
        for topic in change.topics():
            for subscription, function in self.subscribers.get(topic, []):
                self.queues[function][0].put(sns_event(topic, subscription, subject, message, now_s), now_s)
                self.published += 1


class LocalRunner:
    def __init__(
        self,
        client: Callable[[str], Any],
        function_names: frozenset[str],
        checkpoints_table: str,
        handler_environment: MappingType[str, str],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        hidden: tuple[str, ...] = (),
    ) -> None:
        self._hidden = hidden  # the shell's variables handlers do not see: see InProcessInvoker
        self._stop = threading.Event()  # run()'s: a stop also ends a window's final tries
        self._client = client
        self._function_names = function_names
        self._checkpoints_table = checkpoints_table
        self._handler_environment = dict(handler_environment)
        self._clock = clock
        self._sleep = sleep
        self.runs: list[MappingRun] = []
        self.schedules: list[ScheduleRun] = []
        self._schedule_steps: list[Callable[[float], bool]] = []
        self.alarms: AlarmRun | None = None

    def run(self, until_idle: bool, stop: threading.Event | None = None) -> list[MappingRun]:
        """Until every shard is caught up with no window open (until_idle), or until stopped.

        Schedules fire whenever they are due meanwhile; they never keep an until_idle run going.
        """
        stop = self._stop = stop or threading.Event()
        self.runs = [self._start(m) for m in stream_mappings(self._client("lambda"), self._function_names)]
        self.start_schedules(self._clock())
        self.start_alarms()
        next_refresh = 0.0
        while not stop.is_set():
            if self._clock() >= next_refresh:
                for run in self.runs:
                    self._add_new_shards(run)
                next_refresh = self._clock() + SHARD_REFRESH_S
            self.step_schedules(self._clock())
            self.step_alarms(self._clock())
            progressed = False
            for run in self.runs:
                finished = {shard_id: p.finished for shard_id, p in run.processors.items()}
                for info in ready_shards(run.shards.values(), finished):
                    progressed = run.processors[info.shard_id].step(draining=until_idle) or progressed
            if not progressed:
                if until_idle:
                    break
                stop.wait(POLL_INTERVAL_S)
        return self.runs

    def _invoker(self, function: FunctionConfig) -> LoggedInvoker:
        environment = {
            **function.environment,
            **self._handler_environment,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        }
        invoker = InProcessInvoker(
            function.handler,
            function.name,
            function.arn,
            function.memory_mb,
            function.timeout_s,
            environment,
            self._hidden,
        )
        logs = LambdaLogWriter(self._client("logs"), function.name, function.memory_mb)
        metrics = CloudWatchMetrics(self._client("cloudwatch"))
        return LoggedInvoker(invoker, logs, metrics, function.name, self._clock)

    def _destination(self, arn: str | None) -> SqsDestination | None:
        return SqsDestination(self._client("sqs"), arn) if arn and ":sqs:" in arn else None

    def _start(self, mapping: Mapping) -> MappingRun:
        logged = self._invoker(mapping.function)
        checkpoints = DynamoCheckpoints(self._client("dynamodb"), self._checkpoints_table, mapping.uuid)
        return MappingRun(mapping, logged, checkpoints, self._destination(mapping.destination_arn))

    def start_schedules(self, now_s: float) -> list[ScheduleRun]:
        """Reads the schedule rules targeting the functions; each fires first at its next period."""
        targets = scheduled_targets(self._client("events"), self._client("lambda"), self._function_names)
        self.schedules = [ScheduleRun.starting(t, now_s) for t in targets]
        self._schedule_steps = [self._schedule_step(run) for run in self.schedules]
        return self.schedules

    def step_schedules(self, now_s: float) -> bool:
        """Fires what is due at `now_s` and runs the invocations (and retries) due; True if any ran."""
        ran = [step(now_s) for step in self._schedule_steps]
        return any(ran)

    def start_alarms(self) -> AlarmRun:
        """Reads the functions' subscriptions to SNS topics and the alarm states last acted on."""
        found = alarm_subscribers(self._client("sns"), self._client("lambda"), self._function_names)
        subscribers: dict[str, list[tuple[str, str]]] = {}
        queues: dict[str, tuple[AsyncQueue, LoggedInvoker, SqsDestination | None]] = {}
        for topic, subscriptions in found.items():
            for subscription, target in subscriptions:
                subscribers.setdefault(topic, []).append((subscription, target.function.name))
                if target.function.name not in queues:
                    queues[target.function.name] = (
                        AsyncQueue(target),
                        self._invoker(target.function),
                        self._destination(target.on_failure_arn),
                    )
        marks = AlarmStateMarks(self._client("dynamodb"), self._checkpoints_table)
        self.alarms = AlarmRun(subscribers, queues, marks, marks.load())
        return self.alarms

    def step_alarms(self, now_s: float) -> bool:
        """Publishes the alarm changes seen since the last read (at most once a second) and runs
        the deliveries due; True if any ran. Without subscribers it reads nothing."""
        run = self.alarms
        if run is None or not run.subscribers:
            return False
        ran = False
        if now_s >= run.next_read_s:
            run.next_read_s = now_s + ALARM_READ_S
            for change in changes(metric_alarms(self._client("cloudwatch")), run.last_seen):
                run.publish(change, now_s)
                ran = self._deliver(run, now_s) or ran
                # Marked once delivered, change by change: a runner stopped before a change was
                # marked delivers that one again, and only that one.
                run.marks.save(change.name, change.new_state)
                run.last_seen[change.name] = change.new_state
        return self._deliver(run, now_s) or ran

    def _deliver(self, run: AlarmRun, now_s: float) -> bool:
        """Runs the SNS deliveries due (first tries and retries); True if any ran."""
        ran = False
        for queue, logged, destination in run.queues.values():
            on_failure = destination.send if destination is not None else None
            ran = queue.run_due(now_s, logged.invoke_error, on_failure) or ran
        return ran

    def _schedule_step(self, run: ScheduleRun) -> Callable[[float], bool]:
        logged = self._invoker(run.target.function)
        destination = self._destination(run.target.on_failure_arn)

        def step(now_s: float) -> bool:
            return run.step(
                now_s,
                logged.invoke_error,
                destination.send if destination is not None else None,
            )

        return step

    def _add_new_shards(self, run: MappingRun) -> None:
        mapping = run.mapping
        if mapping.from_dynamodb:
            streams = self._client("dynamodbstreams")
            shards = dynamodb_stream_shards(streams, mapping.source_arn)
        else:
            kinesis = self._client("kinesis")
            reader = stream_reader(kinesis, mapping.source_arn)
            shards = reader.shards()
        for shard in shards:
            run.shards[shard.shard_id] = shard
            if shard.shard_id in run.processors:
                continue
            source: RecordSource
            if mapping.from_dynamodb:
                source = DynamoStreamSource(
                    streams, mapping.source_arn, shard.shard_id, mapping.starting_position
                )
            else:
                source = KinesisShardSource(
                    kinesis, reader.stream_name, shard.shard_id, mapping.starting_position
                )
            run.processors[shard.shard_id] = ShardProcessor(
                mapping,
                shard.shard_id,
                source,
                run.invoker,
                run.checkpoints,
                run.destination,
                self._clock,
                self._sleep,
                self._stop,
            )
