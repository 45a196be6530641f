"""The CLI's terminal and run state: where output and one-line errors go, the settings the
callback parsed, and how a long command hears Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
from functools import cache
from types import FrameType
from typing import TYPE_CHECKING

import typer

from tickstream.settings import Settings, SettingsError

if TYPE_CHECKING:
    from rich.console import Console


@cache
def out() -> Console:
    """Standard output, made on first use: rich costs `--help` a tenth of a second to import."""
    from rich.console import Console

    # Off a terminal rich assumes 80 columns; the demo's tables want more.
    return Console(width=None if sys.stdout.isatty() else 140)


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


class State:
    """What the group's options said. The settings are read from the environment when a command
    first asks, so that `COMMAND --help` works whatever the environment holds."""

    debug: bool = False
    real_aws: bool = False
    _settings: Settings | None = None

    def start(self, debug: bool, real_aws: bool) -> None:
        self.debug, self.real_aws, self._settings = debug, real_aws, None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from local_aws.embedded import bypass_proxies_for_loopback, regions_moto_serves

            try:
                self._settings = Settings.from_environment(
                    os.environ,
                    real_aws=self.real_aws,
                    local_regions=regions_moto_serves,
                )
            except SettingsError as exc:
                raise fail(str(exc)) from exc
            if self._settings.embedded:
                bypass_proxies_for_loopback(os.environ)
        return self._settings


state = State()


def show_error(message: str) -> None:
    """`error: message` on one line of stderr; brackets and colons in it are printed as they are."""
    from rich.markup import escape

    err().print(f"[bold red]error:[/] {escape(message)}", emoji=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    show_error(message)
    return typer.Exit(code)


def install_stop_handlers(finishing: str = "stopping") -> threading.Event:
    """SIGINT and SIGTERM end the command's loop; `finishing` says what it does before it exits."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        err().print(f"{signal.Signals(signum).name}: {finishing}")
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop
