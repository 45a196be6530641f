"""A local stack for tests: the real `tickstream up` on a free port, torn down by the fixture."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from local_aws.embedded import free_local_port
from local_aws.stack import StackDeployer, StackOutputs
from stores.shard_reader import ShardReader, UserRecordView, user_records
from tickstream.cli import run

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


def run_cli_in_process(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`tickstream ARGS` in this process, with exactly `env` as its environment: for the steps a
    second interpreter would prove nothing more about (a fixture's `up`), without its start-up.
    Exit codes and output are the command's own (tickstream.cli.run: errors in one line, exit 2)."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv = dict(os.environ), sys.argv
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["tickstream", *args]
    code: int = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


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

    def deploy(
        self, stack: str, shards: int, *parameters: str, env: Mapping[str, str] | None = None
    ) -> StackOutputs:
        """The one way tests deploy a stack: `tickstream up` of the named stack on this server,
        in this process, with `--parameter` for each of `parameters`; its outputs."""
        args = ["up", "--shards", str(shards), *(a for p in parameters for a in ("--parameter", p))]
        done = run_cli_in_process(args, {**(env or self.env), "TICKSTREAM_STACK": stack})
        if done.returncode != 0:
            raise RuntimeError(f"tickstream up of {stack} failed:\n{done.stdout}\n{done.stderr}")
        return StackDeployer(self.client("cloudformation"), stack).outputs()

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
    done = run_cli_in_process(["up", "--shards", "4"], env)
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
    run_cli_in_process(["down"], stack.env)  # in this process, the server's parent: it is reaped
