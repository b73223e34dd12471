"""Deduplication (docs/rules.md): grouping countable records into individuals, per scope, incrementally.

Two dedup-eligible countable records sharing an identifier are one individual, transitively; any other
countable record is an individual on its own; non-countable records never link others.

Each scope (the subscription, and each runtime) keeps an index from identifier to its only holder, or
to the ``Group`` of its holders: every holder of an identifier is in one group. A group keeps the
holders of each of its identifiers and, as counts, its members, domains and unclassified members. So
a change costs:

- a record joining: O(its identifiers), plus moving the smaller groups it links into the largest one
  (each record moves O(log n) times over any sequence of joins);
- a record leaving: O(its identifiers), unless it was the only link between its two identifiers (an
  email and a login) and other members still hold both: then two explorations, one from each, run
  in step until they meet (still one individual) or one runs out (that side becomes an individual of
  its own). The smaller side bounds the cost, not the group;
- O(1) when the record's facts did not change.

Why incremental: one email can be shared by a very large group (a shared mailbox, a test account), and
a record joining or leaving it must not walk the group; re-deriving the whole individual, pairwise, for
every change would make a replay cubic in the size of its largest group. The signature is recomputed only when a group's set of domains (or its unclassified mark) changes:
O(distinct domains of the group).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from counters.classify import signature
from counters.policy import is_countable, is_dedup_eligible, is_excluded, is_unclassified
from counters.state import (ASIDE, COUNTED, ELIGIBLE, FEW_HOLDERS, KIND, SUBSCRIPTION_SCOPE, UNCLASSIFIED, Facts, Group, Record,
                            SubscriptionSettings, SubscriptionState)


def facts_of(record: Record) -> Facts | None:
    """What the index holds of the record (None: not counted): its ``kind`` as the engine last set
    it, with its identifiers. Exact as long as the engine brings the index in line with a record
    whenever its identity fields change (``refresh``, given the facts from before the change)."""
    kind = record.kind
    if not kind & COUNTED:
        return None
    identifiers, domain = _identity(record)
    return Facts(bool(kind & ELIGIBLE), identifiers, domain, bool(kind & UNCLASSIFIED), record.email_id)


def kind_of(settings: SubscriptionSettings, record: Record) -> int:
    """The record's ``kind`` under the settings: counted (and how), set aside, or neither."""
    if not is_countable(settings.platform, record.active, record.logged_in):
        return 0
    if is_excluded(record.provider, record.excluded, settings.excluded_providers):
        return ASIDE
    version = settings.runtimes.get(record.runtime)
    return (COUNTED | ELIGIBLE * is_dedup_eligible(settings.platform, version, record.default_tenant)
            | UNCLASSIFIED * is_unclassified(settings.platform, version))


def _identity(record: Record) -> tuple[tuple[str, ...], str | None]:
    """The record's distinct identifiers, and its classification domain: the email's if it has a
    valid email, else the username's when the username is a valid email."""
    email, username = record.email_id, record.username_id
    if email is not None:
        return ((email,) if username is None or username == email else (email, username)), record.email_domain
    if username is not None:
        return (username,), record.username_domain
    return (), None


def refresh(state: SubscriptionState, ref: str, old: Facts | None, removing: bool = False) -> None:
    """Bring the derived counts in line with what record ``ref`` now is; ``old`` is what the index
    holds of it: ``facts_of(record)`` taken before its fields changed.

    Call after every change of a record's raw fields or of the settings it counts under, and before
    removing a record (``removing``); O(1) when its facts did not change.
    """
    record = state.records[ref]
    kind = 0 if removing else kind_of(state.settings, record)
    aside = kind == ASIDE
    if aside != record.set_aside:
        state.excluded += 1 if aside else -1
    record.kind = kind
    new = None if not kind & COUNTED else facts_of(record)
    if old == new:
        return
    if old is not None:
        _leave_runtime(state, record.runtime, ref, old)
        _leave(state, SUBSCRIPTION_SCOPE, ref, old)
    if new is not None:
        _join(state, SUBSCRIPTION_SCOPE, ref, new)
        _join_runtime(state, record.runtime, ref, new)
    delta = (new is not None) - (old is not None)
    if delta:
        state.scope(record.runtime).records += delta
        state.scope(SUBSCRIPTION_SCOPE).records += delta
        state.providers[record.provider] += delta


def rebuild(state: SubscriptionState) -> None:
    """Recompute every derived structure from the records, class totals included (each record's
    individual is counted under the current owned domains): after a load (``engine.restore``), or a
    change of platform (which may change every record's facts). O(records log records)."""
    for _ in rebuild_in_steps(state):
        pass


def rebuild_in_steps(state: SubscriptionState, step: int = 1000) -> Iterator[None]:
    """``rebuild`` as a generator that pauses about every ``step`` records, so that an asynchronous
    caller can yield to its event loop between slices; the state is consistent once it is exhausted.

    ``refresh`` of each record with what repeats taken out of the loop (a takeover rebuilds a
    million): policy answers per kind of record, a lone record's signature per domain, class totals
    once at the end. A record sharing no identifier with an earlier one enters the index directly
    (and no runtime's index); any other joins through ``_join`` and ``_join_runtime``, as in ``refresh``.
    """
    _clear_derived(state)
    settings = state.settings
    whole = state.scope(SUBSCRIPTION_SCOPE)
    index = state.index.setdefault(SUBSCRIPTION_SCOPE, {})
    kinds: dict[tuple[str, str, int], int] = {}
    signatures: dict[tuple[str | None, int], str] = {}
    # a lone holder is never shared unless the threshold is below 1: then every join notes it
    direct = settings.shared_identifier_threshold >= 1
    providers, excluded = state.providers, 0
    for done, (ref, record) in enumerate(state.records.items(), start=1):
        if done % step == 0:
            yield None
        key = (record.runtime, record.provider, record.flags & ~KIND)  # the booleans, not the kind
        kind = kinds.get(key)
        if kind is None:
            kind = kinds[key] = kind_of(settings, record)
        record.kind = kind
        if not kind & COUNTED:
            excluded += kind == ASIDE
            continue
        identifiers, domain = _identity(record)
        runtime = state.scope(record.runtime)
        whole.records += 1
        runtime.records += 1
        alone = not kind & ELIGIBLE or not identifiers
        if not alone and direct and identifiers[0] not in index and (len(identifiers) == 1 or identifiers[1] not in index):
            for identifier in identifiers:
                index[identifier] = ref
            alone = True  # alone in the subscription, so alone in its runtime: only counted there
        if alone:
            sig = _lone_signature(signatures, domain, kind)
            whole.histogram[sig] += 1
            runtime.histogram[sig] += 1
        else:
            facts = Facts(True, identifiers, domain, kind & UNCLASSIFIED > 0, record.email_id)
            _join(state, SUBSCRIPTION_SCOPE, ref, facts)
            _join_runtime(state, record.runtime, ref, facts)
        providers[record.provider] += 1
    state.excluded = excluded
    reclassify(state)  # the direct entries above counted histograms only
    state.shared_changed = True


def _lone_signature(signatures: dict[tuple[str | None, int], str], domain: str | None, kind: int) -> str:
    """The signature of a record alone in its individual, computed once per domain and kind."""
    sig = signatures.get((domain, kind))
    if sig is None:
        sig = signatures[(domain, kind)] = signature(() if domain is None else (domain,), kind & UNCLASSIFIED > 0)
    return sig


def _clear_derived(state: SubscriptionState) -> None:
    state.index.clear()
    state.scopes.clear()
    state.scope(SUBSCRIPTION_SCOPE)
    state.providers.clear()
    state.shared.clear()
    state.excluded = 0


def refresh_runtimes(state: SubscriptionState, runtimes: set[str]) -> None:
    """Bring the records of some runtimes in line with a change of their versions, one record at a
    time: O(records) to find them, then a join and a leave per record whose facts changed. The other
    runtimes' records keep their facts, and each one's grouping is left as it is."""
    for ref, record in [(ref, record) for ref, record in state.records.items() if record.runtime in runtimes]:
        refresh(state, ref, facts_of(record))


def refresh_providers(state: SubscriptionState, providers: set[str]) -> None:
    """Bring the records of some providers in line with a change of ``excluded_providers``:
    O(records) to find them, then as ``refresh`` for each."""
    for ref, record in [(ref, record) for ref, record in state.records.items() if record.provider in providers]:
        refresh(state, ref, facts_of(record))


def individual_of(state: SubscriptionState, ref: str, scope: str | None = SUBSCRIPTION_SCOPE) -> set[str]:
    """The records of the individual that countable record ``ref`` belongs to in ``scope`` (for
    ``counters/explain.py``); O(size of that individual)."""
    held = facts_of(state.records[ref])
    if held is None or not held.eligible or not held.identifiers:
        return {ref}
    entry = state.index.get(scope, {}).get(held.identifiers[0])
    if not isinstance(entry, Group):
        return {ref}
    members: set[str] = set()
    for holders in entry.holders.values():
        if isinstance(holders, str):
            members.add(holders)
        else:
            members.update(holders)
    return members


def reclassify(state: SubscriptionState) -> None:
    """Recompute class totals from the signature histograms: O(distinct signatures), not O(users)."""
    domains = state.settings.domains
    for scope in state.scopes.values():
        scope.totals.clear()
        for sig, individuals in scope.histogram.items():
            scope.totals[domains.class_of(sig)] += individuals


def find_shared(state: SubscriptionState) -> None:
    """Recompute which identifiers are held by more than the threshold's records: after a change of
    the threshold. O(identifiers held by two records or more)."""
    threshold = state.settings.shared_identifier_threshold
    state.shared.clear()
    index = state.index.get(SUBSCRIPTION_SCOPE, {})
    for identifier, entry in index.items():
        if isinstance(entry, Group) and entry.held(identifier) > threshold:
            state.shared.add(identifier)
    state.shared_changed = True


def holders(state: SubscriptionState, identifier: str, scope: str | None = SUBSCRIPTION_SCOPE) -> int:
    """How many countable, dedup-eligible records hold the identifier in the scope."""
    entry = state.index.get(scope, {}).get(identifier)
    if entry is None:
        if scope is SUBSCRIPTION_SCOPE:
            return 0
        lone = state.index.get(SUBSCRIPTION_SCOPE, {}).get(identifier)  # not in a runtime's index
        return int(isinstance(lone, str) and state.records[lone].runtime == scope)
    return 1 if isinstance(entry, str) else entry.held(identifier)


def held_as_email(state: SubscriptionState, identifier: str) -> bool:
    """Whether any record holds the identifier as its email (rather than only as its username)."""
    entry = state.index.get(SUBSCRIPTION_SCOPE, {}).get(identifier)
    if not isinstance(entry, Group):
        return entry is not None and state.records[entry].email_id == identifier  # an indexed record is counted
    if entry.emails is not None and identifier in entry.emails:
        return entry.emails[identifier] > 0
    return any(state.records[holder].email_id == identifier for holder in entry.holders_of(identifier))


# --- internals ------------------------------------------------------------------------------------


def _grouped(state: SubscriptionState, facts: Facts) -> bool:
    """Whether a countable record is a member of a group of the subscription: then, and only then,
    its runtime's index holds its identifiers. A record alone in the subscription is alone in its
    runtime, so the runtime only counts its signature: most records are alone, and the index of
    their runtime would repeat the subscription's (about 40 bytes per record)."""
    return facts.eligible and bool(facts.identifiers) and isinstance(
        state.index[SUBSCRIPTION_SCOPE].get(facts.identifiers[0]), Group)


def _join_runtime(state: SubscriptionState, runtime: str, ref: str, facts: Facts) -> None:
    """Add a countable record to its runtime, once it has joined the subscription."""
    if _grouped(state, facts):
        _join(state, runtime, ref, facts)
    else:
        _count(state, runtime, _own_signature(facts), +1)


def _leave_runtime(state: SubscriptionState, runtime: str, ref: str, facts: Facts) -> None:
    """Remove a countable record from its runtime, before it leaves the subscription."""
    if _grouped(state, facts):
        _leave(state, runtime, ref, facts)
    else:
        _count(state, runtime, _own_signature(facts), -1)


def _enter_runtime(state: SubscriptionState, ref: str, facts: Facts) -> None:
    """A record alone in the subscription joins a group there: its runtime's index takes it, alone
    (its identifiers are no other record's; its signature is already counted)."""
    index = state.index.setdefault(state.records[ref].runtime, {})
    for identifier in facts.identifiers:
        index[identifier] = ref


def _exit_runtime(state: SubscriptionState, ref: str, facts: Facts) -> None:
    """A record left alone in the subscription (its group dissolved or split it off) leaves its
    runtime's index, where it is alone too: the record that left has left its runtime first."""
    index = state.index[state.records[ref].runtime]
    for identifier in facts.identifiers:
        del index[identifier]


def _own_signature(facts: Facts) -> str:
    return signature(() if facts.domain is None else (facts.domain,), facts.unclassified)


def _count(state: SubscriptionState, scope: str | None, sig: str, delta: int) -> None:
    counts = state.scope(scope)
    counts.histogram[sig] += delta
    if counts.histogram[sig] == 0:
        del counts.histogram[sig]
    counts.totals[state.settings.domains.class_of(sig)] += delta


def _join(state: SubscriptionState, scope: str | None, ref: str, facts: Facts) -> None:
    """Add a countable record to the scope, merging the individuals it links."""
    if not facts.eligible or not facts.identifiers:
        _count(state, scope, _own_signature(facts), +1)
        return
    index = state.index.setdefault(scope, {})
    singles: list[str] = []
    groups: dict[int, Group] = {}
    for identifier in facts.identifiers:
        entry = index.get(identifier)
        if isinstance(entry, Group):
            groups[id(entry)] = entry
        elif entry is not None and entry != ref and entry not in singles:
            singles.append(entry)
    if not singles and not groups:
        for identifier in facts.identifiers:
            index[identifier] = ref
        _count(state, scope, _own_signature(facts), +1)
        return
    ordered = sorted(groups.values(), key=lambda g: g.size, reverse=True)
    target = ordered[0] if ordered else Group()
    known = _shape(target) if ordered else None
    if ordered:
        _count(state, scope, target.sig, -1)
    for other in ordered[1:]:
        _count(state, scope, other.sig, -1)
        _merge(state, scope, index, target, other)
    for single in singles:
        single_facts = facts_of(state.records[single])
        assert single_facts is not None
        _count(state, scope, _own_signature(single_facts), -1)
        _add(state, scope, index, target, single, single_facts)
        if scope is SUBSCRIPTION_SCOPE:
            _enter_runtime(state, single, single_facts)
    _add(state, scope, index, target, ref, facts)
    if _shape(target) != known:
        target.sig = signature(target.domain_names(), target.unclassified > 0)
    _count(state, scope, target.sig, +1)


def _leave(state: SubscriptionState, scope: str | None, ref: str, facts: Facts) -> None:
    """Remove a countable record from the scope; its individual splits if it was the only link."""
    if not facts.eligible or not facts.identifiers:
        _count(state, scope, _own_signature(facts), -1)
        return
    index = state.index[scope]
    entry = index[facts.identifiers[0]]
    if not isinstance(entry, Group):
        for identifier in facts.identifiers:
            del index[identifier]
        _count(state, scope, _own_signature(facts), -1)
        return
    group = entry
    known = _shape(group)
    _count(state, scope, group.sig, -1)
    linked = _remove(state, scope, index, group, ref, facts)
    if len(linked) == 2:
        part = _split_off(state, group, linked[0], linked[1])
        if part is not None:
            _detach(state, scope, index, group, part)
    if group.size == 1:
        _dissolve(state, scope, index, group)
        return
    if _shape(group) != known:
        group.sig = signature(group.domain_names(), group.unclassified > 0)
    _count(state, scope, group.sig, +1)


def _shape(group: Group) -> tuple[int, bool]:
    """What the signature depends on, as far as a join or leave can change it: a join only adds
    domains and a leave only removes them, so their number tells whether the set moved."""
    domains = group.domains
    return 0 if domains is None else 1 if isinstance(domains, tuple) else len(domains), group.unclassified > 0


def _add(state: SubscriptionState, scope: str | None, index: dict[str, str | Group], group: Group,
         ref: str, facts: Facts) -> None:
    group.size += 1
    last: tuple[str, ...] = ()
    for identifier in facts.identifiers:
        found = group.holders.get(identifier)
        if found is None:
            group.holders[identifier] = ref
        elif isinstance(found, str) or isinstance(found, tuple) and len(found) < FEW_HOLDERS:
            held = (found, ref) if isinstance(found, str) else (*found, ref)
            # the same holders for the email and the login (one person in two runtimes): one tuple
            # for both, never changed in place (56 bytes less per such group)
            group.holders[identifier] = last = last if held == last else held
        elif isinstance(found, tuple):
            group.holders[identifier] = {*found, ref}
            if scope is SUBSCRIPTION_SCOPE:  # from now on, how many hold it as their email is counted
                if group.emails is None:
                    group.emails = {}
                group.emails[identifier] = sum(state.records[holder].email_id == identifier for holder in found)
        else:
            found.add(ref)
        if scope is SUBSCRIPTION_SCOPE:
            if group.emails is not None and identifier in group.emails:
                group.emails[identifier] += facts.email == identifier
            _note_holders(state, identifier, group.held(identifier))
        index[identifier] = group
    _add_counts(group, facts, +1)


def _add_counts(group: Group, facts: Facts, delta: int) -> None:
    if facts.domain is not None:
        _count_domain(group, facts.domain, delta)
    group.unclassified += delta * facts.unclassified


def _remove(state: SubscriptionState, scope: str | None, index: dict[str, str | Group], group: Group,
            ref: str, facts: Facts) -> list[str]:
    """Take the record out of its group; its identifiers that other members still hold."""
    group.size -= 1
    linked = []
    for identifier in facts.identifiers:
        found = group.holders[identifier]
        if isinstance(found, str):
            del group.holders[identifier]
            del index[identifier]
        else:
            if isinstance(found, tuple):
                rest = tuple(holder for holder in found if holder != ref)
                group.holders[identifier] = rest[0] if len(rest) == 1 else rest
            else:
                found.discard(ref)
                if group.emails is not None and identifier in group.emails:
                    group.emails[identifier] -= facts.email == identifier
                if len(found) == 1:
                    group.holders[identifier] = next(iter(found))
                    if group.emails is not None:
                        group.emails.pop(identifier, None)
            linked.append(identifier)
        if scope is SUBSCRIPTION_SCOPE:
            _note_holders(state, identifier, group.held(identifier))
    _add_counts(group, facts, -1)
    return linked


def _merge(state: SubscriptionState, scope: str | None, index: dict[str, str | Group], target: Group,
           other: Group) -> None:
    """Move the smaller group into the larger: each identifier's holders stay together."""
    target.size += other.size
    for identifier, found in other.holders.items():
        target.holders[identifier] = found
        index[identifier] = target
    if other.emails:
        if target.emails is None:
            target.emails = {}
        target.emails.update(other.emails)  # each identifier is in one group: no key is in both
    for domain, members in _domain_counts(other):
        _count_domain(target, domain, members)
    target.unclassified += other.unclassified


def _split_off(state: SubscriptionState, group: Group, first: str, second: str) -> set[str] | None:
    """After a member left, whether the group's two identifiers it held are still connected.

    Explores from both at once, one record per step, and stops when one exploration meets the other
    (still one individual: None) or runs out (the members it reached are an individual of their
    own). So the cost is bounded by the smaller side, not by the group.
    """
    searches = [_Search(state, group, first), _Search(state, group, second)]
    while True:
        for this, that in (searches, searches[::-1]):
            found = this.step()
            if found is None:
                return this.records
            if any(identifier in that.identifiers for identifier in found):
                return None


class _Search:
    """A depth-first exploration of the members reachable from one identifier, in small steps."""

    def __init__(self, state: SubscriptionState, group: Group, start: str) -> None:
        self.state, self.group = state, group
        self.identifiers = {start}
        self.records: set[str] = set()
        self._pending = [start]
        self._holders: Iterator[str] = iter(())

    def step(self) -> list[str] | None:
        """Visit one more member; the identifiers it showed first, or None when nothing is left."""
        for member in self._holders:
            if member not in self.records:
                break
        else:
            if not self._pending:
                return None
            self._holders = iter(self.group.holders_of(self._pending.pop()))
            return []
        self.records.add(member)
        held = facts_of(self.state.records[member])
        assert held is not None
        new = [i for i in held.identifiers if i not in self.identifiers]
        self.identifiers.update(new)
        self._pending += new
        return new


def _detach(state: SubscriptionState, scope: str | None, index: dict[str, str | Group], group: Group,
            part: set[str]) -> None:
    """Move the members of a part that is no longer connected to the rest into their own individual."""
    records = state.records
    if len(part) == 1:
        (single,) = part
        single_facts = facts_of(records[single])
        assert single_facts is not None
        group.size -= 1
        for identifier in single_facts.identifiers:
            del group.holders[identifier]
            index[identifier] = single
        _add_counts(group, single_facts, -1)  # held by it alone: no identifier of its is in ``emails``
        _count(state, scope, _own_signature(single_facts), +1)
        if scope is SUBSCRIPTION_SCOPE:
            _exit_runtime(state, single, single_facts)
        return
    piece = Group()
    for member in part:
        member_facts = facts_of(records[member])
        assert member_facts is not None
        group.size -= 1
        piece.size += 1
        for identifier in member_facts.identifiers:
            if identifier not in piece.holders:
                piece.holders[identifier] = group.holders.pop(identifier)
                index[identifier] = piece
                if group.emails is not None and identifier in group.emails:
                    if piece.emails is None:
                        piece.emails = {}
                    piece.emails[identifier] = group.emails.pop(identifier)
        _add_counts(group, member_facts, -1)
        _add_counts(piece, member_facts, +1)
    piece.sig = signature(piece.domain_names(), piece.unclassified > 0)
    _count(state, scope, piece.sig, +1)


def _dissolve(state: SubscriptionState, scope: str | None, index: dict[str, str | Group], group: Group) -> None:
    """A group left with one member: that record is an individual of its own again."""
    last = next(iter(group.holders.values()))
    assert isinstance(last, str)
    for identifier in group.holders:
        index[identifier] = last
    last_facts = facts_of(state.records[last])
    assert last_facts is not None
    _count(state, scope, _own_signature(last_facts), +1)
    if scope is SUBSCRIPTION_SCOPE:
        _exit_runtime(state, last, last_facts)


def _domain_counts(group: Group) -> Iterable[tuple[str, int]]:
    """Each domain of the group's members, with how many members it classifies."""
    domains = group.domains
    return () if domains is None else (domains,) if isinstance(domains, tuple) else domains.items()


def _count_domain(group: Group, domain: str, delta: int) -> None:
    """``delta`` members more (or fewer) in ``domain``: one domain is held as a pair, more in a dict
    (``Group.domains``)."""
    domains = group.domains
    if domains is None:
        group.domains = (domain, delta)
    elif isinstance(domains, tuple):
        if domains[0] == domain:
            left = domains[1] + delta
            group.domains = (domain, left) if left else None
        else:
            group.domains = {domains[0]: domains[1], domain: delta}
    else:
        _adjust(domains, domain, delta)
        if len(domains) == 1:
            group.domains = next(iter(domains.items()))


def _adjust(counter: dict[str, int], key: str, delta: int) -> None:
    left = counter.get(key, 0) + delta
    if left:
        counter[key] = left
    else:
        del counter[key]


def _note_holders(state: SubscriptionState, identifier: str, held: int) -> None:
    """Keep the set of shared identifiers in step with one identifier's holder count."""
    if held > state.settings.shared_identifier_threshold:
        state.shared.add(identifier)
        state.shared_changed = True
    elif identifier in state.shared:
        state.shared.discard(identifier)
        state.shared_changed = True
