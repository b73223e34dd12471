"""The command line: ``endusers`` (commands.py), with the helpers only commands use."""

from streams.cli.commands import main

__all__ = ["main"]
