"""The normalized change: what ingest forwards to the count stage (topic ``<prefix>.changes``).

It carries digests instead of emails and logins, so personal data never travels past ingest, and it is
already stamped with its effective time, so the count stage is deterministic given its input order.
Ingest sends a subscription's changes of one batch in as few messages as fit under
:data:`MAX_MESSAGE_BYTES` (``encode_batch``, or its rows one by one, ``split_rows`` and ``join_rows``):
the count stage then handles a few messages per batch instead of thousands, and applies each message
whole. Messages are split by their encoded size, never by a count of changes: a change's size depends
on its strings, which producers choose.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import msgspec
import orjson
from msgspec import UNSET, UnsetType

MAX_MESSAGE_BYTES = 512 * 1024
"""Bytes of one message on the changes topic: half the producer's request size (1,000,000 bytes, the
Kafka clients' default), so a message always fits with room for its key and the record overhead."""

MAX_ROW_BYTES = MAX_MESSAGE_BYTES - 1024
"""Bytes of one encoded change: a message holds at least one, with its subscription (at most 256
characters, 1 KiB in UTF-8). Ingest refuses a larger change (a config near the 1 MiB event limit)."""

ChangeKind = Literal["login", "upsert", "deactivate", "activate", "delete", "anonymous", "config"]


class ConfigFields(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """The normalized settings a config change sets: a key left UNSET keeps its current value.

    Normalization has already resolved null to the default (``thresholds`` null -> ``[80, 90, 100]``),
    sorted and deduplicated the lists and parsed the versions, so the engine reads plain values.
    ``capacity`` and ``runtimes`` are maps whose entries are set one by one (an entry absent keeps it).
    On the wire it is the JSON object of the keys given (``omit_defaults``), the very object that
    config changes carried as ``fields`` before they were typed, so a message written then still reads.
    """

    platform: Literal["o11", "odc"] | UnsetType = UNSET
    domains: list[str] | UnsetType = UNSET
    capacity: dict[str, int | None] | UnsetType = UNSET
    thresholds: list[int] | UnsetType = UNSET
    hysteresis: int | float | UnsetType = UNSET
    shared_identifier_threshold: int | UnsetType = UNSET
    runtimes: dict[str, list[int] | None] | UnsetType = UNSET
    billing_day: int | UnsetType = UNSET
    dormant_days: int | UnsetType = UNSET
    statement_grace: int | UnsetType = UNSET
    source_silence: int | UnsetType = UNSET
    excluded_providers: list[str] | UnsetType = UNSET

    def to_dict(self) -> dict[str, Any]:
        """The keys given, as JSON values (the wire form, and what the what-if answer shows)."""
        given: dict[str, Any] = msgspec.to_builtins(self)
        return given


class Change(msgspec.Struct, array_like=True, gc=False):
    """One normalized input event.

    ``record`` is the digest of ``(runtime, tenant, provider, user_id)`` for record changes and of the
    session id for ``anonymous``. ``fields`` holds only what the event carries: ``email`` and
    ``username`` as ``[digest, domain]`` or null (cleared), ``active`` and ``default_tenant`` as bools;
    a ``config`` change carries its settings, typed, in ``config`` instead.

    A msgspec struct whose fields are in the order of a row of ``encode_batch``: ``decode_batch`` has
    msgspec build the changes straight from the message, in C, instead of one Python ``__init__`` call
    per change, on the path every event takes. ``subscription`` comes last
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
    config: ConfigFields | None = None
    """The settings of a ``config`` change (None for every other kind). Not a column of its own on the
    wire: ``encode_batch`` writes it in the place of ``fields``, which a config change leaves empty."""


class _Batch(msgspec.Struct):
    subscription: str
    changes: list[Change]
    digest: str | None = None
    """``Digester.fingerprint`` of the ingest that made the digests (absent in older messages)."""


_BATCH = msgspec.json.Decoder(_Batch)


def encode_batch(subscription: str, changes: list[Change], digest: str | None = None) -> bytes:
    """Changes of one subscription, in order, as one compact message."""
    return join_rows(subscription, [encode_row(change) for change in changes], digest)


def encode_row(change: Change) -> bytes:
    """One change as its row of a batch message: ingest encodes each change as it makes it and joins
    the rows later (``join_rows``), so the change is read and freed while it is still in the CPU's
    cache; encoding a batch's changes at its end would read each back from memory, once to encode it
    and again to free it."""
    return orjson.dumps([change.kind, change.time, change.event_id, change.record, change.runtime, change.provider,
                         change.fields if change.config is None else change.config.to_dict(), change.invalid_email,
                         *([] if change.origin is None else [change.origin])])


def join_rows(subscription: str, rows: list[bytes], digest: str | None = None) -> bytes:
    """The message of encoded rows: byte for byte what ``orjson.dumps`` makes of the whole batch.
    ``digest``: the fingerprint of the digests in the rows, which the count stage checks against its own."""
    stamp = b"" if digest is None else b',"digest":' + orjson.dumps(digest)
    return b'{"subscription":' + orjson.dumps(subscription) + stamp + b',"changes":[' + b",".join(rows) + b"]}"


def split_rows(rows: list[bytes], budget: int = MAX_MESSAGE_BYTES - 1024) -> Iterator[list[bytes]]:
    """The rows in order, in runs whose joined size stays within ``budget`` bytes (a row larger than
    the budget alone; ingest refuses such rows beforehand, see :data:`MAX_ROW_BYTES`)."""
    run: list[bytes] = []
    size = 0
    for row in rows:
        if run and size + len(row) + 1 > budget:
            yield run
            run, size = [], 0
        run.append(row)
        size += len(row) + 1
    if run:
        yield run


def decode_batch(raw: bytes) -> list[Change]:
    """The changes of a message written by ``encode_batch`` (raises on anything else)."""
    return decode_message(raw)[0]


def decode_message(raw: bytes) -> tuple[list[Change], str | None]:
    """The changes of a message written by ``encode_batch`` and the fingerprint of their digests (None
    in a message written before messages carried it); raises on anything else."""
    batch = _BATCH.decode(raw)
    subscription = batch.subscription
    for change in batch.changes:
        change.subscription = subscription
        if change.kind == "config":  # rare: its settings, read from the place of ``fields``, typed
            change.config, change.fields = msgspec.convert(change.fields, ConfigFields), {}
    return batch.changes, batch.digest
