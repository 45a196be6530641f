"""The aggregator Lambda: Kinesis ticks into exactly-once OHLC bars in DynamoDB and S3."""
