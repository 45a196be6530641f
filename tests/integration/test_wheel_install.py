"""The wheel holds what the program reads: installed with its dependencies in a clean virtualenv,
away from the checkout, its CLI deploys the stack and its Lambda handlers import.

The wheel is built as the Dockerfile builds it (`pip wheel --no-deps .`), from a copy of the
files git would commit, so what the checkout has lying around (build/, caches) cannot hide a
file the wheel lacks. No Docker engine runs here: the Dockerfile is checked as text.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambda_build.artifacts import build_code_zip
from local_aws.embedded import free_local_port
from local_aws.stack import StackDeployer, output_values
from tests.support.local_stack import clean_environment
from tickstream.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

# Packages of the checkout that are run from it, never installed.
CHECKOUT_ONLY = frozenset({"tests", "bench"})
# Each Lambda function's handler module, and the CLI's.
ENTRY_MODULES = (
    "functions.aggregator.handler",
    "functions.chart_builder.handler",
    "functions.quote_poller.handler",
    "tickstream.cli",
)
# Imports the entry modules and reads the data files they read at run time with the program's own
# loaders; prints where each module came from.
CHECK_IMPORTS = """
import importlib, sys
from alerts.service import rules_from_file
from alerts.rules import DEFAULT_RULES_FILE
from functions.quote_poller.polling import QuoteSourceConfig
from functions.quote_poller.settings import DEFAULT_SOURCES_FILE
rules_from_file(DEFAULT_RULES_FILE)
QuoteSourceConfig.from_file(DEFAULT_SOURCES_FILE, {}, api_key="unused")
for name in sys.argv[1:]:
    print(importlib.import_module(name).__file__)
"""


@dataclass(frozen=True)
class Build:
    source: Path  # the files git would commit, copied
    wheel: Path

    def names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as wheel:
            return set(wheel.namelist())

    def top_level(self) -> set[str]:
        return {n.split("/")[0] for n in self.names() if not n.split("/")[0].endswith(".dist-info")}


def _run(args: list[str | Path], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _installed_environment(**extra: str) -> dict[str, str]:
    """No PYTHONPATH: the installed CLI must find everything in its own site-packages."""
    env = clean_environment(**extra)
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], PROJECT_ROOT)
    for name in filter(None, listed.split("\0")):
        if (PROJECT_ROOT / name).is_file():  # not deleted since the last commit
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, source / name)
    dist = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, source], root)
    (wheel,) = dist.glob("tickstream-*.whl")
    return Build(source, wheel)


@pytest.fixture(scope="module")
def venv(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and its dependencies from the package index; --no-compile only saves time."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _run([sys.executable, "-m", "venv", venv], venv.parent)
    _run([venv / "bin" / "pip", "install", "--quiet", "--no-compile", build.wheel], venv.parent)
    return venv


def test_the_wheel_holds_every_package_with_all_its_files(build: Build) -> None:
    names = build.names()
    packages = {p.parent.name for p in build.source.glob("*/__init__.py")} - CHECKOUT_ONLY
    assert packages <= build.top_level(), f"missing from the wheel: {packages - build.top_level()}"
    for top in build.top_level():
        files = {
            p.relative_to(build.source).as_posix() for p in (build.source / top).rglob("*") if p.is_file()
        }
        shipped = {n for n in names if n.startswith(f"{top}/")}
        assert files == shipped, f"the wheel lacks {sorted(files - shipped)}: see pyproject's package-data"
    # infra/ has no __init__.py for the first check to see: named here.
    assert {"infra/template.yaml", "infra/artifacts.yaml"} <= names


def test_the_image_installs_the_wheel_instead_of_copying_packages(build: Build) -> None:
    text = re.sub(r"\\\n", " ", (PROJECT_ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line.partition(" ")[::2] for line in lines if line and not line.startswith("#")]
    copied = {
        source.strip("./").split("/")[0]
        for instruction, arguments in instructions
        if instruction.upper() == "COPY" and "--from=" not in arguments
        for source in [a for a in arguments.split() if not a.startswith("--")][:-1]
    }
    assert copied.isdisjoint(build.top_level()), f"the Dockerfile copies packages: {copied}"
    runs = [arguments for instruction, arguments in instructions if instruction.upper() == "RUN"]
    assert any("pip wheel" in run and "--no-deps" in run for run in runs), runs
    assert any("pip install" in run and ".whl" in run for run in runs), runs
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text().split())
    assert {"build", ".venv"} <= ignored, "the wheel must not be built from local build output"


def test_the_installed_modules_import_from_site_packages(venv: Path, tmp_path: Path) -> None:
    # -I: neither the working directory nor PYTHONPATH is on sys.path.
    origins = _run([venv / "bin" / "python", "-I", "-c", CHECK_IMPORTS, *ENTRY_MODULES], tmp_path)
    for origin in origins.split():
        assert Path(origin).is_relative_to(venv), origin
    assert "Usage: tickstream" in _run(
        [venv / "bin" / "tickstream", "--help"], tmp_path, _installed_environment()
    )


def test_the_installed_cli_deploys_its_own_template(venv: Path, tmp_path: Path) -> None:
    port = free_local_port()
    env = _installed_environment(TICKSTREAM_PORT=str(port), TICKSTREAM_STATE_DIR=str(tmp_path / "state"))
    tickstream = venv / "bin" / "tickstream"
    try:
        assert "created" in _run([tickstream, "up", "--shards", "1"], tmp_path, env)
        status = _run([tickstream, "status"], tmp_path, env)
        assert f"embedded moto http://127.0.0.1:{port}" in status
        assert "1 open / 1 shards" in status
        # The code zip `up` uploaded holds the installed packages, byte for byte the checkout's.
        assert _uploaded_code(f"http://127.0.0.1:{port}") == [
            f"code/{hashlib.sha256(build_code_zip()).hexdigest()}.zip"
        ]
    finally:
        down = subprocess.run(
            [tickstream, "down"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
    assert down.returncode == 0, down.stderr


def _uploaded_code(endpoint: str) -> list[str]:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    artifacts = StackDeployer(client("cloudformation"), "tickstream-artifacts").describe()
    listed = client("s3").list_objects_v2(
        Bucket=output_values(artifacts)["ArtifactsBucketName"], Prefix="code/"
    )
    return [o["Key"] for o in listed.get("Contents", [])]
