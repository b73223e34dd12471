"""``endusers replay`` (docs/events.md, the replay document): apply JSONL event files in order, in memory, with the same engine as the stream processor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from counters import engine
from counters.clock import ArrivalClock
from counters.digest import Digester
from counters.limits import LimitExceeded
from counters.state import SubscriptionState
from counters.translate import to_change
from schemas.changes import Change
from schemas.codec import Rejection, decode, too_far_ahead
from schemas.jsonl import event_lines
from schemas.limits import DEFAULT_MAX_FUTURE, parse_duration
from schemas.outputs import CapacityEvent


@dataclass
class LineRejection:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass
class Replay:
    """An in-memory run of the engine over events fed one by one."""

    digest: Digester = field(default_factory=Digester)
    now: int | None = None
    """The processing clock pinned to this instant (microseconds; ``--now``), else the wall clock."""
    max_future: int = parse_duration(DEFAULT_MAX_FUTURE)
    """Microseconds an event's time may be ahead of the processing clock (``ENDUSERS_MAX_FUTURE``)."""
    clock: ArrivalClock = field(init=False)
    states: dict[str, SubscriptionState] = field(default_factory=dict)
    capacity_events: list[CapacityEvent] = field(default_factory=list)
    rejections: list[LineRejection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = ArrivalClock(self.now)

    def feed(self, raw: bytes | str, source: str = "-", line: int = 0) -> Rejection | None:
        """Apply one event; a bad one is recorded with its place and reason and changes nothing."""
        change = self.change_of(raw)
        if isinstance(change, Rejection):
            self.rejections.append(LineRejection(source, line, change.reason))
            return change
        state = self.states.get(change.subscription)
        if state is None:
            state = self.states[change.subscription] = SubscriptionState(change.subscription)
        try:
            self.capacity_events.extend(engine.apply(state, change))
        except LimitExceeded as exceeded:  # refused whole, as the live count stage refuses it
            rejection = Rejection(str(exceeded), "over_limit")
            self.rejections.append(LineRejection(source, line, rejection.reason))
            return rejection
        return None

    def change_of(self, raw: bytes | str) -> Change | Rejection:
        """One event as the change the engine applies, stamped by this replay's clock (nothing applied).

        A far-future time is refused before it can move the arrival clock, exactly as live.
        """
        event = decode(raw)
        if isinstance(event, Rejection):
            return event
        future = too_far_ahead(event, self.clock.now(), self.max_future)
        if future is not None:
            return future
        return to_change(event, self.digest, self.clock.stamp(event.time))

    def feed_lines(self, lines: Iterable[bytes | str], source: str = "-") -> None:
        for number, line in event_lines(lines):
            self.feed(line, source, number)

    def document(self) -> dict[str, Any]:
        return {
            "subscriptions": {name: self.states[name].summary() for name in sorted(self.states)},
            "capacity_events": [e.to_dict() for e in self.capacity_events],
            "rejected": len(self.rejections),
        }


def replay_lines(lines: Iterable[bytes | str], now: int | None = None) -> dict[str, Any]:
    """The replay document for one stream of JSONL lines (with the processing clock pinned to ``now``)."""
    replay = Replay(now=now)
    replay.feed_lines(lines)
    return replay.document()
