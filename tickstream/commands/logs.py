"""`logs`: a function's CloudWatch Logs, like `sam logs --tail`.

Each command imports what it uses when it runs, so `--help` and the other commands do not pay for it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from tickstream.commands.up import deployer
from tickstream.console import fail, install_stop_handlers, state

if TYPE_CHECKING:
    from local_aws.stack import StackOutputs


# Short names for the template's functions, as `tickstream logs aggregator` takes them.
FUNCTION_ALIASES = {
    "aggregator": "AggregatorFunctionName",
    "chart-builder": "ChartBuilderFunctionName",
    "charts": "ChartBuilderFunctionName",
    "quote-poller": "QuotePollerFunctionName",
    "alarm-notifier": "AlarmNotifierFunctionName",
}


def function_name(outputs: StackOutputs, name: str) -> str:
    """A short name of FUNCTION_ALIASES, or a deployed function's full name."""
    alias = FUNCTION_ALIASES.get(name)
    if alias is not None:
        deployed = str(getattr(outputs, alias))
        if not deployed:
            how = (
                "tickstream up --parameter QuotePollMinutes=1" if name == "quote-poller" else "tickstream up"
            )
            raise fail(f"this stack has no {name}: deploy it with `{how}`")
        return deployed
    known = outputs.function_names()
    if name not in known:
        raise fail(f"unknown function {name!r}: give {', '.join(FUNCTION_ALIASES)} or one of {sorted(known)}")
    return name


def logs(
    function: Annotated[
        str,
        typer.Argument(
            metavar="FUNCTION",
            help="aggregator, chart-builder (or charts), quote-poller, alarm-notifier, or a full name.",
        ),
    ],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    since: Annotated[
        str, typer.Option(metavar="WHEN", help="From this long ago (10m, 2h, 1d) or an ISO-8601 time.")
    ] = "10m",
    filter_: Annotated[
        str | None, typer.Option("--filter", metavar="TEXT", help="Only lines containing this text.")
    ] = None,
) -> None:
    """Print a function's CloudWatch Logs, like `sam logs --tail`.

    The log group is /aws/lambda/<name>."""
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.log_tail import LogTail, parse_since

    try:
        since_ms = parse_since(since, int(time.time() * 1000))
    except ValueError as exc:
        raise fail(str(exc)) from exc
    clients = AwsClients(state.settings)
    outputs = deployer(clients, state.settings).outputs()
    tail = LogTail(clients.client("logs"), f"/aws/lambda/{function_name(outputs, function)}")
    if follow:
        stop = install_stop_handlers()
        for event in tail.follow(since_ms, filter_, stop):
            typer.echo(event.line())
    else:
        for event in tail.events(since_ms, filter_):
            typer.echo(event.line())
