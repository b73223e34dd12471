"""Human-readable rendering of counts for the terminal (``endusers counts`` without ``--json``)."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from counters import CLASSES

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 control characters (ESC starts a terminal escape sequence; U+009B is a one-byte CSI) and
the bidirectional overrides, which reorder what a terminal shows."""


def printable(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``): names come
    from producers, and a name holding an escape sequence could clear, retitle or rewrite an
    operator's terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}",
                            str(text))


def _int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "-"


def _style(level: int, capacity: int | None) -> str:
    if capacity is None:
        return ""
    if level >= 100:
        return "bold red"
    if level > 0:
        return "yellow"
    return "green"


def _against(count: Any, capacity: Any, known: bool) -> str:
    """``120 / 150 (80%)``; ``120 / unlimited``; just ``120`` when the capacity is not known."""
    if not known:
        return _int(count)
    if capacity is None:
        return f"{_int(count)} / unlimited"
    if capacity == 0:
        return f"{_int(count)} / 0" + (" (over)" if count else "")
    return f"{_int(count)} / {_int(capacity)} ({count * 100 / capacity:.0f}%)"


def _capacity_of(entry: Mapping[str, Any], given: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if given is not None:
        return given
    settings = entry.get("settings")
    for holder in (settings if isinstance(settings, Mapping) else {}, entry):
        capacity = holder.get("capacity")
        if isinstance(capacity, Mapping):
            return capacity
    return None


def shared_warnings(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """One warning per subscription whose report lists shared identifiers, with the most-held ones:
    their records still count as one individual, which an admin should know."""
    lines = []
    for name in sorted(reports):
        found = list(reports[name].get("identifiers") or ())
        if not found:
            continue
        top = ", ".join(f"{i['kind']} {i['digest']} ({_int(i['records'])} records)" for i in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        lines.append(f"! {printable(name)}: {len(found)} shared identifier(s) held by more than "
                     f"{reports[name].get('threshold')} records each, counted as one individual: {top}{more}")
    return "".join(line + "\n" for line in lines)


def counts_table(
    document: Mapping[str, Any],
    *,
    capacities: Mapping[str, Mapping[str, int | None]] | None = None,
    color: bool = False,
    width: int = 120,
) -> str:
    """Render ``{"subscriptions": {id: §6 object}}`` as a table: one row per subscription, then one
    indented row per runtime.

    Capacities come from ``capacities[id]``, else from the entry's ``settings.capacity`` (the API
    object), else are unknown and the count is shown alone. ``color`` adds ANSI styles by level
    (green normal, yellow warning, red critical); pass ``sys.stdout.isatty()``.
    """
    subscriptions: Mapping[str, Any] = document.get("subscriptions") or {}
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("Subscription", overflow="fold")
    table.add_column("Internal", justify="right")
    table.add_column("External", justify="right")
    table.add_column("Records", justify="right")
    table.add_column("Excluded", justify="right")
    table.add_column("Anonymous", justify="right")
    table.add_column("Levels", justify="right")
    for name in sorted(subscriptions):
        entry = subscriptions[name] or {}
        capacity = _capacity_of(entry, (capacities or {}).get(name))
        levels = entry.get("levels") or {}
        cells: list[Text | str] = [Text(printable(name), style="bold")]
        for user_class in CLASSES:
            limit = capacity.get(user_class) if capacity is not None else None
            text = _against(entry.get(user_class, 0), limit, capacity is not None)
            cells.append(Text(text, style=_style(levels.get(user_class, 0), limit) if capacity is not None else ""))
        cells.append(_int(entry.get("records")))
        cells.append(_int(entry.get("excluded", 0)))
        cells.append(_int(entry.get("anonymous_sessions")))
        cells.append(f"int {levels.get('internal', 0)}% · ext {levels.get('external', 0)}%")
        table.add_row(*cells)
        runtimes: Mapping[str, Any] = entry.get("runtimes") or {}
        for runtime in sorted(runtimes):
            scope = runtimes[runtime] or {}
            table.add_row(Text(f"  └ {printable(runtime)}", style="dim"), _int(scope.get("internal")),
                          _int(scope.get("external")), _int(scope.get("records")), "", "", "", style="dim")
    if not subscriptions:
        return "No subscriptions.\n"
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, no_color=not color, color_system="standard"
                      if color else None, highlight=False, emoji=False)
    console.print(table)
    return buffer.getvalue()


def domains_table(subscription: str, external: int, report: Mapping[str, Any], *, limit: int = 20,
                  width: int = 100) -> str:
    """``endusers domains``: the largest email domains of external individuals, then the rest folded."""
    top = list(report.get("top") or [])
    shown, rest = top[:limit], top[limit:]
    other_domains = int(report.get("other_domains", 0)) + len(rest)
    other_individuals = int(report.get("other_individuals", 0)) + sum(int(n) for _, n in rest)
    if not top:
        return f"{subscription}: no external users.\n"
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("Domain", overflow="fold")
    table.add_column("External", justify="right")
    table.add_column("Share", justify="right")
    for domain, count in shown:
        table.add_row(Text(printable(domain)), _int(count), f"{count * 100 / external:.1f}%" if external else "-")
    if other_domains:
        table.add_row(Text(f"{other_domains:,} other domain(s)", style="dim"), _int(other_individuals), "")
    buffer = io.StringIO()
    buffer.write(f"{printable(subscription)}: {external:,} external end users by email domain\n\n")
    Console(file=buffer, width=width, no_color=True, highlight=False, emoji=False).print(table)
    return buffer.getvalue()


def audit_lines(item: Mapping[str, Any]) -> list[str]:
    """The changes of one audit entry (docs/security.md, audit trail), one line per key:
    ``capacity.internal: null -> 10``, ``domains: +a.example -b.example (1 added, 1 removed)``."""
    changes = item.get("diff")
    if changes is None:  # an entry that kept the whole settings around the change
        before, after = item.get("before") or {}, item.get("after") or {}
        changes = {key: {"before": before.get(key), "after": after.get(key)} for key in item.get("changed") or []}
    lines = []
    for key, change in changes.items():
        if "added" in change:
            shown = [f"+{x}" for x in change["added"]] + [f"-{x}" for x in change["removed"]]
            lines.append(f"{key}: {' '.join(shown)} ({change['added_count']} added, {change['removed_count']} removed)")
        else:
            lines.append(f"{key}: {_json(change['before'])} -> {_json(change['after'])}")
    if item.get("omitted"):
        lines.append(f"(and {item['omitted']} more keys, left out of the trail as too large)")
    return lines or ["(no setting changed)"]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
