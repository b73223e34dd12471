"""Self-checks of the reference model and the stream strategies (no engine needed)."""

from __future__ import annotations

from hypothesis import given

from tests.compare import comparable, comparable_counts
from tests.model import model_replay, normalize_email, normalize_owned, parse_time
from tests.strategies import MODEL_EXAMPLES, event_streams, order_free_streams, properties, stamp_in_arrival_order, strip_times

"""The model's self-checks run fewer streams than the engine's checks against the model (500): the
model is the slow, naive oracle and changes rarely; its every property is also held by the engine,
checked on 500 streams. ``ENDUSERS_MODEL_EXAMPLES=2000`` runs the deep check."""
SETTINGS = properties(examples=MODEL_EXAMPLES)


def doubled(lines: list[str]) -> list[str]:
    return [line for line in lines for _ in (0, 1)]


@SETTINGS
@given(event_streams())
def test_model_duplicate_delivery_changes_nothing(lines: list[str]) -> None:
    once = model_replay(lines)
    twice = model_replay(doubled(lines))
    assert comparable_counts(twice) == comparable_counts(once)
    assert twice["capacity_events"] == once["capacity_events"]
    assert twice["rejected"] == 2 * once["rejected"]


@SETTINGS
@given(order_free_streams())
def test_model_lww_is_order_free(pair: tuple[list[str], list[str]]) -> None:
    a, b = pair
    ca, cb = comparable_counts(model_replay(a)), comparable_counts(model_replay(b))
    for s in (ca, cb):  # levels depend on the path, counts do not
        for v in s.values():
            v.pop("levels")
    assert ca == cb


@SETTINGS
@given(event_streams())
def test_model_untimed_is_arrival_order(lines: list[str]) -> None:
    untimed = strip_times(lines)
    assert comparable(model_replay(untimed)) == comparable(model_replay(stamp_in_arrival_order(untimed)))


@SETTINGS
@given(event_streams())
def test_model_rejected_lines_change_nothing(lines: list[str]) -> None:
    full = model_replay(lines, with_reasons=True)
    bad = {n for n, _ in full["reasons"]}
    kept = [line for n, line in enumerate(lines, 1) if n not in bad]
    clean = model_replay(kept)
    assert clean["rejected"] == 0
    assert comparable_counts(clean) == comparable_counts(full)
    assert clean["capacity_events"] == full["capacity_events"]


def test_normalization_examples() -> None:
    assert normalize_email(" Adam@Example.COM ") == "adam@example.com"
    assert normalize_email("max@Bücher.de.") == "max@xn--bcher-kva.de"
    assert normalize_email('"a@b"@ext.io') == '"a@b"@ext.io'
    for bad in ("not-an-email", "a@b", "a@@b.com", "a b@c.com", "@c.com", "a@b..com", "a@.b.com"):
        assert normalize_email(bad) is None, bad
    assert normalize_owned("@Example.COM.") == ("exact", "example.com")
    assert normalize_owned("*.Corp.example.org") == ("wild", "corp.example.org")
    assert normalize_owned("localhost") is None
    assert parse_time("2026-11-01T10:00:00+01:00") == parse_time("2026-11-01T09:00:00Z")


def _doc(lines: list[str]) -> dict:
    import json

    return model_replay([json.dumps(e) for e in lines])


def test_tombstone_and_late_events() -> None:
    d = _doc([
        {"type": "login", "subscription": "a", "user_id": "1", "email": "x@y.com", "time": "2026-01-01T00:00:00Z"},
        {"type": "profile", "op": "delete", "subscription": "a", "user_id": "1", "time": "2026-01-02T00:00:00Z"},
        {"type": "profile", "op": "upsert", "subscription": "a", "user_id": "1", "time": "2026-01-01T12:00:00Z"},
    ])
    assert d["subscriptions"]["a"]["records"] == 0
    d = _doc([
        {"type": "profile", "op": "delete", "subscription": "a", "user_id": "1", "time": "2026-01-02T00:00:00Z"},
        {"type": "login", "subscription": "a", "user_id": "1", "time": "2026-01-03T00:00:00Z"},
        {"type": "login", "subscription": "a", "user_id": "1"},
    ])
    assert d["subscriptions"]["a"]["records"] == 1
    # a delete older than the record's last change is ignored
    d = _doc([
        {"type": "login", "subscription": "a", "user_id": "1", "time": "2026-01-03T00:00:00Z"},
        {"type": "profile", "op": "delete", "subscription": "a", "user_id": "1", "time": "2026-01-02T00:00:00Z"},
    ])
    assert d["subscriptions"]["a"]["records"] == 1


def test_transitive_merge_and_non_countable_bridge() -> None:
    base = {"type": "profile", "op": "upsert", "subscription": "a"}
    d = _doc([
        {**base, "user_id": "1", "email": "a@x.com"},
        {**base, "user_id": "2", "email": "A@x.com", "username": "bob"},
        {**base, "user_id": "3", "username": "BOB"},
        {**base, "user_id": "4", "username": "a@x.com"},
    ])
    assert d["subscriptions"]["a"]["internal"] == 1
    d = _doc([
        {**base, "user_id": "1", "email": "a@x.com"},
        {**base, "user_id": "2", "email": "a@x.com", "username": "bob", "active": False},
        {**base, "user_id": "3", "username": "bob"},
    ])
    assert d["subscriptions"]["a"]["internal"] == 2
