"""`consume` and `redrive`: the template's event source mappings and schedules run locally, and the
dead-letter queue brought back into the bars.

Each command imports what it uses when it runs, so `--help` and the other commands do not pay for it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from tickstream.commands.charts import build_charts
from tickstream.commands.up import deployer, site_url
from tickstream.console import err, fail, install_stop_handlers, out, state
from tickstream.settings import Settings

if TYPE_CHECKING:
    from local_aws.runner.runner import LocalRunner
    from local_aws.stack import StackOutputs
    from tickstream.aws_clients import AwsClients


def handler_environment(settings: Settings, outputs: StackOutputs) -> dict[str, str]:
    """What in-process handlers need to reach the same local stack as the runner.

    Tracing is off: the local stack has no X-Ray daemon for Powertools Tracer to send to. Chart
    links in alerts point at the local site, and alerts go to ALERT_WEBHOOK_URL when it is set.
    The quote poller polls the source QUOTE_SOURCES_FILE names instead of its packaged one.
    """
    from tickstream.aws_clients import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    environment = {
        "AWS_REGION": settings.region,
        "AWS_DEFAULT_REGION": settings.region,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "SITE_URL": site_url(settings, outputs).removesuffix("index.html"),
    }
    if settings.alert_webhook_url is not None:
        environment["ALERT_WEBHOOK_URL"] = settings.alert_webhook_url
    if settings.quote_sources_file is not None:
        environment["QUOTE_SOURCES_FILE"] = str(settings.quote_sources_file)
    if settings.endpoint_url is not None:
        environment["AWS_ENDPOINT_URL"] = settings.endpoint_url
    if settings.local_credentials:
        environment.update(AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_KEY)
    if settings.embedded:
        # Sealed off the shell's AWS_ variables (hidden_from_handlers): these are all they see,
        # with no config or credentials file to read a profile or an endpoint from. The port
        # names this stack in the alarm notifier's hints.
        environment.update(
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            TICKSTREAM_PORT=str(settings.port),
        )
    return environment


def hidden_from_handlers(settings: Settings) -> tuple[str, ...]:
    """Prefixes of the shell's variables the handlers run here do not see (those the runner
    gives them aside). A function on Lambda sees only its own variables: never the shell's
    Powertools settings (POWERTOOLS_LOG_LEVEL=garbage failed every invocation) or tickstream's.
    On the embedded default, no AWS_ variable either (the shell's token, profile, config files,
    endpoints); on AWS_ENDPOINT_URL, no per-service endpoint, which botocore would prefer to it,
    so the handlers reach the stack the CLI deployed and reads."""
    always = ("POWERTOOLS_", "TICKSTREAM_")
    if settings.embedded:
        return ("AWS_", *always)
    if settings.endpoint_url is not None:
        return ("AWS_ENDPOINT_URL_", *always)
    return always


def local_runner(
    clients: AwsClients, settings: Settings, outputs: StackOutputs, functions: frozenset[str] | None = None
) -> LocalRunner:
    """The runner of the stack's mappings and schedules (of all its functions, or of `functions`),
    its handlers reaching the same local stack."""
    from local_aws.deploy import runner_checkpoints_table
    from local_aws.runner.runner import LocalRunner

    return LocalRunner(
        clients.client,
        outputs.function_names() if functions is None else functions,
        runner_checkpoints_table(clients, settings),
        handler_environment(settings, outputs),
        hidden=hidden_from_handlers(settings),
    )


def run_consumer(
    clients: AwsClients, settings: Settings, outputs: StackOutputs, until_idle: bool
) -> LocalRunner:
    from local_aws.stack import StackError

    try:
        runner = local_runner(clients, settings, outputs)
    except StackError as exc:
        raise fail(f"{exc}: the runner's checkpoints table is deployed by `tickstream up`") from exc
    stop = install_stop_handlers("finishing the batches in flight, then stopping")
    if not until_idle:
        err().print("following the stream: running its event source mappings (Ctrl-C stops)")
    runner.run(until_idle=until_idle, stop=stop)
    return runner


def consume(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep polling for new records (the default).")
    ] = False,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once every shard is caught up.")
    ] = False,
) -> None:
    """Run the template's event source mappings locally, as Lambda does."""
    if follow and until_idle:
        raise fail("--follow and --until-idle exclude each other")
    consume_stack(state.settings, until_idle)


def consume_stack(settings: Settings, until_idle: bool) -> None:
    """What `consume` does, and `demo` with its own webhook receiver; then what each mapping and
    schedule did."""
    from local_aws.runner.kill_switch import KillAfterWrites
    from tickstream.aws_clients import AwsClients

    clients = AwsClients(settings)
    if settings.kill_after_writes is not None:
        KillAfterWrites(settings.kill_after_writes).install(clients.session)
    outputs = deployer(clients, settings).outputs()
    runner = run_consumer(clients, settings, outputs, until_idle=until_idle)
    for run in runner.runs:
        stats = run.stats()
        out().print(
            f"{run.mapping.function.name}: {stats.invokes} invocations, {stats.records_done} records done, "
            f"{stats.windows_closed} windows closed, {stats.records_discarded} discarded "
            f"({stats.failure_messages} OnFailure messages)"
        )
        if stats.windows_left_open:
            err().print(
                f"{run.mapping.function.name}: {stats.windows_left_open} window(s) left open: their final "
                "invoke kept failing until the stop; the next `consume` reads them again (its logs: "
                f"`tickstream logs {run.mapping.function.name.removeprefix(settings.stack_name + '-')}`)"
            )
    for schedule in runner.schedules:
        queue = schedule.queue.stats
        out().print(
            f"{schedule.target.function.name}: {schedule.fired} scheduled events, "
            f"{queue.invokes} invocations, {queue.errors} errors, "
            f"{queue.retried} retried, {queue.dropped} dropped"
        )
    alarms = runner.alarms
    if alarms is not None and alarms.queues:
        out().print(f"alarm actions: {alarms.published} SNS notification(s) of alarm changes")
        for name, (deliveries, _, _) in alarms.queues.items():
            done = deliveries.stats
            out().print(
                f"{name}: {done.invokes} invocations, {done.errors} errors, "
                f"{done.retried} retried, {done.dropped} dropped"
            )


def redrive() -> None:
    """Bring the dead-letter queue's ticks into the bars, once.

    The queue holds the batches Lambda gave up on; fix their cause first."""
    from functions.aggregator.data_lake import DataLake
    from functions.aggregator.ledger import Ledger, LedgerError
    from functions.aggregator.service import Aggregator, AggregatorConfig
    from functions.aggregator.settings import AggregatorSettings, AggregatorSettingsError
    from stores.bars_table import BarsTable
    from stores.shard_reader import ShardReader
    from tickstream.aws_clients import AwsClients
    from tickstream.ops.redrive import DeadLetterQueue, RedriveError
    from tickstream.ops.redrive import redrive as recover_discarded

    clients = AwsClients(state.settings)
    outputs = deployer(clients, state.settings).outputs()
    function = clients.client("lambda").get_function_configuration(
        FunctionName=outputs.AggregatorFunctionName
    )
    try:
        settings = AggregatorSettings.from_environment(function.get("Environment", {}).get("Variables", {}))
    except AggregatorSettingsError as exc:
        raise fail(f"the deployed aggregator's {exc}") from exc
    aggregator = Aggregator(
        Ledger(clients.client("dynamodb"), settings.ledger_table),
        BarsTable(clients.client("dynamodb"), settings.bars_table),
        DataLake(clients.client("s3"), settings.data_bucket),
        AggregatorConfig(settings.intervals, settings.late_after_ms),
    )
    try:
        summary = recover_discarded(
            DeadLetterQueue(clients.client("sqs"), outputs.DeadLetterQueueUrl),
            ShardReader(clients.client("kinesis"), outputs.StreamName),
            aggregator,
            outputs.StreamArn,
            outputs.BarsTableStreamArn,
            lambda: build_charts(clients, outputs, None),
            out().print,
        )
    except (RedriveError, LedgerError) as exc:
        raise fail(str(exc)) from exc
    out().print(
        f"redrive: {summary.ranges} discarded range(s), {summary.records} records, "
        f"{summary.recovered} ticks recovered, {summary.already_held} already in the bars, "
        f"{summary.unknowable} unknowable (no tick id), {summary.rejected} rejected; "
        f"{summary.chart_batches} chart batch(es), {summary.charts_drawn} chart(s) drawn"
    )
    if summary.left:
        for reason in summary.left[:20]:
            err().print(f"left in the queue: {reason}", markup=False, highlight=False)
        raise fail(
            f"{len(summary.left)} message(s) left in {outputs.DeadLetterQueueUrl}: run the redrive again"
        )
