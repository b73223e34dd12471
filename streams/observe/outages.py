"""Log lines an operator can read during an outage of Kafka or Redis: one line when a dependency
stops answering, one every ``EVERY`` seconds while it stays away (what, since when, the last error),
one when it is back, rather than an ERROR line with a traceback from each retry and each client
library, which would bury the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("endusers.outage")

EVERY = 10.0


class Outage:
    def __init__(self, what: str, every: float = EVERY, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self.what = what
        self.every = every
        self.clock = clock
        self.log = logger
        self.since: float | None = None
        self._said = 0.0
        self._failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException | str) -> None:
        now = self.clock()
        self._failures += 1
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if self.since is None:
            self.since, self._said, self._failures = now, now, 1
            self.log.warning("%s is unreachable (%s); retrying", self.what, reason)
        elif now - self._said >= self.every:
            self._said = now
            self.log.warning("%s unreachable for %.0f s (%d failed attempts; last: %s)", self.what,
                             now - self.since, self._failures, reason)

    def recovered(self) -> None:
        if self.since is not None:
            self.log.warning("%s is back after %.1f s", self.what, self.clock() - self.since)
            self.since = None


_outages: dict[str, Outage] = {}


def outage(what: str) -> Outage:
    """The process-wide tracker of one dependency ("Kafka", "Redis")."""
    found = _outages.get(what)
    if found is None:
        found = _outages[what] = Outage(what)
    return found


class KafkaNoise(logging.Filter):
    """Drops the client libraries' per-attempt connection errors (aiokafka, Faust) and counts them as
    a Kafka outage instead; everything else passes."""

    MARKERS = ("Unable connect", "Unable to connect", "Connection refused", "connect to node", "NodeNotReady",
               "KafkaConnectionError", "Failed fetch messages", "Unable to update metadata",
               "Coordinator dead", "GroupCoordinatorNotAvailable", "Heartbeat failed")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        if any(marker in text for marker in self.MARKERS):
            outage("Kafka").failed(text.splitlines()[0][:200])
            return False
        return True


def quiet_kafka_clients() -> None:
    noise = KafkaNoise()
    for name in ("aiokafka", "aiokafka.conn", "aiokafka.client", "aiokafka.consumer.group_coordinator",
                 "aiokafka.consumer.fetcher", "aiokafka.producer.sender", "faust.transport.drivers.aiokafka",
                 "faust.transport.consumer", "faust.transport.producer", "faust.sensors"):
        logging.getLogger(name).addFilter(noise)
