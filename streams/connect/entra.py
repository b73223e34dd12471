"""``endusers connect entra``: Entra ID's sign-in and audit logs, streamed by a diagnostic setting to an
Event Hub and read through its Kafka endpoint, published as our events (docs/sources.md, Entra ID).

The consumer group commits a batch's offsets only after Kafka has acknowledged the events it became:
a crash in between reads the batch again, and the events keep their ids (``entra:<id>``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import urlsplit

from streams.connect import entra_events as mapping
from streams.connect.common import Scope
from streams.connect.outlet import Outlet
from streams.kafka.external import Message, consume
from streams.settings import SaslMechanism, SecurityProtocol, WorkerSettings, kafka_client_options

log = logging.getLogger(__name__)

_ENDPOINT = re.compile(r"(?:^|;)\s*Endpoint\s*=\s*sb://([^/;]+)", re.IGNORECASE)


def source_options(settings: WorkerSettings, kafka: str | None) -> dict[str, object]:
    """The Kafka client options of the Event Hub: with a connection string
    (``ENDUSERS_EVENTHUBS_CONNECTION_STRING``), SASL PLAIN over TLS on port 9093 of its namespace (or of
    ``kafka``) with the user ``$ConnectionString``, as Event Hubs documents it; else ``kafka`` in plain
    text; else the worker's own Kafka (``ENDUSERS_KAFKA*``)."""
    secret = settings.eventhubs_connection_string
    if secret is not None:
        found = _ENDPOINT.search(secret.get_secret_value())
        host = urlsplit(kafka).netloc if kafka else (f"{found.group(1)}:9093" if found else "")
        if not host:
            raise ValueError("ENDUSERS_EVENTHUBS_CONNECTION_STRING has no Endpoint=sb://<namespace>...; "
                             "pass --kafka kafka://<namespace>.servicebus.windows.net:9093")
        settings = settings.model_copy(update={
            "kafka": f"kafka://{host}", "kafka_security_protocol": SecurityProtocol.SASL_SSL,
            "kafka_sasl_mechanism": SaslMechanism.PLAIN, "kafka_username": "$ConnectionString",
            "kafka_password": secret, "kafka_cafile": ""})
    elif kafka:
        settings = settings.model_copy(update={"kafka": kafka, "kafka_security_protocol": SecurityProtocol.PLAINTEXT,
                                               "kafka_username": "", "kafka_password": None})
    return kafka_client_options(settings)


async def handle(messages: list[Message], outlet: Outlet, scope: Scope) -> None:
    """Map and publish one batch; returns once Kafka has acknowledged every event of it."""
    for message in messages:
        found = mapping.records(message.value or b"")
        if isinstance(found, str):
            outlet.tally["refused"] += 1
            log.warning("%s: refused: %s", message.where, found)
            continue
        for index, item in enumerate(found):
            await outlet.send(mapping.record(item, scope), f"{message.where} record {index}")
    await outlet.flush()


async def run(settings: WorkerSettings, scope: Scope, topic: str, group: str, kafka: str | None,
              stop: asyncio.Event) -> Outlet:
    """Read the Event Hub until ``stop``; the outlet's tally says what became of the records."""
    async with Outlet(settings) as outlet:
        await consume(topic, group, source_options(settings, kafka), stop,
                      lambda messages: handle(messages, outlet, scope))
    return outlet
