"""The ``endusers`` command line (SPEC §6-7)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from counters.replay import Replay


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Count an organisation's licensed end users, live or offline."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def replay(files: tuple[Path, ...]) -> None:
    """Apply the events of JSONL FILES in order, in memory, and print the counts as JSON."""
    run = Replay()
    for path in files:
        try:
            with path.open("rb") as handle:
                run.feed_lines(handle, source=str(path))
        except OSError as exc:
            click.echo(f"endusers replay: cannot read {path}: {exc.strerror or exc}", err=True)
            sys.exit(2)
    for rejection in run.rejections:
        click.echo(f"{rejection.source}:{rejection.line}: rejected: {rejection.reason}", err=True)
    for name, state in sorted(run.states.items()):
        if state.invalid_emails:
            click.echo(f"{name}: {state.invalid_emails} event(s) carried an invalid email (data quality)", err=True)
    sys.stdout.buffer.write(orjson.dumps(run.document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
