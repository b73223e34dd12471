"""``endusers gateway``: the HTTP receiver that identity providers push to (docs/sources.md).

Each provider's payload is mapped to our events by a pure function of its own module (``okta``,
``auth0``, ``own``), every event is checked by the same codec as the workers use, and the events are
published to the source topics; the workers stay private and count them as any other producer's.
"""
