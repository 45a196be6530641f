"""`charts` and `view`: charts drawn now from the bars table, and the site served from its bucket.

Each command imports what it uses when it runs, so `--help` and the other commands do not pay for it."""

from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING, Annotated

import typer

from tickstream.commands.up import deployer, site_url
from tickstream.console import err, fail, install_stop_handlers, out, state

if TYPE_CHECKING:
    from local_aws.stack import StackOutputs
    from tickstream.aws_clients import AwsClients


def build_charts(
    clients: AwsClients, outputs: StackOutputs, symbol: str | None, pending: bool = False
) -> int:
    """Draws a symbol's charts, every symbol's, or (pending) those the chart builder left waiting."""
    from functions.chart_builder.service import (  # matplotlib: only when drawing
        ChartBuilder,
        draw_in_parallel,
    )
    from stores.bars_table import BarsTable
    from stores.site_bucket import SiteBucket

    table = BarsTable(clients.client("dynamodb"), outputs.BarsTableName)

    builder = ChartBuilder(table, SiteBucket(clients.client("s3"), outputs.SiteBucketName))
    if pending:
        series = builder.pending()
    else:
        series = {(s, i) for s, i in table.list_series() if symbol is None or s == symbol}
    if symbol is not None and not series:
        raise fail(
            f"no bars of {symbol} in {outputs.BarsTableName}: run `tickstream produce --symbols {symbol}` "
            "and `tickstream consume --until-idle` first"
        )
    rebuilt = builder.rebuild(series, int(time.time()), draw=draw_in_parallel)
    for (name, interval), reason in sorted(rebuilt.failed.items()):
        err().print(f"not drawn: {name} {interval}: {reason}", markup=False, highlight=False)
    return rebuilt.drawn


def charts(
    symbol: Annotated[
        str | None, typer.Option(metavar="SYMBOL", help="Rebuild this symbol's charts only.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every symbol's charts.")] = False,
    pending: Annotated[
        bool, typer.Option("--pending", help="Draw the charts left waiting for their interval to pass.")
    ] = False,
) -> None:
    """Rebuild charts now from the bars table, with the site's index."""
    from market.ticks import InvalidTick, validate_symbol
    from tickstream.aws_clients import AwsClients

    if [symbol is not None, all_, pending].count(True) != 1:
        raise fail("give one of --symbol SYMBOL, --all or --pending")
    if symbol is not None:
        try:
            validate_symbol(symbol)
        except InvalidTick as exc:
            raise fail(str(exc)) from exc
    clients = AwsClients(state.settings)
    outputs = deployer(clients, state.settings).outputs()
    drawn = build_charts(clients, outputs, symbol, pending)
    out().print(f"rendered {drawn} chart(s); site: {site_url(state.settings, outputs)}")


def view(
    port: Annotated[
        int,
        typer.Option(
            envvar="TICKSTREAM_VIEW_PORT",
            metavar="PORT",
            min=0,
            max=65535,
            help="Port to serve the charts on.",
        ),
    ] = 8080,
    host: Annotated[
        str,
        typer.Option(
            envvar="TICKSTREAM_VIEW_HOST",
            metavar="HOST",
            help="Address to listen on; 0.0.0.0 in a container.",
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve the chart site from its bucket on HOST:PORT until stopped."""
    from stores.site_bucket import SiteBucket
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.site_viewer import SiteViewer

    clients = AwsClients(state.settings)
    outputs = deployer(clients, state.settings).outputs()
    try:
        viewer = SiteViewer(SiteBucket(clients.client("s3"), outputs.SiteBucketName), host, port)
    except OSError as exc:
        taken = exc.errno == errno.EADDRINUSE
        step = "give a free port with --port or TICKSTREAM_VIEW_PORT" if taken else "check --host and --port"
        raise fail(f"cannot listen on {host}:{port} ({exc.strerror}): {step}") from exc
    out().print(f"charts of stack {state.settings.stack_name} at http://{host}:{viewer.port}/ (Ctrl-C stops)")
    viewer.serve_until(install_stop_handlers())
