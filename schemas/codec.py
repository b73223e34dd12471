"""Bytes in, a valid event or a precise reason out; never an exception.

Every path from the outside world (a Kafka message, a JSONL line) enters here, so this is the one place
that decides what "bad input" means and how it is explained (docs/events.md, rejected events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import InputEvent

_ADAPTER: TypeAdapter[Any] = TypeAdapter(InputEvent)
_KNOWN_TYPES = ("login", "profile", "visit", "config")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused, phrased for the producer who must fix it."""

    reason: str


def loads(raw: bytes | str) -> Any:
    """Parse JSON with orjson (raises orjson.JSONDecodeError)."""
    return orjson.loads(raw)


def dumps(value: Any) -> bytes:
    """Serialize with orjson; dataclasses and pydantic-free dicts both work."""
    return orjson.dumps(value)


def validate(document: Any) -> InputEvent | Rejection:
    """Validate an already parsed JSON document as one input event."""
    if not isinstance(document, dict):
        return Rejection(f"not a JSON object (got {type(document).__name__})")
    kind = document.get("type")
    if kind not in _KNOWN_TYPES:
        if kind is None:
            return Rejection("type: required field missing")
        return Rejection(f"type: unknown event type {_preview(kind)} (expected one of {', '.join(_KNOWN_TYPES)})")
    try:
        return _ADAPTER.validate_python(document)  # type: ignore[no-any-return]
    except ValidationError as exc:
        return Rejection(_explain(exc))
    except Exception as exc:  # a validator bug must still never crash the caller
        return Rejection(f"invalid event: {type(exc).__name__}: {exc}")


def decode(raw: bytes | str) -> InputEvent | Rejection:
    """Decode one raw message or line into an event, or say precisely why not."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(f"not JSON: {exc}")
    except Exception as exc:
        return Rejection(f"not JSON: {type(exc).__name__}")
    return validate(document)


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
