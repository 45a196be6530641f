"""Consumers of the tick stream: the aggregator, the local runner, and reading shards back."""
