"""Where a function finds the team's webhook: given directly (locally, ALERT_WEBHOOK_URL), or in
the SSM SecureString the template's AlertWebhookParameter names (on AWS), so the URL, which
carries the webhook's secret token, is never in the template, the environment or a log."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

from alerts.slack_webhook import SlackWebhook

# Powertools keeps a parameter this long before reading it again: a rotated URL is used within
# five minutes, and a burst of alarms reads SSM once.
URL_MAX_AGE_S = 300


class WebhookUnavailable(RuntimeError):
    """The parameter holding the URL could not be read (missing, denied, throttled)."""


def configured_webhook(url: str | None, parameter: str | None) -> SlackWebhook | None:
    """The webhook, or None when the deployment configures none."""
    if url is None and parameter:
        try:
            url = str(parameters.get_parameter(parameter, decrypt=True, max_age=URL_MAX_AGE_S))
        except parameters.exceptions.GetParameterError as exc:
            raise WebhookUnavailable(f"reading SSM parameter {parameter}: {exc}") from exc
    if not url:
        return None
    try:
        return SlackWebhook(url)
    except ValueError as exc:  # "http://[hooks…": the message would quote the URL
        raise WebhookUnavailable(f"the webhook URL is not a URL ({type(exc).__name__})") from None
