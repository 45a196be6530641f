"""What AWS charges, for the benchmarks that turn requests and CPU time into dollars."""

# us-east-1 list prices as AWS published them in 2025 (aws.amazon.com/<service>/pricing).
KINESIS_SHARD_HOUR = 0.015
KINESIS_PER_MILLION_PUT_UNITS = 0.014
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND_X86 = 0.0000166667
DYNAMODB_PER_MILLION_WRITE_UNITS = 0.625
DYNAMODB_PER_MILLION_READ_UNITS = 0.125
S3_PER_THOUSAND_PUTS = 0.005
S3_PER_THOUSAND_GETS = 0.0004
PRICE_NOTE = "us-east-1 list price"
