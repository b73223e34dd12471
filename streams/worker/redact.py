"""Personal data out of dead letters: a rejected value keeps its shape, not the people in it.

A dead letter is read by whoever debugs the pipeline, and the topic keeps it for days; the reason and
the position are what that reader needs. So by default only the fields known to hold no personal data
are kept (:data:`KEPT`: the event's type, subscription, scope, time, id and the config keys), and
every other value, whatever its field name or type (``user_id``, ``email``, ``Name``, ``displayName``,
``"phone": 5551234567``), becomes a marker of its field and size. A kept string that holds an ``@``
(an email where none belongs) is replaced too. A value that is not JSON, or not a JSON object, cannot
be matched against the list and is replaced whole by its size. ``ENDUSERS_DEADLETTER_RAW=1`` keeps
values as they came, for debugging.

The walk follows :data:`KEPT`, which is three levels deep at most, and never descends into what it
replaces: a hostile value nested a thousand levels deep costs one marker, not a recursion.
"""

from __future__ import annotations

from typing import Any

import orjson

_SCALAR = "scalar"
"""A kept leaf: a string, number, boolean or null (a container there is replaced)."""

KEPT: dict[str, Any] = {
    **dict.fromkeys(("type", "op", "subscription", "id", "time", "runtime", "tenant", "provider", "default_tenant",
                     "active", "excluded", "platform", "hysteresis", "billing_day", "dormant_days", "shared_identifier_threshold",
                     "statement_grace", "source_silence"),
                    _SCALAR),
    "domains": [_SCALAR],
    "thresholds": [_SCALAR],
    "excluded_providers": [_SCALAR],
    "capacity": {"internal": _SCALAR, "external": _SCALAR},
    "runtimes": {"*": {"version": _SCALAR}},
}
"""The allow-list, shaped like an event: a field name maps to ``_SCALAR``, to ``[rule]`` (a list whose
items follow the rule) or to ``{name: rule}`` (an object; ``"*"`` for any name, as runtime ids)."""

MAX_NAME = 64
"""Characters of a field name shown as it is; a longer one, or one holding an ``@``, is replaced by
its place and length (a producer may put anything in a name, an email included)."""


def marker(field: str | None, value: Any) -> str:
    """What stands for a value that is not kept: its field and its size, nothing of its content."""
    name = field or "value"
    if isinstance(value, str):
        return f"<{name}: {len(value)} chars>"
    if isinstance(value, dict):
        return f"<{name}: object of {len(value)} fields>"
    if isinstance(value, list):
        return f"<{name}: list of {len(value)} items>"
    return f"<{name}: {'null' if value is None else type(value).__name__}>"


def redact(document: Any) -> Any:
    """``document`` with every value outside :data:`KEPT` replaced by its :func:`marker`."""
    if not isinstance(document, dict):
        return marker(None, document)
    return _kept(document, KEPT, None)


def _kept(value: Any, rule: Any, field: str | None) -> Any:
    """``value`` under ``rule``; depth is bounded by the rule's, never by the value's."""
    if rule == _SCALAR:
        if isinstance(value, (dict, list)) or (isinstance(value, str) and "@" in value):
            return marker(field, value)
        return value
    if isinstance(rule, list):
        if not isinstance(value, list):
            return value if value is None else marker(field, value)
        return [_kept(item, rule[0], field) for item in value]
    if not isinstance(value, dict):
        return value if value is None else marker(field, value)
    out: dict[str, Any] = {}
    for index, (key, item) in enumerate(value.items()):
        inner = rule.get(key, rule.get("*"))
        name = key if len(key) <= MAX_NAME and "@" not in key else f"<field {index}: {len(key)} chars>"
        out[name] = marker(name, item) if inner is None else _kept(item, inner, name)
    return out


def redacted_value(raw: bytes) -> bytes:
    """The redacted JSON text of a rejected message's value."""
    try:
        document = orjson.loads(raw)
    except Exception:
        return f"<not JSON: {len(raw)} bytes>".encode()
    return orjson.dumps(redact(document))
