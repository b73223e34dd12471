"""Secrets: a worker needs ENDUSERS_SECRET outside development, and no secret shows in a repr or a log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from counters import DEVELOPMENT_SECRET
from streams.settings import MissingSecret, WorkerSettings, kafka_client_options, kafka_connection

SECRET = "s3cr3t-digest-key-0123456789"
PASSWORD = "kafka-pa55word"
REDIS_PASSWORD = "redis-pa55word"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("ENDUSERS_SECRET", "ENDUSERS_ENV", "ENDUSERS_KAFKA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_secret_shows_in_the_settings_repr_or_a_log_line(env: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    env.setenv("ENDUSERS_SECRET", SECRET)
    env.setenv("ENDUSERS_KAFKA_USERNAME", "worker")
    env.setenv("ENDUSERS_KAFKA_PASSWORD", PASSWORD)
    env.setenv("ENDUSERS_REDIS", f"rediss://worker:{REDIS_PASSWORD}@redis.example:6380/0")
    settings = WorkerSettings()
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s / %r / %s", settings, settings, settings.secret)
    for text in (repr(settings), str(settings), caplog.text, repr(settings.kafka_password)):
        for secret in (SECRET, PASSWORD, REDIS_PASSWORD):
            assert secret not in text
    assert settings.digest_secret() == SECRET.encode()  # the value itself is still there for the digester
    assert kafka_client_options(settings)["sasl_plain_password"] == PASSWORD
    connection = kafka_connection(settings)  # the one mapping, for aiokafka and Faust alike
    assert PASSWORD not in repr(connection) and PASSWORD not in str(connection)
    assert getattr(connection.faust_credentials(), "password", None) == PASSWORD


def test_without_a_secret_only_development_starts(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingSecret, match="ENDUSERS_SECRET"):
        WorkerSettings().digest_secret()
    env.setenv("ENDUSERS_ENV", "development")
    assert WorkerSettings().digest_secret() == DEVELOPMENT_SECRET


def test_a_worker_refuses_to_start_without_a_secret_outside_development() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ENDUSERS_SECRET", "ENDUSERS_ENV")}
    env["ENDUSERS_KAFKA"] = "kafka://127.0.0.1:1"  # it must stop before it connects to anything
    run = subprocess.run([sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, timeout=60)
    assert run.returncode == 2
    assert b"ENDUSERS_SECRET is not set" in run.stderr and b"ENDUSERS_ENV=development" in run.stderr


def test_one_persons_digests_cannot_be_linked_across_subscriptions() -> None:
    from counters import Digester, to_change
    from schemas.changes import Change
    from schemas.events import LoginEvent

    digester = Digester(SECRET.encode())

    def email_digest(subscription: str) -> str:
        event = LoginEvent(subscription=subscription, user_id="1", email="Ann@Example.com")
        change = to_change(event, digester, 0)
        assert isinstance(change, Change)
        return f"{change.fields['email'][0]} {change.record}"

    assert email_digest("acme") == email_digest("acme")
    assert email_digest("acme") != email_digest("globex")
    assert Digester(SECRET.encode()).for_subscription("acme")("x") == digester.for_subscription("acme")("x")
    assert digester.for_subscription("acme")("x") != Digester(b"other").for_subscription("acme")("x")
    shared = Digester(SECRET.encode(), per_subscription=False)
    assert shared.for_subscription("acme")("x") == shared.for_subscription("globex")("x") == shared("x")
