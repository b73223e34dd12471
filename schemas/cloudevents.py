"""The CloudEvents 1.0 envelope of capacity-change events and closed billing statements on Kafka
(binary content mode).

In binary mode the record's value stays the event's own JSON and its key stays the subscription; the
CloudEvents attributes travel as ``ce_``-prefixed headers. Consumers that know nothing of CloudEvents
read the value as the plain event it is, and those that do (Knative, Argo Events, the CloudEvents SDKs) can
route and filter on the headers without parsing the value.
"""

from __future__ import annotations

from urllib.parse import quote

import orjson

SPEC_VERSION = "1.0"
CAPACITY_TYPE = "io.endusers.capacity.changed.v1"
STATEMENT_TYPE = "io.endusers.statement.closed.v1"
CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]
"""Kafka record headers as aiokafka takes them."""


def capacity_headers(value: bytes) -> Headers:
    """The binary-mode headers of one capacity-change event (its JSON as stored in the outbox).

    ``ce_id`` is the event's own id, which is the same whenever the same change is published again, so
    a CloudEvents consumer's deduplication by (source, id) drops the repeats a crash can cause.
    ``ce_source`` is a URI reference, so a subscription id with characters outside a URI path is
    percent-encoded there; ``ce_subject`` keeps it as it is.
    """
    event = orjson.loads(value)
    subscription = str(event["subscription"])
    return _headers(str(event["id"]), subscription, CAPACITY_TYPE, f"{subscription}/{event['user_class']}",
                    str(event["time"]))


def _headers(event_id: str, subscription: str, event_type: str, subject: str, time: str) -> Headers:
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": event_id,
        "ce_source": "endusers/" + quote(subscription, safe=""),
        "ce_type": event_type,
        "ce_subject": subject,
        "ce_time": time,
        "content-type": CONTENT_TYPE,
    }
    return [(name, text.encode()) for name, text in attributes.items()]


def statement_headers(value: bytes) -> Headers:
    """The binary-mode headers of one closed billing statement (its JSON as frozen): ``ce_id`` is the
    statement's id, one per subscription and period, so a repeat after a crash is dropped by (source, id)."""
    statement = orjson.loads(value)
    subscription = str(statement["subscription"])
    return _headers(str(statement["id"]), subscription, STATEMENT_TYPE, f"{subscription}/{statement['period_start']}",
                    str(statement["closed_at"]))
