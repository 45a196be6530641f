"""tickstream: market ticks through Kinesis into exactly-once OHLC bars and candlestick charts,
on the embedded local AWS (moto) or, with --aws, on AWS itself.

Start with `tickstream up`, then `produce`, `consume --until-idle`, `status` and `view`."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from tickstream.commands import charts, consume, demo, logs, produce, up
from tickstream.console import show_error, state

# A bug's traceback shows no local variables: they may hold an API key or a webhook URL.
app = typer.Typer(
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


def _show_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"tickstream {version('tickstream')}")
        raise typer.Exit


@app.callback()
def main(
    aws: Annotated[
        bool, typer.Option("--aws", help="Use real AWS (region and profile from the environment).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback behind an error.")] = False,
    _version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """tickstream: market ticks through Kinesis into OHLC bars and charts, on AWS or locally."""
    state.start(debug, aws)


# The commands, in the order `--help` lists them.
for command in (
    up.up,
    up.down,
    up.status,
    consume.consume,
    consume.redrive,
    charts.charts,
    logs.logs,
    charts.view,
    produce.produce,
    demo.demo,
):
    app.command()(command)


def expected_errors() -> tuple[type[Exception], ...]:
    """What commands end in when the stack, the endpoint, the credentials or the input is not
    right, as opposed to a bug: each is reported in one line with the next step, without a
    traceback. Imported here, once a command has failed, so that no command pays for them."""
    from lambda_build.artifacts import ArtifactError
    from local_aws.embedded import EmbeddedAwsError
    from local_aws.runner.aws_io import RunnerIOError
    from local_aws.stack import StackError
    from producer.kinesis_writer import KinesisError
    from stores.bars_table import BarsTableError
    from stores.shard_reader import StreamReadError
    from stores.site_bucket import SiteError
    from tickstream.failures import BOTOCORE_ERRORS
    from tickstream.ops.health import HealthReadError
    from tickstream.ops.log_tail import LogReadError

    return (
        *BOTOCORE_ERRORS,
        StackError,
        ArtifactError,
        EmbeddedAwsError,
        StreamReadError,
        BarsTableError,
        SiteError,
        RunnerIOError,
        HealthReadError,
        LogReadError,
        KinesisError,
    )


def run() -> None:
    """The `tickstream` command: the commands, with their expected errors reported in one line
    (exit 2); `--debug` adds the traceback."""
    try:
        app()
    except Exception as exc:
        if not isinstance(exc, expected_errors()):
            raise
        from tickstream.failures import explain

        if state.debug:
            traceback.print_exception(exc)
        show_error(explain(exc, state.settings))
        sys.exit(2)
