"""The layers' import rules, read from the source: ``streams/`` reaches the engine only through its
front door (``counters/__init__.py``), so the engine's modules can move and split behind it."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import counters

REPO = Path(__file__).resolve().parents[2]


def _engine_imports(path: Path) -> list[tuple[int, str]]:
    """Each import of the engine in one file: (line, what is imported, as written)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {alias.name}") for alias in node.names
                      if alias.name.split(".")[0] == "counters"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None \
                and node.module.split(".")[0] == "counters":
            found += [(node.lineno, f"from {node.module} import {alias.name}") for alias in node.names]
    return found


def _breaks_the_rule(statement: str) -> bool:
    """Anything but ``from counters import <a name of counters.__all__>``."""
    prefix = "from counters import "
    if not statement.startswith(prefix):
        return True  # import counters.x, from counters.x import y
    name = statement[len(prefix):]
    return name not in counters.__all__


def test_streams_imports_only_the_engines_front_door() -> None:
    files = sorted((REPO / "streams").rglob("*.py"))
    assert files
    offending = [f"{path.relative_to(REPO)}:{line}: {statement}"
                 for path in files for line, statement in _engine_imports(path) if _breaks_the_rule(statement)]
    assert offending == [], "streams/ must import the engine as `from counters import <name in __all__>`:\n" + \
        "\n".join(offending)


def test_the_front_door_exports_names_not_modules() -> None:
    """A module in ``__all__`` would let the whole of it through the door."""
    assert len(set(counters.__all__)) == len(counters.__all__)
    for name in counters.__all__:
        assert not isinstance(getattr(counters, name), types.ModuleType), name


def test_the_rule_reader_sees_each_way_round_the_front_door(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("import counters.engine\nfrom counters.state import Record\nfrom counters import individuals\n"
                      "from counters import apply\nimport schemas.codec\n\ndef f():\n    from counters.replay import Replay\n")
    statements = _engine_imports(source)
    assert [(line, s) for line, s in statements if _breaks_the_rule(s)] == [
        (1, "import counters.engine"), (2, "from counters.state import Record"),
        (3, "from counters import individuals"), (8, "from counters.replay import Replay")]


def _modules_imported(path: Path) -> set[str]:
    """The modules one file imports (absolute imports only: the project uses no others)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None}


def _imported_packages(path: Path) -> set[str]:
    """The top-level packages one file imports."""
    return {name.split(".")[0] for name in _modules_imported(path)}


LAYERS = {"schemas": set(), "counters": {"schemas"}, "streams": {"schemas", "counters"}}
"""Each package and the project packages it may import: the arrows go one way, schemas <- counters <- streams."""


def test_the_packages_import_one_way_schemas_then_counters_then_streams() -> None:
    offending = []
    for package, allowed in LAYERS.items():
        for path in sorted((REPO / package).rglob("*.py")):
            reached = _imported_packages(path) & (set(LAYERS) - {package})
            offending += [f"{path.relative_to(REPO)} imports {name}" for name in sorted(reached - allowed)]
    assert offending == []


FUNCTION_LINES = 50
"""The longest function a reader should have to hold in mind (tests excepted)."""


def test_no_function_in_the_packages_is_longer_than_fifty_lines() -> None:
    long = []
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert long == []


STREAMS = REPO / "streams"
LOOSE_MODULES = 3
"""Modules allowed at ``streams/`` top level beside the package marker: ``__main__``, the settings and
the time slices of long work (the store's loads and the stages both slice)."""

OPEN_TO_ALL = {"settings", "slices"}

ROOMS = {
    "observe": set(),
    "store": {"observe"},
    "kafka": {"observe"},
    "http": {"observe"},
    "cli": {"observe", "store", "kafka.publish", "kafka.messages", "kafka.errors", "http", "worker.app", "gateway.app",
            "connect"},
    "gateway": {"observe", "http.auth", "kafka.publish", "kafka.messages", "kafka.errors", "store.scim"},
    "connect": {"observe", "store", "kafka.publish", "kafka.messages", "kafka.errors", "kafka.external"},
    "worker": {"observe", "store", "kafka", "http", "worker"},
}
"""Each room of ``streams/`` and the rooms it may import (the loose modules are open to all). Only the worker
assembles the pieces; the command line reaches the worker through its wiring (``worker.app``) alone, and
neither it nor the HTTP side imports the source consumer or the stages. The gateway faces the identity
providers: it checks tokens and publishes, and reaches neither the workers nor the store, but for the SCIM
resources it keeps (``store.scim``)."""

OWNED_LIBRARIES = {"redis": {"store"}, "aiokafka": {"kafka", "worker"}}
"""Client libraries each reached from one room only: the store is a port, Kafka stays with its clients."""


def _room(path: Path) -> str:
    return path.relative_to(STREAMS).parts[0].removesuffix(".py")


def _streams_imports(path: Path) -> set[str]:
    """The ``streams`` modules one file imports, without the ``streams.`` prefix (``kafka.consumer``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names |= {node.module} | ({f"{node.module}.{a.name}" for a in node.names} if node.module == "streams" else set())
    return {name.removeprefix("streams.") for name in names if name.startswith("streams.")}


def _allowed(room: str, imported: str) -> bool:
    target = imported.split(".")[0]
    if target == room or target in OPEN_TO_ALL:
        return True
    return any(imported == rule or imported.startswith(rule + ".") for rule in ROOMS[room])


def test_streams_is_a_house_of_rooms_with_few_loose_modules() -> None:
    rooms = sorted(p.name for p in STREAMS.iterdir() if (p / "__init__.py").is_file())
    loose = sorted(p.name for p in STREAMS.glob("*.py") if p.name != "__init__.py")
    assert set(rooms) == set(ROOMS), rooms
    assert len(loose) <= LOOSE_MODULES, loose


def test_each_room_imports_only_the_rooms_it_may() -> None:
    offending = [f"{path.relative_to(REPO)} imports streams.{name}"
                 for path in sorted(STREAMS.glob("*/**/*.py")) for name in sorted(_streams_imports(path))
                 if not _allowed(_room(path), name)]
    assert offending == []


def test_client_libraries_are_imported_only_by_their_rooms() -> None:
    offending = [f"{path.relative_to(REPO)} imports {library}"
                 for path in sorted(STREAMS.rglob("*.py"))
                 for library, rooms in OWNED_LIBRARIES.items()
                 if library in _imported_packages(path) and _room(path) not in rooms]
    assert offending == []


def test_the_room_reader_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from streams.kafka.consumer import consume\nfrom streams import settings\n"
                      "import streams.worker.app\n")
    assert _streams_imports(sample) == {"kafka.consumer", "settings", "worker.app"}
    assert not _allowed("http", "kafka.consumer") and _allowed("cli", "worker.app")
    assert not _allowed("cli", "worker.count") and _allowed("worker", "kafka.consumer")
    assert not _allowed("cli", "kafka.consumer") and _allowed("cli", "kafka.publish")


CLASS_LINES = 300
"""The largest class a reader should have to hold in mind."""


def test_no_class_in_the_packages_is_longer_than_three_hundred_lines() -> None:
    long = [f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
            for package in LAYERS for path in sorted((REPO / package).rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.ClassDef) and (node.end_lineno or 0) - node.lineno + 1 > CLASS_LINES]
    assert long == []
