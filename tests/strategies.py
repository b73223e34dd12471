"""Hypothesis strategies for random JSONL event streams (docs/events.md).

Pools are tiny on purpose so that records collide often: shared emails and usernames (usernames that
look like emails), the same user id as a string and as an integer, equal instants written with
different offsets, late and duplicated lines, untimed events mixed in, config changes of every key,
visits, and a few invalid lines. Every generated line gets a unique event id ("e<n>"); a duplicated
line is the same event and keeps its id.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROPERTY_EXAMPLES = int(os.environ.get("ENDUSERS_PROPERTY_EXAMPLES", "500"))
"""Random streams of the engine-against-model comparison (``deploy/local/test`` and CI: 500)."""
MODEL_EXAMPLES = int(os.environ.get("ENDUSERS_MODEL_EXAMPLES", "100"))
"""Random streams of the reference model's own, slower self-checks."""


def properties(share: float = 1.0, examples: int = PROPERTY_EXAMPLES) -> settings:
    """Hypothesis settings of a property over random streams: ``share`` of ``examples``. The engine's
    comparison with the model runs them all; a property that proves one more thing on the same kind
    of streams (redelivery, restore, dormancy, admission) runs half, which keeps the suite in its time."""
    return settings(max_examples=max(1, int(examples * share)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

SUBSCRIPTIONS = ["acme", "globex"]
RUNTIMES = ["default", "r1", "r2"]
TENANTS = ["default", "t2"]
PROVIDERS = ["default", "Users", "Okta"]
USER_IDS: list[Any] = ["1", "2", "3", "4", "5", "6", "7", "8", 1, 2]  # 1 and "1" are the same id
SESSIONS = ["s1", "s2", "s3", "s4"]

# 6 distinct valid addresses over 4 domains, written in several equivalent ways, and invalid ones.
EMAILS = [
    "adam@example.com",
    " ADAM@Example.COM ",
    "eve@ext.io",
    "Eve@EXT.IO.",
    "kim@eu.example.com",
    "bob@ext.io",
    "max@bücher.de",
    "max@xn--bcher-kva.de",
    "lee@corp.example.org",
    '"odd@x"@ext.io',
    "u@under_score.io",  # not IDNA-encodable: invalid (docs/rules.md, normalization)
    "not-an-email",
    "a@b",
    "two@@ext.io",
    "sp ace@ext.io",
    "@ext.io",
    "",
]
USERNAMES = [
    "adam",
    " Adam ",
    "eve",
    "adam@example.com",
    "EVE@EXT.IO",
    "kim@eu.example.com",
    "bob",
    "bob@ext.io",
    "  ",
]
PHONES = ["+351 912 345 678", "555-0100", "+", "none", "(00) 12"]
NAMES = ["Ann", "  ", "Bo"]
DOMAIN_ENTRIES = [
    "example.com",
    "Example.COM.",
    "@example.com",
    "*.example.com",
    "ext.io",
    "bücher.de",
    "*.corp.example.org",
    "corp.example.org",
]
CAPACITIES = [None, 0, 1, 2, 3, 5, 10]
THRESHOLD_VALUES = [50, 80, 90, 100, 150]
HYSTERESES = [0, 1, 2.5, 10, 50]
VERSIONS = ["11.6.0", "11.10.0", "11.11.3", "11.14.0", None]

# 0..39 minutes after 2026-11-01T09:00Z; each instant may be written in three equivalent ways.
_N_INSTANTS = 40


def _fmt_time(minute: int, style: int) -> str:
    h, m = divmod(minute, 60)
    if style == 0:
        return f"2026-11-01T{9 + h:02d}:{m:02d}:00Z"
    if style == 1:
        return f"2026-11-01T{10 + h:02d}:{m:02d}:00+01:00"
    return f"2026-11-01T{4 + h:02d}:{m:02d}:00.000-05:00"


# A few far instants too, all in the past: an untimed event happens at its arrival ("now", and newer
# than every event before it), so explicit times in the future would make a stream's meaning depend on
# the day the tests run.
FAR_TIMES = ["2026-01-01T00:00:00Z", "2026-06-30T23:59:59.5Z", "2026-06-30T23:59:59+00:00"]

times = st.one_of(
    st.none(),
    st.builds(_fmt_time, st.integers(0, _N_INSTANTS - 1), st.integers(0, 2)),
    st.sampled_from(FAR_TIMES),
)


def _maybe(d: dict, key: str, strategy: st.SearchStrategy, draw: Any, p_null: bool = True) -> None:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return  # absent
    if choice == 1 and p_null:
        d[key] = None
        return
    d[key] = draw(strategy)


@st.composite
def _record_base(draw: Any, kind: str) -> dict:
    ev: dict[str, Any] = {"type": kind, "subscription": draw(st.sampled_from(SUBSCRIPTIONS))}
    if draw(st.booleans()):
        ev["runtime"] = draw(st.sampled_from(RUNTIMES))
    if draw(st.integers(0, 3)) == 0:
        ev["tenant"] = draw(st.sampled_from(TENANTS))
    if draw(st.booleans()):
        ev["provider"] = draw(st.sampled_from(PROVIDERS))
    t = draw(times)
    if t is not None:
        ev["time"] = t
    return ev


@st.composite
def login_events(draw: Any) -> dict:
    ev = draw(_record_base("login"))
    ev["user_id"] = draw(st.sampled_from(USER_IDS))
    _maybe(ev, "username", st.sampled_from(USERNAMES), draw)
    _maybe(ev, "email", st.sampled_from(EMAILS), draw)
    if draw(st.integers(0, 5)) == 0:
        ev["phone"] = draw(st.sampled_from(PHONES))
    if draw(st.integers(0, 5)) == 0:
        ev["default_tenant"] = draw(st.booleans())
    return ev


@st.composite
def profile_events(draw: Any) -> dict:
    ev = draw(_record_base("profile"))
    op = draw(st.sampled_from(["upsert", "upsert", "upsert", "deactivate", "activate", "delete"]))
    ev["op"] = op
    ev["user_id"] = draw(st.sampled_from(USER_IDS))
    if op == "upsert":
        _maybe(ev, "username", st.sampled_from(USERNAMES), draw)
        _maybe(ev, "email", st.sampled_from(EMAILS), draw)
        if draw(st.integers(0, 5)) == 0:
            ev["name"] = draw(st.sampled_from(NAMES))
        if draw(st.integers(0, 3)) == 0:
            ev["active"] = draw(st.booleans())
        if draw(st.integers(0, 4)) == 0:
            ev["default_tenant"] = draw(st.booleans())
        if draw(st.integers(0, 4)) == 0:
            _maybe(ev, "excluded", st.booleans(), draw)
    return ev


@st.composite
def visit_events(draw: Any) -> dict:
    ev = draw(_record_base("visit"))
    ev.pop("provider", None)
    ev["session_id"] = draw(st.sampled_from(SESSIONS))
    if draw(st.integers(0, 2)) == 0:
        _maybe(ev, "email", st.sampled_from(EMAILS), draw)
    if draw(st.integers(0, 2)) == 0:
        _maybe(ev, "phone", st.sampled_from(PHONES), draw)
    if draw(st.integers(0, 3)) == 0:
        _maybe(ev, "name", st.sampled_from(NAMES), draw)
    return ev


@st.composite
def config_events(draw: Any) -> dict:
    ev: dict[str, Any] = {"type": "config", "subscription": draw(st.sampled_from(SUBSCRIPTIONS))}
    if draw(st.integers(0, 3)) == 0:
        ev["platform"] = draw(st.sampled_from(["o11", "odc"]))
    if draw(st.booleans()):
        ev["domains"] = draw(st.lists(st.sampled_from(DOMAIN_ENTRIES), max_size=3))
    if draw(st.booleans()):
        cap = {}
        for cls in ("internal", "external"):
            if draw(st.booleans()):
                cap[cls] = draw(st.sampled_from(CAPACITIES))
        ev["capacity"] = cap
    if draw(st.integers(0, 3)) == 0:
        ev["thresholds"] = draw(st.lists(st.sampled_from(THRESHOLD_VALUES), min_size=1, max_size=4))
    if draw(st.integers(0, 3)) == 0:
        ev["hysteresis"] = draw(st.sampled_from(HYSTERESES))
    if draw(st.integers(0, 2)) == 0:
        rts = draw(st.dictionaries(st.sampled_from(RUNTIMES), st.sampled_from(VERSIONS), max_size=2))
        ev["runtimes"] = {rt: {"version": v} for rt, v in rts.items()}
    if draw(st.integers(0, 6)) == 0:
        _maybe(ev, "billing_day", st.sampled_from([1, 15, 28, 31]), draw)
        _maybe(ev, "statement_grace", st.sampled_from([0, 72, 2160]), draw)
        _maybe(ev, "source_silence", st.sampled_from([1, 24, 8760]), draw)
        _maybe(ev, "dormant_days", st.sampled_from([1, 30, 90, 3650]), draw)
    if draw(st.integers(0, 4)) == 0:
        _maybe(ev, "excluded_providers", st.lists(st.sampled_from([*PROVIDERS, "visitor"]), max_size=2), draw)
    if draw(st.integers(0, 4)) == 0:
        t = draw(times)
        if t is not None:
            ev["time"] = t
    return ev


# Lines that must be rejected (docs/events.md): each is a template completed with an id.
INVALID_EVENTS: list[Any] = [
    "this is not json",
    "{\"type\": \"login\", ",
    "[1, 2, 3]",
    {"type": "login", "user_id": "1", "email": "adam@example.com"},
    {"type": "login", "subscription": "acme", "email": "adam@example.com"},
    {"type": "logout", "subscription": "acme", "user_id": "1"},
    {"subscription": "acme", "user_id": "1"},
    {"type": "profile", "op": "merge", "subscription": "acme", "user_id": "1"},
    {"type": "profile", "subscription": "acme", "user_id": "1"},
    {"type": "login", "subscription": "acme", "user_id": "1", "time": "yesterday"},
    {"type": "login", "subscription": "acme", "user_id": "2", "time": "2026-11-01T09:00:00"},
    {"type": "login", "subscription": "acme", "user_id": True},
    {"type": "login", "subscription": "acme", "user_id": 1.5},
    {"type": "login", "subscription": "acme", "user_id": "3", "username": "x" * 300},
    {"type": "login", "subscription": "acme", "user_id": "3", "email": "a" * 248 + "@ext.io"},
    {"type": "login", "subscription": "acme", "user_id": "3", "email": 5},
    {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "3", "active": "yes"},
    {"type": "visit", "subscription": "acme", "email": "adam@example.com"},
    {"type": "config", "subscription": "acme", "capacity": {"external": "lots"}},
    {"type": "config", "subscription": "acme", "capacity": {"internal": -1}},
    {"type": "config", "subscription": "globex", "capacity": {"internal": True}},
    {"type": "config", "subscription": "acme", "thresholds": [0, 80]},
    {"type": "config", "subscription": "acme", "thresholds": [80, 1001]},
    {"type": "config", "subscription": "acme", "thresholds": "80"},
    {"type": "config", "subscription": "acme", "hysteresis": -1},
    {"type": "config", "subscription": "acme", "platform": "cloud"},
    {"type": "config", "subscription": "globex", "domains": ["not a domain"]},
    {"type": "config", "subscription": "globex", "domains": ["example.com", "bad..com"]},
    {"type": "config", "subscription": "globex", "domains": "example.com"},
    {"type": "config", "subscription": "acme", "runtimes": {"r1": {"version": "abc"}}},
    {"type": "config", "subscription": "acme", "runtimes": {"r1": {"version": 11}}},
    {"type": "config", "subscription": 7},
    {"type": "config", "subscription": "acme", "excluded_providers": "Okta"},
    {"type": "config", "subscription": "acme", "billing_day": 32},
    {"type": "config", "subscription": "acme", "statement_grace": -1},
    {"type": "config", "subscription": "acme", "source_silence": 0},
    {"type": "config", "subscription": "acme", "billing_day": 0},
    {"type": "config", "subscription": "acme", "dormant_days": 0},
    {"type": "config", "subscription": "acme", "dormant_days": 3651},
    {"type": "config", "subscription": "acme", "billing_day": 1.5},
    {"type": "config", "subscription": "acme", "excluded_providers": [""]},
    {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "3", "excluded": "yes"},
    {"type": "login", "subscription": "s" * 300, "user_id": "1"},
]

invalid_events = st.sampled_from(INVALID_EVENTS)

valid_events = st.one_of(
    login_events(),
    login_events(),
    profile_events(),
    profile_events(),
    visit_events(),
    config_events(),
)


def _dump(ev: Any, eid: str) -> str:
    if isinstance(ev, str):
        return ev
    ev = dict(ev)
    ev["id"] = eid
    return json.dumps(ev, ensure_ascii=False)


NOISE_LINES = ["", "# a comment", "   "]


def _items(invalid: bool, duplicates: bool, noise: bool) -> st.SearchStrategy:
    """One stream item: mostly a valid event; sometimes a redelivery, an invalid line or noise."""
    choices: list[st.SearchStrategy] = [valid_events] * 12
    if duplicates:
        choices += [st.tuples(st.just("dup"), st.integers(0, 59))] * 2
    if invalid:
        choices.append(st.tuples(st.just("bad"), invalid_events))
    if noise:
        choices.append(st.tuples(st.just("noise"), st.sampled_from(NOISE_LINES)))
    return st.one_of(*choices)


@st.composite
def event_streams(
    draw: Any,
    min_size: int = 1,
    max_size: int = 60,
    invalid: bool = True,
    duplicates: bool = True,
    noise: bool = True,
) -> list[str]:
    """A list of JSONL lines: random events, some redelivered later, a few invalid ones."""
    # Hypothesis keeps flat lists short (about 6 items on average): a list of chunks gives longer
    # streams (about 25 lines on average) that still shrink well (whole chunks or single items go).
    item = _items(invalid, duplicates, noise)
    chunks = draw(st.lists(st.lists(item, min_size=1, max_size=10), min_size=1, max_size=max_size))
    items = [i for chunk in chunks for i in chunk][:max_size]
    if len(items) < min_size:
        items += draw(st.lists(item, min_size=min_size - len(items), max_size=min_size - len(items)))
    lines: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            lines.append(_dump(item, f"e{i}"))
        elif item[0] == "dup":
            lines.append(lines[item[1] % len(lines)] if lines else NOISE_LINES[1])
        elif item[0] == "bad":
            lines.append(_dump(item[1], f"e{i}"))
        else:
            lines.append(item[1])
    return lines


@st.composite
def order_free_streams(draw: Any) -> tuple[list[str], list[str]]:
    """Two arrival orders of the same events whose final counts must not depend on order.

    Config first (unchanged afterwards), then timed login/upsert/activate/deactivate/visit events
    with pairwise distinct instants: last-writer-wins per field makes the final state independent
    of arrival order (no deletes: a delete depends on what it finds).
    """
    head = draw(st.lists(config_events(), max_size=2))
    body = draw(st.lists(st.one_of(login_events(), profile_events(), visit_events()), max_size=40))
    body = [e for e in body if not (e["type"] == "profile" and e["op"] == "delete")]
    minutes = draw(st.permutations(range(200)))
    for i, e in enumerate(body):
        e["time"] = f"2026-11-01T{9 + minutes[i] // 60:02d}:{minutes[i] % 60:02d}:00Z"
    head_lines = [_dump(e, f"c{i}") for i, e in enumerate(head)]
    lines = [_dump(e, f"e{i}") for i, e in enumerate(body)]
    shuffled = draw(st.permutations(lines))
    return head_lines + lines, head_lines + list(shuffled)


def strip_times(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if isinstance(ev, dict):
            ev.pop("time", None)
            out.append(json.dumps(ev, ensure_ascii=False))
        else:
            out.append(line)
    return out


def stamp_in_arrival_order(lines: list[str]) -> list[str]:
    """Give every JSON object line an explicit time, strictly increasing in arrival order."""
    out = []
    n = 0
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if isinstance(ev, dict):
            n += 1
            ev["time"] = f"2026-07-{1 + n // 1440:02d}T{(n // 60) % 24:02d}:{n % 60:02d}:00Z"
            out.append(json.dumps(ev, ensure_ascii=False))
        else:
            out.append(line)
    return out


@st.composite
def streams_with_redeliveries(draw: Any) -> tuple[list[str], list[str]]:
    """A random stream, and the same stream with some of its events delivered again later.

    Record events get pairwise distinct explicit times (late ones included), as a redelivered Kafka
    message keeps its timestamp; an untimed record event repeated in a file would be a new arrival,
    newer than everything before it, so not a duplicate. Config events keep their random times
    (untimed, tied or late): their repeats must be recognised by id or lose by time.
    """
    lines = draw(event_streams(duplicates=False, invalid=False, noise=False))
    minutes = draw(st.permutations(range(len(lines))))
    timed = []
    for line, minute in zip(lines, minutes):
        ev = json.loads(line)
        if ev["type"] != "config":
            ev["time"] = f"2026-11-{1 + minute // 1440:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00Z"
        timed.append(json.dumps(ev, ensure_ascii=False))
    repeated = list(timed)
    for _ in range(draw(st.integers(1, 8))):
        source = draw(st.integers(0, len(timed) - 1))
        place = repeated.index(timed[source]) + 1
        repeated.insert(draw(st.integers(place, len(repeated))), timed[source])
    return timed, repeated
