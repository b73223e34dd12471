"""The normalized change: what ingest forwards to the count stage (topic ``<prefix>.changes``).

It carries digests instead of emails and logins, so personal data never travels past ingest, and it is
already stamped with its effective time, so the count stage is deterministic given its input order.
Ingest sends a subscription's changes of one batch as ONE message (``encode_batch``): the count stage
then handles a few messages per batch instead of thousands, and applies each message whole.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import orjson

ChangeKind = Literal["login", "upsert", "deactivate", "activate", "delete", "anonymous", "config"]


class Change(msgspec.Struct, array_like=True, gc=False):
    """One normalized input event.

    ``record`` is the digest of ``(runtime, tenant, provider, user_id)`` for record changes and of the
    session id for ``anonymous``. ``fields`` holds only what the event carries: ``email`` and
    ``username`` as ``[digest, domain]`` or null (cleared), ``active`` and ``default_tenant`` as bools;
    for ``config`` it holds the normalized settings.

    A msgspec struct whose fields are in the order of a row of ``encode_batch``: ``decode_batch`` has
    msgspec build the changes straight from the message, in C, instead of one Python ``__init__`` call
    per change (13% of a worker's samples when they were dataclasses). ``subscription`` comes last
    because a row does not carry it (its batch does); ``gc=False`` because a change holds no cycle.
    """

    kind: ChangeKind
    time: int
    event_id: str | None = None
    record: str = ""
    runtime: str = ""
    provider: str = ""
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    invalid_email: bool = False
    origin: list[Any] | None = None
    """``[topic, partition, offset, actor]`` of the source event: the count stage skips an event that
    ingest forwards twice (ingest is at least once), and the audit trail names where a config came
    from (``actor`` is set on configs only)."""
    subscription: str = ""


class _Batch(msgspec.Struct):
    subscription: str
    changes: list[Change]


_BATCH = msgspec.json.Decoder(_Batch)


def encode_batch(subscription: str, changes: list[Change]) -> bytes:
    """Changes of one subscription, in order, as one compact message."""
    return orjson.dumps({
        "subscription": subscription,
        "changes": [[c.kind, c.time, c.event_id, c.record, c.runtime, c.provider, c.fields, c.invalid_email,
                     *([] if c.origin is None else [c.origin])] for c in changes],
    })


def decode_batch(raw: bytes) -> list[Change]:
    """The changes of a message written by ``encode_batch`` (raises on anything else)."""
    batch = _BATCH.decode(raw)
    subscription = batch.subscription
    for change in batch.changes:
        change.subscription = subscription
    return batch.changes
