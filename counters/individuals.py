"""Deduplication (docs/rules.md): grouping countable records into individuals, per scope, incrementally.

Two dedup-eligible countable records sharing an identifier are one individual, transitively; any other
countable record is an individual on its own; non-countable records never link others. The index maps
each identifier to the countable eligible records carrying it, so the individual of a record is found by
walking the index from it, and a change regroups only the individuals it touches:
O(size of those individuals), and O(1) when the record's facts did not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from counters.classify import signature
from counters.policy import is_countable, is_dedup_eligible, is_unclassified
from counters.state import SUBSCRIPTION_SCOPE, Facts, Record, Settings, SubscriptionState


def facts_of(settings: Settings, record: Record) -> Facts | None:
    """The record's counting facts under the settings, or None when it is not countable."""
    if not is_countable(settings.platform, record.active, record.logged_in):
        return None
    version = settings.runtimes.get(record.runtime)
    identifiers = tuple(dict.fromkeys(i[0] for i in (record.email, record.username) if i is not None))
    # Classification email: the email if valid, else the username when it is a valid email.
    domain = record.email[1] if record.email is not None else (record.username[1] if record.username else None)
    return Facts(
        eligible=is_dedup_eligible(settings.platform, version, record.default_tenant),
        identifiers=identifiers,
        domain=domain,
        unclassified=is_unclassified(settings.platform, version),
    )


def refresh(state: SubscriptionState, ref: str, removing: bool = False) -> None:
    """Bring the derived counts in line with what record ``ref`` now is.

    Call after every change of a record's raw fields, and before removing a record (``removing``);
    O(1) when its facts did not change.
    """
    record = state.records[ref]
    old = record.facts
    new = None if removing else facts_of(state.settings, record)
    if old == new:
        return
    scopes = (SUBSCRIPTION_SCOPE, record.runtime)
    touched = {scope: _touched(state, ref, old, new, scope) for scope in scopes}
    for scope, records in touched.items():
        for group in _groups(state, records, scope):
            _count(state, group, scope, -1)
    _set_facts(state, record, ref, old, new)
    for scope, records in touched.items():
        if new is None:
            records.discard(ref)
        else:
            records.add(ref)
        for group in _groups(state, records, scope):
            _count(state, group, scope, +1)


def rebuild(state: SubscriptionState) -> None:
    """Recompute every derived structure from the records: after a load, or a change of platform or
    runtime versions (which may change every record's facts)."""
    for _ in rebuild_in_steps(state):
        pass


def rebuild_in_steps(state: SubscriptionState, step: int = 1000) -> Iterator[None]:
    """``rebuild`` as a generator that pauses about every ``step`` records (or individuals), so that
    an asynchronous caller can yield to its event loop between slices. The state is consistent only
    once the generator is exhausted."""
    state.index.clear()
    state.scopes.clear()
    state.scope(SUBSCRIPTION_SCOPE)
    state.providers.clear()
    for done, (ref, record) in enumerate(state.records.items(), start=1):
        record.facts = facts_of(state.settings, record)
        if record.facts is not None:
            _index(state, ref, record.facts, add=True)
            state.scope(record.runtime).records += 1
            state.scope(SUBSCRIPTION_SCOPE).records += 1
            state.providers[record.provider] += 1
        if done % step == 0:
            yield None
    countable = {ref for ref, record in state.records.items() if record.facts is not None}
    for done, group in enumerate(_groups(state, countable, SUBSCRIPTION_SCOPE), start=1):
        _count(state, group, SUBSCRIPTION_SCOPE, +1)
        if done % step == 0:
            yield None
    by_runtime: dict[str, set[str]] = {}
    for ref in countable:
        by_runtime.setdefault(state.records[ref].runtime, set()).add(ref)
    for runtime, refs in by_runtime.items():
        for done, group in enumerate(_groups(state, refs, runtime), start=1):
            _count(state, group, runtime, +1)
            if done % step == 0:
                yield None


def refresh_runtimes(state: SubscriptionState, runtimes: set[str]) -> None:
    """Bring the records of some runtimes in line with a change of their versions, one record at a
    time: O(records) to find them, then O(size of the touched individuals) per record whose facts
    changed. The other runtimes' records keep their facts, and each one's grouping is left as it is."""
    for ref in [ref for ref, record in state.records.items() if record.runtime in runtimes]:
        refresh(state, ref)


def reclassify(state: SubscriptionState) -> None:
    """Recompute class totals from the signature histograms: O(distinct signatures), not O(users)."""
    domains = state.settings.domains
    for scope in state.scopes.values():
        scope.totals.clear()
        for sig, individuals in scope.histogram.items():
            scope.totals[domains.class_of(sig)] += individuals


# --- internals ------------------------------------------------------------------------------------


def _indexed(state: SubscriptionState, ref: str) -> Facts | None:
    return state.records[ref].facts


def _touched(state: SubscriptionState, ref: str, old: Facts | None, new: Facts | None, scope: str | None) -> set[str]:
    """Every record of the individuals the change can split or join, in the index as it is now."""
    touched: set[str] = set()
    if old is not None:
        touched |= _individual(state, ref, scope)
    if new is not None and new.eligible:
        for identifier in new.identifiers:
            for other in _carriers(state, identifier):
                if other not in touched and _in_scope(state, other, scope):
                    touched |= _individual(state, other, scope)
    return touched


def _individual(state: SubscriptionState, start: str, scope: str | None) -> set[str]:
    """The records of the individual containing ``start`` in the scope (walk the index)."""
    seen = {start}
    facts = _indexed(state, start)
    if facts is None or not facts.eligible:
        return seen
    stack = [start]
    while stack:
        current = _indexed(state, stack.pop())
        assert current is not None
        for identifier in current.identifiers:
            for other in _carriers(state, identifier):
                if other not in seen and _in_scope(state, other, scope):
                    seen.add(other)
                    stack.append(other)
    return seen


def _groups(state: SubscriptionState, refs: set[str], scope: str | None) -> Iterator[set[str]]:
    """Partition a closed set of countable records into individuals."""
    remaining = set(refs)
    while remaining:
        group = _individual(state, remaining.pop(), scope)
        remaining -= group
        yield group


def _count(state: SubscriptionState, group: set[str], scope: str | None, delta: int) -> None:
    facts = [f for f in (_indexed(state, ref) for ref in group) if f is not None]
    sig = signature((f.domain for f in facts if f.domain is not None), any(f.unclassified for f in facts))
    counts = state.scope(scope)
    counts.histogram[sig] += delta
    if counts.histogram[sig] == 0:
        del counts.histogram[sig]
    counts.totals[state.settings.domains.class_of(sig)] += delta


def _set_facts(state: SubscriptionState, record: Record, ref: str, old: Facts | None, new: Facts | None) -> None:
    if old is not None:
        _index(state, ref, old, add=False)
    if new is not None:
        _index(state, ref, new, add=True)
    delta = (new is not None) - (old is not None)
    if delta:
        state.scope(record.runtime).records += delta
        state.scope(SUBSCRIPTION_SCOPE).records += delta
        state.providers[record.provider] += delta
    record.facts = new


def _index(state: SubscriptionState, ref: str, facts: Facts, add: bool) -> None:
    if not facts.eligible:
        return
    index = state.index
    for identifier in facts.identifiers:
        holders = index.get(identifier)
        if add:
            if holders is None:
                index[identifier] = ref
            elif isinstance(holders, str):
                index[identifier] = {holders, ref}
            else:
                holders.add(ref)
        elif holders is not None:
            if isinstance(holders, str):
                if holders == ref:
                    del index[identifier]
            else:
                holders.discard(ref)
                if len(holders) == 1:
                    index[identifier] = next(iter(holders))


def _carriers(state: SubscriptionState, identifier: str) -> Iterable[str]:
    holders = state.index.get(identifier)
    if holders is None:
        return ()
    if isinstance(holders, str):
        return (holders,)
    return holders


def _in_scope(state: SubscriptionState, ref: str, scope: str | None) -> bool:
    return scope is SUBSCRIPTION_SCOPE or state.records[ref].runtime == scope
