"""Where each subscription's engine state lives, for the HTTP side (``streams/http/admission.py``).

A subscription is counted by the worker its changes partition is assigned to (``ownership.py``). This
worker holds the state of those it counts once loaded; for any other, the owner is found as Faust
finds the worker that holds a table's key (``app.router``): the subscription's partition of the
changes topic, by the producer's partitioner (the one ingest sends with), and the URL the member
assigned that partition announced to the group (its ``canonical_url``: ``ENDUSERS_WEB_ADVERTISED_URL``).
"""

from __future__ import annotations

import logging

import aiohttp
import faust
from yarl import URL

from counters import Store, SubscriptionState
from streams.worker.ownership import Ownership

log = logging.getLogger(__name__)


class Placement:
    """What the admission check needs of the worker: its own states, and the other workers' URLs."""

    def __init__(self, app: faust.App, changes: faust.TopicT, store: Store, ownership: Ownership) -> None:
        self.app = app
        self.changes = changes
        self.store = store
        self.ownership = ownership

    def local(self, subscription: str) -> SubscriptionState | None:
        """The loaded state of a subscription this worker counts (one it refuses is not answered from)."""
        if subscription in self.ownership.refused:
            return None
        return self.store.cached(subscription)

    def owner(self, subscription: str) -> str | None:
        """The URL of the other worker that counts ``subscription``; None when it is this one, or the
        assignment is not known (no rebalance has finished, or the topic's metadata is missing)."""
        try:
            url = self.app.router.external_topic_key_store(self.changes, subscription.encode())
        except Exception as exc:  # KeyError: partition not in the distribution; metadata not fetched yet
            log.debug("no owner known for %s: %s", subscription, type(exc).__name__)
            return None
        if _same(url, URL(str(self.app.conf.canonical_url))):
            return None
        return str(url)

    def session(self) -> aiohttp.ClientSession:
        return self.app.http_client  # Faust's, closed with the app


def _same(one: URL, other: URL) -> bool:
    return (one.host, one.port) == (other.host, other.port)
