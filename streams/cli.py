"""The ``endusers`` command line (docs/operations.md)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any, cast

import click
import orjson

from counters.replay import Replay
from schemas.events import parse_rfc3339
from schemas.limits import DEFAULT_MAX_FUTURE, parse_duration


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Count an organisation's licensed end users, live or offline."""


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}: {value!r}") from None


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--now", metavar="INSTANT", callback=_instant,
              help="Pin the processing clock to this RFC 3339 instant (default: the wall clock), so the "
                   "far-future rule and the times of untimed events never depend on the day of the run.")
@click.option("--max-future", metavar="DURATION", envvar="ENDUSERS_MAX_FUTURE", default=DEFAULT_MAX_FUTURE,
              show_default=True, callback=_duration,
              help="Reject events timed further ahead of the clock (30s, 15m, 24h, 2d; env ENDUSERS_MAX_FUTURE).")
def replay(files: tuple[Path, ...], now: int | None, max_future: int) -> None:
    """Apply the events of JSONL FILES in order, in memory, and print the counts as JSON."""
    run = Replay(now=now, max_future=max_future)
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
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON, as replay does (for machines).")
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
            document: dict[str, object] = {
                "subscriptions": {name: value for name, value in found.items() if value is not None}}
            reports = {name: await store.shared_identifiers(name) for name in names if found[name] is not None}
            shared = {name: report for name, report in reports.items() if report and report["identifiers"]}
            if shared:  # emails or logins that fold many records into one individual
                document["shared_identifiers"] = shared
            return document
        finally:
            await store.close()

    async def capacities(names: list[str]) -> dict[str, dict[str, int | None]]:
        store = RedisStore.from_url(Settings().redis)
        try:
            found = {name: await store.settings(name) for name in names}
            return {name: value["capacity"] for name, value in found.items() if value is not None}
        finally:
            await store.close()

    document = asyncio.run(read())
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    else:
        from streams.present import counts_table, shared_warnings

        names = list(cast(dict[str, object], document["subscriptions"]))
        limits = asyncio.run(capacities(names))
        click.echo(counts_table(document, capacities=limits, color=sys.stdout.isatty()))
        warnings = shared_warnings(cast(dict[str, Any], document.get("shared_identifiers", {})))
        if warnings:
            click.echo(warnings, nl=False)


@main.command()
@click.argument("identifier")
@click.option("--subscription", "-s", required=True, help="Digests are keyed per subscription.")
def digest(identifier: str, subscription: str) -> None:
    """Print the digest of an email or login in a subscription, normalized and keyed as the worker
    does (ENDUSERS_SECRET, ENDUSERS_DIGEST_SCOPE).

    The shared-identifier report lists digests only: this is how to check a suspected placeholder
    such as noreply@corp.example against it."""
    from counters.normalize import Digester, normalize_email, normalize_username
    from streams.settings import Settings

    normalized = normalize_email(identifier) or normalize_username(identifier)
    if normalized is None:
        raise click.BadParameter("empty after normalization", param_hint="IDENTIFIER")
    from streams.settings import MissingSecret

    settings = Settings()
    try:
        secret = settings.digest_secret()
    except MissingSecret as exc:
        raise click.UsageError(str(exc)) from None
    digester = Digester(secret, per_subscription=settings.digest_scope != "shared")
    click.echo(digester.for_subscription(subscription)(normalized))


@main.group()
def config() -> None:
    """Subscription settings (published as config events)."""


@config.command("set")
@click.argument("subscription")
@click.option("--domains", help="Owned domains, comma separated ('' clears); *.example.com for subdomains.")
@click.option("--capacity-internal", help="Licensed internal end users (N, 0, or 'unlimited').")
@click.option("--capacity-external", help="Licensed external end users (N, 0, or 'unlimited').")
@click.option("--thresholds", help="Percentages, comma separated (default 80,90,100).")
@click.option("--hysteresis", type=float, help="Percentage points a count must fall below a threshold.")
@click.option("--platform", type=click.Choice(["o11", "odc"], case_sensitive=False))
@click.option("--runtime", "runtimes", multiple=True, metavar="NAME=VERSION",
              help="A runtime's platform version, e.g. prod=11.14.0 (NAME= for no version).")
@click.option("--shared-identifier-threshold", type=int,
              help="Report an email or login held by more records than this (default 5).")
@click.option("--actor", envvar="USER", help="Who makes the change, for the audit trail [default: $USER].")
@click.option("--dry-run", is_flag=True, help="Print the event instead of publishing it.")
def config_set(subscription: str, domains: str | None, capacity_internal: str | None, capacity_external: str | None,
               thresholds: str | None, hysteresis: float | None, platform: str | None, runtimes: tuple[str, ...],
               shared_identifier_threshold: int | None, actor: str | None, dry_run: bool) -> None:
    """Validate and publish a config event for SUBSCRIPTION."""
    import asyncio

    from streams.admin import UNSET, InvalidInput, config_event
    from streams.publish import publish_documents

    versions: dict[str, object] = {}
    for item in runtimes:
        name, _, version = item.partition("=")
        if not name:
            raise click.BadParameter(f"expected NAME=VERSION, got {item!r}", param_hint="--runtime")
        versions[name] = {"version": version or None}
    try:
        parsed = [int(t) for t in thresholds.split(",") if t.strip()] if thresholds is not None else None
    except ValueError:
        raise click.BadParameter(f"expected whole percentages like 80,90,100, got {thresholds!r}",
                                 param_hint="--thresholds") from None
    try:
        event = config_event(
            subscription,
            domains=[d for d in domains.split(",") if d.strip()] if domains is not None else None,
            capacity_internal=UNSET if capacity_internal is None else capacity_internal,
            capacity_external=UNSET if capacity_external is None else capacity_external,
            thresholds=parsed, hysteresis=hysteresis, platform=platform, runtimes=versions or None,
            actor=actor,
            # an id of its own: a repeat of this very event (republished, redelivered) changes nothing
            event_id=f"config-{uuid.uuid4()}",
            shared_identifier_threshold=shared_identifier_threshold,
        )
    except InvalidInput as exc:
        raise click.UsageError(exc.message) from None
    if dry_run:
        click.echo(orjson.dumps(event).decode())
        return
    asyncio.run(publish_documents([event]))
    click.echo(f"published config for {subscription}: {orjson.dumps(event).decode()}")


@main.command("import-users")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--subscription", "-s", help="Subscription of rows without a subscription column.")
@click.option("--default-tenant", metavar="NAME",
              help="The default tenant's name, for a file with a tenant column but no default_tenant column.")
@click.option("--dry-run", is_flag=True, help="Print the events as JSONL instead of publishing them.")
def import_users(file: Path, subscription: str | None, default_tenant: str | None, dry_run: bool) -> None:
    """Turn a user-table CSV export into profile (and login) events and publish them."""
    import asyncio

    from streams.admin import import_users as rows
    from streams.publish import publish_documents

    events, errors = [], 0
    for line, item in rows(file, subscription, default_tenant):
        if isinstance(item, str):
            errors += 1
            click.echo(f"{file}:{line}: {item}", err=True)
        else:
            events.append(item)
    if dry_run:
        for event in events:
            click.echo(orjson.dumps(event).decode())
    else:
        result = asyncio.run(publish_documents(events))
        for topic, sent in sorted(result.sent.items()):
            click.echo(f"{topic}: {sent} event(s)")
    click.echo(f"{len(events)} event(s) from {file}; {errors} row(s) rejected", err=dry_run)
    if errors:
        sys.exit(1)


@main.group()
def token() -> None:
    """HTTP access tokens (ENDUSERS_API_TOKENS_FILE)."""


@token.command("create")
@click.option("--role", type=click.Choice(["viewer", "admin"]), required=True,
              help="viewer: counts; admin: also settings, the audit trail.")
@click.option("--scope", required=True, help="'*' (every subscription) or a comma-separated list of subscriptions.")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path), envvar="ENDUSERS_API_TOKENS_FILE",
              help="The token file [default: ENDUSERS_API_TOKENS_FILE].")
def token_create(role: str, scope: str, path: Path | None) -> None:
    """Print a new token once and append its SHA-256 hash to the token file."""
    from streams.auth import create_token, parse_scope

    if path is None:
        raise click.UsageError("set ENDUSERS_API_TOKENS_FILE or pass --file")
    try:
        parsed = parse_scope(scope)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None
    click.echo(create_token(path, role, parsed))  # type: ignore[arg-type]  # click.Choice checked it
    click.echo(f"(only its hash was appended to {path}; this is the one time the token is shown)", err=True)


@main.command()
@click.argument("subscription")
@click.option("--limit", "-n", default=20, show_default=True, help="Newest entries to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON (newest first).")
def audit(subscription: str, limit: int, as_json: bool) -> None:
    """The applied config changes of SUBSCRIPTION, newest first, from the store."""
    import asyncio

    from streams.settings import Settings
    from streams.store import RedisStore

    async def read() -> list[dict[str, object]]:
        store = RedisStore.from_url(Settings().redis)
        try:
            return await store.audit(subscription, limit)
        finally:
            await store.close()

    entries = asyncio.run(read())
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2) + b"\n")
        return
    if not entries:
        click.echo(f"no config change recorded for {subscription}")
    for item in entries:
        changed = cast(list[str], item["changed"])
        before, after = cast(dict[str, object], item["before"]), cast(dict[str, object], item["after"])
        click.echo(f"{item['applied']}  {item['actor'] or '(no actor)'}  {item['topic']}[{item['partition']}]@{item['offset']}"
                   f"  event {item['event_id'] or '-'} at {item['event_time']}")
        for key in changed or []:
            click.echo(f"    {key}: {orjson.dumps(before.get(key)).decode()} -> {orjson.dumps(after.get(key)).decode()}")
        if not changed:
            click.echo("    (no setting changed)")
