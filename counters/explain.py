"""Explain one person: which records carry an identifier, which individual they form and why, its
class and the rule that decided it, and whether and where it is counted (docs/rules.md).

Nothing is stored in plaintext to make this possible: the admin gives the identifier, it is
normalized and digested with the subscription's key exactly as ingest does, and the digest is looked
for among the records (O(records): an admin's question, not a hot path).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from counters import individuals
from counters.classify import EXTERNAL, INTERNAL, UNCLASSIFIED, signature
from counters.digest import Digester
from counters.normalize import normalize_email, normalize_username
from counters.policy import ODC, is_excluded
from counters.state import Record, SubscriptionState


class NotAnIdentifier(ValueError):
    """The given email or username normalizes to nothing."""


def digests_of(digest: Digester, *, email: str | None = None, username: str | None = None) -> str:
    """The identifier digest, as ingest computes it (emails and usernames share one namespace)."""
    if email is not None:
        normalized = normalize_email(email)
        if normalized is None:
            raise NotAnIdentifier(f"{email!r} is not a valid email address")
        return digest(normalized)
    login = normalize_username(username or "")
    if login is None:
        raise NotAnIdentifier("an empty username identifies nobody")
    return digest(login)


def explanation(state: SubscriptionState, *, identifier: str | None = None, record: str | None = None) -> dict[str, Any]:
    """The explanation for the records carrying identifier digest ``identifier``, or for record
    digest ``record`` (``digest(runtime, tenant, provider, user_id)``)."""
    if record is not None:
        matches = [record] if record in state.records else []
    else:
        matches = [ref for ref, r in state.records.items()
                   if (r.email is not None and r.email[0] == identifier)
                   or (r.username is not None and r.username[0] == identifier)]
    seen_groups: list[set[str]] = []
    people = []
    for ref in sorted(matches):
        rec = state.records[ref]
        entry: dict[str, Any] = {"record": _describe(state, ref, rec, identifier)}
        if individuals.facts_of(rec) is not None:
            group = individuals.individual_of(state, ref)
            entry["individual"] = _individual(state, group, seen_groups)
        people.append(entry)
    return {"subscription": state.subscription, "found": len(matches), "records": people,
            "tombstoned": record is not None and record not in state.records and record in state.tombstones}


def _describe(state: SubscriptionState, ref: str, rec: Record, identifier: str | None) -> dict[str, Any]:
    settings = state.settings
    held = individuals.facts_of(rec)
    carries = [field for field, value in (("email", rec.email), ("username", rec.username))
               if value is not None and value[0] == identifier]
    return {
        "ref": ref, "runtime": rec.runtime, "provider": rec.provider, "active": rec.active,
        "logged_in": rec.logged_in, "default_tenant": rec.default_tenant, "excluded": rec.excluded,
        "carries": carries,
        "email_domain": rec.email[1] if rec.email is not None else None,
        "counted": held is not None,
        "why_not_counted": _why_not(settings.platform, settings.excluded_providers, rec),
        "deduplicated": held is not None and held.eligible,
    }


def _why_not(platform: str, excluded_providers: frozenset[str], rec: Record) -> str | None:
    if not rec.active:
        return "inactive"
    if platform == ODC and not rec.logged_in:
        return "never logged in (ODC counts users who logged in)"
    if is_excluded(rec.provider, rec.excluded, excluded_providers):
        return ("not an end user: its provider is in excluded_providers" if rec.provider in excluded_providers
                else "not an end user: the record is marked excluded")
    return None


def _individual(state: SubscriptionState, group: set[str], seen: list[set[str]]) -> dict[str, Any]:
    """Who is in the individual, what joins them, its class and the rule."""
    number = next((i for i, known in enumerate(seen) if known == group), None)
    if number is None:
        seen.append(group)
        number = len(seen) - 1
    facts = {ref: individuals.facts_of(state.records[ref]) for ref in group}
    carried: Counter[str] = Counter()
    for f in facts.values():
        if f is not None:
            carried.update(set(f.identifiers))
    joining = []
    for ref in sorted(group):
        rec = state.records[ref]
        for field, value in (("email", rec.email), ("username", rec.username)):
            if value is not None and carried[value[0]] > 1:
                joining.append({"ref": ref, "field": field, "identifier": value[0]})
    user_class, rule = class_and_rule(state, group)
    return {"number": number, "records": sorted(group), "joined_by": joining,
            "class": user_class, "rule": rule, "counted_in": "subscription"}


def class_and_rule(state: SubscriptionState, group: set[str]) -> tuple[str, str]:
    """The class of the individual of records ``group`` and the rule that decided it."""
    facts = [(state.records[ref], individuals.facts_of(state.records[ref])) for ref in group]
    domains = [f.domain for _, f in facts if f is not None and f.domain is not None]
    unclassified = [rec.runtime for rec, f in facts if f is not None and f.unclassified]
    sig = signature(domains, bool(unclassified))
    return state.settings.domains.class_of(sig), _rule(state, sig, unclassified)


def _rule(state: SubscriptionState, sig: str, unclassified: list[str]) -> str:
    owned = state.settings.domains
    if not owned.entries:
        return f"{INTERNAL}: no owned domains are set, so everyone is internal"
    if sig == UNCLASSIFIED:
        return f"{INTERNAL}: a record of runtime {sorted(set(unclassified))[0]} (O11 older than 11.7.0) is never classified"
    if sig == "":
        return f"{INTERNAL}: no record has an email (or a username that is an email)"
    for domain in sig.split(" "):
        if owned.owns(domain):
            entry = next(e for e in owned.entries
                         if e == domain or (e.startswith("*.") and domain.endswith(e[1:])))
            return f"{INTERNAL}: email domain {domain} is owned (entry {entry})"
    return f"{EXTERNAL}: no email domain of its records ({', '.join(sig.split(' '))}) is owned"


def record_digest(digest: Digester, runtime: str, tenant: str, provider: str, user_id: str) -> str:
    return digest(runtime, tenant, provider, user_id)



def explanation_text(answer: dict[str, Any]) -> str:
    """The explanation in a few plain lines (``endusers explain``)."""
    if not answer["found"]:
        gone = " (the record was deleted)" if answer.get("tombstoned") else ""
        return f"{answer['subscription']}: no record carries this identifier{gone}"
    lines = [f"{answer['subscription']}: {answer['found']} record(s)"]
    for entry in answer["records"]:
        r = entry["record"]
        state = "counted" if r["counted"] else f"not counted: {r['why_not_counted']}"
        carries = f", carries it as {' and '.join(r['carries'])}" if r["carries"] else ""
        lines.append(f"- record {r['ref']} in runtime {r['runtime']}, provider {r['provider']}{carries}: "
                     f"active {r['active']}, logged in {r['logged_in']}, {state}")
        person = entry.get("individual")
        if person is not None:
            joins = ", ".join(f"{j['ref']}'s {j['field']}" for j in person["joined_by"]) or "nothing: alone"
            lines.append(f"  individual #{person['number']} of {len(person['records'])} record(s), joined by {joins}")
            lines.append(f"  class {person['class']}: {person['rule']}; counted once in the subscription")
    return "\n".join(lines)
