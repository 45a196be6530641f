"""Lambda entry point of the alarm notifier, subscribed to the stack's alarm topic.

SNS invokes it asynchronously with one CloudWatch alarm notification per record; each change
worth a message is posted to the team's Slack-compatible webhook (functions.alarm_notifier.notices
says which). The webhook's URL is read from its SSM parameter at each invocation (cached for
five minutes), so a rotated URL needs no redeploy, and it is never logged.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from alerts.slack_webhook import SlackWebhook
from alerts.webhook_config import WebhookUnavailable, configured_webhook
from functions.alarm_notifier.service import NotifyReport, notify
from functions.alarm_notifier.settings import NotifierSettings

logger = Logger(service="alarm-notifier")
# The namespace comes from POWERTOOLS_METRICS_NAMESPACE, which the template sets per stack.
metrics = Metrics(service="alarm-notifier")
tracer = Tracer(service="alarm-notifier")
_built: NotifierSettings | None = None
# Kept back from the function's timeout: a webhook that makes the posts wait is given up in time
# for the failure to be logged and counted, rather than cut off by Lambda and retried.
RESERVED_FOR_REPORTING_S = 10.0


def _environment() -> NotifierSettings:
    global _built  # noqa: PLW0603 - the cold-start cache Lambda reuses between invocations
    if _built is None:
        _built = NotifierSettings.from_environment(os.environ)
    return _built


def messages_of(event: dict[str, Any]) -> list[str]:
    """The SNS messages of the event; records of another shape are passed on as empty messages,
    which are reported as unreadable."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return [""]
    texts = []
    for record in SNSEvent(event).records:
        try:
            texts.append(str(record.sns.message))
        except (KeyError, TypeError, AttributeError):
            texts.append("")
    return texts


def _report(report: NotifyReport) -> None:
    metrics.add_metric("AlarmNotificationsSent", MetricUnit.Count, len(report.sent))
    metrics.add_metric("AlarmNotificationsFailed", MetricUnit.Count, len(report.failed))
    metrics.add_metric(
        "AlarmNotificationsSkipped", MetricUnit.Count, len(report.skipped) + len(report.unposted)
    )
    metrics.add_metric("AlarmMessagesUnreadable", MetricUnit.Count, len(report.unreadable))
    for change in report.sent:
        logger.info("alarm posted", extra={"alarm": change.name, "state": change.new_state})
    for change, detail in report.failed:
        logger.error(
            "alarm not delivered", extra={"alarm": change.name, "state": change.new_state, "detail": detail}
        )
    for change in report.skipped:
        logger.info(
            "alarm change not posted (not news)",
            extra={"alarm": change.name, "from": change.old_state, "state": change.new_state},
        )
    for change in report.unposted:
        logger.info("alarm not posted (no webhook)", extra={"alarm": change.name, "state": change.new_state})
    for reason in report.unreadable:
        logger.error("not an alarm notification", extra={"detail": reason})


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    settings = _environment()
    webhook: SlackWebhook | None
    try:
        webhook = configured_webhook(settings.webhook_url, settings.webhook_parameter)
    except WebhookUnavailable:
        logger.exception("alarm webhook unreadable")
        webhook = None
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVED_FOR_REPORTING_S
    report = notify(messages_of(event), webhook, settings.cli_command, deadline)
    if webhook is None and (settings.webhook_parameter or settings.webhook_url):
        # Failures, not a setting: a team that configured a webhook expects these messages.
        report.failed += [(change, "webhook URL unreadable") for change in report.unposted]
        report.unposted.clear()
    _report(report)
    return {
        "sent": len(report.sent),
        "failed": len(report.failed),
        "skipped": len(report.skipped) + len(report.unposted),
        "unreadable": len(report.unreadable),
    }
