"""The dead-letter topic: a message either stage cannot use, with where it came from and why
(docs/events.md, dead letters), its value redacted of personal data unless configured otherwise."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from streams.kafka.messages import Inbound, Send
from streams.observe import metrics
from streams.worker.redact import redacted_value

DEAD_LETTER_VALUE_LIMIT = 64 * 1024
"""Raw bytes kept in a dead letter: enough to diagnose, small enough to stay under Kafka's limits."""


class DeadLetters:
    """Queues dead letters on the ``deadletter`` topic."""

    def __init__(self, send: Send, topic: Callable[[str], str], *, raw: bool = False) -> None:
        self.send = send
        self.topic = topic("deadletter")
        self.raw = raw
        """Keep rejected values as they came (ENDUSERS_DEADLETTER_RAW=1), personal data included."""

    async def queue(self, message: Inbound, reason: str) -> Awaitable[Any]:
        """Queue the message on the dead-letter topic; the result resolves once Kafka has it."""
        metrics.DEAD_LETTERS.inc()
        delivery: Awaitable[Any] = await self.send(self.topic, message.key, dead_letter(message, reason, raw=self.raw))
        return delivery


def dead_letter(message: Inbound, reason: str, *, raw: bool = False) -> bytes:
    """The rejected message with where it came from and why; its value with personal data redacted
    (``streams.worker.redact``) unless ``raw``."""
    value = message.value or b""
    if not raw and message.value is not None:
        redacted, value = True, redacted_value(message.value)
    else:
        redacted = False
    document: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp_ms,
        "reason": reason,
        "key": None if message.key is None else message.key.decode("utf-8", "replace"),
        "value_size": None if message.value is None else len(message.value),
        "truncated": len(value) > DEAD_LETTER_VALUE_LIMIT,
        "redacted": redacted,
    }
    kept = value[:DEAD_LETTER_VALUE_LIMIT]
    try:
        document["value"] = None if message.value is None else kept.decode("utf-8")
    except UnicodeDecodeError:
        document["value_base64"] = base64.b64encode(kept).decode("ascii")
    return orjson.dumps(document)
