"""What one subscription may hold, whatever the number of events that build it (docs/design.md, limits).

The codec bounds each event (``schemas/limits.py``); these bound what events accumulate. Runtime
versions merge across config events and records bring their runtime and provider names with them, so
without a bound per subscription a producer could grow the settings, the counts document and a
worker's memory one event at a time. An event that would pass a bound is refused whole, with a reason
that names the bound, and changes nothing: the count stage dead-letters it, ``replay`` reports it.
The check depends only on the state, so replay and the live count stage refuse the same events.
"""

from __future__ import annotations

from msgspec import UnsetType

from counters.state import SubscriptionState
from schemas.changes import Change
from schemas.limits import MAX_DOMAINS, MAX_EXCLUDED_PROVIDERS

MAX_RUNTIME_VERSIONS = 1_000
"""Runtimes in a subscription's settings (``runtimes`` merge per runtime across config events)."""

MAX_RECORD_RUNTIMES = 1_000
"""Distinct runtimes of a subscription's records (the ``runtimes`` of its counts document)."""

MAX_RECORD_PROVIDERS = 1_000
"""Distinct user providers of a subscription's records (the ``providers`` of its counts document)."""

MAX_OWNED_DOMAINS = MAX_DOMAINS
"""Owned domains of a subscription: a config replaces the list, so the per-event bound is this one."""

MAX_SUBSCRIPTION_EXCLUDED_PROVIDERS = MAX_EXCLUDED_PROVIDERS
"""Excluded providers of a subscription: replaced as a whole, like the domains."""


class LimitExceeded(ValueError):
    """The change would take its subscription past a limit; nothing of it was applied."""


def refusal(state: SubscriptionState, change: Change) -> str | None:
    """Why ``change`` must be refused because of what its subscription already holds, or None.

    A record change is judged only when it would create a record (the common login of a known
    record costs one lookup); a config only when it is not an exact duplicate, which changes nothing."""
    kind = change.kind
    if kind == "config":
        return _config_refusal(state, change)
    if kind == "anonymous" or kind == "delete" or change.record in state.records:
        return None
    tombstone = state.tombstones.get(change.record)
    if tombstone is not None and change.time <= tombstone:
        return None  # ignored as older than the record's delete: it creates nothing
    return new_record_refusal(state, change.runtime, change.provider)


def new_record_refusal(state: SubscriptionState, runtime: str, provider: str) -> str | None:
    """Why a new record of ``runtime`` and ``provider`` must be refused, or None: the bounds on the
    distinct runtimes and providers of a subscription's records (the admission check asks too)."""
    if runtime not in state.record_runtimes and len(state.record_runtimes) >= MAX_RECORD_RUNTIMES:
        return (f"runtime: {runtime!r} would be a new runtime of subscription {state.subscription!r}, "
                f"which has records in {MAX_RECORD_RUNTIMES:,} runtimes already (the limit per subscription)")
    if provider not in state.record_providers and len(state.record_providers) >= MAX_RECORD_PROVIDERS:
        return (f"provider: {provider!r} would be a new user provider of subscription "
                f"{state.subscription!r}, which has records of {MAX_RECORD_PROVIDERS:,} providers already "
                "(the limit per subscription)")
    return None


def _config_refusal(state: SubscriptionState, change: Change) -> str | None:
    config = change.config
    if config is None or (change.event_id is not None and change.event_id in state.config_ids):
        return None
    if not isinstance(config.runtimes, UnsetType):
        known = state.settings.runtimes
        total = len(known) + sum(1 for name in config.runtimes if name not in known)
        if total > MAX_RUNTIME_VERSIONS:
            return (f"runtimes: subscription {change.subscription!r} would have {total:,} runtimes in its "
                    f"settings (at most {MAX_RUNTIME_VERSIONS:,} per subscription; runtimes merge across "
                    "config events)")
    if not isinstance(config.domains, UnsetType) and len(config.domains) > MAX_OWNED_DOMAINS:
        return f"domains: {len(config.domains):,} owned domains (at most {MAX_OWNED_DOMAINS:,} per subscription)"
    providers = config.excluded_providers
    if not isinstance(providers, UnsetType) and len(providers) > MAX_SUBSCRIPTION_EXCLUDED_PROVIDERS:
        return (f"excluded_providers: {len(providers):,} providers "
                f"(at most {MAX_SUBSCRIPTION_EXCLUDED_PROVIDERS:,} per subscription)")
    return None
