"""Dormant users and the roster (docs/rules.md, dormant users): who is counted, through which records,
when each record last logged in, and whose seat deactivating their dormant records would free.

A record is dormant when it is counted and its last login (the event time of its latest login) is at
least ``days`` days before the processing clock, or it never logged in (a record kept before records
had a last login reads as never: the report errs towards showing a record for review, never towards
hiding one). A person (an individual of the subscription scope) is *reclaimable* when every one of
their counted records is dormant: deactivating those records removes the person, so their class's
count drops by one. When the same person has a recent login on another record, deactivating the
dormant ones changes no count. Both reports walk every record (O(records)): an admin's question,
answered from a committed state read afresh, never on the counting path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from counters import individuals
from counters.classify import CLASSES
from counters.explain import class_and_rule
from counters.sealing import Sealer
from counters.state import COUNTED, NEVER, SubscriptionState
from schemas.outputs import format_instant

DAY = 86_400 * 1_000_000
"""Microseconds per day (event times are microseconds since the epoch)."""


def people(state: SubscriptionState) -> Iterator[tuple[str, list[str]]]:
    """Each counted person of the subscription scope as ``(key, records)``, ordered by key: the key
    is the smallest digest of their records (stable while the records are, and no personal data)."""
    seen: set[str] = set()
    found = []
    for ref, record in state.records.items():
        if record.kind & COUNTED and ref not in seen:
            group = individuals.individual_of(state, ref)
            seen.update(group)
            found.append((min(group), sorted(group)))
    yield from sorted(found)


def record_row(state: SubscriptionState, ref: str, sealer: Sealer | None) -> dict[str, Any]:
    """What an admin acts on: where the record is, the provider's id, and its last login (None: never)."""
    record = state.records[ref]
    opened = None if not record.user or sealer is None else sealer.open(ref, record.user)
    tenant, user_id = (None, None) if opened is None else opened
    return {"record": ref, "runtime": record.runtime, "tenant": tenant, "provider": record.provider,
            "user_id": user_id, "last_login": None if record.last_login == NEVER else format_instant(record.last_login)}


def dormant(state: SubscriptionState, now: int, days: int, sealer: Sealer | None = None) -> dict[str, Any]:
    """The counted records not logged in for ``days`` days (or never), oldest login first (never
    first of all), each with its person's class and ``reclaimable``; ``freed``: the seats per class
    that deactivating every reclaimable person's records would free."""
    cutoff = now - days * DAY
    rows: list[tuple[int, str, dict[str, Any]]] = []
    freed: dict[str, int] = {c: 0 for c in CLASSES}
    persons = 0
    for person, group in people(state):
        quiet = [ref for ref in group if state.records[ref].last_login <= cutoff]
        if not quiet:
            continue
        persons += 1
        reclaimable = len(quiet) == len(group)
        user_class, _ = class_and_rule(state, set(group))
        if reclaimable:
            freed[user_class] += 1
        for ref in quiet:
            row = record_row(state, ref, sealer)
            row.update({"class": user_class, "person": person, "reclaimable": reclaimable})
            rows.append((state.records[ref].last_login, ref, row))
    rows.sort(key=lambda entry: (entry[0], entry[1]))
    return {"subscription": state.subscription, "days": days, "as_of": format_instant(now),
            "since": format_instant(cutoff), "people": persons, "freed": freed,
            "records": [row for _, _, row in rows]}


def roster(state: SubscriptionState, sealer: Sealer | None = None, after: str | None = None,
           limit: int = 1000) -> dict[str, Any]:
    """Every counted person after cursor ``after`` (a person key), at most ``limit`` of them: class, the
    rule that decided it, their last login and their records. ``next``: the cursor of the next page,
    None on the last."""
    page: list[dict[str, Any]] = []
    more = False
    for person, group in people(state):
        if after is not None and person <= after:
            continue
        if len(page) == limit:
            more = True
            break
        user_class, rule = class_and_rule(state, set(group))
        latest = max(state.records[ref].last_login for ref in group)
        page.append({"person": person, "class": user_class, "rule": rule,
                     "last_login": None if latest == NEVER else format_instant(latest),
                     "records": [record_row(state, ref, sealer) for ref in group]})
    return {"subscription": state.subscription, "people": page,
            "next": page[-1]["person"] if more else None}


DORMANT_CSV_HEADER = ("last_login", "runtime", "tenant", "provider", "user_id", "class", "reclaimable", "person",
                      "record")
ROSTER_CSV_HEADER = ("person", "class", "rule", "runtime", "tenant", "provider", "user_id", "last_login", "record")


def dormant_csv_rows(report: dict[str, Any]) -> list[list[Any]]:
    """The dormant records as CSV rows under :data:`DORMANT_CSV_HEADER` (the API's and the CLI's)."""
    return [[r["last_login"] or "never", r["runtime"], r["tenant"], r["provider"], r["user_id"], r["class"],
             "true" if r["reclaimable"] else "false", r["person"], r["record"]] for r in report["records"]]


def roster_csv_rows(page: dict[str, Any]) -> list[list[Any]]:
    """One row per record of each person of a roster page, under :data:`ROSTER_CSV_HEADER`."""
    return [[p["person"], p["class"], p["rule"], r["runtime"], r["tenant"], r["provider"], r["user_id"],
             r["last_login"] or "never", r["record"]] for p in page["people"] for r in p["records"]]
