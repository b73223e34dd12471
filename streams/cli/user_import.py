"""A user-table CSV export as input events (``endusers import-users``; docs/operations.md).

Each row becomes a ``profile`` upsert (and a ``login`` when the user has logged in), checked with
:func:`schemas.codec.validate`, the same gate the processor applies, so what passes here is accepted
there. Rows are read one by one and a bad row is reported with its line and reason; the import goes on.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schemas.codec import Rejection, validate

Imported = Iterator[tuple[int, dict[str, Any] | str]]
"""``(line_number, event)`` or ``(line_number, error)``; line 1 is the header."""

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
                 default_tenant: str | None = None) -> Imported:
    """Read a CSV user-table export; yield ``(line_number, event)`` or ``(line_number, error)``.

    The first row is the header. Recognised columns (headers match case-insensitively, ignoring spaces,
    ``_``, ``-`` and ``.``; e.g. ``UserId``, ``user id``, ``Is_Active``): ``runtime, tenant,
    default_tenant, provider, user_id, username, email, phone, name, active, logged_in`` and optionally
    ``subscription`` (also spelt ``SubscriptionId`` or ``Licensee``). Only ``user_id`` is required, plus
    the subscription: the ``subscription`` argument, or the column when no argument is given. With the
    argument, a row naming another subscription is a bad row: a file meant for one licensee must not
    write (or deactivate users of) another. Other columns are ignored.
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
                      default_tenant: str | None = None) -> Imported:
    """:func:`import_users` over CSV text (for tests and stdin)."""
    yield from _import(io.StringIO(text), subscription, default_tenant)


def _import(handle: io.TextIOBase | Any, subscription: str | None, default_tenant: str | None) -> Imported:
    reader = csv.reader(handle, _dialect(handle))
    columns = _columns(reader, subscription, default_tenant)
    if isinstance(columns, str):
        yield 1, columns
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


def _dialect(handle: io.TextIOBase | Any) -> Any:
    """The delimiter (``,`` ``;`` tab ``|``) as the header line uses it; the handle is rewound."""
    sample = handle.read(64 * 1024)
    handle.seek(0)
    first_line = sample.splitlines()[0] if sample else ""
    try:
        return csv.Sniffer().sniff(first_line, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _columns(reader: Any, subscription: str | None, default_tenant: str | None) -> list[str | None] | str:
    """The column of each header cell (None: ignored), or why the header cannot be imported."""
    try:
        header = next(reader)
    except StopIteration:
        return "header: the file is empty (expected a header row with at least user_id)"
    except csv.Error as exc:
        return f"header: not readable as CSV: {exc}"
    columns: list[str | None] = []
    seen: dict[str, str] = {}
    for cell in header:
        column = header_column(cell)
        if column is not None and column in seen:
            return f"header: columns {seen[column]!r} and {cell!r} both mean {column}"
        if column is not None:
            seen[column] = cell
        columns.append(column)
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        return (f"header: no {', '.join(missing)} column (found {', '.join(repr(h) for h in header)}; "
                f"recognised: {', '.join(COLUMNS)})")
    if subscription is None and "subscription" not in seen:
        return "header: no subscription column and no subscription given"
    if "tenant" in seen and "default_tenant" not in seen and default_tenant is None:
        return ("header: a tenant column needs a default_tenant column or --default-tenant NAME "
                "(otherwise every tenant counts as a default one and users are deduplicated across tenants)")
    return columns


def _row_events(line: int, cells: dict[str, str], subscription: str | None, default_tenant: str | None) -> Imported:
    upsert = _upsert(cells, subscription, default_tenant)
    if isinstance(upsert, str):
        yield line, upsert
        return
    event, logged_in = upsert
    checked = validate(event)
    if isinstance(checked, Rejection):
        yield line, checked.reason
        return
    yield line, event
    if logged_in:
        login: dict[str, Any] = {"type": "login", "subscription": event["subscription"], "user_id": event["user_id"]}
        login.update((column, event[column]) for column in (*_KEY, "default_tenant") if column in event)
        checked = validate(login)
        if isinstance(checked, Rejection):  # cannot happen once the upsert passed; kept as a guard
            yield line, checked.reason
            return
        yield line, login


def _upsert(cells: dict[str, str], subscription: str | None,
            default_tenant: str | None) -> tuple[dict[str, Any], bool] | str:
    """The row's upsert event and whether the user has logged in, or what is wrong with a cell."""
    event: dict[str, Any] = {"type": "profile", "op": "upsert"}
    named = (cells.get("subscription") or "").strip()
    if subscription is not None and named and named != subscription:  # one licensee's file, never another's
        return f"subscription: {named!r} is not {subscription!r}, the subscription this import writes"
    event["subscription"] = named or subscription
    if not event["subscription"]:
        return "subscription: empty (and no subscription given)"
    event.update((column, value) for column in _KEY if (value := (cells.get(column) or "").strip()))
    event["user_id"] = (cells.get("user_id") or "").strip()
    if not event["user_id"]:
        return "user_id: empty (required)"
    event.update((column, cells[column].strip() or None) for column in _IDENTITY if column in cells)
    logged_in = _has_logged_in(cells.get("last_login") or "")
    for column in ("active", "default_tenant", "logged_in"):
        text = (cells.get(column) or "").strip()
        if not text:
            continue
        flag = _boolean(text)
        if flag is None:
            return f"{column}: {text!r} is not a boolean (true/false, yes/no, 1/0)"
        if column == "logged_in":
            logged_in = flag  # a logged_in cell wins over last_login
        else:
            event[column] = flag
    if default_tenant is not None and "default_tenant" not in event:
        event["default_tenant"] = event.get("tenant", "default") == default_tenant
    return event, logged_in
