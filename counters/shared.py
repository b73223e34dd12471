"""Shared identifiers: emails or logins held by more records than ``shared_identifier_threshold``.

Counting follows the SPEC unchanged (their records still group into one individual, as the license
vendor counts them), but a placeholder such as ``noreply@corp.example`` in a user table folds many
people into one. This report is how an admin finds that distortion. The engine keeps the set of such
identifiers as holder counts change (``SubscriptionState.shared``), so the report costs
O(shared identifiers x runtimes), never a scan of the records. It holds digests, never plaintext.
"""

from __future__ import annotations

from counters import individuals
from counters.state import SUBSCRIPTION_SCOPE, SubscriptionState
from schemas.outputs import SharedIdentifier, SharedIdentifiers


def shared_identifiers_report(state: SubscriptionState) -> SharedIdentifiers:
    """The shared identifiers, most-held first. Holders are countable, dedup-eligible records: the
    ones that group. ``kind`` is ``email`` when any record holds the identifier as its email."""
    runtimes = [scope for scope in state.scopes if scope is not SUBSCRIPTION_SCOPE]
    found: list[SharedIdentifier] = []
    for identifier in state.shared:
        per_runtime = {r: n for r in runtimes if (n := individuals.holders(state, identifier, r))}
        found.append({
            "digest": identifier,
            "kind": "email" if individuals.held_as_email(state, identifier) else "username",
            "records": individuals.holders(state, identifier),
            "runtimes": dict(sorted(per_runtime.items())),
        })
    found.sort(key=lambda item: (-item["records"], item["digest"]))
    return {"threshold": state.settings.shared_identifier_threshold, "identifiers": found}
