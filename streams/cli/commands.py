"""The ``endusers`` command line (docs/operations.md)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
import orjson

from counters import Replay
from schemas.events import parse_rfc3339
from schemas.limits import DEFAULT_MAX_FUTURE, parse_duration

if TYPE_CHECKING:
    from counters import CommittedReads, OperatorReads

T = TypeVar("T")


def _with_store(read: Callable[[OperatorReads], Awaitable[T]]) -> T:
    """Run ``read`` against the configured store and close it: one read for one command."""
    import asyncio

    from streams.settings import WorkerSettings
    from streams.store import open_store

    async def run() -> T:
        store = open_store(WorkerSettings())
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _known(found: T | None, subscription: str) -> T:
    """What the store holds of SUBSCRIPTION; the same error from every command when it holds nothing."""
    if found is None:
        raise click.ClickException(f"unknown subscription {subscription!r}")
    return found


def _print_json(value: Any, *, sort_keys: bool = False) -> None:
    """``--json``: ``value`` indented, as bytes (orjson writes UTF-8 whatever the terminal's locale)."""
    option = orjson.OPT_INDENT_2 | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    sys.stdout.buffer.write(orjson.dumps(value, option=option) + b"\n")


def _print_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """``--csv``: a header and rows, Unix line ends."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def _warn_if_other_digests(subscription: str, configured: str) -> None:
    """On stderr, when the subscription's state was built with other digests than these settings make
    (the worker refuses such state: ``counters.DigestMismatch``): the digests printed would match nothing.
    Redis away: no warning, the digest itself needs no Redis."""
    from counters import DigestMismatch, StoreUnavailable

    try:
        stored = _with_store(lambda store: store.stored_fingerprint(subscription))
    except StoreUnavailable as exc:
        from streams.cli.errors import SERVICES, unavailable

        click.echo(f"note: not checked against the stored digests: {unavailable(*SERVICES[StoreUnavailable], str(exc), traceback_hint=False)}",
                   err=True)
        return
    if stored is not None and stored != configured:
        click.echo(f"warning: these digests match nothing stored, {DigestMismatch(subscription, stored, configured)}",
                   err=True)


class _Commands(click.Group):
    """Errors a person can act on (a service unavailable, a wrong setting: ``streams.cli.errors``) end
    any command with one line each and their own exit status; ``-v`` adds the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from streams.cli.errors import failure

            found = failure(exc)
            if found is None:
                raise
            if ctx.params.get("verbose"):
                import traceback

                traceback.print_exception(exc)
            status, lines = found
            for line in lines:
                click.echo(f"endusers: {line}", err=True)
            ctx.exit(status)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True,
              help="On a failure, print the traceback too; show the Kafka client's own log lines.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Count an organisation's licensed end users, live or offline.

    Exit statuses: 0 done, 1 invalid input, 2 usage or settings, 3 Redis or Kafka unavailable."""
    import logging

    if not verbose and ctx.invoked_subcommand != "worker":  # the failure is reported in one line
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@main.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON: variable -> value and source.")
def settings_command(as_json: bool) -> None:
    """Print the effective settings, one per line: the variable, its value (secrets masked) and where it
    came from (environment or default)."""
    from streams.settings import WorkerSettings, describe

    rows = describe(WorkerSettings())
    if as_json:
        document = {variable: {"value": value, "source": source} for variable, value, source in rows}
        _print_json(document)
        return
    width = max(len(f"{variable}={value}") for variable, value, _ in rows)
    for variable, value, source in rows:
        click.echo(f"{f'{variable}={value}':<{width}}  {source}")


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}: {value!r}") from None


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--now", metavar="INSTANT", callback=_instant,
              help="Pin the processing clock to this RFC 3339 instant (default: the wall clock), so the "
                   "far-future rule and the times of untimed events never depend on the day of the run.")
@click.option("--max-future", metavar="DURATION", callback=_duration,
              help="Reject events timed further ahead of the clock (30s, 15m, 24h, 2d) "
                   f"[default: ENDUSERS_MAX_FUTURE, else {DEFAULT_MAX_FUTURE}].")
def replay(files: tuple[Path, ...], now: int | None, max_future: int | None) -> None:
    """Apply the events of JSONL FILES in order, in memory, and print the counts as JSON."""
    from streams.settings import WorkerSettings

    if max_future is None:
        max_future = WorkerSettings.only("ENDUSERS_MAX_FUTURE").max_future
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
    _print_json(run.document(), sort_keys=True)


@main.command()
@click.option("--loglevel", "-l", default="info", show_default=True, help="Worker log level.")
def worker(loglevel: str) -> None:
    """Run the stream processor (several may run at once; they share the work)."""
    from streams.worker.app import run_worker

    run_worker(loglevel=loglevel)


@main.command()
def gateway() -> None:
    """Receive identity providers' events over HTTP and publish them (ENDUSERS_GATEWAY_HOST/PORT)."""
    from streams.gateway.app import run_gateway

    run_gateway()


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--skip-invalid", is_flag=True,
              help="Send the valid lines even when others are invalid (the exit status is still 1).")
def publish(files: tuple[Path, ...], progress: bool | None, skip_invalid: bool) -> None:
    """Send the events of JSONL FILES to the source topics by type, in file order.

    Every line is first checked as the worker will check it; an invalid one is reported as
    file:line: reason, and nothing is sent unless every line is valid (or --skip-invalid)."""
    import asyncio

    from streams.cli.errors import Status
    from streams.cli.event_files import check_files
    from streams.kafka.publish import publish_files
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    paths = list(files)
    checked = check_files(paths, settings)
    for problem in checked.problems:
        click.echo(problem, err=True)
    if checked.unreadable:
        click.echo(f"sent nothing: {checked.unreadable} file(s) cannot be read", err=True)
        sys.exit(Status.USAGE)
    if checked.rejected and not skip_invalid:
        click.echo(f"sent nothing: {checked.rejected} invalid line(s); fix them, or --skip-invalid sends the "
                   f"{checked.valid} valid one(s)", err=True)
        sys.exit(Status.INVALID)
    show = sys.stderr.isatty() if progress is None else progress
    result = asyncio.run(publish_files(paths, settings, progress=show, skip=checked.invalid))
    for problem in result.unroutable:
        click.echo(f"{problem}", err=True)
    for topic, sent in sorted(result.sent.items()):
        click.echo(f"{topic}: {sent} event(s)")
    skipped = f"; {checked.rejected} invalid line(s) skipped" if checked.rejected else ""
    click.echo(f"sent {sum(result.sent.values())} event(s) to {len(result.sent)} topic(s){skipped}")
    if result.unreadable:
        sys.exit(Status.USAGE)
    if checked.rejected or result.unroutable:
        sys.exit(Status.INVALID)


@main.group()
def connect() -> None:
    """Read an identity provider and publish what it sees as events (docs/sources.md)."""


def _run_connector(run: Callable[[Any], Awaitable[Any]]) -> None:
    """Run a connector until SIGINT or SIGTERM, logging to stderr; print its tally at the end."""
    import asyncio
    import logging
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run(stop)

    outlet = asyncio.run(main())
    click.echo(", ".join(f"{name} {outlet.tally[name]}" for name in ("published", "ignored", "refused")), err=True)


@connect.command("keycloak")
@click.option("--subscription", "-s", required=True, help="The subscription the realm's users count in.")
@click.option("--realm", required=True, help="The Keycloak realm to read.")
@click.option("--url", help="Keycloak's base URL [default: ENDUSERS_KEYCLOAK_URL].")
@click.option("--runtime", default="default", show_default=True, help="The runtime of the events.")
@click.option("--provider", default="keycloak", show_default=True, help="The provider of the records.")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between two polls.")
@click.option("--once", is_flag=True, help="One pass over what is stored, then exit.")
def connect_keycloak(subscription: str, realm: str, url: str | None, runtime: str, provider: str, interval: float,
                     once: bool) -> None:
    """Poll a Keycloak realm's users and stored events through its admin REST API."""
    from streams.connect.common import Scope
    from streams.connect.keycloak import run
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    scope = Scope(subscription, provider, runtime)
    _run_connector(lambda stop: run(settings, realm, scope, url, interval, once, stop))


@connect.command("entra")
@click.option("--subscription", "-s", required=True, help="The subscription the tenant's users count in.")
@click.option("--topic", required=True, help="The Event Hub (its Kafka topic) the diagnostic setting streams to.")
@click.option("--kafka", metavar="URL", help="kafka://<namespace>.servicebus.windows.net:9093 [default: the "
              "connection string's namespace, else ENDUSERS_KAFKA].")
@click.option("--group", help="The consumer group [default: endusers-entra-SUBSCRIPTION].")
@click.option("--runtime", default="default", show_default=True, help="The runtime of the events.")
@click.option("--provider", default="entra", show_default=True, help="The provider of the records.")
def connect_entra(subscription: str, topic: str, kafka: str | None, group: str | None, runtime: str,
                  provider: str) -> None:
    """Read Entra ID sign-in and audit logs from an Event Hub through its Kafka endpoint."""
    from streams.connect.common import Scope
    from streams.connect.entra import run
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    scope = Scope(subscription, provider, runtime)
    _run_connector(lambda stop: run(settings, scope, topic, group or f"endusers-entra-{subscription}", kafka, stop))


@main.command()
@click.option("--subscription", "-s", multiple=True, help="Only these subscriptions.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON, as replay does (for machines).")
def counts(subscription: tuple[str, ...], as_json: bool) -> None:
    """Print the live counts from the store."""
    document = _with_store(lambda store: _counts_document(store, list(subscription)))
    if as_json:
        _print_json(document, sort_keys=True)
        return
    from streams.cli.present import counts_table, shared_warnings

    names = list(cast(dict[str, object], document["subscriptions"]))
    limits = _with_store(lambda store: _capacities(store, names))
    click.echo(counts_table(document, capacities=limits, color=sys.stdout.isatty()))
    warnings = shared_warnings(cast(dict[str, Any], document.get("shared_identifiers", {})))
    if warnings:
        click.echo(warnings, nl=False)
    for line in _with_store(lambda store: _forecast_lines(store, names)):
        click.echo(line)


async def _counts_document(store: CommittedReads, subscriptions: list[str]) -> dict[str, object]:
    """The counts of ``subscriptions`` (default: every one), as ``replay`` prints them, and the
    shared identifiers of those that have any."""
    names = subscriptions or await store.subscriptions()
    found = {name: await store.counts(name) for name in names}
    document: dict[str, object] = {"subscriptions": {name: value for name, value in found.items() if value is not None}}
    reports = {name: await store.shared_identifiers(name) for name in names if found[name] is not None}
    shared = {name: report for name, report in reports.items() if report and report["identifiers"]}
    if shared:  # emails or logins that fold many records into one individual
        document["shared_identifiers"] = shared
    return document


async def _capacities(store: CommittedReads, names: list[str]) -> dict[str, dict[str, int | None]]:
    found = {name: await store.settings(name) for name in names}
    return {name: value["capacity"] for name, value in found.items() if value is not None}


@main.command()
@click.argument("identifier")
@click.option("--subscription", "-s", required=True, help="Digests are keyed per subscription.")
def digest(identifier: str, subscription: str) -> None:
    """Print the digest of an email or login in a subscription, normalized and keyed as the worker
    does (ENDUSERS_SECRET, ENDUSERS_DIGEST_SCOPE).

    The shared-identifier report lists digests only: this is how to check a suspected placeholder
    such as noreply@corp.example against it."""
    from counters import Digester, normalize_email, normalize_username
    from streams.settings import WorkerSettings

    normalized = normalize_email(identifier) or normalize_username(identifier)
    if normalized is None:
        raise click.BadParameter("empty after normalization", param_hint="IDENTIFIER")
    from streams.settings import MissingSecret

    settings = WorkerSettings()
    try:
        secret = settings.digest_secret()
    except MissingSecret as exc:
        raise click.UsageError(str(exc)) from None
    digester = Digester(secret, per_subscription=settings.digest_scope != "shared")
    _warn_if_other_digests(subscription, digester.fingerprint)
    click.echo(digester.for_subscription(subscription)(normalized))


async def _forecast_lines(store: OperatorReads, names: list[str]) -> list[str]:
    """"acme: at this rate, external reaches 100% around 2027-02-10" per subscription and class that has one."""
    from datetime import datetime, timezone

    from streams.http.insights import forecast_sentence, forecasts

    today = datetime.now(timezone.utc).date()
    lines = []
    for name in names:
        found = forecasts(await store.daily(name), await store.settings(name) or {}, today)
        lines += [f"{name}: {sentence}" for user_class, forecast in found.items()
                  if (sentence := forecast_sentence(user_class, forecast)) is not None]
    return lines


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
@click.option("--excluded-providers", metavar="A,B",
              help="User providers whose records are not end users, comma separated ('' excludes none).")
@click.option("--billing-day", type=int, help="Day of the month (1-31) on which a billing period starts.")
@click.option("--dormant-days", type=int, help="Days without a login after which a record is dormant (1-3650).")
@click.option("--statement-grace", type=int, help="Hours after a billing period ends before its statement closes (0-2160).")
@click.option("--source-silence", type=int, help="Hours without an event after which a user provider is silent (1-8760).")
@click.option("--actor", envvar="USER", help="Who makes the change, for the audit trail [default: $USER].")
@click.option("--dry-run", is_flag=True, help="Print the event instead of publishing it.")
def config_set(subscription: str, domains: str | None, capacity_internal: str | None, capacity_external: str | None,
               thresholds: str | None, hysteresis: float | None, platform: str | None, runtimes: tuple[str, ...],
               shared_identifier_threshold: int | None, excluded_providers: str | None, billing_day: int | None,
               dormant_days: int | None, statement_grace: int | None, source_silence: int | None,
               actor: str | None, dry_run: bool) -> None:
    """Validate and publish a config event for SUBSCRIPTION."""
    import asyncio

    from streams.cli.config_builder import UNSET, config_event
    from streams.kafka.publish import publish_documents

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
            excluded_providers=None if excluded_providers is None else
            [p for p in excluded_providers.split(",") if p.strip()],
            billing_day=billing_day, dormant_days=dormant_days, statement_grace=statement_grace,
            source_silence=source_silence, actor=actor,
            # an id of its own: a repeat of this very event (republished, redelivered) changes nothing
            event_id=f"config-{uuid.uuid4()}",
            shared_identifier_threshold=shared_identifier_threshold,
        )
    except ValueError as exc:  # the codec's reason, naming the field
        raise click.UsageError(str(exc)) from None
    if dry_run:
        click.echo(orjson.dumps(event).decode())
        for line in _preview_lines(subscription, event):
            click.echo(line)
        return
    asyncio.run(publish_documents([event]))
    click.echo(f"published config for {subscription}: {orjson.dumps(event).decode()}")


def _preview_lines(subscription: str, event: dict[str, object]) -> list[str]:
    """What the change would give if applied now (counters/whatif.py on the committed state), or why
    there is no preview."""
    import time

    from counters import CLASSES, Digester, preview, to_change
    from schemas.codec import Rejection, decode

    decoded = decode(orjson.dumps(event))
    now = int(time.time() * 1_000_000)
    change = None if isinstance(decoded, Rejection) else to_change(decoded, Digester(), now)
    if change is None:
        return []
    try:
        state = _with_store(lambda store: store.fresh_state(subscription))
    except Exception as exc:  # the dry run still printed the event
        return [f"(no preview: the store did not answer: {type(exc).__name__})"]
    if state is None:
        return [f"(no preview: {subscription} has no committed state yet)"]
    answer = preview(state, change)
    lines = ["if applied now:"]
    for key, before in answer["current"].items():
        after = answer["preview"][key]
        if key == "levels":
            lines += [f"  level {c}: {before[c]}% -> {after[c]}%" for c in CLASSES if before[c] != after[c]]
        else:
            lines.append(f"  {key}: {before:,} -> {after:,} ({after - before:+,})")
    return lines


@main.command("import-users")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--subscription", "-s", help="Subscription of rows without a subscription column.")
@click.option("--default-tenant", metavar="NAME",
              help="The default tenant's name, for a file with a tenant column but no default_tenant column.")
@click.option("--dry-run", is_flag=True, help="Print the events as JSONL instead of publishing them.")
def import_users(file: Path, subscription: str | None, default_tenant: str | None, dry_run: bool) -> None:
    """Turn a user-table CSV export into profile (and login) events and publish them."""
    import asyncio

    from streams.cli.user_import import import_users as rows
    from streams.kafka.publish import publish_documents

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
    written = ", ".join(sorted({str(event["subscription"]) for event in events})) or "none"
    click.echo(f"{len(events)} event(s) from {file} for subscription(s) {written}; {errors} row(s) rejected",
               err=dry_run)
    if errors:
        sys.exit(1)


@main.group()
def token() -> None:
    """HTTP access tokens (ENDUSERS_API_TOKENS_FILE)."""


@token.command("create")
@click.option("--role", type=click.Choice(["viewer", "admin", "source"]), required=True,
              help="viewer: counts; admin: also settings, the audit trail; source: writes events through "
                   "the gateway, reads nothing.")
@click.option("--scope", required=True, help="'*' (every subscription) or a comma-separated list of subscriptions.")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="The token file [default: ENDUSERS_API_TOKENS_FILE].")
def token_create(role: str, scope: str, path: Path | None) -> None:
    """Print a new token once and append its SHA-256 hash to the token file."""
    from streams.http.auth import create_token, parse_scope
    from streams.settings import WorkerSettings

    configured = WorkerSettings.only("ENDUSERS_API_TOKENS_FILE").api_tokens_file
    path = path or (Path(configured) if configured else None)
    if path is None:
        raise click.UsageError("set ENDUSERS_API_TOKENS_FILE or pass --file")
    try:
        parsed = parse_scope(scope)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scope") from None
    try:
        click.echo(create_token(path, role, parsed))
    except OSError as exc:
        from streams.cli.errors import Status

        click.echo(f"endusers: cannot write the token file {path}: {exc.strerror or exc}", err=True)
        sys.exit(Status.USAGE)
    click.echo(f"(only its hash was appended to {path}; this is the one time the token is shown)", err=True)


@main.command()
@click.argument("subscription")
@click.option("--limit", "-n", default=20, show_default=True, help="Newest entries to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON (newest first).")
def audit(subscription: str, limit: int, as_json: bool) -> None:
    """The applied config changes of SUBSCRIPTION, newest first, from the store."""
    from streams.cli.present import audit_lines, printable

    entries = _with_store(lambda store: store.audit(subscription, limit))
    if as_json:
        _print_json(entries)
        return
    if not entries:
        click.echo(f"no config change recorded for {subscription}")
    for item in entries:
        click.echo(printable(f"{item['applied']}  {item['actor'] or '(no actor)'}  {item['topic']}[{item['partition']}]"
                             f"@{item['offset']}  event {item['event_id'] or '-'} at {item['event_time']}"))
        for line in audit_lines(item):  # printable: actors, ids and settings come from producers
            click.echo(printable(f"    {line}"))


@main.command()
@click.argument("subscription")
@click.option("--limit", "-n", default=20, show_default=True, help="Largest domains to show (at most 100).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (all of the 100 largest).")
def domains(subscription: str, limit: int, as_json: bool) -> None:
    """Where the external users of SUBSCRIPTION come from: external individuals per email domain.

    An affiliate whose domain was never declared owned shows up at the top; declare it with
    ``endusers config set SUBSCRIPTION --domains ...`` and its users become internal."""

    found = _known(_with_store(lambda store: store.counts(subscription)), subscription)
    report = cast(dict[str, object], found.get("external_domains") or
                  {"top": [], "other_domains": 0, "other_individuals": 0})
    if as_json:
        _print_json({"subscription": subscription, "external": found.get("external", 0), **report})
        return
    from streams.cli.present import domains_table

    click.echo(domains_table(subscription, int(cast(int, found.get("external", 0))), report, limit=limit))


@main.command()
@click.argument("subscription")
@click.option("--from", "first", metavar="YYYY-MM-DD", help="First day (default: a year ago, or 14 days with --hourly).")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="Last day (default: today, UTC).")
@click.option("--hourly", is_flag=True, help="Per hour (the last 14 days are kept) instead of per day.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (period, then max/min/last of internal and external).")
def history(subscription: str, first: str | None, last: str | None, hourly: bool, as_csv: bool) -> None:
    """The durable history of SUBSCRIPTION's counts: per UTC day (or hour) the maximum, minimum and last
    count of each class, and the peak of the current and previous billing periods."""
    from datetime import date, datetime, timedelta, timezone

    from counters import HISTORY_CSV_HEADER, HOURLY_DAYS, Entry, billing_peak, filled, hour_of

    today = datetime.now(timezone.utc).date()
    try:
        end = min(date.fromisoformat(last) if last else today, today)
        start = date.fromisoformat(first) if first else today - timedelta(days=HOURLY_DAYS - 1 if hourly else 365)
    except ValueError as exc:
        raise click.BadParameter(f"expected a date like 2026-11-01 ({exc})") from None

    async def read(store: OperatorReads) -> tuple[list[Entry], list[Entry], dict[str, object] | None]:
        daily = await store.daily(subscription)
        return (await store.hourly(subscription) if hourly else daily), daily, await store.settings(subscription)

    stored, daily, settings = _with_store(read)
    settings = _known(settings, subscription)
    if hourly:
        hour_now = hour_of(datetime.now(timezone.utc))
        entries = filled(stored, f"{start}T00", min(f"{end}T23", hour_now), hourly=True) if start <= end else []
    else:
        entries = filled(stored, start.isoformat(), end.isoformat()) if start <= end else []
    if as_csv:
        _print_csv(HISTORY_CSV_HEADER, (e.to_row() for e in entries))
        return
    click.echo(f"{'period':<14} {'internal max/min/last':>22} {'external max/min/last':>22}")
    for e in entries:
        click.echo(f"{e.period:<14} {f'{e.internal_max}/{e.internal_min}/{e.internal_last}':>22} "
                   f"{f'{e.external_max}/{e.external_min}/{e.external_last}':>22}")
    peak = billing_peak(daily, today, int(cast(int, settings.get("billing_day", 1))))
    for name, period in (("current", peak["current_period"]), ("previous", peak["previous_period"])):
        if isinstance(period, dict):
            click.echo(f"peak, {name} billing period from {period['start']}: internal {period['internal']}, "
                       f"external {period['external']}")



def _person_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options that name one person, as ingest keys them (``explain`` and ``admission``): an email,
    a username, or a record's user id with its runtime, tenant and provider."""
    for option in reversed((
        click.option("--email", help="The person's email."),
        click.option("--username", help="The person's username (login)."),
        click.option("--user-id", help="One record's user id (with --runtime, --tenant, --provider)."),
        click.option("--runtime", default="default", show_default=True),
        click.option("--tenant", default="default", show_default=True),
        click.option("--provider", default="default", show_default=True),
    )):
        command = option(command)
    return command


@main.command()
@click.argument("subscription")
@_person_options
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(subscription: str, email: str | None, username: str | None, user_id: str | None, runtime: str,
            tenant: str, provider: str, as_json: bool) -> None:
    """Explain one person of SUBSCRIPTION: the records that carry the identifier, the individual they
    form and which identifier joins them, its class and the rule that decided it, whether it counts.

    The identifier is digested with the secret (ENDUSERS_SECRET) as ingest does; nothing is stored in
    plaintext to make this possible."""

    from counters import Digester, NotAnIdentifier, digests_of, explanation, explanation_text, record_digest
    from streams.settings import WorkerSettings

    if sum(x is not None for x in (email, username, user_id)) != 1:
        raise click.UsageError("give exactly one of --email, --username, --user-id")
    settings = WorkerSettings()
    digest = Digester(settings.digest_secret(), per_subscription=settings.digest_scope != "shared") \
        .for_subscription(subscription)
    try:
        query = ({"record": record_digest(digest, runtime, tenant, provider, user_id)} if user_id is not None
                 else {"identifier": digests_of(digest, email=email, username=username)})
    except NotAnIdentifier as exc:
        raise click.UsageError(str(exc)) from None

    state = _known(_with_store(lambda store: store.fresh_state(subscription)), subscription)
    _warn_if_other_digests(subscription, digest.fingerprint)
    answer = explanation(state, **query)
    if as_json:
        _print_json(answer)
        return
    click.echo(explanation_text(answer))


@main.command("admission")
@click.argument("subscription")
@_person_options
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON, as the API gives it.")
def admission_command(subscription: str, email: str | None, username: str | None, user_id: str | None, runtime: str,
                      tenant: str, provider: str, as_json: bool) -> None:
    """Would one more person add to a count of SUBSCRIPTION, and cross a capacity threshold? Applies
    nothing. Answered from the committed state in Redis (the API answers from the counting worker's
    memory, which may be one batch ahead); the identifiers are digested as ingest does (ENDUSERS_SECRET)."""
    from counters import Digester, NotAnIdentifier, admission, candidate
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    digester = Digester(settings.digest_secret(), per_subscription=settings.digest_scope != "shared")
    try:
        person = candidate(digester, subscription, email=email, username=username, runtime=runtime, tenant=tenant,
                           provider=provider, user_id=user_id)
    except NotAnIdentifier as exc:
        raise click.UsageError(str(exc)) from None
    state = _known(_with_store(lambda store: store.fresh_state(subscription)), subscription)
    _warn_if_other_digests(subscription, digester.fingerprint)
    answer = admission(state, person)
    if as_json:
        _print_json(answer)
        return
    if answer["user_class"] is None:
        click.echo(f"{subscription}: adds nothing ({answer['reason']})")
        return
    crossing = f", crosses to level {answer['level_after']}" if answer["crosses"] else ""
    click.echo(f"{subscription}: {'adds one' if answer['adds'] else 'adds nothing'} ({answer['reason']}); "
               f"{answer['user_class']} {answer['count_before']} -> {answer['count_after']} of "
               f"{answer['capacity'] if answer['capacity'] is not None else 'unlimited'}{crossing}")


def _state_and_sealer(subscription: str) -> tuple[Any, Any]:
    """The committed state of SUBSCRIPTION read afresh, and the sealer that opens its user ids."""
    from counters import Digester
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    digester = Digester(settings.digest_secret(), per_subscription=settings.digest_scope != "shared")
    state = _known(_with_store(lambda store: store.fresh_state(subscription)), subscription)
    return state, digester.sealer




@main.command("dormant")
@click.argument("subscription")
@click.option("--days", type=click.IntRange(1, 3650), help="Days without a login [default: the subscription's dormant_days].")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per dormant record).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON, as the API gives it.")
def dormant_command(subscription: str, days: int | None, as_csv: bool, as_json: bool) -> None:
    """The counted records of SUBSCRIPTION without a login for DAYS days (or never), oldest login first,
    with the provider's user id and whether deactivating the person's dormant records frees a seat
    (no: another of their records logged in since). Shows user ids: run it as an admin."""
    import time

    from counters import DORMANT_CSV_HEADER, dormant, dormant_csv_rows
    from streams.cli.present import printable

    state, sealer = _state_and_sealer(subscription)
    report = dormant(state, time.time_ns() // 1000, days or state.settings.dormant_days, sealer)
    if as_json:
        _print_json(report)
        return
    if as_csv:
        _print_csv(DORMANT_CSV_HEADER, dormant_csv_rows(report))
        return
    freed = report["freed"]
    click.echo(f"{subscription}: {len(report['records'])} dormant record(s) of {report['people']} person(s), "
               f"no login since {report['since']}; reclaiming frees {freed['internal']} internal and "
               f"{freed['external']} external seat(s)")
    for row in report["records"]:
        mark = "reclaimable" if row["reclaimable"] else "still active elsewhere"
        click.echo(printable(f"  {row['last_login'] or 'never':<28} {row['runtime']}/{row['tenant']}/{row['provider']}"
                             f"  {row['user_id']}  {row['class']}  {mark}"))


@main.command("statements")
@click.argument("subscription")
@click.option("--json", "as_json", is_flag=True, help="Print the statements as JSON, as the API gives them.")
def statements_command(subscription: str, as_json: bool) -> None:
    """The billing statements of SUBSCRIPTION, newest period first: the open period, then each closed
    one with its frozen peak per class (and the day reached), capacity, overage and counts at close,
    and the true-up of events that arrived after it closed."""
    from datetime import datetime, timezone

    from counters import statements_document

    async def read(store: OperatorReads) -> tuple[Any, ...]:
        return (await store.counts(subscription), await store.settings(subscription), await store.daily(subscription),
                *(await store.statement_data(subscription)))

    counts, settings, daily, frozen, late = _with_store(read)
    _known(counts, subscription)
    document = statements_document(subscription, settings or {}, daily, frozen, late, datetime.now(timezone.utc))
    if as_json:
        _print_json(document)
        return
    click.echo(f"{subscription}: billing periods start on day {document['billing_day']}, statements close "
               f"{document['statement_grace_hours']} h after a period ends")
    for statement in document["statements"]:
        click.echo(_statement_line(statement))


def _statement_line(statement: dict[str, Any]) -> str:
    """One statement in a line per class: peak (day), capacity, overage; then the true-up, if any."""
    state = f"closed {statement['closed_at']}" if statement["closed"] else f"open, closes {statement['closes_at']}"
    lines = [f"{statement['period_start']} to {statement['period_end']}  {state}"]
    for user_class in ("internal", "external"):
        peak, capacity = statement["peak"][user_class], statement["capacity"][user_class]
        over = statement["overage"][user_class]
        lines.append(f"  {user_class:<9} peak {'-' if peak is None else peak['count']:>6}"
                     f" on {'-' if peak is None else peak['day']:<10}  capacity {'unlimited' if capacity is None else capacity}"
                     f"  overage {'-' if over is None else over}"
                     + (f"  at close {statement['counts_at_close'][user_class]}" if statement["closed"] else ""))
    correction = statement.get("true_up")
    if correction:
        peaks = ", ".join(f"{c} {p['count']} on {p['day']}" for c, p in correction["peak"].items() if p is not None)
        lines.append(f"  true-up: {correction['events']} late event(s) after the close; peak with them: {peaks}")
    return "\n".join(lines)


@main.command("roster")
@click.argument("subscription")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one row per record of each person).")
@click.option("--json", "as_json", is_flag=True, help="Print every person as JSON.")
def roster_command(subscription: str, as_csv: bool, as_json: bool) -> None:
    """Every counted person of SUBSCRIPTION: class, the rule that decided it, last login, and their
    records (runtime, tenant, provider, user id). Shows user ids: run it as an admin."""
    from counters import ROSTER_CSV_HEADER, roster, roster_csv_rows
    from streams.cli.present import printable

    state, sealer = _state_and_sealer(subscription)
    page = roster(state, sealer, limit=len(state.records) + 1)
    if as_json:
        _print_json(page)
        return
    if as_csv:
        _print_csv(ROSTER_CSV_HEADER, roster_csv_rows(page))
        return
    click.echo(f"{subscription}: {len(page['people'])} counted person(s)")
    for person in page["people"]:
        click.echo(printable(f"- {person['class']}, last login {person['last_login'] or 'never'}: {person['rule']}"))
        for r in person["records"]:
            click.echo(printable(f"    {r['runtime']}/{r['tenant']}/{r['provider']}  {r['user_id']}  "
                                 f"last login {r['last_login'] or 'never'}"))
