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


CLASS_LINES = 300
"""The longest class: past it, a class holds more than one job."""

SPLIT_ELSEWHERE = {"streams/http/views.py Views"}
"""Classes over the limit that another branch splits; remove each once that branch is merged."""


def test_no_class_in_the_packages_is_longer_than_three_hundred_lines() -> None:
    long = []
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ClassDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    name = f"{path.relative_to(REPO)} {node.name}"
                    if lines > CLASS_LINES and name not in SPLIT_ELSEWHERE:
                        long.append(f"{name}: {lines} lines")
    assert long == []


def test_only_the_store_package_imports_redis() -> None:
    """Everything else knows the store by its ports (``counters.ports``) and ``StoreUnavailable``."""
    offending = [f"{path.relative_to(REPO)} imports {name}"
                 for path in sorted((REPO / "streams").rglob("*.py")) if "store" not in path.relative_to(REPO).parts
                 for name in sorted(_modules_imported(path)) if name.split(".")[0] == "redis"]
    assert offending == []


def test_the_kafka_package_does_not_import_the_stages() -> None:
    """The consumer hands ``Inbound`` messages to whatever handles them; the stages import Kafka's side."""
    offending = [f"{path.relative_to(REPO)} imports {name}"
                 for path in sorted((REPO / "streams" / "kafka").rglob("*.py"))
                 for name in sorted(_modules_imported(path)) if name.startswith("streams.worker")]
    assert offending == []
