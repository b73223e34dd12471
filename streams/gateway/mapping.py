"""What every provider mapping shares: where the events go, what a batch became, and the checks.

A mapping is a pure function from a provider's parsed payload to a :class:`Batch`: the events to
publish (each already valid by ``schemas.codec``), the items ignored on purpose (a failed login, a
machine, a type that says nothing about end users), counted per reason, and the items that could not be
mapped, each with its place in the payload and the reason, answered to the provider. A payload that is
not the provider's shape at all is a :class:`Malformed`: the whole request is refused.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import orjson

from schemas.codec import Rejection, validate

MAX_ID = 256
"""The longest event id the codec accepts (a string field): a longer provider id is refused, not cut."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Target:
    """The subscription a request writes for and the defaults its route adds (``?runtime=``,
    ``?provider=``); None keeps the event's own value or ours (``default``)."""

    subscription: str
    runtime: str | None = None
    provider: str | None = None

    def scope(self) -> dict[str, object]:
        """The fields every mapped record event carries."""
        fields: dict[str, object] = {"subscription": self.subscription}
        if self.runtime is not None:
            fields["runtime"] = self.runtime
        if self.provider is not None:
            fields["provider"] = self.provider
        return fields


@dataclass(frozen=True, slots=True)
class Ignored:
    """An item mapped to nothing on purpose; ``reason`` is a metric label (a bounded set)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unmapped:
    """An item that should have been an event and could not be; ``category`` is a metric label."""

    reason: str
    category: str = "unmappable"


class Malformed(ValueError):
    """The payload is not the provider's shape: the request is refused (400) with these reasons."""

    def __init__(self, *reasons: str) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


@dataclass
class Batch:
    """What one payload became."""

    events: list[dict[str, object]] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    unmapped: list[tuple[int, Unmapped]] = field(default_factory=list)

    def add(self, index: int, item: dict[str, object] | Ignored | Unmapped) -> None:
        """Record the fate of the payload's ``index``-th item; an event is checked by the codec first."""
        if isinstance(item, Ignored):
            self.ignored[item.reason] += 1
        elif isinstance(item, Unmapped):
            self.unmapped.append((index, item))
        else:
            checked = validate(item)
            if isinstance(checked, Rejection):
                self.unmapped.append((index, Unmapped(checked.reason, checked.category)))
            else:
                self.events.append(item)


def event_id(prefix: str, value: object) -> str | Unmapped:
    """``prefix:value``, the id that makes a redelivered item the same event; an absent, empty or too
    long provider id is refused (a cut id could make two events one)."""
    if not isinstance(value, str) or not value.strip():
        return Unmapped(f"no {prefix} event id", "missing_id")
    full = f"{prefix}:{value}"
    if len(full) > MAX_ID:
        return Unmapped(f"the {prefix} event id is longer than {MAX_ID - len(prefix) - 1} characters", "bad_id")
    return full


def email_of(value: object) -> str | None:
    """``value`` when it looks like an email (a provider's login often is one), else None."""
    return value if isinstance(value, str) and _EMAIL.match(value) else None


def text(value: object) -> str | None:
    """A non-empty string field, or None."""
    return value if isinstance(value, str) and value else None


def json_items(body: bytes) -> list[object]:
    """The items of a JSON array, of JSON lines, or a single JSON object; :class:`Malformed` when the
    body is none of them. A JSON lines body keeps a bad line as an item that cannot be mapped, so one
    broken line does not refuse the lines around it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:
            raise Malformed(f"not JSON: {exc}") from None
        items = [_line(line, number) for number, line in enumerate(lines, 1)]
        if all(isinstance(item, Unmapped) for item in items):
            raise Malformed(f"not JSON: {exc}") from None
        return items
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        return [document]
    raise Malformed(f"expected a JSON array, JSON lines or a JSON object, not {type(document).__name__}")


def _line(line: bytes, number: int) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Unmapped(f"line {number}: not JSON: {exc}", "not_json")


def parsed(body: bytes) -> object:
    """The body as JSON, or :class:`Malformed`."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"not JSON: {exc}") from None
