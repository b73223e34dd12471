"""Ingest releases source messages in arrival order across partitions, holding a message only while a
partition that may still deliver an earlier one has not caught up, and never longer than max_hold."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.pipeline import Inbound
from streams.sources import ArrivalMerge

LOGINS, PROFILES = TopicPartition("t.logins", 0), TopicPartition("t.profiles", 0)


def messages(tp: TopicPartition, *arrivals: int, first_offset: int = 0) -> list[Inbound]:
    return [Inbound(tp.topic, tp.partition, first_offset + n, 0, None, b"{}", arrival) for n, arrival in enumerate(arrivals)]


def test_messages_of_several_topics_come_out_in_arrival_order() -> None:
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, 1, 2, 5), now=0)
    merge.add(PROFILES, messages(PROFILES, 3, 4), now=0)
    released = merge.release([LOGINS, PROFILES], caught_up=lambda tp: True, now=0)
    assert [m.arrival_us for m in released] == [1, 2, 3, 4, 5]
    assert merge.commits() == {LOGINS: 3, PROFILES: 2}


def test_a_message_waits_while_a_partition_behind_it_may_still_deliver_an_earlier_one() -> None:
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, 10, 20), now=0)
    merge.add(PROFILES, messages(PROFILES, 15), now=0)
    behind = {LOGINS: False, PROFILES: False}
    released = merge.release([LOGINS, PROFILES], caught_up=behind.__getitem__, now=0)
    assert [m.arrival_us for m in released] == [10, 15]  # 20 waits: profiles has only shown 15
    assert merge.commits() == {LOGINS: 1, PROFILES: 1}
    merge.add(PROFILES, messages(PROFILES, 25, first_offset=1), now=0.1)
    assert [m.arrival_us for m in merge.release([LOGINS, PROFILES], behind.__getitem__, now=0.1)] == [20]


def test_a_silent_partition_that_is_not_caught_up_delays_the_others_at_most_max_hold() -> None:
    merge = ArrivalMerge(max_hold=1.0)
    merge.add(LOGINS, messages(LOGINS, 10), now=0)
    assert merge.release([LOGINS, PROFILES], caught_up=lambda tp: False, now=0.5) == []
    assert [m.arrival_us for m in merge.release([LOGINS, PROFILES], caught_up=lambda tp: False, now=1.0)] == [10]


def test_only_released_offsets_are_committed_and_revoked_partitions_are_forgotten() -> None:
    merge = ArrivalMerge()
    merge.add(LOGINS, messages(LOGINS, 10, 30), now=0)
    merge.add(PROFILES, messages(PROFILES, 20), now=0)
    merge.release([LOGINS, PROFILES], caught_up=lambda tp: False, now=0)  # 30 waits for profiles
    offsets = merge.commits()
    assert offsets == {LOGINS: 1, PROFILES: 1}
    merge.committed(offsets)
    assert merge.commits() == {}
    merge.drop([LOGINS])
    assert merge.release([PROFILES], caught_up=lambda tp: True, now=5) == []
