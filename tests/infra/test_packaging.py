"""`make package` (and so `sam build`) rebuilds when any source a function ships changes: the
Makefile's prerequisites cover every file of lambda_build/contents.py's list."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lambda_build.contents import FUNCTIONS, source_files

ROOT = Path(__file__).resolve().parents[2]


def _make_variable(name: str) -> set[str]:
    """A variable's value as make expands it, read from its database without running anything."""
    database = subprocess.run(
        ["make", "--no-print-directory", "-pn", "package"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    line = next(line for line in database.splitlines() if line.startswith(f"{name} :="))
    return {str((ROOT / word).resolve()) for word in line.split(":=", 1)[1].split()}


def test_every_shipped_source_is_a_prerequisite_of_make_package() -> None:
    listed = _make_variable("FUNCTION_SOURCES")
    shipped = {str(path.resolve()) for f in FUNCTIONS for path in source_files(f.sources, ROOT)}
    assert shipped
    assert shipped <= listed, sorted(shipped - listed)[:5]
