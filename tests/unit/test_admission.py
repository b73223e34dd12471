"""The admission check (counters/admission.py): whether one more person adds to a count, in which
class, and whether the count would cross a capacity threshold, with nothing applied. Each answer is
also checked against what applying the person's login really does, and against the reference model."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, strategies as st

from counters import NotAnIdentifier, Replay, SubscriptionState, apply, to_change
from counters.admission import admission, candidate
from counters.limits import MAX_RECORD_PROVIDERS, LimitExceeded
from schemas.codec import decode
from schemas.events import parse_rfc3339
from tests.fixtures.examples import REPLAY_NOW
from tests.fixtures.factories import config, login, profile
from tests.model import Sub, model_replay
from tests.model import admission as model_admission
from tests.strategies import EMAILS, PROVIDERS, RUNTIMES, TENANTS, USERNAMES, event_streams, properties

BASE = [config(domains=["example.com"], capacity={"internal": 5, "external": 10}),
        login("ann", email="ann@example.com"), login("bob", email="bob@example.com", username="bobby"),
        login("eve", email="eve@partner.io"), login("cid", email="cid@example.com")]


def replayed(*events: dict[str, Any]) -> Replay:
    replay = Replay(now=parse_rfc3339(REPLAY_NOW))
    replay.feed_lines([orjson.dumps(e) for e in events])
    return replay


def ask(replay: Replay, **request: Any) -> dict[str, Any]:
    return admission(replay.states["acme"], candidate(replay.digest, "acme", **request))


def admitted(replay: Replay, **request: Any) -> SubscriptionState:
    """A copy of the state after the person's login (and activation) really is applied."""
    state = copy.deepcopy(replay.states["acme"])
    fields = {k: v for k, v in request.items() if k in ("email", "username", "runtime", "tenant", "provider")}
    user_id = request.get("user_id", "new-person")
    for event in (profile("activate", user_id, **{k: v for k, v in fields.items() if k not in ("email", "username")}),
                  login(user_id, **fields, time="2099-01-01T00:00:00Z")):
        apply(state, to_change(decode(orjson.dumps(event)), replay.digest, 0))  # type: ignore[arg-type]
    return state


def test_a_new_person_adds_one_to_their_class() -> None:
    replay = replayed(*BASE)
    answer = ask(replay, email="dee@example.com")
    assert (answer["adds"], answer["user_class"], answer["count_before"], answer["count_after"]) == (True, "internal", 3, 4)
    assert answer["capacity"] == 5 and answer["reason"] == "a new individual"
    assert admitted(replay, email="dee@example.com").count("internal") == answer["count_after"]


def test_a_person_who_counts_by_email_on_another_record_adds_nothing() -> None:
    replay = replayed(*BASE)
    answer = ask(replay, email=" ANN@example.com ", runtime="sales", user_id="a.smith")
    assert (answer["adds"], answer["user_class"], answer["count_after"], answer["joins"]) == (False, "internal", 3, 1)
    assert answer["reason"].startswith("already counted")
    assert admitted(replay, email="ann@example.com", runtime="sales", user_id="a.smith").count("internal") == 3


def test_a_username_held_by_a_counted_record_adds_nothing() -> None:
    answer = ask(replayed(*BASE), username=" Bobby ")
    assert (answer["adds"], answer["count_after"]) == (False, 3)


def test_an_admission_that_reaches_a_threshold_crosses_it() -> None:
    replay = replayed(*BASE)
    first = ask(replay, email="dee@example.com")  # 4 of 5: 80% is reached
    assert (first["level_before"], first["level_after"], first["crosses"]) == (0, 80, True)
    replay = replayed(*BASE, login("dee", email="dee@example.com"))
    assert replay.states["acme"].levels["internal"] == 80
    answer = ask(replay, email="fay@example.com")
    assert (answer["count_after"], answer["level_before"], answer["level_after"], answer["crosses"]) == (5, 80, 100, True)
    assert admitted(replay, email="fay@example.com").levels["internal"] == 100


def test_a_person_already_counted_never_crosses() -> None:
    replay = replayed(*BASE, login("dee", email="dee@example.com"))
    answer = ask(replay, email="dee@example.com")
    assert (answer["adds"], answer["crosses"], answer["level_after"]) == (False, False, 80)


def test_an_owned_email_joining_an_external_person_moves_them_to_internal() -> None:
    replay = replayed(*BASE)
    answer = ask(replay, email="eve@example.com", username="eve@partner.io")
    assert (answer["adds"], answer["user_class"], answer["count_after"]) == (True, "internal", 4)
    assert answer["reason"] == "joins a counted individual and changes its class"
    state = admitted(replay, email="eve@example.com", username="eve@partner.io")
    assert (state.count("internal"), state.count("external")) == (4, 0)


def test_a_person_linking_two_counted_people_lowers_the_count() -> None:
    replay = replayed(*BASE)
    answer = ask(replay, email="ann@example.com", username="bobby")
    assert (answer["adds"], answer["count_after"], answer["joins"]) == (False, 2, 2)
    assert admitted(replay, email="ann@example.com", username="bobby").count("internal") == 2


def test_a_record_outside_the_default_tenant_of_an_old_runtime_is_never_deduplicated() -> None:
    replay = replayed(*BASE, config(runtimes={"legacy": {"version": "11.10.0"}}))
    answer = ask(replay, email="ann@example.com", runtime="legacy")
    assert (answer["adds"], answer["count_after"]) == (True, 4)


def test_an_excluded_provider_is_no_end_user() -> None:
    replay = replayed(*BASE, config(excluded_providers=["ITUsers"]))
    answer = ask(replay, email="dev@example.com", provider="ITUsers", user_id="dev")
    assert (answer["adds"], answer["user_class"], answer["count_after"], answer["crosses"]) == (False, None, None, False)
    assert "excluded_providers" in answer["reason"]


def test_a_new_record_that_ingest_would_refuse_adds_nothing_and_says_which_limit() -> None:
    # BASE's records have one provider; these bring the subscription to the limit of distinct providers
    replay = replayed(*BASE, *(login(f"u{n}", email=f"u{n}@example.com", provider=f"p{n}")
                               for n in range(MAX_RECORD_PROVIDERS - 1)))
    answer = ask(replay, email="new@example.com", provider="one-too-many", user_id="new")
    assert (answer["adds"], answer["user_class"], answer["count_after"]) == (False, None, None)
    assert answer["reason"].startswith("refused: provider: 'one-too-many' would be a new user provider")
    state = copy.deepcopy(replay.states["acme"])
    with pytest.raises(LimitExceeded):  # what ingest's login of that person meets
        apply(state, to_change(decode(orjson.dumps(login("new", email="new@example.com", provider="one-too-many"))),
                               replay.digest, 0))  # type: ignore[arg-type]
    assert ask(replay, email="new@example.com", provider="p7", user_id="new")["adds"] is True


def test_a_record_key_of_a_counted_record_adds_nothing_and_of_a_deactivated_one_adds() -> None:
    replay = replayed(*BASE, login("gus", email="gus@partner.io"), profile("deactivate", "gus"))
    assert ask(replay, user_id="ann")["adds"] is False
    answer = ask(replay, user_id="gus")  # its own stored email classifies it
    assert (answer["adds"], answer["user_class"], answer["count_after"]) == (True, "external", 2)


def test_a_request_that_names_nobody_is_refused_with_a_reason() -> None:
    replay = replayed(*BASE)
    for request, reason in (({"email": "not-an-email"}, "not a valid email"), ({"username": "  "}, "empty username"),
                            ({}, "give email")):
        with pytest.raises(NotAnIdentifier, match=reason):
            ask(replay, **request)


def test_the_check_changes_nothing() -> None:
    replay = replayed(*BASE)
    state = replay.states["acme"]
    before = (orjson.dumps(state.summary()), len(state.records), dict(state.levels), set(state.dirty))
    for request in ({"email": "dee@example.com"}, {"email": "ann@example.com", "username": "bobby"},
                    {"user_id": "ann"}, {"email": "eve@example.com", "username": "eve@partner.io"}):
        ask(replay, **request)
    assert (orjson.dumps(state.summary()), len(state.records), dict(state.levels), set(state.dirty)) == before


# --- against the reference model --------------------------------------------------------------------

VALID_EMAILS = [e for e in EMAILS if e.strip() and "@" in e and " " not in e.strip() and "_" not in e
                and "@@" not in e and not e.startswith("@") and e != "a@b"]
VALID_USERNAMES = [u for u in USERNAMES if u.strip()]


@st.composite
def people(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = {"runtime": draw(st.sampled_from(RUNTIMES)), "tenant": draw(st.sampled_from(TENANTS)),
                               "provider": draw(st.sampled_from(PROVIDERS)),
                               "user_id": draw(st.sampled_from(["1", "2", "3", "new"]))}
    if draw(st.booleans()):
        request["email"] = draw(st.sampled_from(VALID_EMAILS))
    if draw(st.booleans()):
        request["username"] = draw(st.sampled_from(VALID_USERNAMES))
    if draw(st.booleans()):
        request["default_tenant"] = draw(st.booleans())
    return request


@properties(0.5)
@given(event_streams(), people())
def test_the_admission_answer_matches_the_model(lines: list[str], request: dict[str, Any]) -> None:
    replay = Replay(now=parse_rfc3339(REPLAY_NOW))
    replay.feed_lines(lines)
    subs: dict[str, Sub] = {}
    model_replay(lines, states=subs)
    state = replay.states.get("acme") or SubscriptionState("acme")
    got = admission(state, candidate(replay.digest, "acme", **request))
    key = (request["runtime"], request["tenant"], request["provider"], request["user_id"])
    want = model_admission(subs.get("acme") or Sub(), key, request.get("email"), request.get("username"),
                           request.get("default_tenant"))
    assert {k: got[k] for k in want} == want
