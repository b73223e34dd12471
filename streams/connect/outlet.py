"""Mapped events to Kafka: each validated by the worker's own codec before it is sent, so a mapping
mistake is reported here, with the reason and where the input came from, and never reaches a count."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import orjson

from schemas.codec import Rejection, validate
from streams.kafka.errors import translated
from streams.kafka.publish import sender
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)


class Outlet:
    """Validates and publishes; ``flush`` returns once Kafka has acknowledged every event sent. Kafka's
    errors come out as ``BrokerUnavailable``.
    ``tally`` counts what was published, ignored (and why, in a few words) and refused."""

    def __init__(self, settings: WorkerSettings) -> None:
        self._sender = sender(settings)
        self.tally: Counter[str] = Counter()

    @translated
    async def __aenter__(self) -> Outlet:
        await self._sender.__aenter__()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self._sender.__aexit__(kind, value, traceback)

    @translated
    async def send(self, mapped: Sequence[dict[str, Any]] | str, where: str) -> None:
        """The events one input mapped to (or the reason it maps to none, logged at debug)."""
        if isinstance(mapped, str):
            self.tally["ignored"] += 1
            log.debug("%s: ignored: %s", where, mapped)
            return
        for document in mapped:
            checked = validate(document)
            if isinstance(checked, Rejection):
                self.tally["refused"] += 1
                log.warning("%s: refused: %s", where, checked.reason)
                continue
            await self._sender.send(orjson.dumps(document), f"{where}: ")
            self.tally["published"] += 1

    @translated
    async def flush(self) -> None:
        await self._sender.flush()
