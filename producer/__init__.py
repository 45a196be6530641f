"""The producer: tick sources, KPL aggregation per shard, and PutRecords with retries."""
