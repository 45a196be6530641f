"""`python -m tickstream` runs the CLI, so tests drive the same entry point users do."""

from tickstream.cli import run

run()
