"""Where the engine's heap goes, per record: the itemised table of ``engine_replay.py``'s heap figure.

Walks the states that ``engine_replay.states_heap`` built and adds up ``sys.getsizeof`` of each
object once (by identity), under the item that holds it: the records dict, the record keys, the
records themselves, their event times, identifier digests and sealed user ids, each scope's identifier
index, the groups of records that share identifiers, and the rest. The sum is within a few percent
of what ``tracemalloc`` traces (which also counts allocator overhead the walk does not see).

Usage: ``.venv/bin/python -m tests.bench.heap_items [--records N]`` (or through ``engine_replay``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable

from counters.state import Group, SubscriptionState

TIMES = ("updated", "email_t", "username_t", "active_t", "default_tenant_t", "excluded_t", "last_login")


def heap_items(states: Iterable[SubscriptionState]) -> dict[str, int]:
    """Bytes per item over all the states (each object counted once, under the first item that reaches it)."""
    seen: set[int] = set()
    items: dict[str, int] = {}

    def add(item: str, *objects: object) -> None:
        for thing in objects:
            if id(thing) not in seen:
                seen.add(id(thing))
                items[item] = items.get(item, 0) + sys.getsizeof(thing)

    for state in states:
        add("records dict", state.records)
        for ref, record in state.records.items():
            add("record keys (digests)", ref)
            add("records (struct)", record)
            add("event times (ints)", *(getattr(record, name) for name in TIMES))
            add("identifier digests", *(value for value in (record.email_id, record.username_id) if value is not None))
            add("domains", *(value for value in (record.email_domain, record.username_domain) if value is not None))
            if record.user:
                add("sealed user ids", record.user)
        add("tombstones", state.tombstones, *state.tombstones, *state.tombstones.values())
        for scope, index in state.index.items():
            add("index: subscription" if scope is None else "index: runtimes", index)
            for identifier, entry in index.items():
                add("identifier digests", identifier)
                if isinstance(entry, Group):
                    _group(add, entry)
        for totals in state.scopes.values():
            add("histograms and counters", totals.histogram, totals.totals)
        add("histograms and counters", state.providers, state.record_runtimes, state.record_providers, state.shared)
    return items


def _group(add: Callable[..., None], group: Group) -> None:
    add("groups", group, group.holders, group.domains, group.sig)
    if group.emails is not None:
        add("groups", group.emails)
    add("groups", *(holders for holders in group.holders.values() if not isinstance(holders, str)))


def print_items(items: dict[str, int], records: int, traced: int) -> None:
    """The table: bytes per record of each item, largest first, then the sum and the traced heap."""
    width = max(len(item) for item in items) + 2
    for item, size in sorted(items.items(), key=lambda entry: -entry[1]):
        print(f"  {item:<{width}}{size / records:8.1f} B/record")
    print(f"  {'sum of the items':<{width}}{sum(items.values()) / records:8.1f} B/record"
          f"  (tracemalloc: {traced / records:.1f})")


def main() -> None:
    from tests.bench.engine_replay import configs, generate, states_heap

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=60_000)
    args = parser.parse_args()
    lines = generate(2 * args.records, args.records)[: len(configs(args.records)) + 2 * args.records]
    heap, states = states_heap(lines)
    records = sum(len(state.records) for state in states.values())
    print(f"heap of {records:,} records: {heap / records:.1f} B/record")
    print_items(heap_items(states.values()), records, heap)


if __name__ == "__main__":
    main()
