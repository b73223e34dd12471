"""Every shared example replays to its expected output, through the real ``endusers replay`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.examples import assert_counts_match, assert_events_match, example_files, expected_for


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_replay_matches_expected(path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "streams", "replay", str(path)], capture_output=True, check=True)
    actual, expected = json.loads(run.stdout), expected_for(path)
    assert_counts_match(actual["subscriptions"], expected["subscriptions"])
    assert_events_match(actual["capacity_events"], expected["capacity_events"])
    assert actual["rejected"] == expected["rejected"]
    assert run.stderr.decode().count(": rejected: ") == expected["rejected"]


def test_replay_reports_rejections_with_file_line_and_reason() -> None:
    path = next(p for p in example_files() if "rejects" in p.name)
    run = subprocess.run([sys.executable, "-m", "streams", "replay", str(path)], capture_output=True, check=True)
    lines = run.stderr.decode().splitlines()
    assert f"{path}:3: rejected: not JSON" in lines[0]
    assert any(f"{path}:4: rejected: subscription: required field missing" == line for line in lines)
    assert any(f"{path}:8: rejected: time:" in line for line in lines)


def test_replay_exits_2_when_a_file_cannot_be_read(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "streams", "replay", str(tmp_path / "missing.jsonl")], capture_output=True)
    assert run.returncode == 2
    assert b"cannot read" in run.stderr
