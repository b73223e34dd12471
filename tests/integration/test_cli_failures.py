"""The command line fails the way people expect (docs/cli.md, exit statuses): a service that cannot
be reached ends a command in one line naming the service, its address and the setting that chose it,
with status 3 and no resource warning; ``publish`` checks every line as the worker will and sends
nothing invalid.

The services are "stopped" by pointing the settings at closed loopback ports, so these tests need no
running Kafka or Redis; the publishing tests use the test session's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from schemas.outputs import format_instant
from tests.fixtures.generate import write_jsonl
from tests.fixtures.pipeline import Deployment, DeploymentFactory, free_port

LOGIN = {"type": "login", "subscription": "acme", "user_id": "1", "email": "ann@example.com"}


def _endusers(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command as a person runs it, resource warnings turned into errors (printed on stderr)."""
    return subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-m", "streams", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def stopped(tmp_path: Path) -> dict[str, str]:
    """An environment whose Redis (with a password) and Kafka are closed loopback ports."""
    return {**os.environ, "ENDUSERS_ENV": "development",
            "ENDUSERS_REDIS": f"redis://reader:s3cret@127.0.0.1:{free_port()}/0",
            "ENDUSERS_KAFKA": f"kafka://127.0.0.1:{free_port()}"}


REDIS_COMMANDS = [["counts"], ["counts", "--json"], ["audit", "acme"], ["domains", "acme"], ["history", "acme"],
                  ["explain", "acme", "--email", "ann@example.com"], ["admission", "acme", "--email", "ann@example.com"]]
KAFKA_COMMANDS = [["publish", "{events}"], ["config", "set", "acme", "--capacity-internal", "5"],
                  ["import-users", "{users}", "--subscription", "acme"]]


@pytest.mark.parametrize("args", REDIS_COMMANDS, ids=" ".join)
def test_a_command_reading_redis_with_redis_stopped_says_so_in_one_line_with_status_3(
        args: list[str], stopped: dict[str, str]) -> None:
    run = _endusers(*args, env=stopped)
    port = stopped["ENDUSERS_REDIS"].rsplit(":", 1)[1].split("/")[0]
    assert run.returncode == 3, run.stderr
    assert run.stderr.count("\n") == 1 and run.stdout == "", run.stderr
    assert run.stderr.startswith(f"endusers: Redis unavailable at redis://reader:****@127.0.0.1:{port}/0 "
                                 "(ENDUSERS_REDIS): ConnectionError: "), run.stderr
    assert "deploy/local/services up" in run.stderr and "s3cret" not in run.stderr


@pytest.mark.parametrize("args", KAFKA_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_command_publishing_with_kafka_stopped_says_so_in_one_line_with_status_3(
        args: list[str], stopped: dict[str, str], tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "events.jsonl", [LOGIN])
    users = tmp_path / "users.csv"
    users.write_text("user_id,email\n1,ann@example.com\n")
    run = _endusers(*(a.format(events=events, users=users) for a in args), env=stopped)
    assert run.returncode == 3, run.stderr
    assert run.stderr.count("\n") == 1, run.stderr  # no client log lines, no "Unclosed AIOKafkaProducer"
    assert run.stderr.startswith(f"endusers: Kafka unavailable at {stopped['ENDUSERS_KAFKA']} (ENDUSERS_KAFKA): "
                                 "KafkaConnectionError: "), run.stderr
    assert "deploy/local/services up" in run.stderr


def test_verbose_adds_the_traceback_before_the_one_line(stopped: dict[str, str]) -> None:
    run = _endusers("-v", "counts", env=stopped)
    assert run.returncode == 3
    assert "Traceback (most recent call last)" in run.stderr
    assert run.stderr.splitlines()[-1].startswith("endusers: Redis unavailable at ")


def test_digest_needs_no_redis_and_says_it_could_not_check_the_stored_digests(stopped: dict[str, str]) -> None:
    run = _endusers("digest", "ann@example.com", "--subscription", "acme", env=stopped)
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.split()) == 1
    assert run.stderr.startswith("note: not checked against the stored digests: Redis unavailable at ")
    assert run.stderr.count("\n") == 1 and "s3cret" not in run.stderr


def test_usage_errors_keep_status_2(stopped: dict[str, str]) -> None:
    assert _endusers("counts", "--no-such-option", env=stopped).returncode == 2
    assert _endusers("publish", "/no/such/file.jsonl", env=stopped).returncode == 2
    assert _endusers("counts", env={**stopped, "ENDUSERS_TOPIC_LAYOUT": "sideways"}).returncode == 2


# --- publish checks every line before sending any (the test session's own Kafka) --------------------------

def _topic(deployment: Deployment, name: str) -> list[dict[str, object]]:
    return [orjson.loads(value) for _, value in deployment.read_topic(name, timeout=3)]


def _future(hours: float) -> str:
    return format_instant(int((time.time() + hours * 3600) * 1_000_000))


def _mixed(tmp_path: Path) -> Path:
    """A valid login, one without subscription or user id, one timed two hours ahead."""
    return write_jsonl(tmp_path / "mixed.jsonl", [LOGIN, {"type": "login"},
                                                  {**LOGIN, "user_id": "2", "time": _future(2)}])


def test_publish_sends_nothing_when_a_line_is_invalid_and_names_each_by_file_and_line(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    path = _mixed(tmp_path)
    run = subprocess.run([sys.executable, "-m", "streams", "publish", str(path)], capture_output=True, text=True,
                         env={**deployment.env, "ENDUSERS_MAX_FUTURE": "1h"}, timeout=120)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0] == f"{path}:2: subscription: required field missing"
    assert lines[1].startswith(f"{path}:3: time is in the future: ") and "more than 1h ahead" in lines[1]
    assert lines[2].startswith("sent nothing: 2 invalid line(s)")
    assert _topic(deployment, "logins") == []


def test_publish_takes_the_far_future_limit_from_the_settings(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    path = write_jsonl(tmp_path / "ahead.jsonl", [{**LOGIN, "time": _future(2)}])
    deployment.cli("publish", str(path))  # the default limit, 24h
    assert len(_topic(deployment, "logins")) == 1


def test_publish_skip_invalid_sends_the_valid_lines_and_still_exits_1(
        deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    run = subprocess.run([sys.executable, "-m", "streams", "publish", "--skip-invalid", str(_mixed(tmp_path))],
                         capture_output=True, text=True, env={**deployment.env, "ENDUSERS_MAX_FUTURE": "1h"},
                         timeout=120)
    assert run.returncode == 1, run.stderr
    assert run.stdout.splitlines() == [f"{deployment.topic('logins')}: 1 event(s)",
                                       "sent 1 event(s) to 1 topic(s); 2 invalid line(s) skipped"]
    assert [event["user_id"] for event in _topic(deployment, "logins")] == ["1"]


def test_publish_says_what_went_to_which_topic(deployment_factory: DeploymentFactory, tmp_path: Path) -> None:
    deployment: Deployment = deployment_factory()
    config = {"type": "config", "subscription": "acme", "domains": ["example.com"]}
    run = deployment.cli("publish", str(write_jsonl(tmp_path / "ok.jsonl", [config, LOGIN, {**LOGIN, "user_id": "2"}])))
    assert run.stdout.decode().splitlines() == [f"{deployment.topic('config')}: 1 event(s)",
                                                f"{deployment.topic('logins')}: 2 event(s)",
                                                "sent 3 event(s) to 2 topic(s)"]
