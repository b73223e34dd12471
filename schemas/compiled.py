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
    """The sources under ``root``'s packages newer than their compiled module, as paths from ``root``."""
    stale = []
    for package in PACKAGES:
        for compiled in sorted((root / package).rglob("*.so")):
            source = compiled.with_name(compiled.name.split(".")[0] + ".py")
            if source.is_file() and source.stat().st_mtime > compiled.stat().st_mtime:
                stale.append(str(source.relative_to(root)))
    return stale


def refuse_stale(root: Path) -> None:
    """Raises ImportError naming the stale modules and the command that rebuilds them."""
    stale = stale_modules(root)
    if stale:
        raise ImportError(f"{', '.join(stale)} changed after its compiled module was built, which would run "
                          f"instead of it: run {COMMAND}")
