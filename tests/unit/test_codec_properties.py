"""Property tests: the codec turns any input into an event or a reasoned rejection, never an exception
(docs/events.md: a rejection never stops a worker), and normalization never raises on a valid event."""

from __future__ import annotations

import hmac
import string
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from counters import Digester, to_change
from counters.digest import encode_parts
from counters.replay import Replay
from schemas.changes import Change, decode_batch, encode_batch
from schemas.codec import Rejection, decode, validate
from schemas.events import ConfigEvent, LoginEvent, ProfileEvent, VisitEvent
from schemas.instants import _common_instant, _parse_rfc3339, parse_rfc3339

EVENT_MODELS = (LoginEvent, ProfileEvent, VisitEvent, ConfigEvent)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELDS = (
    "type", "subscription", "id", "time", "runtime", "tenant", "default_tenant", "provider", "user_id",
    "username", "email", "phone", "name", "op", "active", "session_id", "platform", "domains", "capacity",
    "thresholds", "hysteresis", "runtimes", "internal", "external", "version",
)

# --- strategies --------------------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text()
)
"""Python values a JSON parser could hand over (and some it could not: huge ints, NaN)."""

json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text() | st.sampled_from(FIELDS), children,
                                                                      max_size=5),
    max_leaves=20,
)

encodable_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
encodable_values = st.recursive(
    encodable_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text() | st.sampled_from(FIELDS), children,
                                                                      max_size=5),
    max_leaves=20,
)
"""Values orjson can serialize, so they can travel as a line."""


def _instant(moment: datetime, offset_minutes: int, style: int) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if style == 1:
        text += f".{local.microsecond:06d}"
    if offset_minutes == 0 and style != 2:
        return text + "Z"
    return text + local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]


times = st.builds(
    _instant,
    st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
    st.integers(0, 2),
)
"""Valid RFC 3339 instants (years 1900-2200)."""

words = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)
labels = st.text(alphabet=string.ascii_lowercase + "0123456789-", min_size=1, max_size=10) | st.sampled_from(
    ["bücher", "XN--BCHER-KVA", "example", "com", "例え", "ß", "-", "a" * 64])
domains = st.lists(labels, min_size=1, max_size=4).map(".".join) | st.text(max_size=30)
emails = (
    st.builds(lambda local, domain: f"{local}@{domain}", st.text(max_size=10) | words, domains)
    | st.text(max_size=40)
)
weird_text = st.text(max_size=40) | words | emails
owned = st.builds(lambda prefix, d: prefix + d, st.sampled_from(["", "@", "*.", " *.", "@*."]), domains)
versions = st.lists(st.integers(0, 999_999).map(str), min_size=1, max_size=4).map(".".join) | st.text(max_size=8)
maybe = st.none() | st.just(None)


def anything_or(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON value."""
    return st.one_of(values, values, values, json_values)


def plausible_record_fields() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "id": words | st.none(), "time": times | st.none(),
        "runtime": words, "tenant": words, "default_tenant": st.booleans() | st.none(),
        "provider": words, "user_id": words | st.integers(-(2**70), 2**70),
        "username": weird_text | st.none(), "email": emails | st.none(),
        "phone": weird_text | st.none(), "name": weird_text | st.none(),
        "active": st.booleans() | st.none(),
    }


def plausible_config_fields() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "id": words | st.none(), "time": times | st.none(),
        "platform": st.sampled_from(["o11", "odc"]) | st.none(),
        "domains": st.lists(owned, max_size=4) | st.none(),
        "capacity": st.none() | st.fixed_dictionaries({}, optional={
            "internal": st.none() | st.integers(0, 10**12), "external": st.none() | st.integers(0, 10**12)}),
        "thresholds": st.lists(st.integers(-5, 1005), max_size=5) | st.none(),
        "hysteresis": st.floats(-1, 101) | st.integers(-1, 101) | st.none(),
        "runtimes": st.none() | st.dictionaries(words, st.fixed_dictionaries(
            {}, optional={"version": versions | st.none()}), max_size=3),
    }


def _events(noisy: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Events of every type; ``noisy`` replaces each value by an arbitrary JSON value now and then."""
    wrap = anything_or if noisy else (lambda values: values)
    record = {k: wrap(v) for k, v in plausible_record_fields().items()}
    settings_ = {k: wrap(v) for k, v in plausible_config_fields().items()}
    subscription = wrap(words)
    required = {"user_id": record.pop("user_id")}
    login = st.fixed_dictionaries({"type": st.just("login"), "subscription": subscription, **required},
                                  optional=record)
    profile = st.fixed_dictionaries(
        {"type": st.just("profile"), "subscription": subscription, **required,
         "op": wrap(st.sampled_from(["upsert", "deactivate", "activate", "delete"]))},
        optional=record)
    visit = st.fixed_dictionaries(
        {"type": st.just("visit"), "subscription": subscription, "session_id": wrap(words)},
        optional={k: record[k] for k in ("id", "time", "runtime", "tenant", "default_tenant", "email", "phone",
                                         "name")})
    config = st.fixed_dictionaries({"type": st.just("config"), "subscription": subscription}, optional=settings_)
    return login | profile | visit | config


plausible_events = _events(noisy=False)
"""Objects with the real field names and plausible values: mostly valid events."""

noisy_events = _events(noisy=True)

event_like = (
    plausible_events | noisy_events
    | st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS})
    | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
)
"""Objects with the real field names: mostly plausible values, some arbitrary ones."""


def _valid_outcome(result: object) -> None:
    if isinstance(result, Rejection):
        assert isinstance(result.reason, str) and result.reason.strip(), result
    else:
        assert isinstance(result, EVENT_MODELS), result


# --- decode and validate -----------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_give_an_event_or_a_reasoned_rejection(raw: bytes) -> None:
    _valid_outcome(decode(raw))


@PROPERTY
@given(st.text(max_size=300))
def test_random_text_gives_an_event_or_a_reasoned_rejection(raw: str) -> None:
    _valid_outcome(decode(raw))


@PROPERTY
@given(encodable_values)
def test_random_json_gives_an_event_or_a_reasoned_rejection(value: Any) -> None:
    _valid_outcome(decode(orjson.dumps(value)))


@PROPERTY
@given(json_values)
def test_random_parsed_values_give_an_event_or_a_reasoned_rejection(value: Any) -> None:
    _valid_outcome(validate(value))


@PROPERTY
@given(event_like)
def test_objects_with_real_field_names_give_an_event_or_a_reasoned_rejection(document: dict[str, Any]) -> None:
    _valid_outcome(validate(document))
    try:
        line = orjson.dumps(document)
    except TypeError:  # an integer beyond 64 bits cannot be a line
        return
    _valid_outcome(decode(line))
    _valid_outcome(decode(line.decode()))


@PROPERTY
@given(event_like, st.integers(0, 5))
def test_truncated_lines_give_an_event_or_a_reasoned_rejection(document: dict[str, Any], cut: int) -> None:
    try:
        line = orjson.dumps(document)
    except TypeError:
        return
    _valid_outcome(decode(line[: max(0, len(line) - cut)]))


# --- normalization -----------------------------------------------------------------------------------


@PROPERTY
@given(plausible_events | noisy_events, st.integers(0, 2**62))
def test_to_change_on_any_valid_event_returns_a_change_or_rejection(document: dict[str, Any], arrival: int) -> None:
    event = validate(document)
    if isinstance(event, Rejection):
        return
    change = to_change(event, Digester(), arrival)
    if isinstance(change, Rejection):
        assert change.reason.strip()
        assert isinstance(event, ConfigEvent)  # only settings can be refused after validation
        return
    assert isinstance(change, Change)
    assert change.subscription == event.subscription
    assert change.time == (event.time if event.time is not None else arrival)
    assert decode_batch(encode_batch(change.subscription, [change])) == [change]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(plausible_events | noisy_events, max_size=25))
def test_replay_never_raises_on_any_stream_of_event_like_objects(documents: list[dict[str, Any]]) -> None:
    replay = Replay()
    lines = []
    for document in documents:
        try:
            lines.append(orjson.dumps(document))
        except TypeError:
            continue
    replay.feed_lines(lines)
    document = replay.document()
    assert document["rejected"] == len(replay.rejections) <= len(lines)


# --- times -------------------------------------------------------------------------------------------


@PROPERTY
@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59), st.integers(0, 2))
def test_an_rfc3339_time_is_its_exact_microseconds_since_the_epoch(moment: datetime, offset: int, style: int) -> None:
    text = _instant(moment, offset, style)
    exact = (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    if style != 1:
        exact -= moment.microsecond  # written without its fraction
    assert parse_rfc3339(text) == exact, text


def _mangled(text: str, edits: list[tuple[int, str]]) -> str:
    for position, piece in edits:
        position %= len(text) + 1
        text = text[:position] + piece + text[position + 1 :]
    return text


@PROPERTY
@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59), st.integers(0, 2),
       st.lists(st.tuples(st.integers(0, 40), st.sampled_from(
           ["", "9", "0", ".", ":", "-", "+", "Z", "z", "t", " ", "\n", "\u0663", "\u00b2", "99", ".1234567", "+24:00",
            "-00:60", "13", "32"])), max_size=3))
def test_the_common_form_shortcut_reads_a_time_as_the_regular_expression_does(
        moment: datetime, offset: int, style: int, edits: list[tuple[int, str]]) -> None:
    """``parse_rfc3339`` reads the usual form without its regular expression; on valid times and on
    times with characters replaced, inserted or dropped, the shortcut either steps aside (None) or
    gives the very instant of the rule, and the usual forms never step aside."""
    text = _mangled(_instant(moment, offset, style), edits)
    try:
        ruled: int | None = _parse_rfc3339(text)
    except ValueError:
        ruled = None
    shortcut = _common_instant(text)
    assert shortcut is None or shortcut == ruled, text
    if not edits:
        assert shortcut == ruled is not None, text


def test_a_time_before_1970_with_a_fraction_is_not_moved_a_second_later() -> None:
    assert parse_rfc3339("1969-12-31T23:59:59.5Z") == -500_000
    assert parse_rfc3339("1969-12-31T23:59:59.1234567Z") == -876_544  # digits beyond microseconds are dropped


# --- digests -----------------------------------------------------------------------------------------


@PROPERTY
@given(st.binary(min_size=1, max_size=80), st.text(max_size=20), st.lists(st.text(max_size=30), min_size=1, max_size=4))
def test_a_digest_from_the_copied_keyed_hmac_equals_hmac_digest(secret: bytes, subscription: str,
                                                                parts: list[str]) -> None:
    message = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    shared = Digester(secret, per_subscription=False)
    assert shared(*parts) == shared(*parts) == hmac.digest(secret, message, "sha256")[:8].hex()
    key = hmac.digest(secret, b"endusers subscription key\x1f" + subscription.encode("utf-8", "surrogatepass"),
                      "sha256")
    scoped = Digester(secret).for_subscription(subscription)
    assert scoped(*parts) == scoped(*parts) == hmac.digest(key, encode_parts(tuple(parts)), "sha256")[:8].hex()
