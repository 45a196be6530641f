"""Consumers of the tick stream: reading shards back, and (next) the aggregator and local runner."""
