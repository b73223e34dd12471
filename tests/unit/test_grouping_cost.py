"""Grouping costs about the size of what a change splits or joins, not the size of the group.

The engine is fed N profile upserts sharing one email (one individual of N records), and then single
changes inside that group. Instead of timing them, each test counts how often the engine looks a
record up (``state.records[...]``, ``.get``): every member the grouping walks is such a lookup. A walk
of the group costs at least N lookups; a bounded change costs a handful, whatever N is.
"""

from __future__ import annotations

from typing import Any

from counters import engine
from counters import Digester
from counters.state import Record, SubscriptionState
from schemas.changes import Change

SHARED = "noreply@corp.example"
MEMBERS = 400
BOUND = 20
"""Lookups allowed for one change: a constant, far below MEMBERS."""
SMALL = MEMBERS // 20


class CountingRecords(dict[str, Record]):
    """The records of a state, counting lookups of single records."""

    lookups = 0

    def __getitem__(self, ref: str) -> Record:
        self.lookups += 1
        return super().__getitem__(ref)

    def get(self, ref: str, default: Any = None) -> Any:
        self.lookups += 1
        return super().get(ref, default)


class SharedGroup:
    """A subscription whose MEMBERS records share one email, each with its own username."""

    def __init__(self) -> None:
        self.digest = Digester()
        self.state = SubscriptionState("acme")
        self.time = 0
        for n in range(MEMBERS):
            self.apply("upsert", f"u{n}", email=self.email(SHARED), username=self.login(f"login{n}"))
        self.records = CountingRecords(self.state.records)
        self.state.records = self.records

    def email(self, address: str) -> list[Any]:
        return [self.digest(address), address.rsplit("@", 1)[1]]

    def login(self, name: str) -> list[Any]:
        return [self.digest(name), None]

    def apply(self, kind: str, user: str, **fields: Any) -> None:
        self.time += 1
        engine.apply(self.state, Change(kind=kind, subscription="acme", time=self.time,  # type: ignore[arg-type]
                                        record=self.digest("default", "default", "default", user),
                                        runtime="default", provider="default", fields=fields))

    def lookups_of(self, kind: str, user: str, **fields: Any) -> int:
        before = self.records.lookups
        self.apply(kind, user, **fields)
        return self.records.lookups - before

    def individuals(self) -> int:
        counts = self.state.summary()
        return counts["internal"] + counts["external"]


def test_a_record_joining_a_large_shared_group_does_not_walk_it() -> None:
    group = SharedGroup()
    assert group.lookups_of("upsert", "newcomer", email=group.email(SHARED)) <= BOUND
    assert group.individuals() == 1
    assert group.state.summary()["records"] == MEMBERS + 1


def test_a_record_leaving_a_large_shared_group_does_not_walk_it() -> None:
    group = SharedGroup()
    assert group.lookups_of("deactivate", "u7") <= BOUND
    assert group.lookups_of("upsert", "u8", email=group.email("moved@corp.example")) <= BOUND
    assert group.lookups_of("delete", "u9") <= BOUND
    assert group.individuals() == 2  # u8 on its own now
    assert group.state.summary()["records"] == MEMBERS - 2


def test_splitting_a_small_part_off_a_large_group_costs_the_small_part() -> None:
    group = SharedGroup()
    group.apply("upsert", "lone", username=group.login("login5"))  # linked to the group through u5 only
    assert group.individuals() == 1
    assert group.lookups_of("delete", "u5") <= BOUND
    assert group.individuals() == 2


def test_merging_two_large_groups_moves_the_smaller_one_only() -> None:
    group = SharedGroup()
    for n in range(SMALL):
        group.apply("upsert", f"v{n}", email=group.email("other@corp.example"))
    assert group.individuals() == 2
    before = group.records.lookups
    group.apply("upsert", "bridge", email=group.email("other@corp.example"), username=group.login("login3"))
    assert group.records.lookups - before <= BOUND
    assert group.individuals() == 1
    # The split explores both sides in step and moves the smaller one: a few lookups per record of the
    # smaller side, in each of the two scopes (the subscription and the runtime).
    assert group.lookups_of("delete", "bridge") <= 2 * 3 * SMALL + BOUND < MEMBERS
    assert group.individuals() == 2
