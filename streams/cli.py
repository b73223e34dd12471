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


@main.command()
@click.option("--loglevel", "-l", default="info", show_default=True, help="Worker log level.")
def worker(loglevel: str) -> None:
    """Run the stream processor (several may run at once; they share the work)."""
    from streams.app import run_worker

    run_worker(loglevel=loglevel)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def publish(files: tuple[Path, ...], progress: bool | None) -> None:
    """Send the events of JSONL FILES to the source topics by type, in file order."""
    import asyncio

    from streams.publish import publish_files

    show = sys.stderr.isatty() if progress is None else progress
    result = asyncio.run(publish_files(list(files), progress=show))
    for problem in result.unroutable:
        click.echo(f"{problem}", err=True)
    for topic, sent in sorted(result.sent.items()):
        click.echo(f"{topic}: {sent} event(s)")
    click.echo(f"sent {sum(result.sent.values())} event(s); {len(result.unroutable)} line(s) not routable")
    if result.unreadable:
        sys.exit(2)


@main.command()
@click.option("--subscription", "-s", multiple=True, help="Only these subscriptions.")
@click.option("--json", "as_json", is_flag=True, help="Print the SPEC §6 document (for machines).")
def counts(subscription: tuple[str, ...], as_json: bool) -> None:
    """Print the live counts from the store."""
    import asyncio

    from streams.settings import Settings
    from streams.store import RedisStore

    async def read() -> dict[str, object]:
        store = RedisStore.from_url(Settings().redis)
        try:
            names = list(subscription) or await store.subscriptions()
            found = {name: await store.counts(name) for name in names}
            return {"subscriptions": {name: value for name, value in found.items() if value is not None}}
        finally:
            await store.close()

    document = asyncio.run(read())
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    else:
        from streams.present import counts_table

        click.echo(counts_table(document))
