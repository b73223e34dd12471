"""The packages stay mypy-clean (strict; configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_counters_schemas_and_streams_are_mypy_clean(tmp_path: Path) -> None:
    # A fresh cache: an incremental cache left by an earlier run can hide errors that CI then finds.
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
