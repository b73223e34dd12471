"""The lines of event files checked as the worker will check them, before ``endusers publish`` sends
any: the same codec (``schemas.codec.decode``) and the same far-future limit (``ENDUSERS_MAX_FUTURE``),
so a line the publisher sends is one the worker accepts, and a rejected one is reported to the person
publishing it, as ``file:line: reason``, instead of a dead letter nobody watching the command sees.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from schemas.codec import Rejection, decode, too_far_ahead
from schemas.events import SOURCE_TOPICS
from schemas.jsonl import event_lines
from streams.settings import WorkerSettings


@dataclass
class Checked:
    """What checking the files found."""

    valid: int = 0
    invalid: dict[Path, set[int]] = field(default_factory=dict)
    """The numbers of the invalid lines of each file."""
    problems: list[str] = field(default_factory=list)
    """``file:line: reason`` per invalid line, ``file: cannot read: reason`` per unreadable file."""
    unreadable: int = 0

    @property
    def rejected(self) -> int:
        return sum(len(lines) for lines in self.invalid.values())


def check_files(files: list[Path], settings: WorkerSettings, now: int | None = None) -> Checked:
    """Check every event line of ``files`` against the clock ``now`` (microseconds; the wall clock)."""
    clock = int(time.time() * 1_000_000) if now is None else now
    checked = Checked()
    for path in files:
        try:
            lines = path.read_bytes().splitlines()
        except OSError as exc:
            checked.problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            checked.unreadable += 1
            continue
        for number, line in event_lines(lines):
            reason = line_problem(line.strip(), settings, clock)
            if reason is None:
                checked.valid += 1
            else:
                checked.invalid.setdefault(path, set()).add(number)
                checked.problems.append(f"{path}:{number}: {reason}")
    return checked


def line_problem(line: bytes, settings: WorkerSettings, now: int) -> str | None:
    """Why the worker would reject this line, or None. (Its arrival there is later than ``now``, so a
    time that passes the far-future limit here passes it there.)"""
    event = decode(line)
    if isinstance(event, Rejection):
        return event.reason
    future = too_far_ahead(event, now, settings.max_future)
    if future is not None:
        return future.reason
    if settings.source_topic(SOURCE_TOPICS[event.type], event.subscription) is None:
        return (f"subscription: {event.subscription!r} cannot end a topic name (ENDUSERS_TOPIC_LAYOUT="
                "per-subscription: letters, digits, '.', '_' or '-')")
    return None
