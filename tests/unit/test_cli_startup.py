"""`tickstream --help` loads the CLI and its help only: the heavy modules are each command's own
(issue 14: a thin CLI that starts fast). Checked by what is imported, not by timing it."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from tickstream.cli import app

# What a command may import, but --help must not: AWS's SDK, the data stack, the local runner,
# and rich (a tenth of a second: the commands print with it, the help is click's plain text).
HEAVY = (
    "rich",
    "boto3",
    "botocore",
    "pandas",
    "matplotlib",
    "mplfinance",
    "samtranslator",
    "moto",
    "functions",
    "stores",
    "local_aws",
    "lambda_build",
)


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_imports_no_heavy_module() -> None:
    loaded = _modules_after(
        "import sys\nsys.argv = ['tickstream', '--help']\nfrom tickstream.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert "typer" in loaded
    assert "tickstream.cli" in loaded
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_the_probe_sees_a_command_import_the_sdk() -> None:
    loaded = _modules_after("from tickstream.cli import expected_errors\nexpected_errors()")
    assert "botocore" in loaded


def test_the_probe_sees_a_command_print_with_rich() -> None:
    loaded = _modules_after("from tickstream.console import out\nout().print('x')")
    assert "rich" in loaded


def test_every_command_is_listed_in_the_help_with_a_whole_first_sentence() -> None:
    """The plain help cuts a command's first line at the terminal's width: each must fit."""
    shown = CliRunner().invoke(app, ["--help"], terminal_width=80).output
    listed = shown.split("Commands:", 1)[1].strip().splitlines()
    names = [line.split()[0] for line in listed]
    assert names == [
        "up",
        "down",
        "status",
        "consume",
        "redrive",
        "charts",
        "logs",
        "view",
        "produce",
        "demo",
    ]
    assert not [line for line in listed if line.endswith("...")]
