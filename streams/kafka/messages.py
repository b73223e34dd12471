"""Kafka messages as the stages see them, whatever the client library: :class:`Inbound`, one message
consumed, and :class:`Send`, how a stage queues one for producing.

The source consumer (``streams.kafka.consumer``) and the Faust agent of the count stage both build
``Inbound`` messages; the stages (``streams.worker``) take them and produce through a ``Send``. Neither
side imports the other.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import msgspec

from schemas.cloudevents import Headers

ARRIVAL_HEADER = "endusers-arrival"
"""Header with the publish order in microseconds (set by ``endusers publish``); ingest merges by it."""
PRODUCER_HEADER = "endusers-producer"
"""Header naming the producer that stamped the arrival (one id per producer run), for its watermarks."""
WATERMARK_HEADER = "endusers-watermark"
"""Header that makes a message a watermark record, not an event (``streams.kafka.watermarks``)."""


class Inbound(msgspec.Struct, frozen=True, gc=False):
    """One consumed Kafka message.

    A msgspec struct: ingest builds one per source message, and its construction costs a fraction of
    a frozen dataclass's. ``gc=False``: it holds no reference cycle, so the collector skips it.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    arrival_us: int = 0
    """Publish order (the ``endusers-arrival`` header, else the timestamp): ingest merges by it."""
    producer: str = ""
    """The ``endusers-producer`` header: whose watermarks cover this message ("" for other producers)."""
    control: str = ""
    """A watermark record's kind (``progress`` or ``closed``); "" for an event."""

    @property
    def source(self) -> str:
        """``topic:partition``: the partition it came from, as positions name it."""
        return f"{self.topic}:{self.partition}"


class Send(Protocol):
    """``send(topic, key, value, headers)`` queues a message and returns an awaitable of its delivery."""

    def __call__(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None, /
                 ) -> Awaitable[Any]: ...
