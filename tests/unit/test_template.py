"""infra/template.yaml passes cfn-lint: the file we deploy locally is one AWS accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tickstream.settings import TEMPLATE_PATH


def test_template_passes_cfn_lint_without_errors_or_warnings() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE_PATH)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
