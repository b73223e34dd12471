"""Where external users come from: external individuals per email domain (docs/rules.md, classes).

Computed from the subscription scope's signature histogram, so it costs O(distinct signatures), not
O(users), like a change of owned domains. An individual is counted under each domain of its
signature: an external individual with records in two foreign domains appears under both (rare: most
individuals have one domain), so the per-domain figures may add up to more than ``external``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import TypedDict

from counters.classify import EXTERNAL, UNCLASSIFIED
from counters.state import SUBSCRIPTION_SCOPE, SubscriptionState

TOP_DOMAINS = 100


class DomainsReport(TypedDict):
    """``top``: ``[domain, external individuals]``, largest first (ties by name); ``other_domains``
    and ``other_individuals``: how many further domains, and the sum of their figures."""

    top: list[tuple[str, int]]
    other_domains: int
    other_individuals: int


def external_domains(state: SubscriptionState, limit: int = TOP_DOMAINS) -> DomainsReport:
    domains = state.settings.domains
    per_domain: Counter[str] = Counter()
    for sig, individuals in state.scopes[SUBSCRIPTION_SCOPE].histogram.items():
        if sig and sig != UNCLASSIFIED and domains.class_of(sig) == EXTERNAL:
            for domain in sig.split(" "):
                per_domain[domain] += individuals
    top = heapq.nsmallest(limit, per_domain.items(), key=lambda item: (-item[1], item[0]))
    return {"top": top, "other_domains": len(per_domain) - len(top),
            "other_individuals": sum(per_domain.values()) - sum(n for _, n in top)}
