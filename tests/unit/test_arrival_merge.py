"""Ingest releases source messages in arrival order across partitions. A message waits for every
partition that may still deliver an earlier one: without limit while that partition has unread
messages in the broker, at most max_hold while it is not known whether it has any."""

from __future__ import annotations

import heapq

from aiokafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.kafka.messages import Inbound
from streams.kafka.consumer import ArrivalMerge

LOGINS, PROFILES, CONFIG = TopicPartition("t.logins", 0), TopicPartition("t.profiles", 0), TopicPartition("t.config", 0)
BOTH = [LOGINS, PROFILES]
ALL = [LOGINS, PROFILES, CONFIG]


def messages(tp: TopicPartition, *arrivals: int, first_offset: int = 0) -> list[Inbound]:
    return [Inbound(tp.topic, tp.partition, first_offset + n, 0, None, b"{}", arrival) for n, arrival in enumerate(arrivals)]


def caught_up(tp: TopicPartition) -> bool:
    return False


def behind(tp: TopicPartition) -> bool:
    return True


def unknown(tp: TopicPartition) -> None:
    return None


def arrivals(released: list[Inbound]) -> list[int]:
    return [m.arrival_us for m in released]


def test_messages_of_several_topics_come_out_in_arrival_order() -> None:
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, 1, 2, 5), now=0)
    merge.add(PROFILES, messages(PROFILES, 3, 4), now=0)
    assert arrivals(merge.release(BOTH, caught_up, now=0)) == [1, 2, 3, 4, 5]
    assert merge.commits() == {LOGINS: 3, PROFILES: 2}


def test_a_message_waits_while_a_partition_behind_it_may_still_deliver_an_earlier_one() -> None:
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, 10, 20), now=0)
    merge.add(PROFILES, messages(PROFILES, 15), now=0)
    assert arrivals(merge.release(BOTH, behind, now=0)) == [10, 15]  # 20 waits: profiles has only shown 15
    assert merge.commits() == {LOGINS: 1, PROFILES: 1}
    merge.add(PROFILES, messages(PROFILES, 25, first_offset=1), now=0.1)
    assert arrivals(merge.release(BOTH, behind, now=0.1)) == [20]


def test_a_partition_with_unread_messages_is_waited_for_however_long_it_takes() -> None:
    """Under a backlog every message the merge waits for is already in the broker: giving way after a
    while would reorder events that are all there."""
    merge = ArrivalMerge(max_hold=1.0)
    merge.add(LOGINS, messages(LOGINS, 10, 30), now=0)
    for now in (0.5, 1.0, 60.0, 3600.0):
        assert merge.release(BOTH, behind, now=now) == []
    merge.add(PROFILES, messages(PROFILES, 20, 40), now=3600.0)
    assert arrivals(merge.release(BOTH, behind, now=3600.0)) == [10, 20, 30]


def test_the_hold_gives_way_only_to_a_partition_not_known_to_have_unread_messages() -> None:
    merge = ArrivalMerge(max_hold=1.0)
    merge.add(LOGINS, messages(LOGINS, 10), now=0)
    assert merge.release(BOTH, unknown, now=0.5) == []
    assert arrivals(merge.release(BOTH, unknown, now=1.0)) == [10]


def test_after_the_hold_an_unknown_partition_gives_way_but_one_with_unread_messages_still_blocks() -> None:
    merge = ArrivalMerge(max_hold=1.0)
    merge.add(LOGINS, messages(LOGINS, 10, 30), now=0)
    merge.add(PROFILES, messages(PROFILES, 20), now=0)
    state = {LOGINS: True, PROFILES: True, CONFIG: None}
    assigned = [LOGINS, PROFILES, CONFIG]
    assert merge.release(assigned, state.__getitem__, now=0.5) == []  # config has shown nothing yet
    assert arrivals(merge.release(assigned, state.__getitem__, now=1.5)) == [10, 20]  # 30: profiles is behind


def test_a_caught_up_partition_blocks_nothing() -> None:
    merge = ArrivalMerge(max_hold=1.0)
    merge.add(LOGINS, messages(LOGINS, 10, 30), now=0)
    state = {LOGINS: True, PROFILES: False, CONFIG: False}
    assert arrivals(merge.release([LOGINS, PROFILES, CONFIG], state.__getitem__, now=0)) == [10, 30]


def test_within_a_partition_kafka_order_is_kept_even_if_arrivals_go_back() -> None:
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, 10, 5, 20), now=0)
    merge.add(PROFILES, messages(PROFILES, 7, 15), now=0)
    released = merge.release(BOTH, caught_up, now=0)
    assert [(m.topic, m.offset) for m in released if m.topic == LOGINS.topic] == [(LOGINS.topic, n) for n in range(3)]
    assert len(released) == 5


def test_held_counts_what_a_partition_has_fetched_but_not_released() -> None:
    """The consumer pauses a partition that has many messages held (far ahead of the others); the
    partition the merge waits for always has none held, so pausing never stalls the merge."""
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, *range(100, 200)), now=0)
    merge.add(PROFILES, messages(PROFILES, 1, 2), now=0)
    merge.release(BOTH, behind, now=0)
    assert merge.held(PROFILES) == 0
    assert merge.held(LOGINS) == 100


def test_only_released_offsets_are_committed_and_revoked_partitions_are_forgotten() -> None:
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, 10, 30), now=0)
    merge.add(PROFILES, messages(PROFILES, 20), now=0)
    merge.release(BOTH, behind, now=0)  # 30 waits for profiles
    offsets = merge.commits()
    assert offsets == {LOGINS: 1, PROFILES: 1}
    merge.committed(offsets)
    assert merge.commits() == {}
    merge.drop([LOGINS])
    assert merge.release([PROFILES], caught_up, now=5) == []



def _one_by_one(steps: list[tuple[TopicPartition, list[Inbound], dict[TopicPartition, bool]]]) -> list[list[Inbound]]:
    """The merge's rule stated message by message: the limit is the latest arrival seen on the
    partition furthest behind among those with unread messages, lowered to the earliest arrival of any
    message that would stay held behind a later one of its partition; each release takes, per
    partition, the messages up to the first one later than the limit, merged by (arrival, topic,
    partition, offset)."""
    pending: dict[TopicPartition, list[Inbound]] = {}
    seen: dict[TopicPartition, int] = {}
    releases = []
    for tp, fetched, behind_now in steps:
        pending.setdefault(tp, []).extend(fetched)
        seen[tp] = max(seen.get(tp, -1), fetched[-1].arrival_us)
        limit = min((seen.get(t, -1) for t, unread in behind_now.items() if unread), default=1 << 62)
        while True:
            stuck = min((m.arrival_us for queue in pending.values() for m in queue[_prefix(queue, limit):]),
                        default=1 << 62)
            if stuck >= limit:
                break
            limit = stuck
        runs = []
        for queue in pending.values():
            n = _prefix(queue, limit)
            runs.append(queue[:n])
            del queue[:n]
        releases.append(list(heapq.merge(*runs, key=lambda m: (m.arrival_us, m.topic, m.partition, m.offset))))
    return releases


def _prefix(queue: list[Inbound], limit: int) -> int:
    n = 0
    while n < len(queue) and queue[n].arrival_us <= limit:
        n += 1
    return n


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ALL), st.lists(st.integers(0, 40), min_size=1, max_size=6),
                          st.lists(st.booleans(), min_size=3, max_size=3)), min_size=1, max_size=12))
def test_fetch_by_fetch_release_keeps_the_per_message_order(draws: list[tuple[TopicPartition, list[int], list[bool]]]) -> None:
    """Fetches whose arrivals go back or not, released in parts as partitions fall behind or catch
    up: the same messages in the same order as the rule applied message by message."""
    offsets: dict[TopicPartition, int] = {}
    steps = []
    for tp, stamps, unread in draws:
        steps.append((tp, messages(tp, *stamps, first_offset=offsets.get(tp, 0)), dict(zip(ALL, unread))))
        offsets[tp] = offsets.get(tp, 0) + len(stamps)
    merge = ArrivalMerge()
    released = []
    for tp, fetched, behind_now in steps:
        merge.add(tp, fetched, now=0)
        released.append(merge.release(ALL, behind_now.__getitem__, now=0))
    assert released == _one_by_one(steps)
    assert merge.commits() == {tp: run[-1].offset + 1 for tp in ALL
                               if (run := [m for r in released for m in r if m.topic == tp.topic])}
