"""The alarm notifier: CloudWatch alarm changes from the alarm topic to the team's chat."""
