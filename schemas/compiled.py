"""Refuses compiled modules older than their source, at import (``deploy/local/compile`` builds them).

An extension module (``engine.cpython-311-x86_64-linux-gnu.so``) wins over ``engine.py`` at import, so a
module edited after the last compile would silently run its old code: the tests would pass or fail
for code that is not the code under review, and a worker would count by yesterday's rules. Every
compiled module imports mypyc's shared library ``schemas/native__mypyc``, which imports this package
first, so this check runs before any compiled code does, whichever module is imported first.
It costs a directory walk of the three packages; without compiled modules (the container image, a
pure-Python run) it finds nothing.
"""

from __future__ import annotations

from pathlib import Path

PACKAGES = ("counters", "schemas", "streams")
COMMAND = "deploy/local/compile (or ENDUSERS_PURE_PYTHON=1 deploy/local/compile to run pure Python)"


def stale_modules(root: Path) -> list[str]:
    """The sources under ``root``'s packages newer than their compiled module, and the sources gone
    (moved or deleted) whose compiled module is still there, as paths from ``root``. mypyc's shared
    library (``*__mypyc``) has no source of its own."""
    stale = []
    for package in PACKAGES:
        for compiled in sorted((root / package).rglob("*.so")):
            stem = compiled.name.split(".")[0]
            source = compiled.with_name(stem + ".py")
            if not stem.endswith("__mypyc") and (not source.is_file()
                                                 or source.stat().st_mtime > compiled.stat().st_mtime):
                stale.append(str(source.relative_to(root)))
    return stale


def refuse_stale(root: Path) -> None:
    """Raises ImportError naming the stale modules and the command that rebuilds them."""
    stale = stale_modules(root)
    if stale:
        raise ImportError(f"{', '.join(stale)} changed (or went) after its compiled module was built, which "
                          f"would run instead of it: run {COMMAND}")
