"""The arrival clock: the time of an event that carries none (docs/rules.md, time and order).

One clock for every place that stamps events: ``replay`` (:class:`counters.replay.Replay`),
``endusers publish`` and the test factories. Each of them stamps the same events the same way, so a
replay and the live pipeline order them alike.
"""

from __future__ import annotations

import time


class ArrivalClock:
    """Newer than every event before it: strictly increasing microseconds from the wall clock, and
    past every explicit time seen so far, so the result does not depend on the day a file is read."""

    def __init__(self, pinned: int | None = None) -> None:
        self._last = 0
        self._pinned = pinned
        """A fixed "now" (``replay --now``) instead of the wall clock, for results that never change."""

    def now(self) -> int:
        """The processing clock in microseconds: the pinned instant, or the wall clock."""
        return time.time_ns() // 1000 if self._pinned is None else self._pinned

    def observe(self, explicit: int) -> None:
        """An event carried its own time: the next arrival must be newer."""
        if explicit > self._last:
            self._last = explicit

    def __call__(self) -> int:
        self._last = max(self.now(), self._last + 1)
        return self._last

    def stamp(self, explicit: int | None) -> int:
        """An event's effective time: its own (which later arrivals must pass), or its arrival."""
        if explicit is None:
            return self()
        self.observe(explicit)
        return explicit
