"""What-if: the counts and levels a subscription would have if a config change were applied now.

The change goes through the engine's own ``apply`` on a copy of the state, so the preview is what
applying it will give, by construction (the same code, the same state): a test applies the change
afterwards and gets exactly the previewed counts. A change of owned domains costs what it costs
live, O(distinct signatures); platform, runtime versions and excluded providers re-evaluate the
records they touch.
"""

from __future__ import annotations

from msgspec.structs import replace  # Change is a msgspec struct (schemas/changes.py)
from typing import Any

from counters import engine
from counters.state import SubscriptionState
from schemas.changes import Change

COMPARED = ("internal", "external", "records", "excluded")


def preview(copy: SubscriptionState, change: Change) -> dict[str, Any]:
    """Apply ``change`` (a config change) to ``copy``, which the caller must own (it is changed), and
    say what differs: ``current``, ``preview`` (counts and levels), ``difference`` and the
    ``capacity_events`` it would emit."""
    if change.kind != "config":
        raise ValueError("a preview applies a config change")
    # "if applied now": newer than every key's last setter (config is last-writer-wins per key), and
    # never mistaken for a redelivery of an event already applied
    latest = max(copy.config_times.values(), default=change.time)
    change = replace(change, time=max(change.time, latest), event_id=None)
    before = copy.summary()
    events = engine.apply(copy, change)
    after = copy.summary()

    def short(summary: Any) -> dict[str, Any]:
        return {**{key: summary[key] for key in COMPARED}, "levels": dict(summary["levels"])}

    return {"current": short(before), "preview": short(after),
            "difference": {key: short(after)[key] - short(before)[key] for key in COMPARED},
            "capacity_events": [e.to_dict() for e in events]}
