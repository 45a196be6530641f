"""The folders tell the architecture (issue 14), and the imports keep it so: each package imports
only the layers below it, no function imports another's modules, and AWS's SDK is imported only
where a client is made or a store is reached. Read from the sources, so a new import that breaks
the layering fails here before anyone has to find it in a review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lambda_build.contents import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
# What each part may import of ours; the CLI (tickstream) may import everything.
ALLOWED = {
    "market": set(),
    "webclients": set(),
    "producer": {"market"},
    "alerts": {"market", "webclients"},
    "stores": {"market"},
    "functions.aggregator": {"market", "stores"},
    "functions.chart_builder": {"market", "stores", "alerts"},
    "functions.quote_poller": {"market", "producer", "webclients"},
    "functions.alarm_notifier": {"alerts"},
    "lambda_build": set(),
    "local_aws": {"stores", "lambda_build"},
}
OURS = {name.split(".")[0] for name in ALLOWED} | {"tickstream"}
# Where clients are made: each handler's cold start, the local stack, the CLI's clients.
MAKES_CLIENTS = {
    "functions/aggregator/handler.py",
    "functions/chart_builder/handler.py",
    "functions/quote_poller/handler.py",
    "local_aws/runner/kill_switch.py",
    "local_aws/stack.py",
    "tickstream/aws_clients.py",
}
# The packages whose modules are pure: no boto3, no botocore, not even for an exception.
PURE = ("market", "webclients")


def _part(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return ".".join(parts[:2]) if parts[0] == "functions" and len(parts) > 2 else parts[0]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _imported_part(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "functions" else parts[0]


SOURCES = sorted(p for top in OURS for p in (ROOT / top).rglob("*.py"))


def test_every_part_is_listed() -> None:
    assert {_part(p) for p in SOURCES} == set(ALLOWED) | {"functions", "tickstream"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_the_layers_below_it(path: Path) -> None:
    part = _part(path)
    if part in ("tickstream", "functions"):  # the CLI; functions/__init__.py
        return
    ours = {_imported_part(m) for m in _imports(path) if m.split(".")[0] in OURS}
    assert ours - {part} <= ALLOWED[part], f"{part} may import {sorted(ALLOWED[part])}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_boto3_is_imported_only_where_clients_are_made(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    roots = {m.split(".")[0] for m in _imports(path)}
    if relative not in MAKES_CLIENTS:
        assert "boto3" not in roots
    if relative.startswith(PURE):
        assert not roots & {"boto3", "botocore"}


def test_no_function_ships_another_functions_code() -> None:
    """What lambda_build ships per function matches the layering: never a sibling's folder."""
    folders = {f"functions/{name.split('.')[1]}" for name in ALLOWED if name.startswith("functions.")}
    for function in FUNCTIONS:
        own = {s for s in function.sources if s in folders}
        assert len(own) == 1, function.name
        assert function.handler.startswith(own.pop().replace("/", ".") + ".handler")
