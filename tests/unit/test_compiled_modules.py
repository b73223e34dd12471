"""The compiled modules (deploy/local/compile, schemas/compiled.py): a machine that cannot compile runs
pure Python without failing, and a compiled module older than its source never runs instead of it."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType

from schemas.compiled import stale_modules

REPO = Path(__file__).resolve().parents[2]
COMPILE = REPO / "deploy" / "local" / "compile"
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


def compile_script() -> ModuleType:
    """deploy/local/compile as a module (it has no .py suffix: it is a command)."""
    loader = SourceFileLoader("deploy_local_compile", str(COMPILE))
    spec = spec_from_loader(loader.name, loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    return module


def tree_with_an_old_build(root: Path) -> Path:
    """Three empty packages and one compiled module left from an earlier build."""
    for package in ("counters", "schemas", "streams/worker"):
        (root / package).mkdir(parents=True, exist_ok=True)
    (root / "counters" / "engine.py").write_text("")
    compiled = root / "counters" / f"engine{SUFFIX}"
    compiled.write_bytes(b"")
    return compiled


def run_compile(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    empty = root / "empty-bin"
    empty.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(COMPILE), "--root", str(root)], capture_output=True, text=True,
                          env={**os.environ, "PATH": str(empty), **env}, timeout=120, check=False)


def test_without_a_c_compiler_the_compile_step_warns_in_one_line_exits_0_and_leaves_pure_python(tmp_path: Path) -> None:
    compiled = tree_with_an_old_build(tmp_path)
    done = run_compile(tmp_path)  # PATH holds no cc or gcc
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("[compile] warning:"), done.stderr
    assert "pure Python" in lines[0] and "C compiler" in lines[0]
    assert not compiled.exists()  # an old build must not outlive the fallback


def test_endusers_pure_python_removes_the_compiled_modules(tmp_path: Path) -> None:
    compiled = tree_with_an_old_build(tmp_path)
    done = run_compile(tmp_path, ENDUSERS_PURE_PYTHON="1")
    assert done.returncode == 0, done.stderr
    assert "running pure Python" in done.stderr
    assert not compiled.exists()


def test_a_compiled_module_older_than_its_source_refuses_to_import(tmp_path: Path) -> None:
    shutil.copytree(REPO / "schemas", tmp_path / "schemas", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    compiled = tree_with_an_old_build(tmp_path)
    source = tmp_path / "counters" / "engine.py"
    os.utime(compiled, (1_000_000, 1_000_000))  # built, then the source was edited
    assert stale_modules(tmp_path) == ["counters/engine.py"]
    imported = subprocess.run([sys.executable, "-c", "import schemas"], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=60, check=False)
    assert imported.returncode != 0
    assert "counters/engine.py changed (or went) after its compiled module was built" in imported.stderr
    assert "deploy/local/compile" in imported.stderr
    os.utime(source, (500_000, 500_000))  # a fresh build: no complaint
    (tmp_path / "schemas" / f"native__mypyc{SUFFIX}").write_bytes(b"")  # mypyc's library: no source
    assert stale_modules(tmp_path) == []
    source.unlink()  # the module moved away: its old compiled code must not stay importable
    assert stale_modules(tmp_path) == ["counters/engine.py"]


def _defines_a_struct(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.ClassDef) and any(ast.unparse(base).endswith("Struct") for base in node.bases)
               for node in ast.walk(tree))


def test_the_compiled_modules_exist_and_define_no_msgspec_struct() -> None:
    """A struct's annotations drive msgspec's decoder, and schemas/events.py gives them differently to mypy
    (``TYPE_CHECKING``), which mypyc follows: a struct stays in a pure module."""
    modules = compile_script().MODULES
    assert modules
    for name in modules:
        path = REPO / name
        assert path.is_file(), name
        assert not _defines_a_struct(path), name
    assert _defines_a_struct(REPO / "counters" / "state.py")  # the check sees one


def test_an_unchanged_build_of_touched_sources_is_dated_anew_instead_of_refused(tmp_path: Path) -> None:
    """A checkout rewrites files without changing them: the stamp (their hashes) says the build is
    theirs, so the compile step re-dates it (no compiler needed) and the import check passes again."""
    compiled = tree_with_an_old_build(tmp_path)
    os.utime(compiled, (1_000_000, 1_000_000))
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "mypyc.sha256").write_text(compile_script().stamp(tmp_path) + "\n")
    assert stale_modules(tmp_path) == ["counters/engine.py"]
    done = run_compile(tmp_path)  # no compiler on PATH: not needed
    assert done.returncode == 0 and "up to date" in done.stderr, done.stderr
    assert compiled.exists() and stale_modules(tmp_path) == []
    (tmp_path / "counters" / "engine.py").write_text("CHANGED = True\n")  # a real change: not up to date
    done = run_compile(tmp_path)
    assert "warning" in done.stderr and not compiled.exists()


def test_a_records_field_times_share_one_int_object_in_the_build_that_runs() -> None:
    # the heap per record counts on it (docs/benchmarks.md, heap): a compiled engine boxes each
    # assignment of a time anew, one int object per field instead of one per record
    import orjson

    from counters import Replay
    from schemas.events import parse_rfc3339

    replay = Replay(now=parse_rfc3339("2026-12-01T00:00:00Z"))
    replay.feed_lines([orjson.dumps({"type": "login", "id": f"e{day}", "subscription": "acme", "user_id": "u1",
                                     "email": "ann@example.com", "username": "ann",
                                     "time": f"2026-11-0{day}T00:00:00Z"}) for day in (1, 2)])
    [record] = replay.states["acme"].records.values()
    assert record.email_t == record.updated == record.last_login
    assert record.email_t is record.updated and record.username_t is record.updated
    assert record.last_login is record.updated
