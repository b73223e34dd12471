"""The reference model (tests/model.py) reproduces every example in examples/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.compare import anonymous_sessions, comparable_counts, comparable_events
from tests.fixtures.examples import example_files
from tests.model import model_replay

CASES = example_files()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_model_reproduces_example(path: Path) -> None:
    expected = json.loads(path.with_name(path.stem + ".expected.json").read_text())
    got = model_replay(path.read_text().splitlines())
    assert comparable_counts(got) == comparable_counts(expected)
    assert got["rejected"] == expected["rejected"]
    # Compare capacity events on the keys the expected file lists (no id/time).
    exp_events = expected["capacity_events"]
    keys = tuple(sorted({k for e in exp_events for k in e})) or ("level",)
    assert comparable_events(got, keys) == comparable_events(expected, keys)
    for name, n in anonymous_sessions(expected).items():
        assert abs(anonymous_sessions(got)[name] - n) <= max(1, n * 0.02)
