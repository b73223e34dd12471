"""The JSON Schema files under schemas/json/ are current, and they agree with what replay accepts.

Regenerate them with ``python -m schemas.export`` after changing schemas/events.py or schemas/export.py.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest

from counters.replay import Replay
from schemas import export
from schemas.codec import Rejection, decode, validate
from schemas.outputs import CapacityEvent, ScopeCounts, SubscriptionCounts
from schemas.events import parse_rfc3339
from tests.fixtures.examples import REPLAY_NOW, example_files

NOW = parse_rfc3339(REPLAY_NOW)

KINDS = ("login", "profile", "visit", "config")


def _on_disk(filename: str) -> str:
    return (export.DIRECTORY / filename).read_text(encoding="utf-8")


@pytest.mark.parametrize("filename", sorted(export.schemas()))
def test_schema_file_is_in_sync_with_the_models(filename: str) -> None:
    assert (export.DIRECTORY / filename).exists(), f"run: python -m schemas.export ({filename} missing)"
    assert _on_disk(filename) == export.render(export.schemas()[filename]), "run: python -m schemas.export"


def test_schema_directory_holds_only_exported_files() -> None:
    assert sorted(p.name for p in export.DIRECTORY.glob("*.json")) == sorted(export.schemas())


def test_every_schema_has_id_title_and_dialect() -> None:
    for filename, schema in export.schemas().items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == export.ID_PREFIX + filename.removesuffix(".schema.json")
        assert schema["title"]


def test_input_schemas_require_type_subscription_and_their_key_fields() -> None:
    files = export.schemas()
    required = {kind: set(files[f"{kind}.schema.json"]["required"]) for kind in KINDS}
    assert required == {
        "login": {"type", "subscription", "user_id"},
        "profile": {"type", "subscription", "user_id", "op"},
        "visit": {"type", "subscription", "session_id"},
        "config": {"type", "subscription"},
    }
    for kind in KINDS:
        properties = files[f"{kind}.schema.json"]["properties"]
        assert properties["type"]["const"] == kind
        assert properties["time"]["anyOf"][0]["type"] == "string"  # producers send RFC 3339 text
    assert files["login.schema.json"]["properties"]["user_id"]["anyOf"][1] == {"type": "integer"}


def test_capacity_event_schema_names_exactly_the_dataclass_fields() -> None:
    schema = export.schemas()["capacity-event.schema.json"]
    fields = [f.name for f in dataclasses.fields(CapacityEvent)]
    assert list(schema["properties"]) == fields
    assert schema["required"] == fields


def test_counts_schema_names_exactly_the_typeddict_keys() -> None:
    schema = export.schemas()["counts.schema.json"]
    keys = list(typing.get_type_hints(SubscriptionCounts))
    assert [k for k in schema["properties"] if k != "subscription"] == keys
    assert schema["required"] == keys
    scope = schema["$defs"]["ScopeCounts"]
    assert list(scope["properties"]) == list(typing.get_type_hints(ScopeCounts)) == scope["required"]


def test_export_writes_the_files(tmp_path: Path) -> None:
    written = export.write(tmp_path)
    assert sorted(p.name for p in written) == sorted(export.schemas())
    for path in written:
        assert path.read_text(encoding="utf-8") == _on_disk(path.name)


# --- the schemas against real input (needs the jsonschema package) ------------------------------------


def _example_lines() -> list[tuple[str, bytes]]:
    out = []
    for path in example_files():
        for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
            line = raw.strip()
            if line and not line.startswith(b"#"):
                out.append((f"{path.name}:{number}", line))
    return out


def _validator(filename: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (add it to the test extra)")
    schema = export.schemas()[filename]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_accepted_example_line_validates_against_its_kinds_schema() -> None:
    validators = {kind: _validator(f"{kind}.schema.json") for kind in KINDS}
    checked = 0
    for place, line in _example_lines():
        replay = Replay(now=NOW)
        if replay.feed(line) is not None:
            continue
        document = orjson.loads(line)
        errors = [e.message for e in validators[document["type"]].iter_errors(document)]
        assert not errors, f"{place}: {errors}"
        checked += 1
    assert checked > 50


def test_example_lines_refused_by_validation_are_refused_by_the_schema_too() -> None:
    validators = {kind: _validator(f"{kind}.schema.json") for kind in KINDS}
    checked = 0
    for place, line in _example_lines():
        if not isinstance(decode(line), Rejection):
            continue
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(document, dict) or document.get("type") not in KINDS:
            continue
        assert not validators[document["type"]].is_valid(document), place
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize(
    "document",
    [
        {"type": "login", "subscription": "acme", "user_id": 42, "time": "2026-01-01T00:00:00+01:00", "extra": [1]},
        {"type": "profile", "subscription": "acme", "user_id": "1", "op": "upsert", "email": None, "active": False},
        {"type": "visit", "subscription": "acme", "session_id": "s", "phone": "+1 555"},
        {"type": "config", "subscription": "acme", "capacity": {"internal": None, "external": 0},
         "runtimes": {"prod": {"version": "11.14.0"}}, "thresholds": [80], "hysteresis": 2.5},
        {"type": "login", "subscription": "acme", "user_id": "1", "email": "x" * 255},
        {"type": "login", "subscription": "acme", "user_id": "1", "time": "2026-01-01T00:00:00"},
        {"type": "login", "subscription": "acme", "user_id": True},
        {"type": "profile", "subscription": "acme", "user_id": "1", "op": "merge"},
        {"type": "config", "subscription": "acme", "thresholds": [0]},
        {"type": "visit", "subscription": "", "session_id": "s"},
        # each rule the decoder enforces, on both sides of its bound
        {"type": "login", "subscription": "acme", "user_id": "1", "runtime": None, "tenant": None, "provider": None},
        {"type": "login", "subscription": "acme", "user_id": "1", "runtime": ""},
        {"type": "login", "subscription": "acme", "user_id": "x" * 256, "name": "n" * 256},
        {"type": "login", "subscription": "acme", "user_id": "x" * 257},
        {"type": "login", "subscription": "acme", "user_id": ""},
        {"type": "login", "subscription": "acme", "user_id": 2**63 - 1},
        {"type": "login", "subscription": "acme", "user_id": "1", "time": "2026-01-01T00:00:00.1234567-05:00"},
        {"type": "login", "subscription": "acme", "user_id": "1", "time": "2026-01-01"},
        {"type": "login", "subscription": "acme", "user_id": "1", "time": 1767225600},
        {"type": "login", "subscription": "acme", "user_id": "1", "default_tenant": "yes"},
        {"type": "profile", "subscription": "acme", "user_id": "1", "op": "delete", "active": 1},
        {"type": "visit", "subscription": "acme", "session_id": "s", "email": "e" * 254},
        {"type": "config", "subscription": "acme", "capacity": {"internal": -1}},
        {"type": "config", "subscription": "acme", "capacity": {"internal": 1.5}},
        {"type": "config", "subscription": "acme", "platform": "o12"},
        {"type": "config", "subscription": "acme", "domains": ["x" * 257]},
        {"type": "config", "subscription": "acme", "thresholds": [1000, 1]},
        {"type": "config", "subscription": "acme", "thresholds": [1001]},
        {"type": "config", "subscription": "acme", "hysteresis": 100.5},
        {"type": "config", "subscription": "acme", "runtimes": {"": {"version": "1"}}},
        {"type": "config", "subscription": "acme", "runtimes": {"prod": {"version": "1.2.3.4.5"}}},
        {"type": "config", "subscription": "acme", "runtimes": {"prod": {"version": "1234567"}}},
        {"type": "config", "subscription": "acme", "runtimes": {"prod": {"version": None}}},
    ],
)
def test_schema_and_validation_agree(document: dict[str, Any]) -> None:
    validator = _validator(f"{document['type']}.schema.json")
    assert validator.is_valid(document) == (not isinstance(validate(document), Rejection))


def test_outputs_of_the_examples_validate_against_the_output_schemas() -> None:
    capacity, counts = _validator("capacity-event.schema.json"), _validator("counts.schema.json")
    events = 0
    for path in example_files():
        replay = Replay(now=NOW)
        replay.feed_lines(path.read_bytes().splitlines())
        document = replay.document()
        for event in document["capacity_events"]:
            assert not list(capacity.iter_errors(event)), event
            events += 1
        for name, subscription in document["subscriptions"].items():
            assert counts.is_valid(subscription)
            assert counts.is_valid({"subscription": name, **subscription})
    assert events > 0
