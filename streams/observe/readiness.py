"""What ``/readyz`` answers: ready only while the worker can count what it owns, now.

Dependencies answering is not enough. The worker must hold its partition assignment (none between a
revocation and the next assignment), have loaded the state of every subscription it owns (a
takeover of a million records takes seconds, during which a new login would not show), and be
moving: changes waiting (consumer lag > 0) with no batch processed for ``stall_seconds`` is a stall.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from counters import LoadProgress


class Readiness:
    def __init__(self, stall_seconds: float, loads: LoadProgress,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self.loads = loads
        self.clock = clock
        self.assigned = False
        self.to_load: set[str] = set()
        """Owned subscriptions whose state is not loaded yet."""
        self.listing = False
        """Between an assignment and knowing which subscriptions it brings."""
        self.lag = 0
        self._moved = clock()
        self.refused: Mapping[str, str] = {}
        """Subscription -> why it is not counted (the count stage's: its state has other digests)."""
        self.rereading: Mapping[str, tuple[int, int]] = {}
        """Changes partition -> (from, to): a range Redis lost, being read again (the count stage's)."""

    @property
    def progress(self) -> Mapping[str, tuple[int, int]]:
        """Subscription -> (records loaded, records to load) of the store's loads running now."""
        return self.loads.progress

    def assignment_revoked(self) -> None:
        self.assigned = False

    def assignment_received(self) -> None:
        self.assigned = True
        self.listing = True
        self._moved = self.clock()

    def batch_done(self) -> None:
        self._moved = self.clock()

    def observe_lag(self, lag: int) -> None:
        if lag > 0 and self.lag == 0:
            self._moved = self.clock()  # the stall clock starts when changes start waiting
        self.lag = lag

    def checks(self) -> dict[str, bool | str]:
        """``assignment``, ``state`` and ``progress``: True, or why not."""
        return {"assignment": True if self.assigned else "waiting for assignment",
                "state": "; ".join(self.refused[s] for s in sorted(self.refused)) or self._loading() or True,
                "progress": self._stalled() or self._rereading() or True}

    def _rereading(self) -> str:
        return "; ".join(f"reading {source} again from offset {start} to {end - 1}: Redis lost those commits"
                         for source, (start, end) in sorted(self.rereading.items()))

    def _loading(self) -> str:
        waiting = sorted(self.to_load | set(self.progress))
        if not waiting:
            return "finding the subscriptions to load" if self.listing else ""
        parts = []
        for subscription in waiting:
            if subscription in self.progress:
                done, total = self.progress[subscription]
                parts.append(f"loading {subscription}: {done:,} of {total:,} records")
        queued = len(waiting) - len(parts)
        if queued:
            parts.append(f"{queued} more subscription{'s' if queued > 1 else ''} to load")
        return "; ".join(parts)

    def _stalled(self) -> str:
        quiet = self.clock() - self._moved
        if self.lag > 0 and quiet >= self.stall_seconds:
            return f"stalled: {self.lag:,} changes waiting and no batch processed for {quiet:.0f} s"
        return ""
