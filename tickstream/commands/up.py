"""`up`, `down` and `status`: the stack's life, and where its resources are.

Each command imports what it uses when it runs, so `--help` and the other commands do not pay for it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from tickstream.console import fail, out, state
from tickstream.settings import Settings

if TYPE_CHECKING:
    from local_aws.stack import StackDeployer, StackOutputs
    from tickstream.aws_clients import AwsClients


def deployer(clients: AwsClients, settings: Settings) -> StackDeployer:
    from local_aws.stack import StackDeployer

    return StackDeployer(clients.client("cloudformation"), settings.stack_name)


def site_url(settings: Settings, outputs: StackOutputs) -> str:
    return f"{settings.endpoint_url}/{outputs.SiteBucketName}/index.html"


def up(
    shards: Annotated[
        int | None,
        typer.Option(
            min=1, max=500, metavar="N", help="Open shards of the tick stream (default: as deployed, else 4)."
        ),
    ] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="A template parameter, e.g. QuotePollMinutes=1 (repeatable)."),
    ] = None,
) -> None:
    """Start the embedded AWS and deploy infra/template.yaml to it.

    With AWS_ENDPOINT_URL set, no server is started: the stack is deployed there."""
    bring_up(state.settings, shards, parameter or [])


def bring_up(settings: Settings, shards: int | None, parameters: list[str]) -> None:
    """What `up` does, and `demo` first."""
    from local_aws.deploy import check_given, deploy_stack
    from local_aws.embedded import EmbeddedAws
    from tickstream.aws_clients import AwsClients

    check_given(settings, parameters)  # a typo starts no server and creates nothing
    if settings.embedded:
        local = EmbeddedAws(settings.state_dir, settings.port)
        started = local.start()
        out().print(
            f"{'started' if started else 'reusing'} moto server at {local.url} (log {local.log_file})"
        )
    if settings.endpoint_url is None:
        raise fail(
            "up and demo deploy to a local stack only; deploy to AWS with `sam build && sam deploy --guided`"
        )
    deployment = deploy_stack(AwsClients(settings), settings, shards, parameters)
    for key, (before, after) in sorted(deployment.changed.items()):
        what = "resharded the stream" if key == "ShardCount" else "changed"
        out().print(f"{what}: {key} {before} -> {after}")
    out().print(
        f"stack {settings.stack_name} {deployment.action} on {settings.target}: "
        f"stream {deployment.outputs.StreamName} ({deployment.parameters['ShardCount']} shards)"
    )


def down() -> None:
    """Stop the embedded AWS that `up` started (its state goes with it)."""
    from local_aws.embedded import EmbeddedAws

    settings = state.settings
    if not settings.embedded:
        raise fail("down stops the embedded moto server only; delete a remote stack with your usual tools")
    stopped = EmbeddedAws(settings.state_dir, settings.port).stop()
    out().print("stopped moto server" if stopped else "no moto server of ours was running")


def status() -> None:
    """Stream and shards, DLQ depth, and where everything is."""
    from rich.table import Table

    from stores.shard_reader import ShardReader
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.health import HEALTH_WINDOW_S, HealthReader

    clients = AwsClients(state.settings)
    outputs = deployer(clients, state.settings).outputs()
    shards = ShardReader(clients.client("kinesis"), outputs.StreamName).shards()
    dlq = clients.client("sqs").get_queue_attributes(
        QueueUrl=outputs.DeadLetterQueueUrl, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    out().print(f"target  {state.settings.target}")
    out().print(f"stream  {outputs.StreamName}: {sum(s.is_open for s in shards)} open / {len(shards)} shards")
    table = Table("shard", "state", "parent", "hash keys from", "to")
    for s in shards:
        table.add_row(
            s.shard_id,
            "open" if s.is_open else "closed",
            s.parent_shard_id or "",
            f"{s.starting_hash_key:.3e}",
            f"{s.ending_hash_key:.3e}",
        )
    out().print(table)
    out().print(f"bars    table {outputs.BarsTableName}")
    out().print(f"data    s3://{outputs.DataBucketName}/   site s3://{outputs.SiteBucketName}/")
    waiting = "" if dlq == "0" else ": fix the cause, then `tickstream redrive`"
    # By name: moto answers with an sqs.us-east-1.amazonaws.com URL even for the local stack.
    queue = outputs.DeadLetterQueueUrl.rsplit("/", 1)[-1]
    out().print(f"DLQ     {dlq} message(s) in queue {queue}{waiting}")
    health = HealthReader(clients.client("cloudwatch"), clients.client("logs")).read(
        f"tickstream/{state.settings.stack_name}",
        outputs.AggregatorFunctionName,
        outputs.ChartBuilderFunctionName,
        outputs.AlarmTopicArn,
        time.time(),
        outputs.QuotePollerFunctionName or None,
    )
    age = "n/a (no batch)" if health.iterator_age_ms is None else f"{health.iterator_age_ms:,.0f} ms"
    window = f"last {HEALTH_WINDOW_S // 60} min"
    out().print(f"flow    {health.ticks_per_second:,.1f} ticks/s aggregated, {window}; iterator age {age}")
    out().print(
        f"rejected  {health.rejected:,} tick(s) quarantined to "
        f"s3://{outputs.DataBucketName}/rejected/, {window}"
    )
    out().print(f"errors  {health.errors} function error(s), {window}")
    if health.last_error is not None:
        out().print(f"last error  {health.last_error.line()}", markup=False, highlight=False)
    firing = health.alarms_firing
    named = f": {', '.join(firing)}" if firing else ""
    out().print(f"alarms  {len(firing)} of {len(health.alarms)} in ALARM{named}")
    if health.quotes is not None:
        quotes = health.quotes
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(quotes.failures.items()))
        out().print(
            f"quotes  {quotes.symbols_polled} symbol(s) polled, {quotes.ticks_sent} tick(s) sent, "
            f"{sum(quotes.failures.values())} without a tick{f' ({reasons})' if reasons else ''}, {window}"
        )
    out().print(f"charts  {site_url(state.settings, outputs)}")
