"""A local stack for tests: the real `tickstream up` on a free port, torn down by the fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from local_aws.embedded import free_local_port
from local_aws.stack import StackDeployer, StackOutputs
from stores.shard_reader import ShardReader, UserRecordView, user_records

TICKSTREAM = [sys.executable, "-m", "tickstream"]


def clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without any AWS settings of the machine it runs on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TICKSTREAM_"))}
    env.update({"AWS_REGION": "us-east-1", "NO_COLOR": "1", "COLUMNS": "200"})
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TICKSTREAM, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class LocalStack:
    env: dict[str, str]
    endpoint: str
    outputs: StackOutputs

    def client(self, service: str, endpoint: str | None = None) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint or self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def reader(self) -> ShardReader:
        return ShardReader(self.client("kinesis"), self.outputs.StreamName)

    def read_everything(self) -> list[UserRecordView]:
        """Every user record of every shard, shard by shard, in stream order."""
        reader = self.reader()
        return [
            u for shard in reader.shards() for r in reader.read_shard(shard.shard_id) for u in user_records(r)
        ]


def start_local_stack(state_dir: Path) -> LocalStack:
    port = free_local_port()
    env = clean_environment(TICKSTREAM_PORT=str(port), TICKSTREAM_STATE_DIR=str(state_dir))
    done = run_cli(["up", "--shards", "4"], env)
    if done.returncode != 0:
        raise RuntimeError(f"tickstream up failed:\n{done.stdout}\n{done.stderr}")
    endpoint = f"http://127.0.0.1:{port}"
    cloudformation = boto3.client(
        "cloudformation",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return LocalStack(env, endpoint, StackDeployer(cloudformation, "tickstream").outputs())


def stop_local_stack(stack: LocalStack) -> None:
    run_cli(["down"], stack.env)
