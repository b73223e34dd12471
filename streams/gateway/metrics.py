"""The gateway's Prometheus metrics (``GET /metrics`` of ``endusers gateway``, docs/sources.md).

A registry of its own: the gateway is a process apart from the workers, and its ``/metrics`` shows
exactly what it received (rendered by ``streams.observe.metrics.render``). ``source`` is the route (``okta``, ``auth0``, ``events``); ``reason`` comes
from a bounded set (the mappings' ignore reasons, the codec's rejection categories, and the request
refusals ``malformed``, ``unavailable``, ``no_topic``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

ACCEPTED = Counter(
    "endusers_gateway_events_accepted_total",
    "Events published and acknowledged by Kafka, per source.",
    ["source"],
    registry=REGISTRY,
)
IGNORED = Counter(
    "endusers_gateway_events_ignored_total",
    "Provider items mapped to no event on purpose (failures, machines, other types), per source and reason.",
    ["source", "reason"],
    registry=REGISTRY,
)
REFUSED = Counter(
    "endusers_gateway_events_refused_total",
    "Items that could not be mapped or published, per source and reason; a malformed request counts once.",
    ["source", "reason"],
    registry=REGISTRY,
)
PUBLISH_SECONDS = Histogram(
    "endusers_gateway_publish_seconds",
    "From a request's events handed to the producer to Kafka's acknowledgement of all of them.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

