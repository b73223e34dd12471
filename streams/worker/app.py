"""The Faust app run by ``endusers worker``: topics, the ingest task, the count agent, timers, web.

Everything reads raw bytes (value_serializer="raw") and decodes them itself, so a malformed message
becomes a dead letter instead of killing a stream; both stages work in batches, so Redis and Kafka
are touched once per batch rather than once per event.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
from typing import Any

import faust
from aiokafka import AIOKafkaClient
from faust.types import TP, EventT

from counters import Digester, StoreUnavailable
from schemas.cloudevents import Headers
from streams.observe import metrics
from streams.worker.alerts import install_alerts
from streams.observe.outages import outage, quiet_kafka_clients
from streams.kafka.transport import broker_url
from streams.kafka.messages import Inbound
from streams.worker.count import Count
from streams.worker.deadletter import DeadLetters
from streams.worker.ingest import Ingest
from streams.worker.live_counts import LiveCounts
from streams.worker.outbox import OutboxPublisher
from streams.worker.statements import StatementCloser
from streams.worker.ownership import Ownership
from streams.worker.placement import Placement
from streams.observe.readiness import Readiness
from streams.store.connect import connect_bounded
from streams.kafka.consumer import consume_sources
from streams.settings import (Environment, MissingSecret, OpenApi, SubscriptionsMode, WorkerSettings,
                               kafka_client_options, kafka_connection, warn_if_development_secret)
from streams.store.redis_store import RedisStore
from streams.kafka.topics import all_topics, ensure_topics
from streams.http.auth import Access, TokenFileError, tokens_file_checked
from streams.http.views import install_views

log = logging.getLogger(__name__)


def create_app(settings: WorkerSettings | None = None) -> faust.App:
    """The worker's Faust app, with everything it runs registered (see :class:`Wiring`)."""
    settings = settings or WorkerSettings()
    app = _faust_app(settings)
    Wiring(app, settings).register()
    return app


def _faust_app(settings: WorkerSettings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=broker_url(settings.bootstrap_servers),  # Faust's Kafka transport with an idempotent producer
        broker_credentials=kafka_connection(settings).faust_credentials(),
        key_serializer="raw",
        value_serializer="raw",
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.instance_id or None,
        # A static member that rejoins gets its previous assignment back from the coordinator, with
        # the URL it announced then; Faust's assignor refuses (AssertionError) an assignment whose URL
        # is not its own. So the announced URL must not depend on a port that may change on restart:
        # ENDUSERS_WEB_ADVERTISED_URL, which other workers forward admission checks to, names a stable one.
        canonical_url=settings.web_advertised_url or (f"http://{settings.instance_id}" if settings.instance_id else None),
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=max(settings.session_timeout * 2, 20.0),
        producer_linger_ms=5,
        producer_max_batch_size=1024 * 1024,
        stream_buffer_maxsize=max(4096, settings.batch_size * 2),
        autodiscover=False,
        store="memory://",
        datadir=settings.data_dir,
    )


class Wiring:
    """What a worker runs, each under its name: the ingest task, the count agent, the rebalance
    handlers, the timers and the readiness check. Faust calls them once :meth:`register` has handed
    them over (as bound methods: Faust's decorators take any callable); the object holds what they
    share, the stages, the stores and the worker's health."""

    def __init__(self, app: faust.App, settings: WorkerSettings) -> None:
        self.app = app
        self.settings = settings
        self.store = RedisStore.from_settings(settings)
        # The HTTP side reads through a pool of its own, bounded, that waits for a free connection
        # rather than failing: 150 dashboards reconnecting at once cannot take the count stage's.
        self.web_store = RedisStore(connect_bounded(settings.redis, settings.web_redis_connections,
                                                    sentinel_password=settings.sentinel_password()))
        self.health = Readiness(settings.stall_seconds, self.store)
        self.changes = app.topic(settings.topic("changes"), partitions=settings.partitions, key_type=bytes,
                                 value_type=bytes, internal=True)
        self.digester = Digester(settings.digest_secret(), per_subscription=settings.digest_scope != "shared")
        dead_letters = DeadLetters(self.send, settings.topic, raw=settings.raw_dead_letters)
        self.ingest_stage = Ingest(self.digester, self.send, settings.topic, dead_letters,
                                   max_future=settings.max_future, topic_subscription=settings.topic_subscription)
        self.outbox = OutboxPublisher(self.store, self.send, settings.topic)
        self.statement_outbox = OutboxPublisher(self.store, self.send, settings.topic, kind="statements")
        self.live_counts = LiveCounts(self.store, self.send, settings.topic)
        self.ownership = Ownership(self.store, self.live_counts)
        self.count_stage = Count(self.store, dead_letters, self.ownership, self.outbox, self.live_counts,
                                 rewind=self.rewind, digest=self.digester.fingerprint,
                                 declared_only=settings.subscriptions is SubscriptionsMode.DECLARED)
        self.count_stage.batch_done = self.health.batch_done
        self.statements = StatementCloser(self.store, self.statement_outbox, self.ownership.owned)
        self.store.fingerprint = self.digester.fingerprint  # state digested otherwise is refused, not split
        self.store.adopt_unrecorded = settings.environment == Environment.DEVELOPMENT
        self.health.refused = self.ownership.refused
        self.health.rereading = self.count_stage.rereading
        self._adoptions: set[asyncio.Future[None]] = set()
        self._kafka_probe: AIOKafkaClient | None = None

    def register(self) -> None:
        app, settings = self.app, self.settings
        metrics.cap_labels(settings.metrics_max_labels)
        app.task(self.ingest)
        app.agent(self.changes)(self.count)
        app.on_partitions_revoked.connect(self.on_revoked)
        app.on_partitions_assigned.connect(self.on_assigned)
        app.timer(1.0)(self.publish_counts)
        app.timer(2.0)(self.watch_dependencies)
        app.timer(5.0)(self.sweep_outboxes)
        app.timer(settings.statement_sweep)(self.close_statements)
        access = Access.configured(settings.web_host, tokens_file_checked(settings) or "", settings.web_allowed_hosts)
        install_views(app, self.web_store, self.readiness, access=access,
                      max_streams=settings.web_max_streams, digester=self.digester,
                      max_streams_per_token=settings.web_max_streams_per_token,
                      stream_idle=settings.web_stream_idle,
                      placement=Placement(app, self.changes, self.store, self.ownership))
        install_alerts(app, settings, self.store, self.count_stage)

    # --- the two stages ---------------------------------------------------------------------------

    async def ingest(self) -> None:
        """Source topics -> validated, normalized changes keyed by subscription (or dead letters)."""
        warn_if_development_secret(self.settings)
        await consume_sources(self.settings, self.ingest_stage.handle)

    async def count(self, stream: faust.StreamT[bytes]) -> None:
        """Changes -> the engine -> Redis, a batch at a time."""
        if not isinstance(stream, faust.Stream):  # Faust's own class: its StreamT does not declare take_events
            raise TypeError(f"the count agent needs a faust.Stream, not {type(stream).__name__}")
        async for batch in stream.take_events(self.settings.batch_size, within=self.settings.batch_within):
            await self.count_stage.handle([_inbound(e) for e in batch])

    async def send(self, topic_name: str, key: bytes | None, value: bytes, headers: Headers | None = None, /
                   ) -> Any:
        """Queue on the app's producer (no per-message Faust bookkeeping); await the result to know
        Kafka has it."""
        return await self.app.producer.send(topic_name, key, value, None, None, headers)

    async def rewind(self, source: str, offset: int) -> bool:
        """Read a changes partition again from ``offset`` (Redis lost commits in a failover); False
        when another worker reads it now (from the committed offsets)."""
        topic, _, partition = source.rpartition(":")
        tp = TP(topic, int(partition))
        if tp not in self.app.consumer.assignment():
            return False
        await self.app.consumer.seek(tp, offset)
        return True

    # --- rebalances (mode's signals call a receiver with the sender, the assignment, ``signal=``) ---

    async def on_revoked(self, _sender: object, /, *_revoked: set[TP], **_signal: Any) -> None:
        self.health.assignment_revoked()
        for task in list(self._adoptions):
            task.cancel()

    async def on_assigned(self, _sender: object, /, *assignment: set[TP], **_signal: Any) -> None:
        """Faust sends the whole new assignment of the changes topic after every rebalance."""
        assigned = assignment[0]
        self.health.assignment_received()
        sources = {f"{tp.topic}:{tp.partition}" for tp in assigned}
        self.count_stage.reassigned()  # every partition is read from Kafka's committed offsets now
        released = self.ownership.keep_only(sources)
        metrics.keep_lag_of([self.changes.get_topic_name()], [(tp.topic, tp.partition) for tp in assigned])
        if released:
            log.info("after a rebalance another worker counts %d subscriptions: %s", len(released),
                     ", ".join(sorted(released)[:10]))
        task = asyncio.ensure_future(self.adopt(sources))  # off the rebalance's critical path
        self._adoptions.add(task)
        task.add_done_callback(self._adoptions.discard)

    async def adopt(self, sources: set[str]) -> None:
        """Gauges first (two small keys each), then every owned state, one subscription at a time;
        /readyz says ``loading`` until the last one is in memory."""
        while True:
            try:
                adopted, unloaded = await self.ownership.adopt(sources)
                outage("Redis").recovered()
                break
            except StoreUnavailable as exc:
                outage("Redis").failed(str(exc))
                await asyncio.sleep(1.0)
        if adopted:
            log.info("counting %d subscriptions after a rebalance", len(adopted))
        pending = self.health.to_load = set(unloaded)  # this rebalance's own set: a newer one replaces it
        self.health.listing = False
        try:
            for subscription in unloaded:
                await self.ownership.preload(subscription)
                pending.discard(subscription)
        finally:
            pending.clear()

    # --- timers -----------------------------------------------------------------------------------

    async def publish_counts(self) -> None:
        await self.live_counts.publish()
        self.health.observe_lag(await _observe_lag(self.app))

    async def watch_dependencies(self) -> None:
        """While Kafka or Redis is marked away, probe it, so the log says when it is back."""
        if outage("Kafka").down and await _answers(self.kafka_answers()):
            outage("Kafka").recovered()
        if outage("Redis").down and await _answers(self.store.ping()):
            outage("Redis").recovered()

    async def close_statements(self) -> None:
        """Freeze the billing statements that have closed (``streams/worker/statements.py``)."""
        try:
            await self.statements.sweep()
        except StoreUnavailable as exc:  # the next sweep retries
            outage("Redis").failed(str(exc))
        except Exception as exc:  # frozen and queued, or not at all: the next sweep retries
            log.warning("closing statements failed (%s: %s); the next sweep retries", type(exc).__name__, exc)

    async def sweep_outboxes(self) -> None:
        try:
            await self.outbox.sweep()
            await self.statement_outbox.sweep()
        except StoreUnavailable as exc:  # the next sweep retries
            outage("Redis").failed(str(exc))
        except Exception as exc:  # Kafka away: the next sweep retries
            outage("Kafka").failed(f"outbox sweep: {type(exc).__name__}: {exc}")

    # --- readiness --------------------------------------------------------------------------------

    async def kafka_answers(self) -> None:
        """A real metadata round trip on a client of its own (created in the running loop)."""
        if self._kafka_probe is None:
            client = AIOKafkaClient(**kafka_client_options(self.settings), request_timeout_ms=2000)
            await client.bootstrap()
            self._kafka_probe = client
        await self._kafka_probe.fetch_all_metadata()

    async def readiness(self) -> dict[str, bool | str]:
        kafka, redis = await asyncio.gather(_answers(self.kafka_answers()), _answers(self.store.ping()))
        return {"kafka": kafka, "redis": redis, **self.health.checks()}


async def _answers(probe: Any) -> bool:
    try:
        await asyncio.wait_for(probe, timeout=2.0)
        return True
    except Exception:
        return False


def _inbound(event: EventT[bytes]) -> Inbound:
    message = event.message
    timestamp_ms = int(round((message.timestamp or 0) * 1000))
    return Inbound(message.topic, message.partition, message.offset, timestamp_ms, message.key, message.value)


async def _observe_lag(app: faust.App) -> int:
    """Changes not yet processed, over the assigned partitions (also exported per partition)."""
    consumer = app.consumer
    total = 0
    try:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            read = getattr(consumer, "_read_offset", {}).get(tp)  # faust keeps no public accessor for it
            if highwater is None:
                continue
            # nothing read since the assignment: the position is the committed offset
            done = read + 1 if read is not None else await consumer.position(tp)
            lag = max(0, highwater - (done or 0))
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
            total += lag
    except Exception:  # lag is best effort: never let metrics stop a timer
        return 0
    return total


def create_topics(settings: WorkerSettings) -> None:
    """Every topic, before Faust's consumer subscribes: a consumer that subscribes to a topic that does
    not exist yet ignores it until its next metadata refresh (minutes), so the count stage would sit
    idle. Waits for Kafka, saying so, rather than starting a worker that cannot count."""
    while True:
        loop = asyncio.new_event_loop()  # its own loop: Faust's worker sets up the process's loop later
        try:
            for warning in loop.run_until_complete(ensure_topics(settings, all_topics(settings))):
                log.warning(warning)
            outage("Kafka").recovered()
            return
        except Exception as exc:
            outage("Kafka").failed(f"cannot create the topics yet: {type(exc).__name__}: {exc}")
            time.sleep(2.0)
        finally:
            loop.close()


def run_worker(settings: WorkerSettings | None = None, loglevel: str = "info") -> None:
    """Start the app as a Faust worker in this process (``endusers worker``).

    The worker holds every record of the subscriptions it counts; Python's default collector would
    rescan those millions of long-lived objects every couple of seconds (pauses of 150-350 ms that
    freed nothing in the benchmarks), so collections run far less often. The young generation is
    collected after a million new container objects, not 100,000: a batch of 5,000 events keeps more
    than 100,000 alive until it is done, so at 100,000 a young collection ran every second or two of
    backlog and traversed them all, for 16-160 ms of CPU each (8% of the worker's CPU in the
    benchmark). uvloop, when installed, halves the event loop's own cost.
    """
    settings = settings or WorkerSettings()
    try:  # before anything connects: a worker without its key must not count, nor serve everyone
        settings.digest_secret()
        tokens_file_checked(settings, quiet=True)
    except (MissingSecret, OpenApi, TokenFileError) as exc:
        print(f"endusers worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    gc.set_threshold(1_000_000, 50, 1000)
    quiet_kafka_clients()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    create_topics(settings)
    app = create_app(settings)
    BoundedWorker(app, loglevel=loglevel).execute_from_commandline()


SHUTDOWN_BOUND = 15.0
"""Seconds a SIGTERM or SIGINT shutdown may take before the process exits anyway."""


class BoundedWorker(faust.Worker):
    """A stop that cannot hang: the consumers leave their groups at once (their partitions move to the
    other workers without waiting for the session timeout), and should anything in the shutdown wait
    longer than ``SHUTDOWN_BOUND`` (a broker gone, a stuck client), the process exits regardless.
    Nothing is lost that way: committed batches are in Redis, and whatever was in flight is read
    again from Kafka (at least once; the engine and the commit's position check make it harmless)."""

    def _schedule_shutdown(self, signal: Any) -> None:
        def give_up() -> None:
            log.warning("shutdown still running after %.0f s: exiting now", SHUTDOWN_BOUND)
            logging.shutdown()
            os._exit(0)

        timer = threading.Timer(SHUTDOWN_BOUND, give_up)
        timer.daemon = True
        timer.start()
        super()._schedule_shutdown(signal)
