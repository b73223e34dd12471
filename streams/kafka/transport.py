"""Faust's Kafka transport with an idempotent producer.

Faust's producer asks for ``acks=all`` by default but turns idempotence on only inside transactions.
Without it a retried send after a lost acknowledgement (a broker failing over) can write a message twice
and, with several requests in flight, out of order. The changes topic relies on order within a
partition, so every producer of the service is idempotent: this one and the aiokafka producers of
``endusers publish``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "endusers+kafka"


class Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    Producer = Producer


def broker_url(bootstrap_servers: str) -> str:
    """``a:9092,b:9092`` -> Faust's form of the same brokers under this transport's scheme
    (``endusers+kafka://a:9092;b:9092``)."""
    return SCHEME + "://" + ";".join(bootstrap_servers.split(","))


TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
