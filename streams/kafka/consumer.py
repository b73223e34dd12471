"""Consuming the source topics for ingest, in batches, in arrival order, at least once.

Ingest reads the four source topics with its own aiokafka consumer (group ``<app id>-ingest``)
rather than through a Faust stream: this stage needs none of Faust's per-message stream machinery
(fetcher thread, channel queues, per-event acks), which would cost it most of its time. Each batch
is forwarded and acknowledged by Kafka before its offsets are committed, so a crash repeats a batch
(harmless: the engine is idempotent) and never loses one. The count stage, which owns the state,
stays a Faust agent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from itertools import accumulate, chain
from operator import attrgetter

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalGenerationError, KafkaError, RebalanceInProgressError
from aiokafka.structs import ConsumerRecord

from streams.kafka.messages import ARRIVAL_HEADER, PRODUCER_HEADER, WATERMARK_HEADER, Inbound
from streams.kafka.watermarks import CLOSED, OPEN, control_of, decode_marks, encode_marks
from streams.observe import metrics
from streams.observe.outages import outage
from streams.settings import SOURCE_TOPICS, WorkerSettings, kafka_client_options

log = logging.getLogger(__name__)

PATTERN_REFRESH_MS = 5000
"""How soon ingest reads a per-subscription source topic created while it runs."""


def ingest_group(settings: WorkerSettings) -> str:
    return f"{settings.app_id}-ingest"


def inbound(record: ConsumerRecord) -> Inbound:
    arrival = record.timestamp * 1000
    producer = control = ""
    for name, value in record.headers or ():
        if name == ARRIVAL_HEADER:
            try:
                arrival = int(value)
            except (TypeError, ValueError):
                pass
        elif name == PRODUCER_HEADER:
            producer = value.decode(errors="replace")
        elif name == WATERMARK_HEADER:
            control = control_of(value)
    # a watermark record is never an event, even one that names no producer (it then covers nothing)
    return Inbound(record.topic, record.partition, record.offset, record.timestamp, record.key, record.value,
                   arrival, producer, control)


Unread = Callable[[TopicPartition], "bool | None"]
"""Whether the broker holds messages of a partition that ingest has not fetched yet: True (its position
is below its high watermark, or it is paused), False (caught up), None (not known yet)."""


class ArrivalMerge:
    """Merges the source partitions into one stream in arrival order (the ``endusers-arrival`` header,
    else the record timestamp), so events published in sequence across topics reach the count stage
    in that sequence, whatever the fetch order.

    A partition on which one of our producers is open (``streams.kafka.watermarks``: it has announced
    itself there and not closed) holds back every message later than that producer's watermark on it,
    whether it has been read to its end or not: the producer may still be writing there. A producer
    silent for ``producer_wait`` seconds while every partition it is open on has been read to its end
    is given up (logged and counted), so a producer that died holds nothing for longer than that.

    Beyond watermarks (other producers), a fetched message is released once every other assigned
    partition has shown a later arrival or has been read to its end. A partition with unread messages
    is never passed over: everything it has yet to deliver is already in the broker, so the merge
    waits for it however long that takes (under a backlog, a wall-clock limit here reorders events
    that are all present). The ``max_hold`` limit applies only while it is not known whether a
    partition has unread messages (before its first fetch answers): then a message waits at most that
    long. Within a partition, each producer's messages keep Kafka's order, and a message held behind
    a later one of its partition holds back later messages of the others too. Offsets are committed
    only up to what was released, so a crash or a rebalance re-reads what was held (at least once;
    the count stage skips what it has already applied), and with them the watermarks as of there.
    """

    def __init__(self, max_hold: float = 1.0, producer_wait: float = 10.0) -> None:
        self.max_hold = max_hold
        self.producer_wait = producer_wait
        self._pending: dict[TopicPartition, deque[_Fetched]] = {}
        self._seen: dict[TopicPartition, int] = {}
        self._released: dict[TopicPartition, int] = {}
        self._marks: dict[TopicPartition, dict[str, int]] = {}
        """Per partition, each open producer's watermark as fetched: nothing of it earlier can follow."""
        self._released_marks: dict[TopicPartition, dict[str, int]] = {}
        """The same as of the released messages: committed with the offset, restored on assignment."""
        self._heard: dict[str, float] = {}
        self._confirmed: dict[TopicPartition, set[str]] = {}
        """Producers read on a partition past their announcement there."""
        self.restore_error: Exception | None = None
        """Why the watermarks of newly assigned partitions could not be read (the consumer restarts)."""
        self.new_producer = False
        """A producer wrote past an announcement: its announcements on the other partitions must be
        read before they can be judged caught up (the consumer asks for their ends again)."""

    def add(self, tp: TopicPartition, messages: Sequence[Inbound], now: float) -> None:
        if messages:
            queue = self._pending.setdefault(tp, deque())
            # the latest arrival fetched before (or later than that): a run may continue from there
            previous = queue[-1].peaks[-1] if queue else self._seen.get(tp)
            queue.append(_Fetched(now, messages, previous))
            self._seen[tp] = max(self._seen.get(tp, messages[-1].arrival_us), messages[-1].arrival_us)
            latest = _advance(self._marks.setdefault(tp, {}), messages)
            self._heard.update(dict.fromkeys(latest, now))
            # A producer's first record after an ``open`` was written once every partition had its
            # announcement (it announces itself again everywhere when it starts on a new topic):
            # reading every partition to its end as of now finds them all.
            confirmed = self._confirmed.setdefault(tp, set())
            opened = {m.producer for m in messages if m.control == OPEN}
            for producer, last in latest.items():
                if last.control == OPEN:
                    confirmed.discard(producer)
                elif producer not in confirmed or producer in opened:
                    confirmed.add(producer)
                    self.new_producer = True

    def restore(self, tp: TopicPartition, marks: dict[str, int], now: float) -> None:
        """The watermarks committed with the position a newly assigned partition resumes from."""
        self._marks[tp] = dict(marks)
        self._released_marks[tp] = dict(marks)
        for producer in marks:
            self._heard.setdefault(producer, now)

    def committable(self, tp: TopicPartition) -> str:
        """The commit metadata of ``tp``'s released position: its open producers' watermarks."""
        return encode_marks(self._released_marks.get(tp, {}))

    def release(self, assigned: Iterable[TopicPartition], unread: Unread, now: float) -> list[Inbound]:
        """The events that can go now, in arrival order (watermark records are consumed here)."""
        assigned = list(assigned)
        self._give_up_silent(assigned, unread, now)
        known, maybe = _NEVER_BEHIND, _NEVER_BEHIND
        for tp in assigned:
            marks = self._marks.get(tp)
            if marks:
                watermark = min(marks.values())
                known, maybe = min(known, watermark), min(maybe, watermark)
            state = unread(tp)
            if state is False:
                continue
            seen = self._seen.get(tp, -1)
            maybe = min(maybe, seen)
            if state:
                known = min(known, seen)
        limit = self._unblocked(known if self._oldest_wait(now) >= self.max_hold else maybe)
        runs: list[list[Inbound]] = []
        ordered = True
        for tp, queue in self._pending.items():
            run: list[Inbound] = []
            while queue:
                fetched = queue[0]
                run += fetched.take(limit)
                ordered = ordered and fetched.ordered
                if fetched.start < len(fetched.messages):
                    break
                queue.popleft()
            if run:
                self._released[tp] = run[-1].offset + 1
                _advance(self._released_marks.setdefault(tp, {}), run)
                run = [m for m in run if not m.control]
            if run:
                runs.append(run)
        if len(runs) <= 1:
            return runs[0] if runs else []
        if ordered:  # each run already in arrival order: one sort of the runs gives the merge's order
            return sorted(chain.from_iterable(runs), key=_arrival_order)
        # Within a partition, each producer's messages keep their order (ours are stamped in it);
        # several producers' messages interleave there, so each one's are a run of their own.
        streams: list[list[Inbound]] = []
        for run in runs:
            by_producer: dict[str, list[Inbound]] = {}
            for message in run:
                by_producer.setdefault(message.producer, []).append(message)
            streams += by_producer.values()
        return list(heapq.merge(*streams, key=_arrival_order))

    def held(self, tp: TopicPartition) -> int:
        """Messages of ``tp`` fetched and not yet released."""
        return sum(len(fetched.messages) - fetched.start for fetched in self._pending.get(tp, ()))

    def commits(self) -> dict[TopicPartition, int]:
        """Per partition, the next offset not yet released: safe to commit."""
        return dict(self._released)

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if self._released.get(tp) == offset:
                del self._released[tp]

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions that moved to another worker: it re-reads whatever was held here."""
        for tp in partitions:
            self._pending.pop(tp, None)
            self._seen.pop(tp, None)
            self._released.pop(tp, None)
            self._marks.pop(tp, None)
            self._released_marks.pop(tp, None)
            self._confirmed.pop(tp, None)

    def _give_up_silent(self, assigned: list[TopicPartition], unread: Unread, now: float) -> None:
        """Forget producers silent for ``producer_wait`` whose partitions here are all read to their end:
        nothing of theirs is on the way (they died, or their network did), so nothing waits for them."""
        open_on: dict[str, list[TopicPartition]] = {}
        for tp in assigned:
            for producer in self._marks.get(tp, ()):
                open_on.setdefault(producer, []).append(tp)
        for producer, partitions in open_on.items():
            silent = now - self._heard.get(producer, now)
            if silent >= self.producer_wait and all(unread(tp) is False for tp in partitions):
                for marks in chain(self._marks.values(), self._released_marks.values()):
                    marks.pop(producer, None)
                self._heard.pop(producer, None)
                metrics.WATERMARK_GIVEN_UP.inc()
                log.warning("producer %s sent no watermark for %.0f s: ingest no longer waits for it "
                            "(its later events, if any, are merged by arrival only)", producer, silent)
        for producer in set(self._heard) - set(open_on):  # closed everywhere here: nothing to time
            del self._heard[producer]

    def _unblocked(self, limit: int) -> int:
        """``limit``, lowered to every message that would stay held behind a later one of its
        partition. Several producers share a partition, and their arrivals interleave there: a message
        stuck behind another producer's later one must not be passed by later events elsewhere."""
        while True:
            stuck = min((_stuck_low(queue, limit) for queue in self._pending.values()), default=_NEVER_BEHIND)
            if stuck >= limit:  # (a tie has no order to keep: nothing stamps two events alike)
                return limit
            limit = stuck

    def _oldest_wait(self, now: float) -> float:
        return max((now - queue[0].since for queue in self._pending.values() if queue), default=0.0)


class _Fetched:
    """One fetch's messages of one partition, released from ``start`` on: the merge works per fetch,
    not per message (the per-message loops and tuples cost about a third of a microsecond an event).

    ``peaks[i]`` is the latest arrival among the first ``i + 1`` messages, so the messages up to the
    first one later than a limit are a bisection away. ``ordered``: its arrivals never decrease, nor
    fall below the latest one fetched before it on the partition, so a release that takes only such
    fetches is sorted runs and can be merged by one sort (same order: every key is distinct).
    """

    __slots__ = ("since", "messages", "peaks", "lows", "start", "ordered")

    def __init__(self, since: float, messages: Sequence[Inbound], previous: int | None) -> None:
        self.since = since
        self.messages = messages
        arrivals = [m.arrival_us for m in messages]
        self.peaks = list(accumulate(arrivals, max))
        self.lows = list(accumulate(reversed(arrivals), min))[::-1]
        """``lows[i]``: the earliest arrival from message ``i`` on."""
        self.start = 0
        self.ordered = self.peaks == arrivals and (previous is None or arrivals[0] >= previous)

    def take(self, limit: int) -> Sequence[Inbound]:
        """The messages from ``start`` up to the first one that arrived after ``limit``."""
        end = bisect_right(self.peaks, limit, self.start)
        taken = self.messages[self.start : end]
        self.start = end
        return taken


_NEVER_BEHIND = 1 << 62


def _stuck_low(queue: deque[_Fetched], limit: int) -> int:
    """The earliest arrival among the messages of a partition that ``limit`` would not release."""
    low = _NEVER_BEHIND
    for n, fetched in enumerate(queue):
        end = bisect_right(fetched.peaks, limit, fetched.start)
        if end < len(fetched.messages):
            low = fetched.lows[end]
            for later in itertools.islice(queue, n + 1, None):
                low = min(low, later.lows[0])
            return low
    return low


def _advance(marks: dict[str, int], messages: Sequence[Inbound]) -> dict[str, Inbound]:
    """Each producer's latest message in ``messages`` (one partition, in order) becomes its watermark
    there: its later messages on this partition are stamped later. A closing record removes it.
    Returns each producer's latest message."""
    latest = {m.producer: m for m in messages if m.producer}
    for producer, last in latest.items():
        if last.control == CLOSED:
            marks.pop(producer, None)
        else:
            marks[producer] = max(marks.get(producer, 0), last.arrival_us)
    return latest


_arrival_order = attrgetter("arrival_us", "topic", "partition", "offset")
"""The merge's key: arrival, then topic, partition and offset (distinct for every message)."""


class _DropRevoked(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no types (its base is Any); subscribe() wants an instance
    def __init__(self, merge: ArrivalMerge, topics: list[str], ends: dict[TopicPartition, int],
                 consumer: AIOKafkaConsumer) -> None:
        self.merge = merge
        self.topics = set(topics)
        self.ends = ends
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.merge.drop(revoked)
        for tp in revoked:  # known ends grow stale while another worker reads the partition
            self.ends.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        self.topics |= {tp.topic for tp in assigned}  # a pattern subscription finds its topics as it goes
        metrics.keep_lag_of(self.topics, [(tp.topic, tp.partition) for tp in assigned])
        await self._restore_watermarks(assigned)

    async def _restore_watermarks(self, assigned: list[TopicPartition]) -> None:
        """Each partition resumes with the watermarks committed with its position, so the release
        order after a restart or a rebalance is the one before it. aiokafka's public ``committed``
        returns the offset alone; its coordinator's fetch, which the consumer itself uses to resume,
        carries the metadata. aiokafka only logs what a listener raises, so a failure is left on the
        merge for the consume loop to raise: the consumer restarts, as resuming without them could
        release early."""
        if not assigned:
            return
        try:
            committed = await self.consumer._coordinator.fetch_committed_offsets(assigned)
        except Exception as exc:
            self.merge.restore_error = exc
            return
        now = time.monotonic()
        for tp in assigned:
            meta = committed.get(tp)
            self.merge.restore(tp, decode_marks(getattr(meta, "metadata", None)), now)


def ingest_consumer(settings: WorkerSettings) -> AIOKafkaConsumer:
    """The source topics' consumer; with ENDUSERS_INSTANCE_ID it is a static member of its group."""
    return AIOKafkaConsumer(
        group_id=ingest_group(settings),
        group_instance_id=settings.instance_id or None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_size,
        session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
        # a pattern subscription (per-subscription topics) sees a new licensee's topics at the next refresh
        metadata_max_age_ms=PATTERN_REFRESH_MS if settings.per_subscription_topics else 300_000,
        # The same partition number of every source topic goes to the same worker: producers key by
        # subscription, so one worker's merge sees all of a subscription's topics (round robin does
        # not ensure that once there are more than two workers). One assignor only: aiokafka (0.14)
        # sends a JoinGroup per assignor listed, the first naming one protocol and the next two, so
        # each join changes the member's protocols and starts another rebalance; two workers that
        # start together can keep restarting each other's rebalance for minutes (aio-libs/aiokafka#1168).
        partition_assignment_strategy=(RangePartitionAssignor,),
        **kafka_client_options(settings),
    )


async def consume_sources(settings: WorkerSettings, handle: Callable[[Sequence[Inbound]], Awaitable[None]]) -> None:
    """Forever: fetch from the source topics, release in arrival order, hand over, commit."""
    pattern = settings.source_pattern() if settings.per_subscription_topics else None
    topics = [] if pattern else [settings.topic(name) for name in SOURCE_TOPICS.values()]
    attempt = 0
    while True:
        merge = ArrivalMerge(producer_wait=settings.watermark_wait)
        ends: dict[TopicPartition, int] = {}  # asked for: a partition is unread until read to its end
        consumer = ingest_consumer(settings)
        if pattern:
            consumer.subscribe(pattern=pattern, listener=_DropRevoked(merge, topics, ends, consumer))
        else:
            consumer.subscribe(topics, listener=_DropRevoked(merge, topics, ends, consumer))
        try:
            await consumer.start()
            attempt = 0
            await _merge_forever(consumer, merge, ends, settings, handle)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Kafka away or a rebalance error: start over from committed offsets
            attempt += 1
            outage("Kafka").failed(f"ingest consumer: {type(exc).__name__}: {exc}")
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        finally:
            await consumer.stop()


STALL_WARNING_AFTER = 30.0
WATERMARK_COMMIT_EVERY = 1.0
"""Seconds between commits when only watermark records were released."""
"""Seconds without a release, while messages are held, before ingest names the partitions it waits for."""


async def _merge_forever(consumer: AIOKafkaConsumer, merge: ArrivalMerge, ends: dict[TopicPartition, int],
                         settings: WorkerSettings, handle: Callable[[Sequence[Inbound]], Awaitable[None]]) -> None:
    # A partition far ahead of the others in arrival is paused once this many of its messages are
    # held: memory stays bounded, and the fetches go to the partitions the merge waits for.
    hold_limit = max(1000, settings.batch_size)
    progress = committed = time.monotonic()
    while True:
        fetched = await consumer.getmany(timeout_ms=int(settings.batch_within * 1000),
                                         max_records=settings.batch_size)
        if merge.restore_error is not None:
            raise merge.restore_error
        now = time.monotonic()
        for tp, records in fetched.items():
            merge.add(tp, [inbound(r) for r in records], now)
        assigned = consumer.assignment()
        await _ask_first_ends(consumer, assigned, ends)
        await _ask_ends_for_new_producers(consumer, merge, assigned, ends)
        unread = await _unread_of(consumer, assigned, ends)
        batch = merge.release(assigned, unread, now)
        _pause_the_far_ahead(consumer, merge, assigned, hold_limit)
        if batch or (now - committed >= WATERMARK_COMMIT_EVERY and merge.commits()):
            # watermark records alone are committed now and then: re-reading a few costs nothing
            progress = committed = now
            if batch:
                await handle(batch)
            await _commit_released(consumer, merge)
            _observe_lag(consumer, fetched)
        elif now - progress >= STALL_WARNING_AFTER and any(merge.held(tp) for tp in assigned):
            waiting = sorted(f"{tp.topic}:{tp.partition}" for tp in assigned if unread(tp))
            log.warning("ingest holds fetched events until these partitions deliver earlier ones: %s",
                        ", ".join(waiting))
            progress = now


async def _ask_first_ends(consumer: AIOKafkaConsumer, assigned: set[TopicPartition],
                          ends: dict[TopicPartition, int]) -> None:
    """Before a partition's first fetch answers, its end comes from the broker: asked once."""
    unknown = [tp for tp in assigned if consumer.highwater(tp) is None and tp not in ends]
    if unknown:
        try:
            ends.update(await consumer.end_offsets(unknown))
        except KafkaError as exc:
            log.info("cannot read the end offsets of %s yet (%s)", unknown, exc)


async def _ask_ends_for_new_producers(consumer: AIOKafkaConsumer, merge: ArrivalMerge,
                                      assigned: set[TopicPartition], ends: dict[TopicPartition, int]) -> None:
    """A producer new on a partition announced itself on every partition of the topic before its first
    event there (Kafka acknowledged it): every partition's end as of now includes that announcement,
    so each counts as unread until read that far, and the producer's watermark there is then known."""
    if not merge.new_producer or not assigned:
        return
    try:
        latest = await consumer.end_offsets(list(assigned))
    except KafkaError as exc:
        log.info("cannot read the end offsets of %s yet (%s)", sorted(assigned), exc)
        return
    merge.new_producer = False
    for tp, end in latest.items():
        ends[tp] = max(ends.get(tp, 0), end)


async def _unread_of(consumer: AIOKafkaConsumer, assigned: set[TopicPartition],
                     ends: dict[TopicPartition, int]) -> Unread:
    """The merge's :data:`Unread` as of now: positions and pauses are read once, here."""
    positions = {tp: await consumer.position(tp) for tp in assigned}
    paused = consumer.paused()

    def unread(tp: TopicPartition) -> bool | None:
        if tp in paused:
            return True  # not being read, so not known to be caught up
        highwater, asked = consumer.highwater(tp), ends.get(tp)
        end = highwater if asked is None else asked if highwater is None else max(highwater, asked)
        return None if end is None else positions[tp] < end

    return unread


def _pause_the_far_ahead(consumer: AIOKafkaConsumer, merge: ArrivalMerge, assigned: set[TopicPartition],
                         hold_limit: int) -> None:
    paused = consumer.paused()
    too_far = {tp for tp in assigned if merge.held(tp) >= hold_limit}
    if too_far - paused:
        consumer.pause(*(too_far - paused))
    if paused - too_far:
        consumer.resume(*(paused - too_far))


async def _commit_released(consumer: AIOKafkaConsumer, merge: ArrivalMerge) -> None:
    offsets = merge.commits()
    if not offsets:
        return
    try:
        await consumer.commit({tp: (offset, merge.committable(tp)) for tp, offset in offsets.items()})
    except (CommitFailedError, IllegalGenerationError, RebalanceInProgressError) as exc:
        # A rebalance took the partitions away meanwhile: their next owner re-reads from the
        # last commit, and the count stage skips what it already applied. Keep going.
        log.info("ingest commit refused after a rebalance (%s)", exc)
    else:
        merge.committed(offsets)


def _observe_lag(consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[ConsumerRecord]]) -> None:
    """Records left behind the batch just read, per partition that had any."""
    for tp, records in fetched.items():
        highwater = consumer.highwater(tp)
        if highwater is not None and records:
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - records[-1].offset - 1))
