"""The command groups of the `tickstream` CLI, one module each; tickstream/cli.py lists them."""
