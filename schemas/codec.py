"""Bytes in, a valid event or a precise reason out; never an exception.

Every path from the outside world (a Kafka message, a JSONL line) enters here, so this is the one place
that decides what "bad input" means and how it is explained (docs/events.md, rejected events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import InputEvent
from schemas.limits import MAX_EVENT_BYTES, format_duration
from schemas.outputs import format_instant

_ADAPTER: TypeAdapter[Any] = TypeAdapter(InputEvent)
_KNOWN_TYPES = ("login", "profile", "visit", "config")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused, phrased for the producer who must fix it."""

    reason: str


class Source(NamedTuple):
    """Where a live event came from: its topic, and the one event type that topic accepts.

    Topics are the unit of access control in Kafka: with each topic accepting only its own type, an
    ACL that lets a producer write logins does not also let it reconfigure subscriptions.
    """

    topic: str
    accepts: str


def loads(raw: bytes | str) -> Any:
    """Parse JSON with orjson (raises orjson.JSONDecodeError)."""
    return orjson.loads(raw)


def dumps(value: Any) -> bytes:
    """Serialize with orjson; dataclasses and pydantic-free dicts both work."""
    return orjson.dumps(value)


def validate(document: Any, source: Source | None = None) -> InputEvent | Rejection:
    """Validate an already parsed JSON document as one input event (from ``source``, if given)."""
    if not isinstance(document, dict):
        return Rejection(f"not a JSON object (got {type(document).__name__})")
    kind = document.get("type")
    if kind not in _KNOWN_TYPES:
        if kind is None:
            return Rejection("type: required field missing")
        return Rejection(f"type: unknown event type {_preview(kind)} (expected one of {', '.join(_KNOWN_TYPES)})")
    if source is not None and kind != source.accepts:
        return Rejection(f"type {kind} is not accepted on topic {source.topic}")
    try:
        return _ADAPTER.validate_python(document)  # type: ignore[no-any-return]
    except ValidationError as exc:
        return Rejection(_explain(exc))
    except Exception as exc:  # a validator bug must still never crash the caller
        return Rejection(f"invalid event: {type(exc).__name__}: {exc}")


def decode(raw: bytes | str, source: Source | None = None) -> InputEvent | Rejection:
    """Decode one raw message or line into an event, or say precisely why not.

    ``source`` is given for events read from a topic: an event of another type than the topic's is
    refused there, before the cost of validating it.
    """
    size = _size(raw)
    if size > MAX_EVENT_BYTES:
        return Rejection(f"too large: {size} bytes (an event is at most {MAX_EVENT_BYTES} bytes, 1 MiB)")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(f"not JSON: {exc}")
    except Exception as exc:
        return Rejection(f"not JSON: {type(exc).__name__}")
    return validate(document, source)


def too_far_ahead(event: InputEvent, now: int, max_future: int) -> Rejection | None:
    """Refuse an event timed more than ``max_future`` microseconds after ``now`` (the processing clock).

    Such a time would win every last-writer-wins comparison until that day: a delete dated 9999 leaves
    a tombstone that blocks every later event of the record, and untimed events, stamped in arrival
    order after it, would inherit the far future too.
    """
    if event.time is None or event.time - now <= max_future:
        return None
    return Rejection(f"time is in the future: {format_instant(event.time)} is more than "
                     f"{format_duration(max_future)} ahead of {format_instant(now)}")


def _size(raw: bytes | str) -> int:
    """Bytes on the wire; a text line is measured in UTF-8 only when it could be too large."""
    if isinstance(raw, bytes):
        return len(raw)
    if len(raw) * 4 <= MAX_EVENT_BYTES:
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:3]:
        location = ".".join(str(p) for p in error["loc"][1:]) or str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"]
        if error["type"] == "missing":
            message = "required field missing"
        parts.append(f"{location}: {message}" if location else message)
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
