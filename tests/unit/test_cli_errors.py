"""The one mapping of errors to exit statuses and lines (streams/cli/errors.py)."""

from __future__ import annotations

import pytest

from counters import StoreUnavailable
from streams.cli.errors import Status, address, failure
from streams.kafka.errors import BrokerUnavailable
from streams.settings import MissingSecret, SettingsError


def test_a_default_address_is_said_to_be_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENDUSERS_KAFKA", raising=False)
    assert address("ENDUSERS_KAFKA") == "kafka://127.0.0.1:9092 (ENDUSERS_KAFKA, the default)"


def test_an_address_is_shown_with_its_password_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDUSERS_REDIS", "rediss://reader:s3cret@redis.internal:6380/2")
    assert address("ENDUSERS_REDIS") == "rediss://reader:****@redis.internal:6380/2 (ENDUSERS_REDIS)"


def test_each_service_failure_is_status_3_naming_the_service_and_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDUSERS_REDIS", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("ENDUSERS_KAFKA", "kafka://127.0.0.1:2")
    store = failure(StoreUnavailable("ConnectionError: refused."))
    broker = failure(BrokerUnavailable("KafkaConnectionError: Unable to bootstrap"))
    assert store == (Status.UNAVAILABLE, [
        "Redis unavailable at redis://127.0.0.1:1/0 (ENDUSERS_REDIS): ConnectionError: refused; start it or set "
        "ENDUSERS_REDIS to where it runs (on this machine: deploy/local/services up); -v shows the traceback"])
    assert broker is not None and broker[0] == Status.UNAVAILABLE == 3
    assert broker[1][0].startswith("Kafka unavailable at kafka://127.0.0.1:2 (ENDUSERS_KAFKA): KafkaConnectionError")


def test_wrong_settings_are_usage_errors_and_other_errors_keep_their_traceback() -> None:
    assert failure(SettingsError(["ENDUSERS_X='y': no"])) == (Status.USAGE, ["invalid setting ENDUSERS_X='y': no"])
    assert failure(MissingSecret("set ENDUSERS_SECRET")) == (Status.USAGE, ["set ENDUSERS_SECRET"])
    assert failure(ValueError("a bug")) is None
