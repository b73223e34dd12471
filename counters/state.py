"""A subscription's state: the facts that must persist, and the structures derived from them.

Persisted (what a store saves and loads): settings, records, tombstones, levels, level-change
sequence numbers, anonymous sessions. Derived (rebuilt from records on load, maintained incrementally
by the engine): the per-scope identifier indexes and groups, the signature histograms and totals,
record and provider counts. Keeping the derived part out of storage halves the bytes per record at rest and means
a store can never hold an index that disagrees with its records.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from counters.classify import CLASSES, OwnedDomains
from counters.late import LateTally
from counters.sources import SourceTally
from schemas.limits import MAX_REPORTED, REPORTED_OTHER
from schemas.outputs import ScopeCounts, SubscriptionCounts

DEFAULT_THRESHOLDS = (80, 90, 100)
DEFAULT_HYSTERESIS = 1
DEFAULT_SHARED_IDENTIFIER_THRESHOLD = 5
DEFAULT_BILLING_DAY = 1
DEFAULT_DORMANT_DAYS = 90
DEFAULT_STATEMENT_GRACE = 72
"""Hours after a billing period ends before its statement closes (counters/statements.py)."""
DEFAULT_SOURCE_SILENCE = 24
"""Hours without an event after which a user provider is silent (counters/sources.py)."""
"""The settings of a subscription no config event has set, and what a key given as null restores."""

NEVER = -(2**62)
"""The time of a field nobody set: older than any event, so any explicit value wins."""


COUNTED, ELIGIBLE, UNCLASSIFIED, ASIDE = 1, 2, 4, 8
"""The bits of ``Record.kind`` (the low bits of ``Record.flags``)."""
KIND = 15
ACTIVE, DEFAULT_TENANT, LOGGED_IN, EXCLUDED = 16, 32, 64, 128
"""The bits of ``Record.flags`` that hold its boolean fields."""


class Record(msgspec.Struct, eq=False, gc=False):
    """One user row in one runtime; each field remembers the time of the event that set it.

    The email and the username are each a digest and the domain it classifies by (None: no domain,
    or for a username one that is not an email), held as two fields rather than a
    ``[digest, domain]`` list (88 bytes each, per record); ``email`` and ``username`` read and set
    them in that list form, the form of a change's fields. ``kind`` is what the counting rules made
    of the record when the index last took it in (``COUNTED``, ``ELIGIBLE``, ``UNCLASSIFIED``,
    ``ASIDE``); the engine alone maintains it. With the identifiers it gives the record's facts
    (``counters.individuals.facts_of``): a small int, shared by every record, rather than a facts
    object and a tuple of identifiers per record (110 bytes). The booleans and the kind share one
    int, ``flags`` (a small int, shared: 32 bytes less than five fields), read and set through
    properties of their names. ``runtime``, ``provider`` and the
    domains should be interned (a worker holds millions of records over a handful of runtimes and
    providers and a few thousand domains).

    A msgspec struct rather than a slotted class: built in C from its fields (a takeover builds a
    million), and never tracked by the garbage collector (16 bytes less each, and no collection walks
    millions of records): a record refers to strings, ints and its facts, never to an object that
    refers back to it, so it can be part of no reference cycle. ``eq=False``: records compare by
    identity, as objects do.
    """

    runtime: str
    provider: str
    updated: int
    email_id: str | None = None
    email_domain: str | None = None
    email_t: int = NEVER
    username_id: str | None = None
    username_domain: str | None = None
    username_t: int = NEVER
    active_t: int = NEVER
    default_tenant_t: int = NEVER
    excluded_t: int = NEVER
    flags: int = ACTIVE | DEFAULT_TENANT
    """``ACTIVE``, ``DEFAULT_TENANT``, ``LOGGED_IN``, ``EXCLUDED`` and the ``kind``."""
    last_login: int = NEVER
    """The event time of the record's latest login (``NEVER``: none known). Usually the same int
    object as ``updated`` (a login is most records' latest event), so it costs its slot only."""
    user: bytes | None = None
    """The sealed tenant and provider user id (``counters.sealing``); None for a visitor, or a record
    whose id was never carried (state kept before records had one); ``STORED`` once a store that
    keeps it has committed it (``release_users``)."""

    @property
    def kind(self) -> int:
        """Derived: what the index holds of the record, as ``COUNTED | ELIGIBLE | UNCLASSIFIED`` bits,
        or ``ASIDE`` (countable but excluded, so counted in ``SubscriptionState.excluded`` instead), or 0."""
        return self.flags & KIND

    @kind.setter
    def kind(self, kind: int) -> None:
        self.flags = self.flags & ~KIND | kind

    @property
    def set_aside(self) -> bool:
        return self.flags & KIND == ASIDE

    @property
    def active(self) -> bool:
        return self.flags & ACTIVE != 0

    @active.setter
    def active(self, value: bool) -> None:
        self.flags = self.flags | ACTIVE if value else self.flags & ~ACTIVE

    @property
    def default_tenant(self) -> bool:
        return self.flags & DEFAULT_TENANT != 0

    @default_tenant.setter
    def default_tenant(self, value: bool) -> None:
        self.flags = self.flags | DEFAULT_TENANT if value else self.flags & ~DEFAULT_TENANT

    @property
    def logged_in(self) -> bool:
        return self.flags & LOGGED_IN != 0

    @logged_in.setter
    def logged_in(self, value: bool) -> None:
        self.flags = self.flags | LOGGED_IN if value else self.flags & ~LOGGED_IN

    @property
    def excluded(self) -> bool:
        return self.flags & EXCLUDED != 0

    @excluded.setter
    def excluded(self, value: bool) -> None:
        self.flags = self.flags | EXCLUDED if value else self.flags & ~EXCLUDED

    @property
    def email(self) -> list[Any] | None:
        """``[digest, domain-or-None]``, or None without an email."""
        return None if self.email_id is None else [self.email_id, self.email_domain]

    @email.setter
    def email(self, value: Sequence[Any] | None) -> None:
        self.email_id, self.email_domain = (None, None) if value is None else (value[0], _shared(value[1]))

    @property
    def username(self) -> list[Any] | None:
        """``[digest, domain-or-None]`` (a domain when the username is an email), or None."""
        return None if self.username_id is None else [self.username_id, self.username_domain]

    @username.setter
    def username(self, value: Sequence[Any] | None) -> None:
        self.username_id, self.username_domain = (None, None) if value is None else (value[0], _shared(value[1]))


STORED = b""
"""``Record.user`` of a record whose sealed id is held by the store and not in memory: a worker
counting from Redis keeps a record's sealed id (AES-SIV, ``counters.sealing``: about 60 bytes as a
Python object) only from the change that brought it until the commit that stored it (``release_users``). Only the admin's reports open it, and
they read a committed state afresh (``fresh_state``), with the ids. Empty, so ``not record.user``
says "none in memory", and one shared object."""


def release_users(state: SubscriptionState) -> None:
    """Drop from memory the sealed ids of the records a commit has just stored, before ``dirty`` is
    cleared: what a worker keeps per record no longer includes them (docs/benchmarks.md, heap). A
    later change carrying the id brings it back until its own commit; a store that must write a
    record whose id is ``STORED`` reads it back first (``streams.store.redis_store``)."""
    records = state.records
    for ref in state.dirty:
        record = records.get(ref)
        if record is not None and record.user:
            record.user = STORED


def _shared(domain: str | None) -> str | None:
    """One string per domain, shared by every record in it (a few thousand over millions)."""
    return None if domain is None else sys.intern(domain)


class Facts(msgspec.Struct, frozen=True, gc=False):
    """What the counting rules need of a countable record under the current settings.

    Not kept: made from a record's ``kind`` and identifiers when a join or a leave needs them.
    Frozen and compared by value (``refresh`` skips a record whose facts did not change); a msgspec
    struct: built in C, and outside the garbage collector."""

    eligible: bool
    identifiers: tuple[str, ...]
    domain: str | None
    unclassified: bool
    email: str | None = None
    """The digest of the record's email, when it has one (its other identifier is its username)."""


FEW_HOLDERS = 8
"""Up to this many holders of one identifier in a group are kept in a tuple, more in a set."""


class Group:
    """An individual of two or more records in one scope, with what its signature and the index need
    kept as counts, so a record joins or leaves it without walking the other members.

    ``holders`` maps each identifier of the members to the member holding it, or to its holders: a
    tuple while they are few (``FEW_HOLDERS``; 56 bytes for two, a set takes 216), a set beyond: every holder of an identifier in the scope is in the same group, and the members are the
    holders (so no set of members is kept, only their number). ``emails`` counts, for each identifier
    whose holders are a set, the members holding it as their email (the shared-identifier report's
    kind), in the subscription scope only: a few holders are simply looked at. Plain dicts rather than
    ``Counter``s (24 bytes less each), and none of ``emails`` until an identifier has many holders: a
    group of two took 1,100 bytes with sets and counters, about 470 now (its domains as a pair).
    """

    __slots__ = ("size", "holders", "emails", "domains", "unclassified", "sig")

    def __init__(self) -> None:
        self.size = 0
        self.holders: dict[str, str | tuple[str, ...] | set[str]] = {}
        self.emails: dict[str, int] | None = None
        self.domains: dict[str, int] | tuple[str, int] | None = None
        """How many members each domain classifies: None for none, a ``(domain, members)`` pair
        for one (56 bytes, where a dict takes 184: most groups are one person in one domain), a
        dict for more (``counters.individuals._count_domain``)."""
        self.unclassified = 0
        self.sig = ""

    def domain_names(self) -> Iterable[str]:
        """The distinct domains of the members."""
        domains = self.domains
        return () if domains is None else (domains[0],) if isinstance(domains, tuple) else domains

    def held(self, identifier: str) -> int:
        """How many members hold the identifier."""
        found = self.holders.get(identifier)
        return 0 if found is None else 1 if isinstance(found, str) else len(found)

    def holders_of(self, identifier: str) -> tuple[str, ...] | set[str]:
        found = self.holders.get(identifier)
        return () if found is None else (found,) if isinstance(found, str) else found


@dataclass
class SubscriptionSettings:
    """A subscription's settings (docs/rules.md, settings): each key present in a config event replaces the current value."""

    platform: str = "o11"
    domains: OwnedDomains = field(default_factory=OwnedDomains)
    capacity: dict[str, int | None] = field(default_factory=lambda: {"internal": None, "external": None})
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    hysteresis: float = DEFAULT_HYSTERESIS
    runtimes: dict[str, list[int] | None] = field(default_factory=dict)
    shared_identifier_threshold: int = DEFAULT_SHARED_IDENTIFIER_THRESHOLD
    excluded_providers: frozenset[str] = frozenset()
    billing_day: int = DEFAULT_BILLING_DAY
    dormant_days: int = DEFAULT_DORMANT_DAYS
    statement_grace: int = DEFAULT_STATEMENT_GRACE
    source_silence: int = DEFAULT_SOURCE_SILENCE

    def to_dict(self) -> dict[str, Any]:
        return {"platform": self.platform, "domains": list(self.domains.entries), "capacity": self.capacity,
                "thresholds": list(self.thresholds), "hysteresis": self.hysteresis, "runtimes": self.runtimes,
                "shared_identifier_threshold": self.shared_identifier_threshold,
                "excluded_providers": sorted(self.excluded_providers), "billing_day": self.billing_day,
                "dormant_days": self.dormant_days, "statement_grace": self.statement_grace,
                "source_silence": self.source_silence}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SubscriptionSettings:
        # Settings stored before a key existed take its default.
        return cls(platform=values["platform"], domains=OwnedDomains(values["domains"]),
                   capacity=dict(values["capacity"]), thresholds=tuple(values["thresholds"]),
                   hysteresis=values["hysteresis"], runtimes=dict(values["runtimes"]),
                   shared_identifier_threshold=values.get(
                       "shared_identifier_threshold", DEFAULT_SHARED_IDENTIFIER_THRESHOLD),
                   excluded_providers=frozenset(values.get("excluded_providers", ())),
                   billing_day=values.get("billing_day", DEFAULT_BILLING_DAY),
                   dormant_days=values.get("dormant_days", DEFAULT_DORMANT_DAYS),
                   statement_grace=values.get("statement_grace", DEFAULT_STATEMENT_GRACE),
                   source_silence=values.get("source_silence", DEFAULT_SOURCE_SILENCE))


class Sessions(Protocol):
    """Distinct anonymous sessions: exact in memory, a HyperLogLog in Redis (within 2%, as docs/rules.md allows)."""

    def add(self, session: str) -> None: ...

    def count(self) -> int: ...


class ExactSessions:
    def __init__(self) -> None:
        self._seen: set[str] = set()

    def add(self, session: str) -> None:
        self._seen.add(session)

    def count(self) -> int:
        return len(self._seen)


@dataclass
class ScopeTotals:
    """Derived counts of one scope (a runtime, or the whole subscription)."""

    histogram: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    records: int = 0

    def counts(self) -> ScopeCounts:
        return {"internal": self.totals["internal"], "external": self.totals["external"], "records": self.records}


SUBSCRIPTION_SCOPE = None

CONFIG_IDS_KEPT = 1000
"""Config event ids remembered per subscription to recognise an exact duplicate (config events are
operator actions: a thousand covers any redelivery window)."""


class SubscriptionState:
    """Everything known about one subscription. The engine mutates it; stores persist it."""

    def __init__(self, subscription: str, sessions: Sessions | None = None) -> None:
        self.subscription = subscription
        self.settings = SubscriptionSettings()
        self.records: dict[str, Record] = {}
        self.tombstones: dict[str, int] = {}
        self.levels: dict[str, int] = {c: 0 for c in CLASSES}
        self.sequence: dict[str, int] = {c: 0 for c in CLASSES}
        self.sessions: Sessions = sessions if sessions is not None else ExactSessions()
        self.invalid_emails = 0
        self.config_times: dict[str, int] = {}
        """Config key (``capacity.internal``, ``runtimes.<id>``, ...) -> time of the event that last set it."""
        self.config_ids: list[str] = []
        """Ids of the most recent config events applied (``CONFIG_IDS_KEPT``): a repeat is ignored."""
        self.positions: dict[str, int] = {}
        """How far each input partition has been applied (kept by stores, ignored by the engine)."""
        self.ingested: dict[str, int] = {}
        """Per source partition (``topic:partition``) the next offset not yet applied: an event that
        ingest forwards again after a crash or a rebalance is skipped (kept by stores, ignored by the
        engine)."""
        # derived
        self.index: dict[str | None, dict[str, str | Group]] = {}
        """Per scope: each identifier of a dedup-eligible countable record, mapped to the record when
        no other record in the scope holds it, else to the group of its holders."""
        self.scopes: dict[str | None, ScopeTotals] = {SUBSCRIPTION_SCOPE: ScopeTotals()}
        self.providers: Counter[str] = Counter()
        self.record_runtimes: Counter[str] = Counter()
        self.record_providers: Counter[str] = Counter()
        """Records per runtime and per user provider, countable or not (``counters.limits``)."""
        self.shared: set[str] = set()
        """Identifiers held by more than ``settings.shared_identifier_threshold`` countable,
        dedup-eligible records (the shared-identifier report)."""
        self.shared_changed = False
        """Whether the report changed since a store last saved it."""
        self.excluded = 0
        """Records that would count but are not end users (docs/rules.md): never in the classes."""
        # what changed since the store last saved (records and tombstones by reference)
        self.dirty: set[str] = set()
        self.extremes: dict[str, tuple[int, int]] = {}
        """Per class, the lowest and highest count the changes applied since the store last saved
        passed through (none: no count changed): a count that rises and falls back between two
        commits still reaches the history's maximum, whatever the batching."""
        self.source_tally = SourceTally()
        """The events of each user provider applied since the store last saved (the count stage adds
        them; ``counters/sources.py``)."""
        self.late_tally = LateTally()
        """The late events applied since the store last saved (``counters/late.py``)."""
        self.source_last: dict[str, int] = {}
        """Each user provider's latest event time (µs) as stored: the silent-sources gauge."""

    def scope(self, runtime: str | None) -> ScopeTotals:
        found = self.scopes.get(runtime)
        if found is None:
            found = self.scopes[runtime] = ScopeTotals()
        return found

    def count(self, user_class: str) -> int:
        """The subscription-scope count that capacities apply to."""
        return self.scopes[SUBSCRIPTION_SCOPE].totals[user_class]

    def summary(self) -> SubscriptionCounts:
        """The counts of the subscription (docs/events.md); zero runtimes and providers are omitted,
        and beyond :data:`MAX_REPORTED` of each the smallest are folded (:func:`folded`)."""
        whole = self.scopes[SUBSCRIPTION_SCOPE].counts()
        runtimes = {runtime: scope.counts() for runtime, scope in self.scopes.items()
                    if runtime is not None and scope.records > 0}
        providers = {p: n for p, n in self.providers.items() if n > 0}
        return {
            "internal": whole["internal"],
            "external": whole["external"],
            "records": whole["records"],
            "runtimes": folded(runtimes, lambda counts: counts["records"], _sum_scopes),
            "providers": folded(providers, lambda records: records, sum),
            "excluded": self.excluded,
            "anonymous_sessions": self.sessions.count(),
            "levels": dict(self.levels),
        }


_V = TypeVar("_V")


def folded(entries: dict[str, _V], size: Callable[[_V], int], add: Callable[[Iterable[_V]], _V],
           limit: int = MAX_REPORTED) -> dict[str, _V]:
    """``entries`` by name, at most ``limit`` of them and the rest summed under ``"other"``: the
    largest by ``size`` are kept (ties by name). A real entry named ``other`` joins the sum when the
    cap applies, so the name stays one entry. The counts of a folded runtime are per-runtime counts
    summed, like the metrics' ``other`` label: a person in two folded runtimes is in both."""
    if len(entries) <= limit:
        return dict(sorted(entries.items()))
    ranked = sorted((name for name in entries if name != REPORTED_OTHER), key=lambda name: (-size(entries[name]), name))
    kept = {name: entries[name] for name in ranked[:limit]}
    rest = [entries[name] for name in ranked[limit:]]
    if REPORTED_OTHER in entries:
        rest.append(entries[REPORTED_OTHER])
    kept[REPORTED_OTHER] = add(rest)
    return dict(sorted(kept.items()))


def _sum_scopes(scopes: Iterable[ScopeCounts]) -> ScopeCounts:
    total: ScopeCounts = {"internal": 0, "external": 0, "records": 0}
    for scope in scopes:
        for key in ("internal", "external", "records"):
            total[key] += scope[key]
    return total
