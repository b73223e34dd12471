"""The admission check: would one more person add to a count, and would it cross a threshold?

A registration flow (an identity provider's inline hook) asks before it creates a user. The answer is
what a login of that person would do to the subscription's counts now, applying nothing: the
candidate record (named by its key, or new) becomes active and logged in with the identifiers given,
and joins the individuals of the subscription that hold one of them, as ``counters/individuals.py``
would join it (docs/rules.md, deduplication). Only the index entries of its identifiers and the
domains of the individuals they lead to are read: O(identifiers + their individuals' distinct
domains), never O(records), so the check answers from a worker's memory in microseconds.

What a record already counted adds is nothing: it is answered as it stands, whatever identifiers the
request gives (changing a counted record's identity is a profile change, not an admission).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from counters import individuals
from counters.classify import CLASSES, signature
from counters.digest import Digester
from counters.explain import NotAnIdentifier, class_and_rule
from counters.levels import next_level
from counters.limits import new_record_refusal
from counters.policy import is_excluded
from counters.state import (ACTIVE, ASIDE, COUNTED, DEFAULT_TENANT, ELIGIBLE, KIND, Facts, LOGGED_IN, NEVER, SUBSCRIPTION_SCOPE,
                            UNCLASSIFIED, Group, Record, SubscriptionState)
from counters.translate import _email_value, _username_value


@dataclass(frozen=True, slots=True)
class Candidate:
    """The person asked about, digested as ingest digests a login: identifiers as ``(digest, domain)``."""

    email: tuple[str, str] | None = None
    username: tuple[str, str | None] | None = None
    runtime: str = "default"
    provider: str = "default"
    default_tenant: bool | None = None
    """None: the record's own flag (a new record is in a default tenant)."""
    record: str | None = None
    """The record's digest when the request names its key (runtime, tenant, provider, user_id)."""


def candidate(digest: Digester, subscription: str, *, email: str | None = None, username: str | None = None,
              runtime: str = "default", tenant: str = "default", provider: str = "default",
              user_id: str | None = None, default_tenant: bool | None = None) -> Candidate:
    """The candidate of a request, its identifiers normalized and digested with the subscription's key
    exactly as ingest does (``counters/translate.py``); :class:`NotAnIdentifier` when an email is not a
    valid address, a username is empty, or nothing names anybody."""
    keyed = digest.for_subscription(subscription)
    email_value = None if email is None else _email_value(keyed, email)
    if email is not None and email_value is None:
        raise NotAnIdentifier(f"{email!r} is not a valid email address")
    username_value = None if username is None else _username_value(keyed, username)
    if username is not None and username_value is None:
        raise NotAnIdentifier("an empty username identifies nobody")
    if email_value is None and username_value is None and user_id is None:
        raise NotAnIdentifier("give email, username, or a record key (user_id with runtime, tenant, provider)")
    record = None if user_id is None else keyed(runtime, tenant, provider, user_id)
    return Candidate(email_value, username_value, runtime, provider, default_tenant, record)


def admission(state: SubscriptionState, person: Candidate) -> dict[str, Any]:
    """``{"adds", "user_class", "count_after", "capacity", "level_after", "crosses"}`` and the
    context (``count_before``, ``level_before``, ``joins``, ``reason``); changes nothing.

    ``adds``: the count of the person's class would rise. ``user_class``: the class of the individual
    the person would be (None: not an end user). ``level_after``: that class's capacity level after,
    with the hysteresis of docs/rules.md; ``crosses``: it is above the level now."""
    existing = state.records.get(person.record) if person.record is not None else None
    if existing is not None and existing.kind & COUNTED:
        user_class, _ = class_and_rule(state, individuals.individual_of(state, person.record or ""))
        return _answer(state, user_class, {}, 0, "already counted: this record counts now")
    if existing is None:
        refused = new_record_refusal(state, person.runtime, person.provider)
        if refused is not None:  # ingest would refuse the login that creates the record
            return _adds_nothing(state, f"refused: {refused}")
    record = _as_admitted(existing, person)
    kind = individuals.kind_of(state.settings, record)
    if kind == ASIDE or not kind & COUNTED:
        return _not_counted(state, record)
    facts = Facts(bool(kind & ELIGIBLE), *individuals._identity(record), bool(kind & UNCLASSIFIED),
                              record.email_id)
    linked = _linked(state, facts) if facts.eligible else []
    domains = {facts.domain} if facts.domain is not None else set()
    unclassified = facts.unclassified
    delta: dict[str, int] = {c: 0 for c in CLASSES}
    for entry in linked:
        found_domains, found_unclassified = _shape_of(state, entry)
        delta[state.settings.domains.class_of(signature(found_domains, found_unclassified))] -= 1
        domains |= found_domains
        unclassified = unclassified or found_unclassified
    user_class = state.settings.domains.class_of(signature(domains, unclassified))
    delta[user_class] += 1
    return _answer(state, user_class, delta, len(linked), _reason(linked, delta[user_class]))


def _as_admitted(existing: Record | None, person: Candidate) -> Record:
    """The record as an admission would leave it: active and logged in, with the identifiers given
    (those not given stay the record's own), in its default tenant unless told otherwise."""
    flags = (existing.flags if existing is not None else ACTIVE | DEFAULT_TENANT) | ACTIVE | LOGGED_IN
    if person.default_tenant is not None:
        flags = flags | DEFAULT_TENANT if person.default_tenant else flags & ~DEFAULT_TENANT
    runtime, provider = (existing.runtime, existing.provider) if existing is not None else (person.runtime, person.provider)
    record = Record(runtime, provider, NEVER, flags=flags & ~KIND)
    if existing is not None:
        record.email, record.username = existing.email, existing.username
    if person.email is not None:
        record.email = person.email
    if person.username is not None:
        record.username = person.username
    return record


def _linked(state: SubscriptionState, facts: Facts) -> list[str | Group]:
    """The individuals of the subscription that hold one of the identifiers: a lone record's key, or
    a group; each once."""
    index = state.index.get(SUBSCRIPTION_SCOPE, {})
    found: list[str | Group] = []
    for identifier in facts.identifiers:
        entry = index.get(identifier)
        if entry is not None and not any(entry is other for other in found):
            found.append(entry)
    return found


def _shape_of(state: SubscriptionState, entry: str | Group) -> tuple[set[str], bool]:
    """The classification domains of an individual and whether it holds an unclassified record."""
    if isinstance(entry, Group):
        return set(entry.domain_names()), entry.unclassified > 0
    held = individuals.facts_of(state.records[entry])
    assert held is not None  # only counted records are in the index
    return ({held.domain} if held.domain is not None else set()), held.unclassified


def _reason(linked: list[str | Group], rise: int) -> str:
    if not linked:
        return "a new individual"
    if len(linked) > 1:
        return f"joins {len(linked)} counted individuals into one (an identifier links them)"
    if rise > 0:
        return "joins a counted individual and changes its class"
    return "already counted: a counted record holds this email or username"


def _not_counted(state: SubscriptionState, record: Record) -> dict[str, Any]:
    """The answer for a record that would not count even active and logged in: not an end user."""
    settings = state.settings
    why = ("not an end user: its provider is in excluded_providers" if record.provider in settings.excluded_providers
           else "not an end user: the record is marked excluded")
    assert is_excluded(record.provider, record.excluded, settings.excluded_providers)
    return _adds_nothing(state, why)


def _adds_nothing(state: SubscriptionState, why: str) -> dict[str, Any]:
    """The answer for a person who would be no end user, or whose record ingest would refuse."""
    return {"subscription": state.subscription, "adds": False, "user_class": None, "count_after": None,
            "capacity": None, "level_after": None, "crosses": False, "count_before": None, "level_before": None,
            "joins": 0, "reason": why}


def _answer(state: SubscriptionState, user_class: str, delta: dict[str, int], joins: int, reason: str
            ) -> dict[str, Any]:
    settings = state.settings
    before, level = state.count(user_class), state.levels[user_class]
    after = before + delta.get(user_class, 0)
    capacity = settings.capacity[user_class]
    level_after = level
    if capacity is not None and after != before:  # a level is re-evaluated when its count moves
        level_after = next_level(level, after, capacity, settings.thresholds, settings.hysteresis)
    return {"subscription": state.subscription, "adds": after > before, "user_class": user_class,
            "count_after": after, "capacity": capacity, "level_after": level_after, "crosses": level_after > level,
            "count_before": before, "level_before": level, "joins": joins, "reason": reason}
