"""Our own events (docs/events.md) posted to the gateway: a JSON array, JSON lines or one object.

They are checked by the same codec as the workers use; the route's subscription, ``?runtime=`` and
``?provider=`` fill in what an event leaves out. An event of another subscription than the route's is
refused (the token was checked for the route's), and a ``config`` event needs an admin token: a
source writes what its users did, never the subscription's capacity or settings.
"""

from __future__ import annotations

from streams.gateway.mapping import Batch, Target, Unmapped, json_items

RECORD_TYPES = frozenset({"login", "profile"})
SCOPED_TYPES = RECORD_TYPES | {"visit"}


def map_events(body: bytes, target: Target, *, admin: bool = False) -> Batch:
    """The events of one request; :class:`~streams.gateway.mapping.Malformed` when the body is not JSON."""
    batch = Batch()
    for index, item in enumerate(json_items(body)):
        batch.add(index, map_event(item, target, admin=admin))
    return batch


def map_event(item: object, target: Target, *, admin: bool = False) -> dict[str, object] | Unmapped:
    """The event with the route's defaults filled in, or why it may not be sent here."""
    if isinstance(item, Unmapped):
        return item
    if not isinstance(item, dict):
        return Unmapped(f"not a JSON object (got {type(item).__name__})", "not_object")
    event = dict(item)
    subscription = event.setdefault("subscription", target.subscription)
    if subscription != target.subscription:
        return Unmapped(f"subscription {subscription!r} is not this route's ({target.subscription!r})",
                        "other_subscription")
    kind = event.get("type")
    if kind == "config" and not admin:
        return Unmapped("a config event needs an admin token", "config_not_allowed")
    if kind in SCOPED_TYPES and target.runtime is not None:
        event.setdefault("runtime", target.runtime)
    if kind in RECORD_TYPES and target.provider is not None:
        event.setdefault("provider", target.provider)
    return event
