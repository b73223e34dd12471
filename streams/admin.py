"""Operator input: building config events, and importing a user-table CSV export as events.

Both produce input events (docs/events.md) (dicts ready to publish) and check each one with
:func:`schemas.codec.validate`, the same gate the processor applies, so what passes here is accepted
there.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import click
import orjson

from counters import normalize_owned_domain
from schemas.codec import Rejection, decode, validate

UNSET: Literal["unset"] = "unset"
"""A capacity argument that leaves the current capacity as it is (the key is omitted)."""

_UNLIMITED = {"unlimited", "none", "null", "unset-limit", "inf", "infinite", "-"}


class InvalidInput(click.BadParameter, ValueError):
    """Operator input that would be rejected; the message names the offending field and value.

    A :class:`click.BadParameter` (so a click command shows it as a usage error) and a
    :class:`ValueError` (so library callers can catch it without click).
    """


# --- config events ---------------------------------------------------------------------------------

CapacityArg = int | str | None


def parse_capacity(value: CapacityArg, field: str = "capacity") -> int | None | Literal["unset"]:
    """``"unlimited"``/``"none"``/None -> None (unlimited); ``"unset"`` -> UNSET; digits -> int >= 0."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: expected a number, 'unlimited' or 'none', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidInput(f"{field}: must be 0 or more (got {value})")
        return value
    text = str(value).strip().lower()
    if text == UNSET:
        return UNSET
    if text in _UNLIMITED:
        return None
    if re.fullmatch(r"\d+", text):
        return int(text)
    raise InvalidInput(f"{field}: expected a whole number >= 0, 'unlimited' or 'none', got {value!r}")


def config_event(
    subscription: str,
    domains: Iterable[str] | None = None,
    capacity_internal: CapacityArg = UNSET,
    capacity_external: CapacityArg = UNSET,
    thresholds: Iterable[int] | None = None,
    hysteresis: float | None = None,
    platform: str | None = None,
    runtimes: Mapping[str, Any] | None = None,
    shared_identifier_threshold: int | None = None,
    excluded_providers: Iterable[str] | None = None,
    billing_day: int | None = None,
    *,
    event_id: str | None = None,
    time: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """A validated ``config`` event; only the settings given are included (absent keys keep).

    - ``domains``: owned domains, normalized (``@Example.COM`` -> ``example.com``, ``*.example.com``
      kept as a wildcard); an empty list clears them. Duplicates are dropped.
    - ``capacity_internal``/``capacity_external``: an int >= 0 (0 = none licensed), None or the strings
      ``"unlimited"``/``"none"`` for unlimited (null), ``"unset"`` (default) to leave it unchanged.
    - ``thresholds``: percents (1..1000), sorted and deduplicated; ``hysteresis``: points (0..100).
    - ``platform``: ``o11`` or ``odc`` (any case).
    - ``runtimes``: ``{runtime: {"version": "11.14.0"}}``, or the shorthand ``{runtime: "11.14.0"}``
      (``None`` = no version: behaves as the newest).
    - ``shared_identifier_threshold``: an email or login held by more records is reported (1 or more).
    - ``excluded_providers``: user providers whose records are not end users (docs/rules.md); an
      empty list excludes none.

    Raises :class:`InvalidInput` naming the field when a value would be rejected, or when nothing
    would change.
    """
    event: dict[str, Any] = {"type": "config", "subscription": subscription}
    if event_id is not None:
        event["id"] = event_id
    if time is not None:
        event["time"] = time
    if actor:
        event["actor"] = actor  # recorded in the audit trail; not part of "what would change"
    if not isinstance(subscription, str) or not subscription.strip():
        raise InvalidInput("subscription: required (a non-empty string)")
    if platform is not None:
        value = str(platform).strip().lower()
        if value not in ("o11", "odc"):
            raise InvalidInput(f"platform: expected 'o11' or 'odc', got {platform!r}")
        event["platform"] = value
    if domains is not None:
        if isinstance(domains, str):
            domains = [d for d in re.split(r"[,\s]+", domains) if d]
        normalized: list[str] = []
        for entry in domains:
            domain = normalize_owned_domain(str(entry)) if isinstance(entry, str) else None
            if domain is None:
                raise InvalidInput(f"domains: {entry!r} is not a valid domain (e.g. example.com or *.example.com)")
            if domain not in normalized:
                normalized.append(domain)
        event["domains"] = normalized
    capacity: dict[str, int | None] = {}
    for user_class, raw in (("internal", capacity_internal), ("external", capacity_external)):
        limit = parse_capacity(raw, f"capacity.{user_class}")
        if limit != UNSET:
            capacity[user_class] = limit
    if capacity:
        event["capacity"] = capacity
    if thresholds is not None:
        values: list[int] = []
        for threshold in thresholds:
            if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 1000:
                raise InvalidInput(f"thresholds: each must be a whole percent from 1 to 1000, got {threshold!r}")
            values.append(threshold)
        if not values:
            raise InvalidInput("thresholds: give at least one percent (e.g. 80,90,100)")
        event["thresholds"] = sorted(set(values))
    if hysteresis is not None:
        if isinstance(hysteresis, bool) or not isinstance(hysteresis, int | float) or not 0 <= hysteresis <= 100:
            raise InvalidInput(f"hysteresis: must be a number of percentage points from 0 to 100, got {hysteresis!r}")
        event["hysteresis"] = float(hysteresis)
    if runtimes is not None:
        settings: dict[str, dict[str, Any]] = {}
        for runtime, setting in runtimes.items():
            if isinstance(setting, str) or setting is None:
                setting = {"version": setting}
            if not isinstance(setting, Mapping):
                raise InvalidInput(f"runtimes.{runtime}: expected {{'version': '11.14.0'}}, got {setting!r}")
            settings[str(runtime)] = dict(setting)
        event["runtimes"] = settings
    if shared_identifier_threshold is not None:
        if isinstance(shared_identifier_threshold, bool) or not isinstance(shared_identifier_threshold, int) \
                or not 1 <= shared_identifier_threshold <= 1_000_000:
            raise InvalidInput("shared_identifier_threshold: must be a whole number of records from 1 to 1,000,000, "
                               f"got {shared_identifier_threshold!r}")
        event["shared_identifier_threshold"] = shared_identifier_threshold
    if excluded_providers is not None:
        providers = [p.strip() for p in excluded_providers]
        if any(not p for p in providers):
            raise InvalidInput("excluded_providers: a provider name cannot be empty")
        event["excluded_providers"] = sorted(set(providers))
    if billing_day is not None:
        if isinstance(billing_day, bool) or not isinstance(billing_day, int) or not 1 <= billing_day <= 28:
            raise InvalidInput(f"billing_day: the day of the month a billing period starts, 1 to 28, got {billing_day!r}")
        event["billing_day"] = billing_day
    if not set(event) - {"type", "subscription", "id", "time", "actor"}:
        raise InvalidInput("nothing to change: give at least one setting (platform, domains, capacity, "
                           "thresholds, hysteresis, runtimes, shared_identifier_threshold, excluded_providers, "
                           "billing_day)")
    checked = decode(orjson.dumps(event))  # the size too: 10,000 long domains pass validation alone
    if isinstance(checked, Rejection):
        raise InvalidInput(checked.reason)
    return event


# --- CSV user-table import -------------------------------------------------------------------------

COLUMNS = ("subscription", "runtime", "tenant", "default_tenant", "provider", "user_id", "username", "email",
           "phone", "name", "active", "logged_in", "last_login")
REQUIRED = ("user_id",)

_ALIASES: dict[str, tuple[str, ...]] = {
    "subscription": ("subscription", "subscriptionid", "licensee"),
    "runtime": ("runtime", "runtimeid", "environment", "environmentname", "env"),
    "tenant": ("tenant", "tenantid", "tenantname"),
    "default_tenant": ("defaulttenant", "isdefaulttenant"),
    "provider": ("provider", "userprovider", "identityprovider", "idp", "providerid", "providername"),
    "user_id": ("userid", "id", "uid", "userkey"),
    "username": ("username", "login", "loginname", "usernamelogin"),
    "email": ("email", "emailaddress", "mail", "useremail"),
    "phone": ("phone", "phonenumber", "mobile", "mobilephone", "telephone"),
    "name": ("name", "fullname", "displayname"),
    "active": ("active", "isactive", "enabled", "isenabled"),
    "logged_in": ("loggedin", "hasloggedin", "isloggedin", "everloggedin"),
    "last_login": ("lastlogin", "lastlogindate", "lastlogintime", "lastloginon", "lastloggedin"),
}
_HEADER_TO_COLUMN = {alias: column for column, aliases in _ALIASES.items() for alias in aliases}
_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}
_IDENTITY = ("username", "email", "phone", "name")
_NEVER_LOGGED_IN = {"null", "none", "never", "n/a", "-"}
"""``last_login`` cells that mean "never": besides an empty cell, the words exports use for no date."""
_NULL_DATE = "1900-01-01"
"""OutSystems' NullDate: an O11 ``Last_Login`` of ``1900-01-01 00:00:00`` means the user never logged in."""
_KEY = ("runtime", "tenant", "provider")


def header_column(header: str) -> str | None:
    """A CSV header as one of :data:`COLUMNS`, case/space/underscore-insensitively; None if unknown."""
    key = re.sub(r"[\s_\-.]+", "", header.strip().lower())
    return _HEADER_TO_COLUMN.get(key)


def _has_logged_in(last_login: str) -> bool:
    """A ``last_login`` cell as "has logged in": any date but OutSystems' NullDate."""
    value = last_login.strip().lower()
    return bool(value) and value not in _NEVER_LOGGED_IN and not value.startswith(_NULL_DATE)


def _boolean(text: str) -> bool | None:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def import_users(path: str | Path, subscription: str | None = None,
                 default_tenant: str | None = None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Read a CSV user-table export; yield ``(line_number, event)`` or ``(line_number, error)``.

    The first row is the header. Recognised columns (headers match case-insensitively, ignoring spaces,
    ``_``, ``-`` and ``.``; e.g. ``UserId``, ``user id``, ``Is_Active``): ``runtime, tenant,
    default_tenant, provider, user_id, username, email, phone, name, active, logged_in`` and optionally
    ``subscription``. Only ``user_id`` is required (plus the subscription: the ``subscription``
    argument, or the column, which wins when the cell is not empty). Other columns are ignored.
    The delimiter (``,`` ``;`` tab ``|``) is detected; a UTF-8 byte-order mark is skipped.

    Each row yields a ``profile`` ``upsert`` event. Cells: an empty ``runtime``/``tenant``/``provider``
    means the default; an empty ``username``/``email``/``phone``/``name`` sets the field to null (the
    export is the truth about that user); an empty ``active``/``default_tenant`` leaves it unchanged.
    Booleans accept true/false, yes/no, y/n, 1/0, on/off. A row whose ``logged_in`` is true ALSO yields
    a ``login`` event for the same record, right after its upsert, so that on ODC (where only users who
    logged in count) the user counts; ``logged_in`` false yields nothing more (the mark is sticky).
    Without a ``logged_in`` cell, a ``last_login`` cell (as O11 exports name it) decides: a date means
    logged in; empty, ``never``/``null`` or OutSystems' NullDate (1900-01-01) means not.

    Default tenants: a file with a ``tenant`` column must say which tenant is the default one, either
    per row (a ``default_tenant`` column) or for the whole file (``default_tenant=NAME``: rows of tenant
    NAME are in the default tenant, all others not; a non-empty ``default_tenant`` cell still wins).
    Without either, every tenant would be taken as a default one and users of different tenants would
    be deduplicated into one person, so the header is refused.

    Errors name the line (1 = the header) and the field; the import goes on with the next row.
    A header without a ``user_id`` column yields one error at line 1 and nothing else.
    """
    with open(path, encoding="utf-8-sig", newline="") as handle:
        yield from _import(handle, subscription, default_tenant)


def import_users_text(text: str, subscription: str | None = None,
                      default_tenant: str | None = None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """:func:`import_users` over CSV text (for tests and stdin)."""
    yield from _import(io.StringIO(text), subscription, default_tenant)


def _import(handle: io.TextIOBase | Any, subscription: str | None,
            default_tenant: str | None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    sample = handle.read(64 * 1024)
    handle.seek(0)
    first_line = sample.splitlines()[0] if sample else ""
    try:
        dialect: Any = csv.Sniffer().sniff(first_line, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(handle, dialect)
    try:
        header = next(reader)
    except StopIteration:
        yield 1, "header: the file is empty (expected a header row with at least user_id)"
        return
    except csv.Error as exc:
        yield 1, f"header: not readable as CSV: {exc}"
        return
    columns: list[str | None] = []
    seen: dict[str, str] = {}
    for cell in header:
        column = header_column(cell)
        if column is not None and column in seen:
            yield 1, f"header: columns {seen[column]!r} and {cell!r} both mean {column}"
            return
        if column is not None:
            seen[column] = cell
        columns.append(column)
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        yield 1, (f"header: no {', '.join(missing)} column (found {', '.join(repr(h) for h in header)}; "
                  f"recognised: {', '.join(COLUMNS)})")
        return
    if subscription is None and "subscription" not in seen:
        yield 1, "header: no subscription column and no subscription given"
        return
    if "tenant" in seen and "default_tenant" not in seen and default_tenant is None:
        yield 1, ("header: a tenant column needs a default_tenant column or --default-tenant NAME "
                  "(otherwise every tenant counts as a default one and users are deduplicated across tenants)")
        return

    end = reader.line_num
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"not readable as CSV: {exc}"
            return
        end = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            yield start, (f"{len(row)} cells but the header has {len(columns)} "
                          "(a delimiter inside an unquoted value?)")
            continue
        cells = {column: value for column, value in zip(columns, row, strict=False) if column is not None}
        yield from _row_events(start, cells, subscription, default_tenant)


def _row_events(line: int, cells: dict[str, str], subscription: str | None,
                default_tenant: str | None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    event: dict[str, Any] = {"type": "profile", "op": "upsert"}
    sub = (cells.get("subscription") or "").strip() or subscription
    if not sub:
        yield line, "subscription: empty (and no subscription given)"
        return
    event["subscription"] = sub
    for column in _KEY:
        value = (cells.get(column) or "").strip()
        if value:
            event[column] = value
    user_id = (cells.get("user_id") or "").strip()
    if not user_id:
        yield line, "user_id: empty (required)"
        return
    event["user_id"] = user_id
    for column in _IDENTITY:
        if column in cells:
            value = cells[column].strip()
            event[column] = value or None
    logged_in = False
    for column in ("active", "default_tenant", "logged_in"):
        text = (cells.get(column) or "").strip()
        if not text:
            continue
        flag = _boolean(text)
        if flag is None:
            yield line, f"{column}: {text!r} is not a boolean (true/false, yes/no, 1/0)"
            return
        if column == "logged_in":
            logged_in = flag
        else:
            event[column] = flag
    if not (cells.get("logged_in") or "").strip():
        logged_in = _has_logged_in(cells.get("last_login") or "")
    if default_tenant is not None and "default_tenant" not in event:
        event["default_tenant"] = event.get("tenant", "default") == default_tenant
    checked = validate(event)
    if isinstance(checked, Rejection):
        yield line, checked.reason
        return
    yield line, event
    if logged_in:
        login: dict[str, Any] = {"type": "login", "subscription": sub, "user_id": user_id}
        for column in _KEY:
            if column in event:
                login[column] = event[column]
        if "default_tenant" in event:
            login["default_tenant"] = event["default_tenant"]
        checked = validate(login)
        if isinstance(checked, Rejection):  # cannot happen once the upsert passed; kept as a guard
            yield line, checked.reason
            return
        yield line, login
