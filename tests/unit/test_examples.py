"""Every shared example replays to its expected output, through the real ``endusers replay`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.examples import (
    REPLAY_NOW,
    assert_counts_match,
    assert_events_match,
    example_files,
    expected_for,
)


def replay(*args: str) -> subprocess.CompletedProcess[bytes]:
    """``endusers replay --now REPLAY_NOW ARGS``: the result never depends on the day of the run."""
    return subprocess.run([sys.executable, "-m", "streams", "replay", "--now", REPLAY_NOW, *args], capture_output=True)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_replay_matches_expected(path: Path) -> None:
    run = replay(str(path))
    assert run.returncode == 0, run.stderr.decode()
    actual, expected = json.loads(run.stdout), expected_for(path)
    assert_counts_match(actual["subscriptions"], expected["subscriptions"])
    assert_events_match(actual["capacity_events"], expected["capacity_events"])
    assert actual["rejected"] == expected["rejected"]
    assert run.stderr.decode().count(": rejected: ") == expected["rejected"]


def test_replay_reports_rejections_with_file_line_and_reason() -> None:
    path = next(p for p in example_files() if "rejects" in p.name)
    run = replay(str(path))
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stderr.decode().splitlines()
    assert f"{path}:3: rejected: not JSON" in lines[0]
    assert any(f"{path}:4: rejected: subscription: required field missing" == line for line in lines)
    assert any(f"{path}:8: rejected: time:" in line for line in lines)


def test_replay_exits_2_when_a_file_cannot_be_read(tmp_path: Path) -> None:
    run = replay(str(tmp_path / "missing.jsonl"))
    assert run.returncode == 2
    assert b"cannot read" in run.stderr


def test_replay_rejects_times_beyond_max_future_of_its_pinned_clock(tmp_path: Path) -> None:
    events = [
        {"type": "profile", "op": "upsert", "subscription": "acme", "user_id": "1", "time": "2026-11-30T09:00:00Z"},
        {"type": "profile", "op": "delete", "subscription": "acme", "user_id": "1", "time": "9999-01-01T00:00:00Z"},
        {"type": "login", "subscription": "acme", "user_id": "1"},  # untimed: after the upsert, not after 9999
        {"type": "login", "subscription": "acme", "user_id": "2", "time": "2026-12-01T23:00:00Z"},  # now + 23h
        {"type": "login", "subscription": "acme", "user_id": "3", "time": "2026-12-02T01:00:00Z"},  # now + 25h
    ]
    path = tmp_path / "future.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))

    run = replay(str(path))
    assert run.returncode == 0, run.stderr.decode()
    assert json.loads(run.stdout)["subscriptions"]["acme"]["records"] == 2
    rejected = [line for line in run.stderr.decode().splitlines() if ": rejected: " in line]
    assert rejected == [
        f"{path}:2: rejected: time is in the future: 9999-01-01T00:00:00Z is more than 24h ahead of {REPLAY_NOW}",
        f"{path}:5: rejected: time is in the future: 2026-12-02T01:00:00Z is more than 24h ahead of {REPLAY_NOW}",
    ]

    wider = replay("--max-future", "2d", str(path))
    assert json.loads(wider.stdout)["subscriptions"]["acme"]["records"] == 3
    from_env = subprocess.run([sys.executable, "-m", "streams", "replay", "--now", REPLAY_NOW, str(path)],
                              capture_output=True, env={**os.environ, "ENDUSERS_MAX_FUTURE": "1h"})
    assert json.loads(from_env.stdout)["subscriptions"]["acme"]["records"] == 1

    later = replay(str(path)).stdout
    assert later == run.stdout, "a pinned clock gives the same output, untimed events included"


@pytest.mark.parametrize("args, message", [(["--now", "tomorrow"], "--now"),
                                           (["--max-future", "1 week"], "--max-future")])
def test_replay_refuses_a_bad_clock_or_horizon(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    run = subprocess.run([sys.executable, "-m", "streams", "replay", *args, str(path)], capture_output=True)
    assert run.returncode == 2 and f"Invalid value for '{message}'" in run.stderr.decode()
