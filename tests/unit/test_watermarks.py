"""Watermarks from our own producers: ingest releases an event only when every partition's watermark
(from every producer open on it) has passed it, whether or not the partition has been read to its end;
watermark records are never events; a silent producer is given up after a bounded wait; the state
travels with the committed position. The writer never lets a watermark overtake an event stamped
before it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from counters import ArrivalClock
from streams.kafka.consumer import ArrivalMerge
from streams.kafka.messages import ARRIVAL_HEADER, PRODUCER_HEADER, WATERMARK_HEADER, Inbound
from streams.kafka.watermarks import CLOSED, OPEN, PROGRESS, WatermarkWriter, decode_marks, encode_marks
from streams.observe import metrics

LOGINS, PROFILES = TopicPartition("t.logins", 0), TopicPartition("t.profiles", 0)
BOTH = [LOGINS, PROFILES]


def caught_up(tp: TopicPartition) -> bool:
    return False


class Partition:
    """Offsets of one partition, as one or more producers write it."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp, self.offset = tp, 0

    def record(self, arrival: int, producer: str = "w", control: str = "") -> Inbound:
        self.offset += 1
        return Inbound(self.tp.topic, self.tp.partition, self.offset - 1, 0, None, b"{}", arrival, producer, control)


def arrivals(released: list[Inbound]) -> list[int]:
    return [m.arrival_us for m in released]


def test_a_caught_up_partition_holds_later_events_until_its_watermark_passes_them() -> None:
    logins, profiles = Partition(LOGINS), Partition(PROFILES)
    merge = ArrivalMerge()
    merge.add(LOGINS, [logins.record(1, control=OPEN)], now=0)
    merge.add(PROFILES, [profiles.record(1, control=OPEN)], now=0)
    merge.add(LOGINS, [logins.record(10), logins.record(30)], now=0)
    assert merge.release(BOTH, caught_up, now=5) == [], "profiles may still get an event before 10"
    merge.add(PROFILES, [profiles.record(20)], now=5)
    assert arrivals(merge.release(BOTH, caught_up, now=5)) == [10, 20]
    merge.add(PROFILES, [profiles.record(40, control=PROGRESS)], now=6)
    assert arrivals(merge.release(BOTH, caught_up, now=6)) == [30], "the watermark is not an event"


def test_a_closing_record_releases_what_waited_for_its_producer() -> None:
    logins, profiles = Partition(LOGINS), Partition(PROFILES)
    merge = ArrivalMerge()
    merge.add(PROFILES, [profiles.record(1, control=OPEN)], now=0)
    merge.add(LOGINS, [logins.record(1, control=OPEN), logins.record(10)], now=0)
    assert merge.release(BOTH, caught_up, now=0) == []
    merge.add(PROFILES, [profiles.record(11, control=CLOSED)], now=0)
    assert arrivals(merge.release(BOTH, caught_up, now=0)) == [10]


def test_a_producer_silent_for_the_wait_is_given_up_and_counted() -> None:
    logins, profiles = Partition(LOGINS), Partition(PROFILES)
    merge = ArrivalMerge(producer_wait=10)
    merge.add(PROFILES, [profiles.record(1, "dead", OPEN)], now=0)
    merge.add(LOGINS, [logins.record(1, "dead", OPEN)], now=0)
    merge.add(LOGINS, [logins.record(5, "alive", OPEN), logins.record(10, "alive")], now=8)
    before = metrics.WATERMARK_GIVEN_UP._value.get()
    assert merge.release(BOTH, caught_up, now=9) == []
    assert arrivals(merge.release(BOTH, caught_up, now=10)) == [10]
    assert metrics.WATERMARK_GIVEN_UP._value.get() == before + 1


def test_a_silent_producer_is_not_given_up_while_a_partition_it_is_open_on_has_unread_messages() -> None:
    logins, profiles = Partition(LOGINS), Partition(PROFILES)
    merge = ArrivalMerge(producer_wait=10)
    merge.add(PROFILES, [profiles.record(1, "slow", OPEN)], now=0)
    merge.add(LOGINS, [logins.record(1, "slow", OPEN), logins.record(10, "other")], now=0)
    assert merge.release(BOTH, lambda tp: tp == PROFILES, now=60) == []


def test_watermark_records_are_committed_but_never_released_as_events() -> None:
    logins = Partition(LOGINS)
    merge = ArrivalMerge()
    merge.add(LOGINS, [logins.record(1, control=OPEN), logins.record(2, control=PROGRESS)], now=0)
    assert merge.release([LOGINS], caught_up, now=0) == []
    assert merge.commits() == {LOGINS: 2}
    assert decode_marks(merge.committable(LOGINS)) == {"w": 2}


def test_a_restart_resumes_with_the_committed_watermarks_and_holds_as_before() -> None:
    """The committed state says producer w is open on profiles up to 5: after a restart from there, a
    login at 10 waits although profiles has been read to its end, as it did before the restart."""
    logins, profiles = Partition(LOGINS), Partition(PROFILES)
    first = ArrivalMerge()
    first.add(PROFILES, [profiles.record(1, control=OPEN), profiles.record(5)], now=0)
    first.add(LOGINS, [logins.record(1, control=OPEN), logins.record(6)], now=0)
    assert arrivals(first.release(BOTH, caught_up, now=0)) == [5]
    metadata = {tp: first.committable(tp) for tp in first.commits()}
    restarted = ArrivalMerge()
    for tp in BOTH:
        restarted.restore(tp, decode_marks(metadata.get(tp)), now=0)
    restarted.add(LOGINS, [logins.record(10)], now=0)
    assert restarted.release(BOTH, caught_up, now=0) == []
    restarted.add(PROFILES, [profiles.record(11)], now=0)
    assert arrivals(restarted.release(BOTH, caught_up, now=0)) == [10], "11 waits for the logins' watermark"


def test_an_event_stuck_behind_another_producers_later_one_holds_back_other_partitions() -> None:
    """Two producers share profiles: b's event at 5 sits behind a's at 50. Logins at 10 waits for it."""
    logins, profiles = Partition(LOGINS), Partition(PROFILES)
    merge = ArrivalMerge()
    merge.add(PROFILES, [profiles.record(1, "a", OPEN), profiles.record(2, "b", OPEN),
                         profiles.record(50, "a"), profiles.record(5, "b")], now=0)
    merge.add(LOGINS, [logins.record(1, "a", OPEN), logins.record(2, "b", OPEN),
                       logins.record(10, "b"), logins.record(60, "a", PROGRESS), logins.record(61, "b", PROGRESS)],
              now=0)
    assert merge.release(BOTH, caught_up, now=0) == []
    merge.add(PROFILES, [profiles.record(70, "a", PROGRESS), profiles.record(71, "b", PROGRESS)], now=0)
    assert [(m.producer, m.arrival_us) for m in merge.release(BOTH, caught_up, now=0)] == \
        [("b", 5), ("b", 10), ("a", 50)]


def test_a_producer_new_on_a_partition_asks_for_every_end_once_past_its_announcement() -> None:
    logins = Partition(LOGINS)
    merge = ArrivalMerge()
    merge.add(LOGINS, [logins.record(1, control=OPEN)], now=0)
    assert not merge.new_producer, "its announcements elsewhere may not be written yet"
    merge.add(LOGINS, [logins.record(2)], now=0)
    assert merge.new_producer


def test_a_producer_announcing_a_new_topic_makes_ingest_ask_for_every_end_again() -> None:
    """Its ``open`` on a partition it already wrote, then any later record there: the ends are asked
    for again, so its announcements on the new topic's partitions are read before anything passes."""
    logins = Partition(LOGINS)
    merge = ArrivalMerge()
    merge.add(LOGINS, [logins.record(1, control=OPEN), logins.record(2)], now=0)
    merge.new_producer = False
    merge.add(LOGINS, [logins.record(3, control=OPEN), logins.record(4)], now=0)
    assert merge.new_producer, "within one fetch"
    merge.new_producer = False
    merge.add(LOGINS, [logins.record(5, control=OPEN)], now=0)
    merge.add(LOGINS, [logins.record(6)], now=0)
    assert merge.new_producer, "across fetches"


def test_commit_metadata_keeps_the_latest_producers_within_kafkas_limit() -> None:
    marks = {f"publish-{n:012x}": 1_780_000_000_000_000 + n for n in range(200)}
    encoded = encode_marks(marks)
    assert len(encoded.encode()) <= 4096
    assert set(decode_marks(encoded)) == {f"publish-{n:012x}" for n in range(136, 200)}
    assert decode_marks("not json") == decode_marks(None) == decode_marks('{"watermarks": [1]}') == {}


class _Producer:
    """Records what would go to Kafka, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None, dict[str, bytes]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    async def send(self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        self.sent.append((topic, partition, dict(headers or ())))
        await asyncio.sleep(0)  # another task may run here, as with Kafka
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_the_writer_announces_every_partition_beats_while_idle_and_never_marks_an_unsent_stamp() -> None:
    producer, clock = _Producer(), ArrivalClock()
    writer = WatermarkWriter(producer, clock, interval=0.01)  # type: ignore[arg-type]  # a recording fake
    await writer.open(["t.logins", "t.profiles"])
    assert [(t, p, h[WATERMARK_HEADER]) for t, p, h in producer.sent] == \
        [("t.logins", 0, b"open"), ("t.logins", 1, b"open"), ("t.profiles", 0, b"open"), ("t.profiles", 1, b"open")]
    producer.sent.clear()
    await writer.send("t.visits", b"acme", lambda: (b"{}", [(ARRIVAL_HEADER, str(clock()).encode())]))
    assert [(t, p, h.get(WATERMARK_HEADER)) for t, p, h in producer.sent][-7:] == \
        [("t.logins", 0, b"open"), ("t.logins", 1, b"open"), ("t.profiles", 0, b"open"), ("t.profiles", 1, b"open"),
         ("t.visits", 0, b"open"), ("t.visits", 1, b"open"), ("t.visits", None, None)], \
        "a new topic: announced everywhere again, acknowledged, then its event"
    for _ in range(50):
        def stamp() -> tuple[bytes, list[tuple[str, bytes]]]:
            return b"{}", [(ARRIVAL_HEADER, str(clock()).encode())]
        await writer.send("t.logins", b"acme", stamp)
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.03)  # idle: it keeps beating
    await writer.close()
    latest: dict[tuple[str, int | None], int] = {}
    for topic, partition, headers in producer.sent:
        assert headers[PRODUCER_HEADER] == writer.id.encode()
        arrival = int(headers[ARRIVAL_HEADER])
        where = (topic, partition if WATERMARK_HEADER in headers else 0)  # fake: events land on partition 0
        assert arrival >= latest.get(where, 0), "each partition's records are in stamp order"
        if WATERMARK_HEADER in headers:  # a watermark is past every stamp before it, on every partition
            assert all(arrival >= seen for seen in latest.values())
        latest[where] = arrival
    beats = [h for _, _, h in producer.sent if h.get(WATERMARK_HEADER) == PROGRESS.encode()]
    assert len(beats) >= 8, "an idle producer beats too"
    assert [h[WATERMARK_HEADER] for _, _, h in producer.sent[-4:]] == [b"closed"] * 4
