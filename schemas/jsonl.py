"""Event files: one JSON event a line (docs/events.md). ``endusers replay`` and ``endusers publish``
read them through :func:`event_lines`, so both skip the same lines and name a line by the same number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

Line = TypeVar("Line", bound=bytes | str)


def event_lines(lines: Iterable[Line]) -> Iterator[tuple[int, Line]]:
    """Each event line with its number in the file (from 1); blank lines and lines starting with ``#``
    (after leading spaces) are skipped but still counted. The line is yielded as read: the codec's size
    bound measures what was sent."""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped and stripped[:1] not in (b"#", "#"):
            yield number, line
