"""Config events from an operator's input (``endusers config set``, library callers).

The builder only translates what an operator types into the event's JSON (``"unlimited"`` -> null,
``prod=11.14.0`` -> ``{"version": ...}``, ``@Example.COM`` -> ``example.com``); whether the event is
valid is decided by :func:`schemas.codec.decode`, the same gate the processor applies, and its reason
is the one reported. So a rule lives in one place (schemas/events.py) and what passes here is accepted
there. No click here: streams/cli/commands.py turns :class:`InvalidInput` into click's usage error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import orjson

from schemas.codec import Rejection, decode
from schemas.domains import normalize_owned_domain

UNSET: Literal["unset"] = "unset"
"""A capacity argument that leaves the current capacity as it is (the key is omitted)."""

SETTINGS = ("platform", "domains", "capacity", "thresholds", "hysteresis", "runtimes",
            "shared_identifier_threshold", "excluded_providers", "billing_day", "dormant_days",
            "statement_grace", "source_silence")
"""The keys of a config event that change a setting, in the order the builder writes them."""

CapacityArg = int | str | None

_UNLIMITED = {"unlimited", "none", "null", "unset-limit", "inf", "infinite", "-"}
_WHOLE = re.compile(r"[+-]?\d+")


class InvalidInput(ValueError):
    """Operator input that would be rejected (the codec's reason, naming the field), or that would
    change nothing."""


def config_event(
    subscription: str,
    domains: Iterable[str] | str | None = None,
    capacity_internal: CapacityArg = UNSET,
    capacity_external: CapacityArg = UNSET,
    thresholds: Iterable[int] | None = None,
    hysteresis: float | None = None,
    platform: str | None = None,
    runtimes: Mapping[str, Any] | None = None,
    shared_identifier_threshold: int | None = None,
    excluded_providers: Iterable[str] | None = None,
    billing_day: int | None = None,
    dormant_days: int | None = None,
    statement_grace: int | None = None, source_silence: int | None = None,
    *,
    event_id: str | None = None,
    time: str | None = None,
    actor: str | None = None) -> dict[str, Any]:
    """A validated ``config`` event with the settings given (not None); absent keys keep their value.

    ``domains``: a list or one text separated by commas or spaces, normalized (``@Example.COM`` ->
    ``example.com``, ``*.example.com`` a wildcard), duplicates dropped; an empty list clears them.
    ``capacity_*``: a whole number >= 0 (0 = none licensed), None or ``"unlimited"``/``"none"``
    (null: unlimited), ``"unset"`` to keep. ``thresholds`` (1..1000) sorted and deduplicated;
    ``platform`` any case; ``runtimes`` ``{runtime: {"version": "11.14.0"}}`` or ``{runtime:
    "11.14.0"}`` (None: no version, the newest). The ranges: docs/events.md, config.

    Raises :class:`InvalidInput` with the codec's reason when the event would be rejected, or when
    nothing would change.
    """
    event: dict[str, Any] = {"type": "config", "subscription": _subscription(subscription)}
    given = {"id": event_id, "time": time, "actor": actor or None,  # actor: for the audit trail only
             "platform": None if platform is None else str(platform).strip().lower(),
             "domains": _domains(domains), "capacity": _capacity(capacity_internal, capacity_external),
             "thresholds": _thresholds(thresholds), "hysteresis": _hysteresis(hysteresis),
             "runtimes": _runtimes(runtimes), "shared_identifier_threshold": shared_identifier_threshold,
             "excluded_providers": _providers(excluded_providers), "billing_day": billing_day,
             "dormant_days": dormant_days, "statement_grace": statement_grace, "source_silence": source_silence}
    event.update((key, value) for key, value in given.items() if value is not None)
    _refuse_non_finite(event)
    if not any(key in event for key in SETTINGS):
        raise InvalidInput(f"nothing to change: give at least one setting ({', '.join(SETTINGS)})")
    try:
        raw = orjson.dumps(event)
    except TypeError as exc:
        raise InvalidInput(f"not expressible as JSON: {exc}") from None
    checked = decode(raw)  # the size too: 10,000 long domains pass each field's check
    if isinstance(checked, Rejection):
        raise InvalidInput(checked.reason)
    return event


def _refuse_non_finite(event: dict[str, Any]) -> None:
    """JSON has no NaN or infinity, and the encoder writes them as null: ``--hysteresis nan`` would
    send ``"hysteresis": null``, which resets the setting. Refused, naming the field."""
    pending: list[tuple[str, object]] = list(event.items())
    while pending:  # iterative: the values come from operators' files (runtimes), of any depth
        path, value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{path}: must be a finite number, not {value}")
        if isinstance(value, Mapping):
            pending.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def parse_capacity(value: CapacityArg) -> object:
    """``"unlimited"``/``"none"``/None -> None (unlimited); ``"unset"`` -> :data:`UNSET`; a whole
    number's digits -> the int. Anything else is returned as given, for the codec to name it."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text == UNSET:
        return UNSET
    if text in _UNLIMITED:
        return None
    return int(text) if _WHOLE.fullmatch(text) else value


def _subscription(subscription: str) -> str:
    """A blank name is no name: sent empty, so the codec refuses it as the missing subscription."""
    return "" if isinstance(subscription, str) and not subscription.strip() else subscription


def _domains(domains: Iterable[str] | str | None) -> list[Any] | None:
    if domains is None:
        return None
    entries = [d for d in re.split(r"[,\s]+", domains) if d] if isinstance(domains, str) else list(domains)
    # an entry that is not a domain name is sent as it is: the codec names it
    normalized = [(normalize_owned_domain(e) or e) if isinstance(e, str) else e for e in entries]
    return list(dict.fromkeys(normalized)) if all(isinstance(e, str) for e in normalized) else normalized


def _capacity(internal: CapacityArg, external: CapacityArg) -> dict[str, object] | None:
    limits = {"internal": parse_capacity(internal), "external": parse_capacity(external)}
    given = {user_class: limit for user_class, limit in limits.items() if limit != UNSET}
    return given or None


def _thresholds(thresholds: Iterable[int] | None) -> list[Any] | None:
    if thresholds is None:
        return None
    values = list(thresholds)
    whole = all(isinstance(t, int) and not isinstance(t, bool) for t in values)
    return sorted(set(values)) if whole else values


def _hysteresis(hysteresis: float | None) -> object:
    return float(hysteresis) if isinstance(hysteresis, int) and not isinstance(hysteresis, bool) else hysteresis


def _runtimes(runtimes: Mapping[str, Any] | None) -> object:
    if not isinstance(runtimes, Mapping):
        return runtimes
    return {str(runtime): {"version": setting} if isinstance(setting, str) or setting is None
            else dict(setting) if isinstance(setting, Mapping) else setting
            for runtime, setting in runtimes.items()}


def _providers(providers: Iterable[str] | None) -> list[Any] | None:
    if providers is None:
        return None
    names = [p.strip() if isinstance(p, str) else p for p in providers]
    return sorted(set(names)) if all(isinstance(p, str) for p in names) else names
