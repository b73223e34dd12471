"""Rejection reasons are sentences for the person who fixes the producer: the field, dotted down to the
list index or runtime name, then what it must be, in the words of docs/events.md (not the validator's)."""

from __future__ import annotations

import orjson
import pytest

from schemas.codec import Rejection, decode


def _config(**fields: object) -> bytes:
    return orjson.dumps({"type": "config", "subscription": "acme", **fields})


def _login(**fields: object) -> bytes:
    return orjson.dumps({"type": "login", "subscription": "acme", "user_id": "7", **fields})


@pytest.mark.parametrize("raw, reason", [
    (_config(platform="o12"), "platform: 'o12' is not one of o11, odc"),
    (orjson.dumps({"type": "profile", "subscription": "acme", "user_id": "7", "op": "zap"}),
     "op: 'zap' is not one of activate, deactivate, delete, upsert"),
    (_config(thresholds=[80, 0]), "thresholds.1: must be at least 1"),
    (_config(hysteresis=101), "hysteresis: must be at most 100"),
    (_config(billing_day=32), "billing_day: must be at most 31"),
    (_config(statement_grace=2161), "statement_grace: must be at most 2160"),
    (_config(capacity={"internal": "lots"}), "capacity.internal: must be an integer or null, not a string"),
    (_login(user_id=True), "user_id: must be an integer or a string, not a boolean"),
    (_login(email=5), "email: must be a string or null, not an integer"),
    (_config(runtimes={"prod": {"version": "latest"}}),
     "runtimes.prod.version: must be a version: one to four numbers separated by dots, like 11.20.1"),
    (_config(runtimes={"prod": {"version": "11.2\n"}}),
     "runtimes.prod.version: must be a version: one to four numbers separated by dots, like 11.20.1"),
])
def test_a_rejection_names_the_field_and_says_what_it_must_be(raw: bytes, reason: str) -> None:
    rejection = decode(raw)
    assert isinstance(rejection, Rejection), rejection
    assert rejection.reason == reason


def test_no_reason_keeps_the_validators_own_wording() -> None:
    """msgspec's phrases (``Expected `int` >= 1``, ``Invalid enum value``) never reach a dead letter."""
    samples = [_config(platform="o12"), _config(thresholds=[0]), _config(capacity={"external": -1}),
               _config(runtimes={"prod": {"version": "x"}}), _login(user_id=[1]), _config(hysteresis="high")]
    reasons = [result.reason for result in map(decode, samples) if isinstance(result, Rejection)]
    assert len(reasons) == len(samples)
    assert not [r for r in reasons if "Expected `" in r or "Invalid enum" in r or "regex" in r], reasons
