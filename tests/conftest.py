"""Shared fixtures: one real moto server per test session, started and stopped through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.support.local_stack import LocalStack, start_local_stack, stop_local_stack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = start_local_stack(Path(tmp_path_factory.mktemp("tickstream-state")))
    try:
        yield stack
    finally:
        stop_local_stack(stack)


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1 and a free port, for recorded answers; stopped by the test."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()
