"""One test per rule of Lambda's Kinesis event source mapping that the local runner reproduces.

The recorded event in tests/fixtures is the tumbling-window example of the Lambda developer
guide (also the sample Powertools tests against).
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local_aws.runner.events import FunctionConfig, Mapping, SourceRecord, window_event
from local_aws.runner.invoker import InProcessInvoker
from local_aws.runner.runner import ready_shards
from local_aws.runner.shard_processor import MAX_PAYLOAD_BYTES, Fetch, ShardCheckpoint, ShardProcessor
from stores.shard_reader import ShardInfo

SHARD = "shardId-000000000000"
NOW = 1_800_000_000.0
MAPPING = Mapping(
    uuid="esm-1",
    function=FunctionConfig(
        "aggregator", "arn:aws:lambda:us-east-1:123456789012:function:aggregator", "x.handler", 60, 512, {}
    ),
    source_arn="arn:aws:kinesis:us-east-1:123456789012:stream/ticks",
    region="us-east-1",
    starting_position="TRIM_HORIZON",
    batch_size=10,
    batching_window_s=0,
    tumbling_window_s=0,
    report_item_failures=True,
    bisect=False,
    max_retries=2,
    max_record_age_s=-1,
    destination_arn="arn:aws:sqs:us-east-1:123456789012:dlq",
)


def records(count: int, arrival: float = NOW, size: int = 10, first: int = 1) -> list[SourceRecord]:
    return [SourceRecord(SHARD, str(first + i), "pk", b"x" * size, arrival) for i in range(count)]


class ListSource:
    def __init__(self, items: list[SourceRecord], closed: bool = False) -> None:
        self.items = items
        self.closed = closed

    def fetch(self, after: str | None, limit: int) -> Fetch:
        start = (
            0
            if after is None
            else next(i + 1 for i, r in enumerate(self.items) if r.sequence_number == after)
        )
        chunk = self.items[start : start + limit]
        return Fetch(chunk, closed=self.closed and start + len(chunk) >= len(self.items))


class Script:
    """A handler made of a function of the event; records every event it was given."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any]) -> None:
        self.answer = answer
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> tuple[Any, str | None]:
        self.events.append(json.loads(json.dumps(event)))
        try:
            return self.answer(event), None
        except RuntimeError as exc:
            return None, str(exc)

    def sequences(self) -> list[list[int]]:
        return [[int(r["kinesis"]["sequenceNumber"]) for r in e["Records"]] for e in self.events]


class Checkpoints:
    def __init__(self) -> None:
        self.saved: dict[str, ShardCheckpoint] = {}
        self.history: list[str | None] = []

    def load(self, shard_id: str) -> ShardCheckpoint:
        return self.saved.get(shard_id, ShardCheckpoint())

    def save(self, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        self.saved[shard_id] = checkpoint
        self.history.append(checkpoint.sequence)


class Destination:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def processor(
    script: Script, items: list[SourceRecord], closed: bool = False, **mapping: Any
) -> tuple[ShardProcessor, Checkpoints, Destination, Clock]:
    checkpoints, destination, clock = Checkpoints(), Destination(), Clock()
    shard = ShardProcessor(
        dataclasses.replace(MAPPING, **mapping),
        SHARD,
        ListSource(items, closed),
        script,
        checkpoints,
        destination,
        clock,
        lambda _s: None,
    )
    return shard, checkpoints, destination, clock


def drain(shard: ShardProcessor, limit: int = 1000) -> None:
    for _ in range(limit):
        if not shard.step(draining=True):
            return
    raise AssertionError("the processor never went idle")


def ok(_event: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": []}


def test_batches_hold_at_most_batch_size_records_in_order() -> None:
    script = Script(ok)
    shard, checkpoints, _, _ = processor(script, records(25))
    drain(shard)
    assert script.sequences() == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
    assert checkpoints.history == ["10", "20", "25"]


def test_invoke_payload_stays_under_6_mb() -> None:
    script = Script(ok)
    shard, _, _, _ = processor(script, records(12, size=1_000_000))
    drain(shard)
    assert len(script.events) > 1
    assert all(len(json.dumps(e)) <= MAX_PAYLOAD_BYTES for e in script.events)
    assert sum(len(e["Records"]) for e in script.events) == 12


def test_batching_window_waits_for_more_records_until_it_elapses() -> None:
    script = Script(ok)
    shard, _, _, clock = processor(script, records(3), batching_window_s=5)
    assert shard.step(draining=False) is False
    clock.now += 4.9
    assert shard.step(draining=False) is False
    clock.now += 0.2
    assert shard.step(draining=False) is True
    assert script.sequences() == [[1, 2, 3]]


def counting_window(event: dict[str, Any]) -> dict[str, Any]:
    state = dict(event["state"])
    state["n"] = state.get("n", 0) + len(event["Records"])
    return {"state": state, "batchItemFailures": []}


def test_window_state_travels_between_invokes_and_the_final_invoke_ends_the_window() -> None:
    script = Script(counting_window)
    items = records(15, arrival=NOW + 1) + records(4, arrival=NOW + 61, first=100)
    shard, checkpoints, _, _ = processor(script, items, tumbling_window_s=60)
    drain(shard)
    shapes = [(len(e["Records"]), e["state"].get("n", 0), e["isFinalInvokeForWindow"]) for e in script.events]
    assert shapes == [(10, 0, False), (5, 10, False), (0, 15, True), (4, 0, False), (0, 4, True)]
    assert script.events[2]["window"] == {"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T08:01:00Z"}
    assert checkpoints.history == ["15", "103"]  # a window is checkpointed when it ends, not before


def test_a_stop_ends_the_tries_of_a_failing_final_invoke_and_leaves_the_window_to_replay() -> None:
    """The final invoke is tried until it succeeds, but not past a stop (Ctrl-C, SIGTERM): the
    window stays open and unsaved, so the next run reads its records again."""

    def final_fails(event: dict[str, Any]) -> dict[str, Any]:
        if event["isFinalInvokeForWindow"]:
            raise RuntimeError("the bars table is gone")
        return counting_window(event)

    script = Script(final_fails)
    stop = threading.Event()
    tries = []

    def pause(_seconds: float) -> None:
        tries.append(_seconds)
        if len(tries) == 3:
            stop.set()
        assert len(tries) < 10, "the final invoke was tried on after the stop"

    checkpoints = Checkpoints()
    shard = ShardProcessor(
        dataclasses.replace(MAPPING, tumbling_window_s=60),
        SHARD,
        ListSource(records(5), closed=True),
        script,
        checkpoints,
        Destination(),
        Clock(),
        pause,
        stop,
    )
    assert shard.step(draining=True) is True  # the batch
    assert shard.step(draining=True) is True  # the final invoke, tried until the stop
    finals = [e for e in script.events if e["isFinalInvokeForWindow"]]
    assert len(finals) == 4
    assert checkpoints.history == []
    assert (shard.stats.windows_closed, shard.stats.windows_left_open) == (0, 1)


def test_state_over_1_mb_ends_the_window_early_and_it_goes_on_with_fresh_state() -> None:
    def bloat(event: dict[str, Any]) -> dict[str, Any]:
        if event["isFinalInvokeForWindow"]:
            return {"state": {}}
        first = event["Records"][0]["kinesis"]["sequenceNumber"] == "1"
        return {"state": {"blob": "x" * (1024 * 1024) if first else "small"}}

    script = Script(bloat)
    shard, _, _, _ = processor(script, records(20), tumbling_window_s=60)
    drain(shard)
    flags = [
        (e["isFinalInvokeForWindow"], e["isWindowTerminatedEarly"], len(e["state"])) for e in script.events
    ]
    assert flags[:3] == [(False, False, 0), (True, True, 1), (False, False, 0)]
    assert script.events[1]["window"] == script.events[2]["window"]
    assert flags[-1] == (True, False, 1)


def test_a_window_response_without_state_is_a_failure() -> None:
    answers: Iterator[dict[str, Any]] = iter([{"batchItemFailures": []}])

    def forgetful(event: dict[str, Any]) -> dict[str, Any]:
        return next(answers, None) or counting_window(event)

    script = Script(forgetful)
    shard, _, destination, _ = processor(script, records(3), tumbling_window_s=60)
    drain(shard)
    assert script.sequences()[:2] == [[1, 2, 3], [1, 2, 3]]
    assert destination.messages == []


def test_partial_failure_checkpoints_before_the_lowest_failed_record_and_retries_from_it() -> None:
    calls = iter([{"batchItemFailures": [{"itemIdentifier": "7"}, {"itemIdentifier": "4"}]}])
    script = Script(lambda e: next(calls, {"batchItemFailures": []}))
    shard, checkpoints, _, _ = processor(script, records(10))
    drain(shard)
    assert script.sequences() == [list(range(1, 11)), list(range(4, 11))]
    assert checkpoints.history == ["3", "10"]


@pytest.mark.parametrize("identifier", ["", None, "999"])
def test_an_empty_null_or_unknown_item_identifier_fails_the_whole_batch(identifier: str | None) -> None:
    calls = iter([{"batchItemFailures": [{"itemIdentifier": identifier}]}])
    script = Script(lambda e: next(calls, {"batchItemFailures": []}))
    shard, checkpoints, _, _ = processor(script, records(5))
    drain(shard)
    assert script.sequences() == [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]]
    assert checkpoints.history == ["5"]


def test_bisect_isolates_the_record_that_keeps_failing() -> None:
    def poisoned(event: dict[str, Any]) -> dict[str, Any]:
        if any(r["kinesis"]["sequenceNumber"] == "6" for r in event["Records"]):
            raise RuntimeError("boom")
        return {"batchItemFailures": []}

    script = Script(poisoned)
    shard, _, destination, _ = processor(script, records(8), bisect=True, max_retries=1)
    drain(shard)
    assert [m["KinesisBatchInfo"]["startSequenceNumber"] for m in destination.messages] == ["6"]
    assert destination.messages[0]["KinesisBatchInfo"]["batchSize"] == 1
    done = sorted(s for seqs in script.sequences() if 6 not in seqs for s in seqs)
    assert done == [1, 2, 3, 4, 5, 7, 8]


def test_exhausted_retries_send_aws_on_failure_record_and_move_on() -> None:
    def always(_event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    script = Script(always)
    shard, checkpoints, destination, _ = processor(script, records(4), max_retries=2)
    drain(shard)
    assert len(script.events) == 3  # the first try and two retries
    (message,) = destination.messages
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert message["requestContext"]["functionArn"] == MAPPING.function.arn
    assert message["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert message["KinesisBatchInfo"] == {
        "shardId": SHARD,
        "startSequenceNumber": "1",
        "endSequenceNumber": "4",
        "approximateArrivalOfFirstRecord": "2027-01-15T08:00:00.000Z",
        "approximateArrivalOfLastRecord": "2027-01-15T08:00:00.000Z",
        "batchSize": 4,
        "streamArn": MAPPING.source_arn,
    }
    assert checkpoints.history == ["4"]


def test_records_older_than_the_maximum_age_are_discarded_without_an_invoke() -> None:
    script = Script(ok)
    items = records(3, arrival=NOW - 4000) + records(2, arrival=NOW, first=10)
    shard, _, destination, _ = processor(script, items, max_record_age_s=3600)
    drain(shard)
    assert script.sequences() == [[10, 11]]
    assert [m["requestContext"]["condition"] for m in destination.messages] == ["RecordAgeExceeded"]
    assert destination.messages[0]["KinesisBatchInfo"]["batchSize"] == 3


def test_a_restarted_processor_resumes_after_its_checkpoint() -> None:
    script = Script(ok)
    shard, checkpoints, destination, clock = processor(script, records(25))
    shard.step(draining=True)
    resumed = ShardProcessor(
        MAPPING, SHARD, ListSource(records(25)), script, checkpoints, destination, clock, time.sleep
    )
    drain(resumed)
    assert script.sequences() == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]


def test_a_closed_shard_closes_its_window_and_finishes() -> None:
    script = Script(counting_window)
    shard, checkpoints, _, _ = processor(script, records(3), closed=True, tumbling_window_s=60)
    while shard.step(draining=False):
        pass
    assert [e["isFinalInvokeForWindow"] for e in script.events] == [False, True]
    assert shard.finished
    assert checkpoints.saved[SHARD].finished


def test_children_wait_until_their_parents_are_finished() -> None:
    parent = ShardInfo("shardId-0", None, None, 0, 9, False)
    child_a = ShardInfo("shardId-1", "shardId-0", None, 0, 4, True)
    child_b = ShardInfo("shardId-2", "shardId-0", None, 5, 9, True)
    merged = ShardInfo("shardId-3", "shardId-1", "shardId-2", 0, 9, True)
    shards = [parent, child_a, child_b, merged]
    assert [s.shard_id for s in ready_shards(shards, {})] == ["shardId-0"]
    assert [s.shard_id for s in ready_shards(shards, {"shardId-0": True})] == [
        "shardId-0",
        "shardId-1",
        "shardId-2",
    ]
    finished = {"shardId-0": True, "shardId-1": True, "shardId-2": True}
    assert [s.shard_id for s in ready_shards(shards, finished)][-1] == "shardId-3"
    # A parent that has aged out of the stream no longer holds its children back.
    assert [s.shard_id for s in ready_shards([child_a], {})] == ["shardId-1"]


def keys_of(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: keys_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys_of(value[0])] if value else []
    return type(value).__name__


def test_events_have_the_shape_of_a_recorded_lambda_event() -> None:
    recorded = json.loads(
        (Path(__file__).parent.parent / "fixtures" / "kinesis_window_event.json").read_text()
    )
    ours = window_event(
        dataclasses.replace(MAPPING, tumbling_window_s=120),
        SHARD,
        records(1),
        1607497440,
        {"a": 1},
        False,
        False,
    )
    assert keys_of(ours) == keys_of(recorded) | {"state": {"a": "int"}}


def _handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> str:
    """A handler module importable for this test only; its handler's path for the invoker."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}.handler"


def test_the_invoker_enforces_the_timeout_and_gives_a_lambda_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _handler_module(
        tmp_path,
        monkeypatch,
        "slow_handler",
        "import time, os\n"
        "def handler(event, context):\n"
        "    if event.get('sleep'):\n"
        "        time.sleep(event['sleep'])\n"
        "    return {'name': context.function_name, 'left': context.get_remaining_time_in_millis(),\n"
        "            'env': os.environ.get('ONLY_IN_FUNCTION'), 'id': context.aws_request_id}\n",
    )
    invoker = InProcessInvoker(handler, "fn", MAPPING.function.arn, 128, 1, {"ONLY_IN_FUNCTION": "yes"})
    answer, error = invoker.invoke({})
    assert error is None
    assert answer["name"] == "fn"
    assert 0 < answer["left"] <= 1000
    assert answer["env"] == "yes"
    assert "ONLY_IN_FUNCTION" not in __import__("os").environ
    answer, error = invoker.invoke({"sleep": 3})
    assert answer is None
    assert error == "Task timed out after 1.00 seconds"


def test_a_sealed_handler_sees_only_the_aws_variables_its_environment_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Lambda a function sees its own variables and Lambda's reserved ones, never the shell's
    session token, profile or DynamoDB endpoint, which botocore in the handler would use."""
    handler = _handler_module(
        tmp_path,
        monkeypatch,
        "aws_variables_handler",
        "import os\n"
        "def handler(event, context):\n"
        "    return {k: v for k, v in os.environ.items() if k.startswith('AWS_') and 'LAMBDA' not in k}\n",
    )
    shell = {
        "AWS_PROFILE": "shell",
        "AWS_DEFAULT_PROFILE": "shell-default",
        "AWS_SESSION_TOKEN": "shell-token",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
        "AWS_CONFIG_FILE": "/shell/config",
    }
    for key, value in shell.items():
        monkeypatch.setenv(key, value)
    given = {"AWS_ACCESS_KEY_ID": "testing", "AWS_CONFIG_FILE": os.devnull}
    sealed = InProcessInvoker(handler, "fn", MAPPING.function.arn, 128, 1, given, hidden=("AWS_",))
    seen, error = sealed.invoke({})
    assert error is None
    assert seen == given
    inheriting = InProcessInvoker(handler, "fn", MAPPING.function.arn, 128, 1, given)
    seen, _ = inheriting.invoke({})
    assert {k: seen[k] for k in shell} == {**shell, "AWS_CONFIG_FILE": os.devnull}
    assert {k: os.environ[k] for k in shell} == shell  # the shell's, back after each call


def test_a_sealed_handler_that_runs_past_its_timeout_stays_sealed_until_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _handler_module(
        tmp_path,
        monkeypatch,
        "overtime_handler",
        "import os, time\n"
        "seen = []\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    seen.append(os.environ.get('AWS_SESSION_TOKEN'))\n",
    )
    monkeypatch.setenv("AWS_SESSION_TOKEN", "shell-token")
    invoker = InProcessInvoker(handler, "fn", MAPPING.function.arn, 128, 1, {}, hidden=("AWS_",))
    assert invoker.invoke({"sleep": 1.5}) == (None, "Task timed out after 1.00 seconds")
    assert invoker.invoke({}) == (None, None)
    assert importlib.import_module("overtime_handler").seen == [None, None]
    assert os.environ["AWS_SESSION_TOKEN"] == "shell-token"


def test_a_handler_that_fails_to_load_fails_its_invocation_and_the_next_loads_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Lambda, an init error is the invocation's error, not the runner's."""
    handler = _handler_module(
        tmp_path,
        monkeypatch,
        "init_error_handler",
        "import os\n"
        "if os.environ.get('BROKEN'):\n"
        "    raise ValueError('Unknown level: garbage')\n"
        "def handler(event, context):\n"
        "    return 'loaded'\n",
    )
    monkeypatch.setenv("BROKEN", "1")
    invoker = InProcessInvoker(handler, "fn", MAPPING.function.arn, 128, 1, {})
    answer, error = invoker.invoke({})
    assert answer is None
    assert error is not None
    assert error.startswith("ValueError: Unknown level: garbage")
    monkeypatch.delenv("BROKEN")
    assert invoker.invoke({}) == ("loaded", None)


def test_an_invocation_waits_for_the_handler_that_timed_out_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _handler_module(
        tmp_path,
        monkeypatch,
        "overrunning_handler",
        "import time\n"
        "spans = []\n"
        "def handler(event, context):\n"
        "    started = time.monotonic()\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    spans.append((started, time.monotonic()))\n",
    )
    invoker = InProcessInvoker(handler, "fn", MAPPING.function.arn, 128, 1, {})
    _, error = invoker.invoke({"sleep": 1.5})
    assert error == "Task timed out after 1.00 seconds"
    _, error = invoker.invoke({})
    assert error is None
    (_, overrun_ended), (retry_started, _) = importlib.import_module("overrunning_handler").spans
    assert retry_started >= overrun_ended


def test_dynamodb_stream_events_and_on_failure_records_have_their_own_shape() -> None:
    stream = "arn:aws:dynamodb:us-east-1:123456789012:table/bars/stream/2026-11-02T00:00:00.000"
    image = {"pk": {"S": "A#1m"}, "sk": {"N": "60"}}
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"Keys": image, "NewImage": image, "SequenceNumber": "7", "StreamViewType": "NEW_IMAGE"},
    }
    items = [SourceRecord(SHARD, "7", "", json.dumps(record).encode(), NOW)]

    def always(_event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    script = Script(always)
    shard, _, destination, _ = processor(script, items, source_arn=stream, max_retries=0)
    drain(shard)
    assert script.events[0] == {"Records": [{**record, "eventSourceARN": stream}]}
    (message,) = destination.messages
    assert "KinesisBatchInfo" not in message
    assert message["DDBStreamBatchInfo"]["streamArn"] == stream
    assert message["DDBStreamBatchInfo"]["startSequenceNumber"] == "7"


def test_each_functions_first_invocation_is_its_cold_start_though_they_share_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lambda runs each function in its own environment, so each one's first invocation logs
    `"cold_start": true`; Powertools keeps the flag per process, which the runner shares."""
    import functions.alarm_notifier.handler as notifier  # noqa: PLC0415 - a real Powertools handler

    logs = io.StringIO()
    stream_handler = notifier.logger.registered_handler
    assert isinstance(stream_handler, logging.StreamHandler)
    monkeypatch.setattr(stream_handler, "stream", logs)
    monkeypatch.setattr(notifier.metrics, "namespace", "tickstream/test")
    environment = {"POWERTOOLS_TRACE_DISABLED": "true"}
    for name in ("first-function", "second-function"):
        invoker = InProcessInvoker(notifier.__name__ + ".handler", name, f"arn:{name}", 128, 30, environment)
        for _ in range(2):
            assert invoker.invoke({"not": "sns"})[1] is None
    cold = [json.loads(line)["cold_start"] for line in logs.getvalue().splitlines()]
    assert cold == [True, False, True, False]
