"""The dashboard stream (streams/http/live.py, streams/http/fleet.py): a snapshot at connect, then only
changes with ids, heartbeats at rest, and a reconnect that resumes instead of starting over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.http.fleet import Fleet
from streams.http.live import DashboardStream
from tests.unit.fake_counts import FakeReader, counts, sample_reader


async def read_raw(response: Any, seconds: float) -> bytes:
    """Whatever the stream sends within ``seconds``."""
    chunks: list[bytes] = []

    async def collect() -> None:
        while True:
            chunk = await response.content.readany()
            if not chunk:
                return
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), seconds)
    except TimeoutError:
        pass
    return b"".join(chunks)


def messages(raw: bytes) -> list[dict[str, Any]]:
    """SSE blocks as ``{"id", "event", "data", "comment"}`` (heartbeats are blocks with a comment only)."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        fields: dict[str, Any] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name == "":
                fields["comment"] = True
            else:
                fields[name] = value.lstrip(" ")
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        out.append(fields)
    return out


async def read_until(response: Any, event: str, timeout: float = 5.0) -> dict[str, Any]:
    buffer = b""

    async def collect() -> dict[str, Any]:
        nonlocal buffer
        while True:
            buffer += await response.content.readany()
            for message in messages(buffer.rpartition(b"\n\n")[0] + b"\n\n"):
                if message.get("event") == event:
                    return message

    return await asyncio.wait_for(collect(), timeout)


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[Any, Any], FakeReader, DashboardStream]]:
    reader = sample_reader()
    live = DashboardStream(reader, interval=0.05, heartbeat=0.2, ring=5)
    app = web.Application()
    app.router.add_get("/api/v1/stream", live.stream)
    app.on_shutdown.append(live.close)
    async with TestClient(TestServer(app)) as client:
        yield client, reader, live


async def test_a_stream_at_rest_sends_only_heartbeats_after_the_snapshot(served: Any) -> None:
    client, _, _ = served
    response = await client.get("/api/v1/stream")
    raw = await read_raw(response, 1.5)
    blocks = messages(raw)
    data = [b for b in blocks if "data" in b]
    assert [b["event"] for b in data] == ["snapshot"]
    assert data[0]["id"]
    after = raw[raw.index(b"event: snapshot"):].split(b"\n\n", 1)[1]
    assert set(after.split(b"\n\n")) <= {b":", b""}  # comments only
    assert len([b for b in blocks if b.get("comment")]) >= 3
    response.close()


async def test_a_reconnect_with_the_last_event_id_resumes_without_a_new_snapshot(served: Any) -> None:
    client, reader, _ = served
    keep = await client.get("/api/v1/stream")  # keeps the poll loop running while the other is away
    first = await client.get("/api/v1/stream")
    snapshot = await read_until(first, "snapshot")
    first.close()
    reader.data["acme"] = {**reader.data["acme"], "internal": 1300}
    await asyncio.sleep(0.3)
    again = await client.get("/api/v1/stream", headers={"Last-Event-ID": snapshot["id"]})
    raw = await read_raw(again, 0.8)
    data = [b for b in messages(raw) if "data" in b]
    assert [b["event"] for b in data] == ["change"]
    assert set(data[0]["data"]["subscriptions"]) == {"acme"}
    assert data[0]["data"]["subscriptions"]["acme"]["internal"] == 1300
    assert int(data[0]["id"].rpartition("-")[2]) > int(snapshot["id"].rpartition("-")[2])
    again.close()
    keep.close()


@pytest.mark.parametrize("last_id", ["nonsense", "0000-1", None])
async def test_an_unknown_or_foreign_event_id_gets_a_snapshot(served: Any, last_id: str | None) -> None:
    client, _, _ = served
    headers = {"Last-Event-ID": last_id} if last_id else {}
    response = await client.get("/api/v1/stream", headers=headers)
    assert (await read_until(response, "snapshot"))["data"]["subscriptions"]["acme"]["internal"] == 1234
    response.close()


async def test_an_id_older_than_the_ring_gets_a_snapshot(served: Any) -> None:
    client, reader, live = served
    keep = await client.get("/api/v1/stream")
    snapshot = await read_until(keep, "snapshot")
    for n in range(8):  # more changes than the ring (5) holds
        reader.data["acme"] = {**reader.data["acme"], "internal": 2000 + n}
        await asyncio.sleep(0.12)
    assert live.fleet.seq - int(snapshot["id"].rpartition("-")[2]) > 5
    again = await client.get("/api/v1/stream", headers={"Last-Event-ID": snapshot["id"]})
    assert (await read_until(again, "snapshot"))["data"]["subscriptions"]["acme"]["internal"] == 2007
    again.close()
    keep.close()


async def test_a_change_is_serialized_once_for_all_clients_of_a_scope(served: Any) -> None:
    client, reader, live = served
    streams = [await client.get("/api/v1/stream") for _ in range(10)]
    for response in streams:
        await read_until(response, "snapshot")
    reader.data["globex"] = {**reader.data["globex"], "internal": 99}
    for response in streams:
        change = await read_until(response, "change")
        assert change["data"]["subscriptions"]["globex"]["internal"] == 99
    assert [len(tick._messages) for tick in live.fleet.ring][-1] == 1
    for response in streams:
        response.close()


def test_the_fleet_sends_only_the_groups_that_changed() -> None:
    fleet = Fleet()
    groups = {"counts": {"internal": 1, "external": 2}, "levels": {"levels": {"internal": 0}},
              "settings": {"settings": {"platform": "o11", "domains": ["a.example"]}}, "events": {"events": []},
              "trend": {"trend": {"from": None, "internal": [], "external": []}}}
    assert fleet.update(1_000_000, {"acme": groups}, {"acme": [[900_000, 1, 2]]}) is not None
    assert fleet.update(2_000_000, {"acme": {k: v for k, v in groups.items() if k != "trend"}}, {}) is None
    tick = fleet.update(3_000_000, {"acme": {**groups, "levels": {"levels": {"internal": 80}}}}, {})
    assert tick is not None
    assert json.loads(tick.message((True, None)) or b"") == {
        "time": 3_000_000, "subscriptions": {"acme": {"levels": {"internal": 80}}}, "removed": []}
    assert tick.message((True, frozenset({"globex"}))) is None
    groups = {**groups, "levels": {"levels": {"internal": 80}}}
    viewer = json.loads(fleet.update(4_000_000, {"acme": {**groups, "counts": {"internal": 5, "external": 2}}}, {})
                        .message((False, None)) or b"")  # type: ignore[union-attr]
    assert viewer["subscriptions"]["acme"] == {"internal": 5, "external": 2, "point": [4_000_000, 5, 2]}
    snapshot = json.loads(fleet.snapshot((False, None)))
    assert snapshot["subscriptions"]["acme"]["settings"] == {"platform": "o11"}  # a viewer's settings
    assert snapshot["subscriptions"]["acme"]["history"] == [[900_000, 1, 2], [4_000_000, 5, 2]]
    gone = fleet.update(5_000_000, {}, {})
    assert gone is not None and json.loads(gone.message((True, None)) or b"")["removed"] == ["acme"]
