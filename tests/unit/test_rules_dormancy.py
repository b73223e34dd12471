"""Last login, sealed user ids, dormant records and reclaimable people (docs/rules.md, dormant users)."""

from __future__ import annotations

import orjson

from counters import NEVER, Digester, Replay, Sealer, dormant, roster
from counters.dormancy import DAY
from schemas.events import parse_rfc3339
from streams.store.redis_store import pack_record, unpack_record
from tests.fixtures.older_records import pack_listed

NOW = parse_rfc3339("2026-12-01T00:00:00Z")


def _replay(*events: dict) -> Replay:
    replay = Replay(now=NOW)
    replay.feed_lines([orjson.dumps({"subscription": "acme", **e}).decode() for e in events])
    return replay


def login(user_id: str, time: str, **fields: object) -> dict:
    return {"type": "login", "user_id": user_id, "time": time, **fields}


def test_last_login_is_the_latest_login_whatever_order_they_arrive_in() -> None:
    replay = _replay(login("1", "2026-11-20T00:00:00Z"), login("1", "2026-11-01T00:00:00Z"),
                     {"type": "profile", "op": "upsert", "user_id": "1", "time": "2026-11-25T00:00:00Z"})
    [record] = replay.states["acme"].records.values()
    assert record.last_login == parse_rfc3339("2026-11-20T00:00:00Z")


def test_a_record_that_never_logged_in_has_no_last_login_and_is_dormant_first() -> None:
    replay = _replay({"type": "profile", "op": "upsert", "user_id": "2", "time": "2026-11-30T00:00:00Z"},
                     login("1", "2026-01-01T00:00:00Z"))
    report = dormant(replay.states["acme"], NOW, 90, replay.digest.sealer)
    assert [(r["user_id"], r["last_login"]) for r in report["records"]] == [
        ("2", None), ("1", "2026-01-01T00:00:00Z")]


def test_a_person_with_a_recent_login_on_another_record_is_not_reclaimable() -> None:
    replay = _replay(
        login("old", "2026-01-01T00:00:00Z", email="ann@example.com", runtime="r1"),
        login("new", "2026-11-30T00:00:00Z", email="ann@example.com", runtime="r2"),
        login("bob", "2026-02-01T00:00:00Z", email="bob@example.com"),
        {"type": "config", "domains": ["example.com"], "time": "2026-01-01T00:00:00Z"})
    report = dormant(replay.states["acme"], NOW, 90, replay.digest.sealer)
    assert {r["user_id"]: r["reclaimable"] for r in report["records"]} == {"old": False, "bob": True}
    assert report["freed"] == {"internal": 1, "external": 0}
    assert report["people"] == 2


def test_a_login_exactly_days_ago_is_dormant_and_one_later_is_not() -> None:
    replay = _replay(login("1", "2026-09-02T00:00:00Z"), login("2", "2026-09-02T00:00:00.000001Z"))
    assert NOW - 90 * DAY == parse_rfc3339("2026-09-02T00:00:00Z")
    assert [r["user_id"] for r in dormant(replay.states["acme"], NOW, 90, replay.digest.sealer)["records"]] == ["1"]


def test_the_user_id_is_sealed_and_opens_only_with_the_secret_for_its_own_record() -> None:
    replay = _replay(login("u-42", "2026-11-01T00:00:00Z", tenant="t1"))
    [(ref, record)] = replay.states["acme"].records.items()
    assert record.user is not None and b"u-42" not in record.user
    assert replay.digest.sealer.open(ref, record.user) == ("t1", "u-42")
    assert Sealer(b"another secret").open(ref, record.user) is None
    assert replay.digest.sealer.open("0" * 16, record.user) is None


def test_changes_carry_the_sealed_id_never_the_plain_one() -> None:
    change = Replay(now=NOW).change_of(orjson.dumps(
        {"type": "login", "subscription": "acme", "user_id": "u-42", "tenant": "t1"}))
    assert "u-42" not in orjson.dumps(change.fields).decode()
    assert Digester().sealer.open(change.record, __import__("base64").b64decode(change.fields["user"])) == ("t1", "u-42")


def test_a_record_stored_before_last_logins_were_kept_loads_as_never_logged_in_without_an_id() -> None:
    replay = _replay(login("1", "2026-11-01T00:00:00Z"))
    [record] = replay.states["acme"].records.values()
    loaded = unpack_record(pack_listed(record, 14))
    assert loaded.last_login == NEVER and loaded.user is None and loaded.logged_in


def test_last_login_and_the_sealed_id_survive_the_store_format() -> None:
    replay = _replay(login("1", "2026-11-01T00:00:00Z"), {"type": "profile", "op": "upsert", "user_id": "1",
                                                           "time": "2026-11-05T00:00:00Z"})
    [record] = replay.states["acme"].records.values()
    loaded = unpack_record(pack_record(record))
    assert (loaded.last_login, loaded.user) == (record.last_login, record.user)


def test_the_roster_pages_through_every_counted_person_by_cursor() -> None:
    replay = _replay(*(login(str(n), "2026-11-01T00:00:00Z", email=f"p{n}@example.com") for n in range(5)))
    state, seen, after = replay.states["acme"], [], None
    while True:
        page = roster(state, replay.digest.sealer, after=after, limit=2)
        seen += [r["user_id"] for person in page["people"] for r in person["records"]]
        after = page["next"]
        if after is None:
            break
    assert sorted(seen) == ["0", "1", "2", "3", "4"]
    assert page["people"][0]["rule"].startswith("internal")
