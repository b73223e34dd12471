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

DEAD_LETTER_TEXT_LIMIT = 1024
"""Characters kept of the reason and (raw) of the key: a reason may quote the offending value, and a
key may be as large as the broker allows; together with the value's limit, a dead letter stays far
below the producer's request size whatever the message was."""


class DeadLetters:
    """Queues dead letters on the ``deadletter`` topic."""

    def __init__(self, send: Send, topic: Callable[[str], str], *, raw: bool = False) -> None:
        self.send = send
        self.topic = topic("deadletter")
        self.raw = raw
        """Keep rejected values as they came (ENDUSERS_DEADLETTER_RAW=1), personal data included."""

    async def queue(self, message: Inbound, reason: str) -> Awaitable[Any]:
        """Queue the message on the dead-letter topic, keyed by its source partition (the key itself may
        be personal data); the result resolves once Kafka has it."""
        metrics.DEAD_LETTERS.inc()
        delivery: Awaitable[Any] = await self.send(self.topic, message.source.encode(),
                                                   dead_letter(message, reason, raw=self.raw))
        return delivery


def dead_letter(message: Inbound, reason: str, *, raw: bool = False) -> bytes:
    """The rejected message with where it came from and why; its value and key with personal data
    redacted (``streams.worker.redact``) unless ``raw``. Bounded whatever the message: the value is cut
    at :data:`DEAD_LETTER_VALUE_LIMIT`, the reason and key at :data:`DEAD_LETTER_TEXT_LIMIT`."""
    value = message.value or b""
    if not raw and message.value is not None:
        redacted, value = True, _redacted(message.value)
    else:
        redacted = False
    document: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp_ms,
        "reason": reason[:DEAD_LETTER_TEXT_LIMIT],
        "key": _key(message.key, raw),
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


def _redacted(value: bytes) -> bytes:
    """The redacted value; should redaction itself fail, only the size is kept."""
    try:
        return redacted_value(value)
    except Exception:
        return f"<not redactable: {len(value)} bytes>".encode()


def _key(key: bytes | None, raw: bool) -> str | None:
    if key is None:
        return None
    if not raw:
        return f"<key: {len(key)} bytes>"
    return key[:DEAD_LETTER_TEXT_LIMIT].decode("utf-8", "replace")
