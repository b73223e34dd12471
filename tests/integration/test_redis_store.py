"""The engine on the Redis store gives what it gives in memory, survives a reload, and commits
exactly once: a replayed or stale batch is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from counters import Digester, dormant, engine
from counters.state import NEVER, STORED, Record, SubscriptionState
from counters.memory_store import MemoryStore
from counters.ports import Position, States, Store
from schemas.changes import Change
from schemas.events import parse_rfc3339
from streams.store.audit import AUDIT_BYTES, AUDIT_LENGTH
from streams.store.redis_store import RedisStore, pack_record, unpack_record
from tests.fixtures.examples import assert_counts_match, assert_events_match, example_files, expected_for
from tests.fixtures.factories import changes, config, lines, login, profile
from tests.fixtures.older_records import pack_listed
from tests.fixtures.services import Services, empty_redis_db

pytestmark = pytest.mark.integration
TEST_DB = 15
LATER = parse_rfc3339("2100-01-01T00:00:00Z")
"""A processing clock after every event of these tests: each of their records is dormant then."""


@pytest.fixture
async def redis(services: Services) -> AsyncIterator[Redis]:
    async with empty_redis_db(services, TEST_DB) as client:
        yield client


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis: Redis) -> Store:
    return MemoryStore() if request.param == "memory" else RedisStore(redis)


async def run_batches(store: States, items: list[Change], batch: int = 3) -> list[dict]:  # type: ignore[type-arg]
    """Apply changes in batches, committing each with its position, like the count stage."""
    emitted = []
    for start in range(0, len(items), batch):
        for offset, change in enumerate(items[start : start + batch], start=start):
            state = await store.load(change.subscription)
            expected = state.positions.get("changes:0")
            events = engine.apply(state, change)
            assert await store.commit(state, Position("changes:0", expected, offset + 1), events)
            emitted += [e.to_dict() for e in events]
    return emitted


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
async def test_examples_give_the_same_counts_outbox_and_read_side_on_each_store(store: Store, path: Path) -> None:
    expected = expected_for(path)
    items = list(changes(path.read_bytes().splitlines()))
    emitted = await run_batches(store, items)
    assert_events_match(emitted, expected["capacity_events"])
    for name in expected["subscriptions"]:
        store.forget(name)  # the Redis store reloads from what it committed
        assert store.cached(name) is None
    actual = {name: (await store.load(name)).summary() for name in expected["subscriptions"]}
    assert_counts_match(actual, expected["subscriptions"])
    # the read side holds the last commit's counts, and the outbox every event, in order, until sent
    assert_counts_match({name: await store.counts(name) for name in expected["subscriptions"]}, expected["subscriptions"])
    names = await store.subscriptions()
    assert names == sorted({change.subscription for change in items})
    assert await store.sources(names + ["never-committed"]) == {**{name: ["changes:0"] for name in names},
                                                                "never-committed": []}
    sides = await store.read_sides(names + ["never-committed"])
    assert sorted(sides) == names
    for name in names:
        assert sides[name].counts == await store.counts(name)
        assert sides[name].settings == await store.settings(name)
        assert sides[name].shared == await store.shared_identifiers(name)
        assert ((await store.settings(name)) or {})["capacity"] == (await store.load(name)).settings.capacity
        pending = await store.outbox(name)
        assert [orjson.loads(entry) for entry in pending] == [e for e in emitted if e["subscription"] == name]
        await store.outbox_sent(name, pending[:1])
        assert await store.outbox(name) == pending[1:]


async def test_counts_snapshot_is_readable_after_commit(redis: Redis) -> None:
    path = next(p for p in example_files() if "anonymous" in p.name)
    store = RedisStore(redis)
    await run_batches(store, list(changes(path.read_bytes().splitlines())))
    assert await store.subscriptions() == ["acme"]
    assert_counts_match({"acme": await store.counts("acme")}, expected_for(path)["subscriptions"])


async def test_a_replayed_batch_is_refused_and_changes_nothing(redis: Redis) -> None:
    writer = RedisStore(redis)
    first = list(changes(lines([config(domains=["example.com"]), login("1", email="a@x.org")])))
    state = await writer.load("acme")
    for change in first:
        engine.apply(state, change)
    assert await writer.commit(state, Position("changes:0", None, 2), [])
    # a second worker that still believes nothing was committed must not write
    stale = RedisStore(redis)
    stale_state = await stale.load("acme")
    stale_state.positions.clear()
    engine.apply(stale_state, next(changes(lines([login("2", email="b@x.org")]))))
    assert not await stale.commit(stale_state, Position("changes:0", None, 2), [])
    fresh = await RedisStore(redis).load("acme")
    assert fresh.summary()["external"] == 1
    assert fresh.positions == {"changes:0": 2}


async def test_a_reload_rebuilds_individuals_from_records(redis: Redis) -> None:
    """Records merged transitively (email, then login) stay one individual after a reload."""
    store = RedisStore(redis)
    items = list(changes(lines([
        config(domains=["example.com"]),
        login("a", email="p@partner.io"),
        login("b", email="P@partner.io", username="pat"),
        login("c", username="PAT"),
    ])))
    await run_batches(store, items, batch=10)
    reloaded: SubscriptionState = await RedisStore(redis).load("acme")
    assert reloaded.summary()["external"] == 1
    assert reloaded.summary()["records"] == 3


async def test_a_record_created_afresh_keeps_its_tombstone_across_a_reload(store: Store) -> None:
    """The delete's time stays with the record created after it, in the store too: a worker that
    takes over still ignores an event from before the delete (it was meant for the deleted record)."""
    items = list(changes(lines([
        login("7", email="ann@corp.example", time="2026-11-01T10:00:00Z"),
        profile("delete", "7", time="2026-11-01T10:11:00Z"),
        login("7", email="ann@corp.example", time="2026-11-01T10:43:00Z"),
        login("8", email="bob@corp.example", time="2026-11-01T10:44:00Z"),
    ])))
    await run_batches(store, items)
    state = await store.load("acme")
    assert len(state.tombstones) == 1 and state.summary()["records"] == 2
    if isinstance(store, RedisStore):
        state = await RedisStore(store.redis).load("acme")  # a new worker's copy, from Redis alone
        assert len(state.tombstones) == 1 and state.summary()["records"] == 2
    late = next(changes(lines([profile("deactivate", "7", time="2026-11-01T10:02:00Z")])))
    engine.apply(state, late)
    assert state.summary()["records"] == 2


async def test_settings_are_written_only_when_they_change(redis: Redis) -> None:
    """With 10,000 owned domains the settings are about 157 KB: rewriting them on every commit sent
    that much to Redis (fsynced) per batch. A commit that changes no setting must not touch them."""
    store = RedisStore(redis)
    domains = [f"d{n}.example" for n in range(10_000)]
    await run_batches(store, list(changes(lines([config(domains=domains), login("1", email="a@d1.example")]))),
                      batch=10)
    meta = "endusers:{acme}:meta"
    await redis.hset(meta, "settings", b"untouched")  # what a commit that rewrote them would replace
    state = await store.load("acme")
    engine.apply(state, next(changes(lines([login("2", email="b@x.org")]))))
    assert await store.commit(state, Position("changes:0", state.positions["changes:0"], 3), [])
    assert await redis.hget(meta, "settings") == b"untouched"
    engine.apply(state, next(changes(lines([config(capacity={"internal": 5})]))))
    assert await store.commit(state, Position("changes:0", 3, 4), [])
    assert (await store.settings("acme") or {})["capacity"] == {"internal": 5, "external": None}


async def test_config_times_survive_a_reload(redis: Redis) -> None:
    """Config is last-writer-wins per key by time: the times persist with the settings, so a worker
    that takes over still refuses an older config and an exact repeat."""
    store = RedisStore(redis)
    items = list(changes(lines([config(id="c1", time="2026-11-01T10:00:00Z", capacity={"internal": 5})])))
    await run_batches(store, items)
    reloaded = RedisStore(redis)
    state = await reloaded.load("acme")
    for older in changes(lines([config(id="c0", time="2026-11-01T09:00:00Z", capacity={"internal": 9}),
                                config(id="c1", capacity={"internal": 7})])):
        engine.apply(state, older)
    assert state.settings.capacity["internal"] == 5


async def test_a_retried_commit_whose_first_attempt_landed_counts_as_done(redis: Redis) -> None:
    """A connection lost after the script ran: the retry finds its own next position stored."""
    store = RedisStore(redis)
    state = await store.load("acme")
    for change in changes(lines([login("1", email="a@x.org")])):
        engine.apply(state, change)
    dirty = set(state.dirty)
    assert await store.commit(state, Position("changes:0", None, 1), [])  # landed; the reply was "lost"
    state.dirty, state.positions = dirty, {}
    assert await store.commit(state, Position("changes:0", None, 1), [], retried=True)
    other = await RedisStore(redis).load("acme")
    assert other.positions == {"changes:0": 1} and other.summary()["records"] == 1
    # without a failed attempt before, the same refusal means another writer moved on
    assert not await RedisStore(redis).commit(await RedisStore(redis).load("acme"), Position("changes:0", None, 1), [])


async def test_where_external_users_come_from_is_in_the_read_document(redis: Redis) -> None:
    store = RedisStore(redis)
    await run_batches(store, list(changes(lines([
        config(domains=["example.com"]),
        login("1", email="a@partner.io"), login("2", email="b@partner.io"), login("3", email="c@ext.io"),
        login("4", email="me@example.com"),
    ]))), batch=10)
    document = await store.counts("acme")
    assert document is not None
    assert document["external_domains"] == {"top": [["partner.io", 2], ["ext.io", 1]], "other_domains": 0,
                                            "other_individuals": 0}
    # the same store at once (its report is cached): a new foreign domain shows up in the next commit
    state = await store.load("acme")
    engine.apply(state, next(changes(lines([login("5", email="d@new.io")]))))
    assert await store.commit(state, Position("changes:0", state.positions["changes:0"], 99), [])
    assert ["new.io", 1] in ((await store.counts("acme")) or {})["external_domains"]["top"]
    state = await store.load("acme")
    engine.apply(state, next(changes(lines([config(domains=["example.com", "partner.io", "ext.io", "new.io"])]))))
    assert await store.commit(state, Position("changes:0", 99, 100), [])
    emptied = await store.counts("acme")
    assert emptied is not None and emptied["external_domains"]["top"] == []  # not cjson's {}


def test_records_stored_before_the_excluded_field_load_as_end_users() -> None:
    record = Record("prod", "Okta", 5_000)
    record.excluded, record.excluded_t = True, 4_000
    again = unpack_record(pack_record(record))
    assert (again.excluded, again.excluded_t) == (True, 4_000)
    older = pack_listed(record, 12)  # as written before the field existed
    assert (unpack_record(older).excluded, unpack_record(older).excluded_t) == (False, NEVER)


async def test_history_keeps_each_days_and_hours_max_min_last_in_the_commit(redis: Redis) -> None:
    """Counts 0 (the config) -> 1 -> 2, 5, then 3 on day 1 (two hours), nothing on day 2, 4 on day 3:
    each event's count is in its period's max and min, and the first entry of a period also holds the
    count carried over from before it."""
    from datetime import datetime, timezone

    clock = [datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc).timestamp()]
    store = RedisStore(redis, clock=lambda: clock[0])
    state = await store.load("acme")
    offset = 0

    async def apply(*events: dict) -> None:  # type: ignore[type-arg]
        nonlocal offset
        for change in changes(lines(events)):
            engine.apply(state, change)
        assert await store.commit(state, Position("changes:0", offset or None, offset + 1), [])
        offset += 1

    await apply(config(domains=["example.com"]), login("1", email="a@x.org"), login("2", email="b@x.org"))
    await apply(*(login(str(n), email=f"u{n}@x.org") for n in range(3, 6)))
    clock[0] += 3600
    await apply(profile("delete", "3"), profile("delete", "4"))
    clock[0] += 2 * 86400
    await apply(login("9", email="z@x.org"))
    days = {e.period: e.to_row()[1:] for e in await store.daily("acme")}
    assert days == {"2026-11-01": [0, 0, 0, 5, 0, 3], "2026-11-03": [0, 0, 0, 4, 3, 4]}
    hours = {e.period: e.to_row()[4:] for e in await store.hourly("acme")}
    assert hours == {"2026-11-01T09": [5, 0, 5], "2026-11-01T10": [5, 3, 3], "2026-11-03T10": [4, 3, 4]}
    clock[0] += 500 * 86400  # far later: entries past the retention go, today's stays
    for day in range(40):
        clock[0] += 86400
        await apply(login(f"late{day}", email=f"l{day}@x.org"))
    kept = [e.period for e in await store.daily("acme")]
    assert "2026-11-01" not in kept and len(kept) == 40


async def test_a_count_that_rises_and_falls_within_one_commit_reaches_the_days_and_hours_maximum(redis: Redis) -> None:
    """3 logins in a batch, then a 4th and 2 deletes in the next: the history keeps 4 as the maximum,
    though no commit's count was 4, and 1 (the first login) as the minimum (the commits carry their
    batch's extremes)."""
    from datetime import datetime, timezone

    store = RedisStore(redis, clock=lambda: datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc).timestamp())
    state = await store.load("acme")
    for change in changes(lines([login("1"), login("2"), login("3")])):
        engine.apply(state, change)
    assert await store.commit(state, Position("changes:0", None, 1), [])
    for change in changes(lines([login("4"), profile("delete", "1"), profile("delete", "2")])):
        engine.apply(state, change)
    assert await store.commit(state, Position("changes:0", 1, 2), [])
    [day] = await store.daily("acme")
    [hour] = await store.hourly("acme")
    assert day.to_row()[1:4] == hour.to_row()[1:4] == [4, 1, 2]  # internal max, min, last
    assert state.extremes == {}


def audit_entries(*offsets: int) -> list[dict[str, Any]]:
    return [{"subscription": "acme", "actor": "alice", "topic": "config", "partition": 0, "offset": offset,
             "changed": ["capacity"], "before": {"capacity": None}, "after": {"capacity": offset}}
            for offset in offsets]


async def test_a_commit_writes_its_audit_entries_with_the_change(store: MemoryStore | RedisStore) -> None:
    """The entries travel in the commit: a committed setting always has its entry, newest first."""
    state = await store.load("acme")
    engine.apply(state, next(changes(lines([config(capacity={"internal": 5})]))))
    assert await store.commit(state, Position("changes:0", None, 1), [], audit_entries(0, 1))
    assert await store.commit(state, Position("changes:0", 1, 2), [])  # a batch without config changes
    assert [e["offset"] for e in await store.audit("acme")] == [1, 0]
    assert (await store.audit("acme"))[0] == audit_entries(1)[0]


async def test_a_refused_commit_writes_no_audit_entry(store: MemoryStore | RedisStore) -> None:
    state = await store.load("acme")
    assert await store.commit(state, Position("changes:0", None, 1), [], audit_entries(0))
    # a stale writer that expects a position no longer stored
    assert not await store.commit(state, Position("changes:0", None, 2), [], audit_entries(1))
    assert [e["offset"] for e in await store.audit("acme")] == [0]


async def test_a_retried_commit_whose_first_attempt_landed_writes_its_audit_entries_once(store: MemoryStore | RedisStore) -> None:
    """A connection lost after the script ran: the retry of the same commit finds it landed."""
    state = await store.load("acme")
    engine.apply(state, next(changes(lines([config(capacity={"internal": 5})]))))
    assert await store.commit(state, Position("changes:0", None, 1), [], audit_entries(0))  # the reply was "lost"
    assert await store.commit(state, Position("changes:0", None, 1), [], audit_entries(0), retried=True)
    assert [e["offset"] for e in await store.audit("acme")] == [0]


async def test_the_audit_trail_keeps_the_newest_entries(redis: Redis) -> None:
    store = RedisStore(redis)
    state = await store.load("acme")
    assert await store.commit(state, Position("changes:0", None, 1), [], audit_entries(*range(AUDIT_LENGTH + 5)))
    offsets = [e["offset"] for e in await store.audit("acme", limit=AUDIT_LENGTH)]
    assert offsets == list(range(AUDIT_LENGTH + 4, 4, -1))


async def test_the_audit_trail_is_bounded_in_bytes_and_keeps_the_newest(redis: Redis) -> None:
    store = RedisStore(redis)
    state = await store.load("acme")
    large = [{**item, "diff": {"domains": {"added": ["x" * 15_000]}}} for item in audit_entries(*range(200))]
    assert await store.commit(state, Position("changes:0", None, 1), [], large)
    kept = await redis.lrange("endusers:{acme}:audit", 0, -1)
    assert sum(len(item) for item in kept) <= AUDIT_BYTES
    assert [orjson.loads(item)["offset"] for item in kept] == list(range(199, 199 - len(kept), -1))
    assert len(kept) >= AUDIT_BYTES // 16_000


async def test_a_worker_keeps_no_sealed_id_once_committed_and_the_admin_reads_still_open_it(redis: Redis) -> None:
    """Redis holds each record's sealed id; the state a worker counts with drops it at the commit and
    on load (``STORED``), and the committed state read afresh for the admin's reports still has it."""
    digest = Digester()
    store = RedisStore(redis)
    state = await store.load("acme")
    for change in changes(lines([login("u1", email="a@x.org"), login("u2")]), digest):
        engine.apply(state, change)
    assert all(record.user for record in state.records.values())  # held until the commit
    assert await store.commit(state, Position("changes:0", None, 2), [])
    assert all(record.user is STORED for record in state.records.values())
    reloaded = await RedisStore(redis).load("acme")
    assert all(record.user is STORED for record in reloaded.records.values())
    fresh = await store.fresh_state("acme")
    assert fresh is not None
    assert sorted(row["user_id"] for row in dormant(fresh, LATER, 1, digest.sealer)["records"]) == ["u1", "u2"]


async def test_a_record_rewritten_by_a_change_without_an_id_keeps_its_stored_sealed_id(redis: Redis) -> None:
    """A change without ``user`` (from a version before ids) still rewrites the whole record: the
    stored sealed id is read back first, so it is never lost; one with an id replaces it with the
    same person's, sealed again."""
    digest = Digester()
    store = RedisStore(redis)
    state = await store.load("acme")
    engine.apply(state, next(changes(lines([login("u1", email="a@x.org")]), digest)))
    assert await store.commit(state, Position("changes:0", None, 1), [])
    without_id = next(changes(lines([profile("deactivate", "u1")]), digest))
    del without_id.fields["user"]
    engine.apply(state, without_id)
    assert await store.commit(state, Position("changes:0", 1, 2), [])
    not_base64 = next(changes(lines([profile("activate", "u1")]), digest))
    not_base64.fields["user"] = "not base64!"
    engine.apply(state, not_base64)
    assert await store.commit(state, Position("changes:0", 2, 3), [])
    fresh = await store.fresh_state("acme")
    assert fresh is not None
    [row] = dormant(fresh, LATER, 1, digest.sealer)["records"]
    assert (row["user_id"], row["tenant"]) == ("u1", "default")
