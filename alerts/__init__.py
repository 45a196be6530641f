"""Price alerts: rules evaluated on bar updates, notified through a Slack-compatible webhook."""
