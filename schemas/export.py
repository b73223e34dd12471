"""Write the JSON Schema files of the input and output contracts: ``python -m schemas.export [DIR]``.

The input schemas (``login``, ``profile``, ``visit``, ``config``) are generated from the msgspec structs in
``schemas.events``, which stay the single source of truth. The output schemas (``capacity-event``,
``counts``) are written by hand below, because ``schemas.outputs`` holds a dataclass and a
``typing.TypedDict`` (kept as they are read); ``tests/unit/test_schema_files.py``
checks that they name exactly the fields of those types and that the files on disk are current.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from schemas.events import SOURCE_TOPICS, ConfigEvent, LoginEvent, ProfileEvent, VisitEvent
from schemas.limits import MAX_EVENT_BYTES

DIRECTORY = Path(__file__).resolve().parent / "json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:endusers:schema:"

INPUTS: dict[str, tuple[type[msgspec.Struct], str]] = {
    "login": (LoginEvent, "Login event"),
    "profile": (ProfileEvent, "Profile event"),
    "visit": (VisitEvent, "Visit event"),
    "config": (ConfigEvent, "Config event"),
}

_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_LEVEL: dict[str, Any] = {"type": "integer", "minimum": 0, "description": "A threshold percentage, or 0 below every threshold."}
_SCOPE_COUNTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "internal": {**_COUNT, "description": "Internal individuals."},
        "external": {**_COUNT, "description": "External individuals."},
        "records": {**_COUNT, "description": "Countable records, without deduplication."},
    },
    "required": ["internal", "external", "records"],
    "additionalProperties": False,
}

CAPACITY_EVENT: dict[str, Any] = {
    "description": "A capacity level change of one class of one subscription (topic <prefix>.capacity; see docs/rules.md, capacity levels).",
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid",
               "description": "Deterministic: the same change always gets the same id, so consumers can drop repeats."},
        "subscription": {"type": "string", "minLength": 1},
        "user_class": {"enum": ["internal", "external"]},
        "previous_level": _LEVEL,
        "level": _LEVEL,
        "direction": {"enum": ["up", "down"]},
        "count": {**_COUNT, "description": "The subscription's count of the class after the change."},
        "capacity": {**_COUNT, "description": "The licensed capacity of the class."},
        "exceeded": {"type": "boolean", "description": "count > capacity"},
        "time": {"type": "string", "format": "date-time",
                 "description": "The effective time of the triggering event (RFC 3339, UTC)."},
        "trigger": {"type": ["string", "null"], "description": "The id of the input event that caused it, if any."},
    },
    "required": ["id", "subscription", "user_class", "previous_level", "level", "direction", "count", "capacity",
                 "exceeded", "time", "trigger"],
    "additionalProperties": False,
}

COUNTS: dict[str, Any] = {
    "description": (
        "A subscription's counts (docs/events.md, counts). Messages on topic <prefix>.counts also carry "
        "\"subscription\"."
    ),
    "type": "object",
    "properties": {
        "subscription": {"type": "string", "minLength": 1},
        "internal": _SCOPE_COUNTS["properties"]["internal"],
        "external": _SCOPE_COUNTS["properties"]["external"],
        "records": _SCOPE_COUNTS["properties"]["records"],
        "runtimes": {"type": "object", "additionalProperties": {"$ref": "#/$defs/ScopeCounts"},
                     "description": "Per runtime; runtimes with no countable records may be omitted."},
        "providers": {"type": "object", "additionalProperties": _COUNT,
                      "description": "Countable records per user provider, without deduplication."},
        "excluded": {**_COUNT, "description": (
            "Records that would count but are not end users (an excluded provider, or marked excluded); "
            "never in internal or external.")},
        "anonymous_sessions": {**_COUNT, "description": "Distinct anonymous sessions (an estimate within 2%)."},
        "levels": {
            "type": "object",
            "properties": {"internal": _LEVEL, "external": _LEVEL},
            "required": ["internal", "external"],
            "additionalProperties": False,
        },
    },
    "required": ["internal", "external", "records", "runtimes", "providers", "excluded", "anonymous_sessions",
                 "levels"],
    "additionalProperties": False,
    "$defs": {"ScopeCounts": _SCOPE_COUNTS},
}

OUTPUTS: dict[str, tuple[dict[str, Any], str]] = {
    "capacity-event": (CAPACITY_EVENT, "Capacity-change event"),
    "counts": (COUNTS, "Subscription counts"),
}


def _document(name: str, title: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with ``$schema``, ``$id`` and ``title`` first (stable, readable files)."""
    body = {key: value for key, value in schema.items() if key not in ("$schema", "$id", "title")}
    return {"$schema": DIALECT, "$id": f"{ID_PREFIX}{name}", "title": title, **body}


def _input_schema(model: type[msgspec.Struct], kind: str) -> dict[str, Any]:
    """msgspec's schema of one event struct, with the struct at the root (not behind a ``$ref``) and its
    tag as ``{"type": "string", "const": kind}``; the structs it uses stay in ``$defs``."""
    generated = msgspec.json.schema(model)
    definitions = generated["$defs"]
    schema: dict[str, Any] = definitions.pop(model.__name__)
    schema.pop("title", None)
    schema["properties"]["type"] = {"type": "string", "const": kind}
    if definitions:
        schema["$defs"] = definitions
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """Every schema by file name (``login.schema.json`` ...), generated in memory."""
    out = {}
    for name, (model, title) in INPUTS.items():
        schema = _input_schema(model, name)
        schema["$comment"] = (f"At most {MAX_EVENT_BYTES} bytes (1 MiB) of JSON per event. Accepted only on the "
                              f"topic <prefix>.{SOURCE_TOPICS[name]}; any other topic dead-letters it.")
        out[f"{name}.schema.json"] = _document(name, title, schema)
    for name, (schema, title) in OUTPUTS.items():
        out[f"{name}.schema.json"] = _document(name, title, schema)
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(directory: Path = DIRECTORY) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, schema in schemas().items():
        path = directory / filename
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    for path in write(Path(args[0]) if args else DIRECTORY):
        print(path)


if __name__ == "__main__":
    main()
