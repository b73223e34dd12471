"""RFC 3339 instants as integer microseconds since the epoch: every event's ``time`` (schemas/events.py).

A module of its own so that deploy/local/compile can compile it: one parse per event, string slices and
integer arithmetic, which mypyc turns into C, where the structs next to it in schemas/events.py must
stay pure Python (docs/benchmarks.md#compiled-modules).
"""

from __future__ import annotations

import re
from datetime import date as _date, datetime
from functools import lru_cache

from schemas.limits import MAX_STRING

RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339(value: object) -> int:
    """An RFC 3339 instant as integer microseconds since the epoch.

    An offset is required: a local time without one is not an instant, and guessing a zone would
    silently reorder a producer's events. Digits beyond the microsecond are dropped (not rounded).
    Arithmetic rather than ``datetime``: every event carries a time, and the seconds of a date, clock
    and offset are cached (a stream's events share their second), so this costs a fraction of building
    a datetime.
    """
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string")
    if len(value) > MAX_STRING:
        raise ValueError(f"String should have at most {MAX_STRING} characters")
    instant = _common_instant(value)
    return instant if instant is not None else _parse_rfc3339(value)


def _common_instant(value: str) -> int | None:
    """The instant of a time in the usual form, ``YYYY-MM-DDTHH:MM:SS``, then an optional fraction of
    ASCII digits, then ``Z`` or ``±HH:MM``; None for anything else, which the regular expression
    decides (``_parse_rfc3339``, the rule). Events of the same second share the cached seconds of
    their first 19 characters, so a time costs a few slices and comparisons instead of a regular
    expression match and its groups.
    A test compares both paths on generated and malformed times."""
    seconds = _clock_seconds(value[:19])
    if seconds is None:
        return None
    last = value[-1:]
    if last == "Z" or last == "z":
        fraction = value[19:-1]
    else:
        offset = value[-6:]
        if len(value) < 25 or offset[0] not in "+-" or offset[3] != ":" or not offset.isascii() \
                or not (offset[1:3] + offset[4:]).isdigit():
            return None
        minutes = int(offset[1:3]) * 60 + int(offset[4:])
        if minutes >= 24 * 60:
            return None
        seconds -= minutes * 60 if offset[0] == "+" else -minutes * 60
        fraction = value[19:-6]
    if fraction:
        if fraction[0] != "." or len(fraction) < 2 or not fraction.isascii() or not fraction[1:].isdigit():
            return None
        seconds = seconds * 1_000_000 + (int(fraction[1:]) * _SCALE[len(fraction)] if len(fraction) <= 7
                                         else int(fraction[1:7]))
    else:
        seconds *= 1_000_000
    return seconds if _FIRST_INSTANT <= seconds <= _LAST_INSTANT else None


_SCALE = {n + 1: 10 ** (6 - n) for n in range(1, 7)}
"""Microseconds per unit of a fraction of ``n - 1`` digits (keyed by its length with the dot)."""


_CLOCK = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}")


@lru_cache(maxsize=4096)
def _clock_seconds(head: str) -> int | None:
    """Seconds since the epoch of ``YYYY-MM-DDTHH:MM:SS`` in UTC (ASCII digits), None if it is not one
    or not a valid date and time."""
    if _CLOCK.fullmatch(head) is None:
        return None
    try:
        return _seconds(head[:10], head[11:], "Z")
    except ValueError:
        return None


def _parse_rfc3339(value: str) -> int:
    """``parse_rfc3339`` by the regular expression: every form it accepts, and the reasons it refuses."""
    match = RFC3339.match(value)
    if match is None:
        raise ValueError("not an RFC 3339 instant (e.g. 2026-11-01T09:00:00Z)")
    date, clock, fraction, offset = match.groups()
    seconds = _seconds(date, clock, offset)
    instant = seconds * 1_000_000 + (int(fraction[1:7].ljust(6, "0")) if fraction else 0)
    if not _FIRST_INSTANT <= instant <= _LAST_INSTANT:
        raise ValueError("outside the years 0001-9999 in UTC")
    return instant


@lru_cache(maxsize=4096)
def _seconds(date: str, clock: str, offset: str) -> int:
    """Seconds since the epoch of a date, a clock and an offset (a stream's events share their second)."""
    hour, minute, second = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"not a valid date or time: {clock}")
    seconds = _days(date) * 86_400 + hour * 3600 + minute * 60 + second
    if offset not in ("Z", "z"):
        minutes = int(offset[1:3]) * 60 + int(offset[4:6])  # "+09:61" is accepted, as datetime accepts it
        if minutes >= 24 * 60:
            raise ValueError(f"not a valid date or time: offset {offset} is not less than 24 hours")
        seconds -= minutes * 60 if offset[0] == "+" else -minutes * 60
    return seconds


@lru_cache(maxsize=4096)
def _days(date: str) -> int:
    """Days from 1970-01-01 to ``date`` (YYYY-MM-DD); a ValueError names an impossible date."""
    try:
        return _date.fromisoformat(date).toordinal() - _EPOCH_ORDINAL
    except ValueError as exc:
        raise ValueError(f"not a valid date or time: {exc}") from None


_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()
_FIRST_INSTANT = (datetime(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86_400_000_000
_LAST_INSTANT = (datetime(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * 86_400_000_000 - 1
