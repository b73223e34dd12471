"""The documented bounds on input, in one place: sizes the codec enforces and the time horizon.

Every bound rejects: an event beyond one is dead-lettered (live) or reported (``replay``) with the
reason, and nothing of it is applied. Nothing is ever truncated, because a shortened identifier is
another identifier, and a shortened domain list silently reclassifies people. The bounds keep one
producer from growing a worker's memory, its state in Redis or its ``/metrics`` without limit.
"""

from __future__ import annotations

import re

MAX_EVENT_BYTES = 1024 * 1024
"""One source event (a Kafka message value or a JSONL line), in bytes: 1 MiB, Kafka's default too."""

MAX_STRING = 256
"""Characters (Unicode code points) of every string field not listed below (docs/events.md)."""

MAX_EMAIL = 254
"""Characters of an ``email`` (docs/events.md; RFC 5321's path limit)."""

MAX_DOMAINS = 10_000
"""Owned domains in one config event."""

MAX_RUNTIMES = 1_000
"""Runtimes in one config event's ``runtimes`` map."""

MAX_EXCLUDED_PROVIDERS = 1_000
"""User providers in one config event's ``excluded_providers``."""

MAX_THRESHOLDS = 100
"""Percentages in one config event's ``thresholds``."""

MAX_VERSION_PART = 6
"""Digits of each of the (at most four) dot-separated parts of a runtime version."""

MAX_REPORTED = 200
"""Runtimes, and providers, named in one counts document: the largest by countable records (ties by
name), the others summed under ``"other"``. Names come from producers (256 characters each), so an
uncapped document would grow with them past Kafka's message size; 200 of each stay under 500 KB."""

REPORTED_OTHER = "other"
"""The name the runtimes (or providers) beyond :data:`MAX_REPORTED` are summed under."""

DEFAULT_MAX_FUTURE = "24h"
"""How far ahead of the processing clock an event's ``time`` may be (``ENDUSERS_MAX_FUTURE``)."""

_COPIED_ID = re.compile(r"[A-Za-z0-9._:/+=#-]{1,%d}" % MAX_STRING)


def copied_id(event_id: str | None) -> str | None:
    """An event's ``id`` as outputs may copy it (a capacity event's ``trigger``): only when it is an
    identifier, at most :data:`MAX_STRING` ASCII letters, digits and ``._:/+=#-``; else None. The id is
    free text chosen by the producer, and the capacity topic goes on to alerting and paging, so text
    that could name a person (spaces, ``@``, any other character) is not carried there."""
    if event_id is None or _COPIED_ID.fullmatch(event_id) is None:
        return None
    return event_id


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str) -> int:
    """``30s``, ``15m``, ``24h``, ``2d`` (a bare number is seconds) as integer microseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"expected a duration like 30s, 15m, 24h or 2d, got {text!r}")
    number, unit = match.groups()
    return round(float(number) * _UNITS[unit or "s"] * 1_000_000)


def format_duration(microseconds: int) -> str:
    """The largest of hours, minutes and seconds that states the duration exactly: ``24h``, ``90s``."""
    seconds, fraction = divmod(microseconds, 1_000_000)
    if fraction:
        return f"{microseconds / 1_000_000:g}s"
    for unit in ("h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"
