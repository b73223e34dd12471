"""The CloudEvents 1.0 envelope of capacity-change events on Kafka (binary content mode).

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
    subscription, user_class = str(event["subscription"]), str(event["user_class"])
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event["id"]),
        "ce_source": "endusers/" + quote(subscription, safe=""),
        "ce_type": CAPACITY_TYPE,
        "ce_subject": f"{subscription}/{user_class}",
        "ce_time": str(event["time"]),
        "content-type": CONTENT_TYPE,
    }
    return [(name, text.encode()) for name, text in attributes.items()]


def statement_headers(value: bytes) -> Headers:
    """The binary-mode headers of one closed billing statement (its JSON as frozen): ``ce_id`` is the
    statement's id, one per subscription and period, so a repeat after a crash is dropped by (source, id)."""
    statement = orjson.loads(value)
    subscription = str(statement["subscription"])
    attributes = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(statement["id"]),
        "ce_source": "endusers/" + quote(subscription, safe=""),
        "ce_type": STATEMENT_TYPE,
        "ce_subject": f"{subscription}/{statement['period_start']}",
        "ce_time": str(statement["closed_at"]),
        "content-type": CONTENT_TYPE,
    }
    return [(name, text.encode()) for name, text in attributes.items()]
