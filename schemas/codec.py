"""Bytes in, a valid event or a precise reason out; never an exception.

Every path from the outside world (a Kafka message, a JSONL line) enters here, so this is the one place
that decides what "bad input" means and how it is explained (docs/events.md, rejected events).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
import typing
from typing import Any, Literal, NamedTuple

import msgspec
import orjson

from schemas.events import SOURCE_TOPICS, VERSION_PATTERN, InputEvent, RuntimeSetting
from schemas.limits import MAX_EVENT_BYTES, format_duration
from schemas.outputs import format_instant

_DECODER = msgspec.json.Decoder(InputEvent)
_KNOWN_TYPES = tuple(SOURCE_TOPICS)  # the one list of event types: schemas/events.py


RejectionCategory = Literal["not_json", "not_object", "missing_type", "unknown_type", "wrong_topic", "missing_field",
                            "unknown_op", "bad_time", "future_time", "too_large", "invalid",
                            "over_limit", "unknown_subscription"]
"""What kind of mistake a rejection is, in a few words fit for a metric label (a bounded set)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input was refused, phrased for the producer who must fix it, and its kind for the
    metrics (``endusers_rejections_total``), decided where the reason is written."""

    reason: str
    category: RejectionCategory = "invalid"


class Source(NamedTuple):
    """Where a live event came from: its topic, and the one event type that topic accepts.

    Topics are the unit of access control in Kafka: with each topic accepting only its own type, an
    ACL that lets a producer write logins does not also let it reconfigure subscriptions.
    """

    topic: str
    accepts: str


def validate(document: Any, source: Source | None = None) -> InputEvent | Rejection:
    """Validate an already parsed JSON document as one input event (from ``source``, if given)."""
    if not isinstance(document, dict):
        return Rejection(f"not a JSON object (got {type(document).__name__})", "not_object")
    kind = document.get("type")
    if kind not in _KNOWN_TYPES:
        if kind is None:
            return Rejection("type: required field missing", "missing_type")
        return Rejection(f"type: unknown event type {_preview(kind)} (expected one of {', '.join(_KNOWN_TYPES)})",
                         "unknown_type")
    if source is not None and kind != source.accepts:
        return Rejection(f"type {kind} is not accepted on topic {source.topic}", "wrong_topic")
    try:
        event: InputEvent = msgspec.convert(document, InputEvent)
        return event
    except msgspec.ValidationError as exc:
        return _explain(str(exc), document)
    except Exception as exc:  # a validator bug must still never crash the caller
        return Rejection(f"invalid event: {type(exc).__name__}: {exc}")


def decode(raw: bytes | str, source: Source | None = None) -> InputEvent | Rejection:
    """Decode one raw message or line into an event, or say precisely why not.

    ``source`` is given for events read from a topic: an event of another type than the topic's is
    refused there, before the cost of validating it.
    """
    size = _size(raw)
    if size > MAX_EVENT_BYTES:
        return Rejection(f"too large: {size} bytes (an event is at most {MAX_EVENT_BYTES} bytes, 1 MiB)", "too_large")
    try:
        event: InputEvent = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass  # explained below, at leisure: bad input is rare
    except Exception as exc:  # a hook bug must still never crash the caller
        return Rejection(f"invalid event: {type(exc).__name__}: {exc}")
    else:
        if source is not None and event.type != source.accepts:
            return Rejection(f"type {event.type} is not accepted on topic {source.topic}", "wrong_topic")
        return event
    # The reasons come from one place, the parsed document: orjson's words for bad JSON, then
    # ``validate`` (object, type, topic, then the fields, in that order).
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(f"not JSON: {exc}", "not_json")
    except Exception as exc:
        return Rejection(f"not JSON: {type(exc).__name__}", "not_json")
    return validate(document, source)


def too_far_ahead(event: InputEvent, now: int, max_future: int, arrival: int | None = None) -> Rejection | None:
    """Refuse an event whose time is more than ``max_future`` microseconds after ``now`` (the processing
    clock): its own ``time``, or ``arrival`` (the record's timestamp, which an untimed event takes) when
    it carries none.

    Such a time would win every last-writer-wins comparison until that day: a delete dated 9999 leaves
    a tombstone that blocks every later event of the record, and untimed events, stamped in arrival
    order after it, would inherit the far future too. A Kafka producer sets the record timestamp
    freely (CreateTime), so an untimed event is held to the same limit as a timed one.
    """
    if event.time is not None:
        used, source = event.time, "time"
    elif arrival is not None:
        used, source = arrival, "the record timestamp (the event has no time)"
    else:
        return None
    if used - now <= max_future:
        return None
    return Rejection(f"{source} is in the future: {format_instant(used)} is more than "
                     f"{format_duration(max_future)} ahead of {format_instant(now)}", "future_time")


def _size(raw: bytes | str) -> int:
    """Bytes on the wire; a text line is measured in UTF-8 only when it could be too large."""
    if isinstance(raw, bytes):
        return len(raw)
    if len(raw) * 4 <= MAX_EVENT_BYTES:
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))


_LOCATED = re.compile(r"^(.*) - at `(.*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(.*)`$", re.DOTALL)
_LONGER = re.compile(r"^Expected `(str|array|object)` of length <= (\d+)$")
_SHORTER = re.compile(r"^Expected `str` of length >= (\d+)$")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_INNER_FIELD = re.compile(r"^([a-z_]+): (.*)$", re.DOTALL)
_BOUND = re.compile(r"^Expected `(int|float)` (>=|<=|>|<) (-?[\d.]+)$")
_WRONG_TYPE = re.compile(r"^Expected `([^`]+)`, got `([^`]+)`$")
_NOT_ONE_OF = re.compile(r"^Invalid enum value (.+)$", re.DOTALL)
_PATTERN = re.compile(r"^Expected `str` matching regex ('.*')$", re.DOTALL)
_NOUNS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean", "array": "a list",
          "object": "an object", "null": "null"}
_BOUNDS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
_PATTERNS = {repr(VERSION_PATTERN): "a version: one to four numbers separated by dots, like 11.20.1"}


def _choices() -> dict[str, tuple[str, ...]]:
    """Each field that takes one of a few words (``platform``, ``op``), with those words, from the models."""
    found: dict[str, tuple[str, ...]] = {}
    structs = [msgspec.inspect.type_info(t) for t in (*typing.get_args(InputEvent), RuntimeSetting)]
    for struct in structs:
        assert isinstance(struct, msgspec.inspect.StructType)
        for field in struct.fields:
            kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
            for kind in kinds:
                if isinstance(kind, msgspec.inspect.LiteralType):
                    found[field.encode_name] = tuple(str(value) for value in kind.values)
    return found


_CHOICES = _choices()


def _plain(text: str, field: str) -> str:
    """msgspec's wording (``Expected `int` >= 1``, ``Invalid enum value 'o12'``) in the words of
    docs/events.md, for the producer or operator who reads the dead letter or the CLI's refusal."""
    bound = _BOUND.match(text)
    if bound is not None:
        _, operator, limit = bound.groups()
        return f"must be {_BOUNDS[operator]} {limit.removesuffix('.0')}"
    wrong = _WRONG_TYPE.match(text)
    if wrong is not None:
        expected = " or ".join(_NOUNS.get(kind.strip(), kind.strip()) for kind in wrong.group(1).split("|"))
        return f"must be {expected}, not {_NOUNS.get(wrong.group(2), wrong.group(2))}"
    choice = _NOT_ONE_OF.match(text)
    if choice is not None and field in _CHOICES:
        return f"{choice.group(1)} is not one of {', '.join(_CHOICES[field])}"
    pattern = _PATTERN.match(text)
    if pattern is not None:
        return f"must be {_PATTERNS.get(pattern.group(1), 'a string matching ' + pattern.group(1))}"
    return text


def _explain(message: str, document: Any) -> Rejection:
    """msgspec's error as ``location: message``, the location dotted (``domains.0``, ``runtimes.prod.version``).

    msgspec writes ``[...]`` for a map's key; the key is found again in ``document``, so the producer
    reads which runtime is wrong. The category: a wrong ``op`` or ``time`` first (their own kinds,
    whatever the mistake), then too long, then missing.
    """
    location, text = "", message
    located = _LOCATED.match(message)
    if located is not None:
        text, path = located.groups()
        if path.startswith("key` in `"):  # "Expected ... - at `key` in `$.runtimes`"
            path = path.removeprefix("key` in `")
        location = _dotted(path, document)
    inner = _INNER_FIELD.match(text)
    if location and inner is not None:  # a struct's own check names its field: "version: Expected ..."
        location, text = f"{location}.{inner.group(1)}", inner.group(2)
    missing = _MISSING.match(text)
    if missing is not None:
        location = f"{location}.{missing.group(1)}" if location else missing.group(1)
        text = "required field missing"
    longer = _LONGER.match(text)
    if longer is not None:
        kind, limit = longer.groups()
        noun = {"str": "String", "array": "List", "object": "Dictionary"}[kind]
        text = f"{noun} should have at most {limit} {'characters' if kind == 'str' else 'items'}"
    shorter = _SHORTER.match(text)
    if shorter is not None:
        text = f"String should have at least {shorter.group(1)} character{'s' if shorter.group(1) != '1' else ''}"
    text = _plain(text, location.rsplit(".", 1)[-1])
    reason = f"{location}: {text}" if location else text
    # the field: the location, or the one an event's own check names first ("time: not an RFC 3339 ...")
    field = (location or text.split(":", 1)[0]).split(".", 1)[0]
    category: RejectionCategory = (
        "unknown_op" if field == "op" else "bad_time" if field == "time" else "too_large" if longer is not None
        else "missing_field" if missing is not None else "invalid")
    return Rejection(reason, category)


def _dotted(path: str, document: Any) -> str:
    """``$.runtimes[...].version`` -> ``runtimes.prod.version`` (the first key whose value fails)."""
    parts: list[str] = []
    node = document
    for name, index in _PART.findall(path.removeprefix("$")):
        if name:
            parts.append(name)
            node = node.get(name) if isinstance(node, dict) else None
        elif index == "...":
            key = _failing_key(node, ".".join(parts))
            parts.append(key if key is not None else "*")
            node = node.get(key) if isinstance(node, dict) and key is not None else None
        else:
            parts.append(index)
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
    return ".".join(parts)


def _failing_key(mapping: Any, where: str) -> str | None:
    if where != "runtimes" or not isinstance(mapping, dict):
        return None
    for key, value in mapping.items():
        try:
            msgspec.convert(value, RuntimeSetting)
        except msgspec.ValidationError:
            return str(key)
    return None


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
