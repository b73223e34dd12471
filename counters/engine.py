"""The counting engine: applies normalized changes to a subscription's state (docs/rules.md).

Pure and synchronous: the offline replay and the live count stage call the same ``apply``, so they can
never disagree. Ordering rules make it safe under redelivery and late events: every record field is
last-writer-wins by event time, deletes leave tombstones, the logged-in mark is sticky; applying the
same change twice changes nothing.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import TypeVar

from msgspec import UNSET, UnsetType

from counters import individuals
from counters.limits import LimitExceeded, refusal
from counters.classify import CLASSES, OwnedDomains
from counters.levels import highest_reached, next_level
from counters.policy import counts_alike
from counters.sealing import unwrap
from counters.state import CONFIG_IDS_KEPT, LOGGED_IN, NEVER, Record, SubscriptionState
from schemas.changes import Change, ConfigFields
from schemas.limits import copied_id
from schemas.outputs import CapacityEvent, UserClass, format_instant

T = TypeVar("T")
V = TypeVar("V")

_EVENT_NAMESPACE = uuid.UUID("6f1c2a57-4a0e-4a43-9d1e-2f6a3c1d8b90")


def apply(state: SubscriptionState, change: Change) -> list[CapacityEvent]:
    """Apply one change and return the capacity-change events it causes, in order.

    Raises :class:`~counters.limits.LimitExceeded`, having changed nothing, when the change would
    take the subscription past a limit of ``counters.limits``."""
    refused = refusal(state, change)
    if refused is not None:
        raise LimitExceeded(refused)
    if change.invalid_email:
        state.invalid_emails += 1
    if change.kind == "config":
        events = _apply_config(state, change)
        for user_class in CLASSES:
            _note_extreme(state, user_class, state.count(user_class))
        return events
    if change.kind == "anonymous":
        state.sessions.add(change.record)
        return []
    if change.kind == "login":
        record = state.records.get(change.record)
        # a record created afresh after a delete takes the usual path, which checks the delete's time
        if record is not None and change.record not in state.tombstones and _repeated_login(record, change):
            state.dirty.add(change.record)
            return []
    before = [state.count(c) for c in CLASSES]
    _apply_record_change(state, change)
    # A level is a fixed point of its count: re-evaluating it at an unchanged count changes nothing.
    events = []
    for user_class, count in zip(CLASSES, before):
        now = state.count(user_class)
        if now != count:
            _note_extreme(state, user_class, now)
            if (event := _follow_level(state, user_class, change)) is not None:
                events.append(event)
    return events


def _note_extreme(state: SubscriptionState, user_class: str, count: int) -> None:
    """Widen the class's range of counts since the last save (``SubscriptionState.extremes``)."""
    found = state.extremes.get(user_class)
    state.extremes[user_class] = (count, count) if found is None else (min(found[0], count), max(found[1], count))


def restore(state: SubscriptionState) -> None:
    """Derive the rest of a loaded state from its persisted part (counters/state.py says which is which).

    A store loads only the facts (settings, records, tombstones, levels, ...) and calls this before
    the first ``apply``: the identifier indexes, groups, histograms, class totals, counts and the
    shared-identifier set are rebuilt from the records under the loaded settings, so they can never
    disagree with them. O(records log records)."""
    for _ in restore_in_steps(state):
        pass


def restore_in_steps(state: SubscriptionState, step: int = 1000) -> Iterator[None]:
    """:func:`restore`, pausing about every ``step`` records so that an asynchronous store can yield
    to its event loop between slices. The state is usable only once the generator is exhausted."""
    runtimes, providers = state.record_runtimes, state.record_providers
    runtimes.clear()
    providers.clear()
    for done, record in enumerate(state.records.values(), 1):
        runtimes[record.runtime] += 1
        providers[record.provider] += 1
        if done % (step * 10) == 0:
            yield
    yield from individuals.rebuild_in_steps(state, step)


# --- records --------------------------------------------------------------------------------------


def _apply_record_change(state: SubscriptionState, change: Change) -> None:
    ref, time = change.record, change.time
    tombstone = state.tombstones.get(ref)
    if tombstone is not None and time <= tombstone:
        # Older than the record's last delete: it belonged to the deleted record, whether this one is
        # still absent or was created afresh since. Judged field by field on the new record, a late
        # or redelivered event from before the delete would change it (a deactivation at 00:02,
        # delivered again after a delete at 00:11 and a new login at 00:43, would turn the new one off).
        return
    record = state.records.get(ref)
    if record is None:
        if change.kind == "delete":
            state.tombstones[ref] = time
            state.dirty.add(ref)
            return
        record = state.records[ref] = Record(sys.intern(change.runtime), sys.intern(change.provider), time)
        state.record_runtimes[record.runtime] += 1
        state.record_providers[record.provider] += 1
    elif change.kind == "delete":
        if time >= record.updated:  # unless a newer event already changed it
            individuals.refresh(state, ref, individuals.facts_of(record), removing=True)
            del state.records[ref]
            _forget_one(state.record_runtimes, record.runtime)
            _forget_one(state.record_providers, record.provider)
            state.tombstones[ref] = time
            state.dirty.add(ref)
        return
    held = individuals.facts_of(record)  # what the index holds: it leaves with these identifiers
    _set_fields(record, change)
    state.dirty.add(ref)
    individuals.refresh(state, ref, held)


def _forget_one(held: dict[str, int], name: str) -> None:
    """One record fewer under ``name``; a name with none left frees its place under the limit."""
    if held[name] <= 1:
        del held[name]
    else:
        held[name] -= 1


def _repeated_login(record: Record, change: Change) -> bool:
    """Apply a login that changes no value of a record already logged in, and say whether it was one.

    The common case: most events are logins of people already counted. Its identity fields equal the record's, so the record's facts,
    and with them every count and level, stay as they are: only field times move, as ``_set_fields``
    would move them, and the grouping path is skipped.
    """
    if not record.flags & LOGGED_IN:
        return False
    fields, time = change.fields, change.time
    for key, value in fields.items():
        if key == "email":
            if value is None:
                if record.email_id is not None:
                    return False
            elif value[0] != record.email_id or value[1] != record.email_domain:
                return False
        elif key == "username":
            if value is None:
                if record.username_id is not None:
                    return False
            elif value[0] != record.username_id or value[1] != record.username_domain:
                return False
        elif key == "user":
            continue  # the same person's id: kept once, below
        elif key != "default_tenant" or value != record.default_tenant:
            return False  # a field the fast path does not compare sends the login the usual way
    if "email" in fields and time >= record.email_t:
        record.email_t = time
    if "username" in fields and time >= record.username_t:
        record.username_t = time
    if "default_tenant" in fields and time >= record.default_tenant_t:
        record.default_tenant_t = time
    _keep_login(record, change)
    if not record.user and "user" in fields:
        _keep_user(record, fields["user"])  # none in memory: released after a commit, or a record kept before ids
    return True


def _set_fields(record: Record, change: Change) -> None:
    """Each field is set only by an event that is not older than the one that last set it."""
    time, fields, kind = change.time, change.fields, change.kind
    if kind == "login":
        record.logged_in = True
        _keep_login(record, change)
    elif time > record.updated:
        record.updated = time
    if not record.user and "user" in fields:
        _keep_user(record, fields["user"])
    if kind == "deactivate" or kind == "activate":
        if time >= record.active_t:
            record.active, record.active_t = kind == "activate", time
    else:
        if "email" in fields and time >= record.email_t:
            record.email, record.email_t = fields["email"], time
        if "username" in fields and time >= record.username_t:
            record.username, record.username_t = fields["username"], time
        if "active" in fields and time >= record.active_t:
            record.active, record.active_t = fields["active"], time
        if "default_tenant" in fields and time >= record.default_tenant_t:
            record.default_tenant, record.default_tenant_t = fields["default_tenant"], time
        if "excluded" in fields and time >= record.excluded_t:
            record.excluded, record.excluded_t = fields["excluded"], time


def _keep_user(record: Record, given: object) -> None:
    """Keep the sealed id a change carries, when the record holds none in memory (None, or ``STORED``:
    then it is the same person's id, sealed again). One that is not base64 leaves the record as it
    was: a ``STORED`` id must stay the stored one."""
    sealed = unwrap(given)
    if sealed is not None:
        record.user = sealed


def _keep_login(record: Record, change: Change) -> None:
    """A login moves the record's last login (the latest login's event time, whatever order logins
    arrive in) and its latest time; both then hold the same int."""
    time = change.time
    if time > record.updated:
        record.updated = time
    if time > record.last_login:
        record.last_login = record.updated if time == record.updated else time


# --- settings -------------------------------------------------------------------------------------


def _apply_config(state: SubscriptionState, change: Change) -> list[CapacityEvent]:
    if change.event_id is not None:
        if change.event_id in state.config_ids:
            return []  # an exact duplicate (a redelivery, or the same event published twice)
        state.config_ids.append(change.event_id)
        del state.config_ids[:-CONFIG_IDS_KEPT]
    new = _newer_keys(state, change)
    if new is None:
        return []  # every key was set by a newer config: settings, and so levels, stay as they are
    settings = state.settings
    thresholds_before = settings.thresholds
    _set_counting_rules(state, new)
    if not isinstance(new.thresholds, UnsetType):
        settings.thresholds = tuple(new.thresholds)
    if not isinstance(new.hysteresis, UnsetType):
        settings.hysteresis = new.hysteresis
    if not isinstance(new.billing_day, UnsetType):
        settings.billing_day = new.billing_day  # only how the history is read: no count changes
    if not isinstance(new.dormant_days, UnsetType):
        settings.dormant_days = new.dormant_days  # only what the dormancy report defaults to
    if not isinstance(new.statement_grace, UnsetType):
        settings.statement_grace = new.statement_grace  # only when statements close: no count changes
    if not isinstance(new.source_silence, UnsetType):
        settings.source_silence = new.source_silence  # only when a source is called silent
    thresholds_changed = set(settings.thresholds) != set(thresholds_before)
    events = []
    for user_class in CLASSES:
        if settings.capacity[user_class] is None:
            state.levels[user_class] = 0  # unlimited: no level, and no event for leaving one
            continue
        event = _follow_level(state, user_class, change, without_hysteresis=thresholds_changed)
        if event is not None:
            events.append(event)
    return events


def _set_counting_rules(state: SubscriptionState, new: ConfigFields) -> None:
    """Set the settings that decide who counts and how, and re-evaluate the records each one touches."""
    settings = state.settings
    platform_before, versions_before = settings.platform, dict(settings.runtimes)
    if not isinstance(new.platform, UnsetType):
        settings.platform = new.platform
    if not isinstance(new.runtimes, UnsetType):
        settings.runtimes.update(new.runtimes)
    if not isinstance(new.capacity, UnsetType):
        settings.capacity.update(new.capacity)
    if settings.platform != platform_before:
        individuals.rebuild(state)  # countability and eligibility of every record may change
    else:
        changed = {runtime for runtime, version in settings.runtimes.items()
                   if not counts_alike(settings.platform, versions_before.get(runtime), version)}
        if changed:
            individuals.refresh_runtimes(state, changed)
    threshold = new.shared_identifier_threshold
    if not isinstance(threshold, UnsetType) and threshold != settings.shared_identifier_threshold:
        settings.shared_identifier_threshold = threshold
        individuals.find_shared(state)  # after a rebuild above: it recomputes the report itself
    providers = new.excluded_providers
    if not isinstance(providers, UnsetType) and frozenset(providers) != settings.excluded_providers:
        excluded_before, settings.excluded_providers = settings.excluded_providers, frozenset(providers)
        individuals.refresh_providers(state, set(excluded_before ^ settings.excluded_providers))
    if not isinstance(new.domains, UnsetType) and tuple(new.domains) != settings.domains.entries:
        settings.domains = OwnedDomains(new.domains)
        individuals.reclassify(state)


def _newer_keys(state: SubscriptionState, change: Change) -> ConfigFields | None:
    """The config keys that this event may set, None if none: last-writer-wins by time per key, like
    record fields (a tie applies, so of two configs with the same time the later arrival wins).
    ``capacity`` and ``runtimes`` are maps whose entries are keys of their own (``capacity.internal``,
    ``runtimes.r1``)."""
    given = change.config if change.config is not None else ConfigFields()
    times, time = state.config_times, change.time
    newer_any = False

    def newer(key: str, value: T | UnsetType) -> T | UnsetType:
        nonlocal newer_any
        if isinstance(value, UnsetType) or time < times.get(key, NEVER):
            return UNSET
        times[key] = time
        newer_any = True
        return value

    def entries(key: str, mapping: dict[str, V] | UnsetType) -> dict[str, V] | UnsetType:
        if isinstance(mapping, UnsetType):
            return UNSET
        kept = {name: value for name, value in mapping.items() if newer(f"{key}.{name}", value) is not UNSET}
        return kept if kept else UNSET

    kept = ConfigFields(
        platform=newer("platform", given.platform), domains=newer("domains", given.domains),
        capacity=entries("capacity", given.capacity), thresholds=newer("thresholds", given.thresholds),
        hysteresis=newer("hysteresis", given.hysteresis),
        shared_identifier_threshold=newer("shared_identifier_threshold", given.shared_identifier_threshold),
        runtimes=entries("runtimes", given.runtimes), billing_day=newer("billing_day", given.billing_day),
        dormant_days=newer("dormant_days", given.dormant_days),
        statement_grace=newer("statement_grace", given.statement_grace),
        source_silence=newer("source_silence", given.source_silence),
        excluded_providers=newer("excluded_providers", given.excluded_providers))
    return kept if newer_any else None


# --- levels ---------------------------------------------------------------------------------------


def _follow_level(
    state: SubscriptionState, user_class: UserClass, change: Change, without_hysteresis: bool = False
) -> CapacityEvent | None:
    settings = state.settings
    capacity = settings.capacity[user_class]
    if capacity is None:
        return None
    count, level = state.count(user_class), state.levels[user_class]
    if without_hysteresis:
        new_level = highest_reached(count, capacity, settings.thresholds)
    else:
        new_level = next_level(level, count, capacity, settings.thresholds, settings.hysteresis)
    if new_level == level:
        return None
    state.levels[user_class] = new_level
    state.sequence[user_class] += 1
    return CapacityEvent(
        id=capacity_event_id(state.subscription, user_class, state.sequence[user_class], level, new_level),
        subscription=state.subscription,
        user_class=user_class,
        previous_level=level,
        level=new_level,
        direction="up" if new_level > level else "down",
        count=count,
        capacity=capacity,
        exceeded=count > capacity,
        time=format_instant(change.time),
        trigger=copied_id(change.event_id),
    )


def capacity_event_id(subscription: str, user_class: str, sequence: int, previous: int, level: int) -> str:
    """Deterministic: the n-th level change of a class is the same change however often it is
    recomputed (the count stage applies each change exactly once, in order), so it gets the same id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{subscription}\x1f{user_class}\x1f{sequence}\x1f{previous}\x1f{level}"))

