"""Steps the local runner's schedule clock to chosen times, in a process of its own.

    python -m tests.support.scheduled_polls [--record CALLS.json] [--function NAME] START_S STEP_S ...

Reads the stack from the environment as the CLI does (TICKSTREAM_*, QUOTE_SOURCES_FILE), starts
the schedules as of START_S (with --function, only those targeting NAME: a stack has the quote
poller's and the chart builder's sweep), steps them at each STEP_S, and prints each schedule's
counts as JSON. A process per poll is a new execution environment, and its handlers' output
reaches the functions' log groups as in `tickstream consume` (pytest's capture would swallow it
in-process). With --record, every AWS call the handlers make is written to CALLS.json (see
recorded_cli).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from local_aws.stack import StackDeployer
from tests.support.recorded_cli import record_handler_calls
from tickstream.aws_clients import AwsClients
from tickstream.commands.consume import local_runner
from tickstream.settings import Settings


def main(start_s: float, steps: list[float], record: Path | None, function: str | None) -> None:
    calls = record_handler_calls() if record is not None else None
    settings = Settings.from_environment(os.environ)
    clients = AwsClients(settings)
    outputs = StackDeployer(clients.client("cloudformation"), settings.stack_name).outputs()
    runner = local_runner(clients, settings, outputs, None if function is None else frozenset({function}))
    runner.start_schedules(start_s)
    for at in steps:
        runner.step_schedules(at)
    if record is not None:
        record.write_text(json.dumps(calls))
    counts = {s.target.function.name: {"fired": s.fired, **asdict(s.queue.stats)} for s in runner.schedules}
    print(json.dumps(counts))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    options: dict[str, str] = {}
    while arguments[:1] in (["--record"], ["--function"]):
        options[arguments[0]] = arguments[1]
        arguments = arguments[2:]
    recording = Path(options["--record"]) if "--record" in options else None
    times = [float(a) for a in arguments]
    main(times[0], times[1:], recording, options.get("--function"))
