"""How far a poller has read a time-ordered log it can only query from an instant onward (Keycloak's
stored events): the newest time seen and the keys of the events seen in the last few seconds before it.

The next query starts ``window`` before that time: an event committed late with a slightly older time
(two logins stored by concurrent transactions) is still found, and the keys tell the events already
published from new ones, so a restart from the saved cursor repeats nothing and skips nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WINDOW_MS = 5_000
"""How far back each query reaches before the newest event seen."""


@dataclass
class Cursor:
    time: int = 0
    """Epoch milliseconds of the newest event seen; 0: nothing read yet (read every stored event)."""
    seen: dict[str, int] = field(default_factory=dict)
    """Key -> time of each event seen within :data:`WINDOW_MS` of :attr:`time`."""

    @property
    def start(self) -> int:
        """Where the next query starts (inclusive)."""
        return max(0, self.time - WINDOW_MS)

    def is_new(self, key: str, time: int) -> bool:
        """An event not yet taken: not among the keys seen, and not older than the window (such an
        event was taken before, when it was inside a window that has moved on)."""
        return key not in self.seen and (self.time == 0 or time >= self.start)

    def take(self, key: str, time: int) -> None:
        """Record an event as published, and forget the keys the window has left behind."""
        self.seen[key] = time
        if time > self.time:
            self.time = time
            self.seen = {k: t for k, t in self.seen.items() if t >= self.start}

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "seen": self.seen}

    @classmethod
    def from_json(cls, document: Any) -> Cursor:
        if not isinstance(document, dict) or not isinstance(document.get("time"), int):
            return cls()
        seen = document.get("seen")
        return cls(document["time"], {str(k): int(v) for k, v in seen.items()} if isinstance(seen, dict) else {})
