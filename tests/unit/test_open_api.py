"""An open HTTP API is a choice, never a default: a production worker without a token file refuses to
start unless ENDUSERS_WEB_AUTH=none says the API is meant to be open; a token file that cannot be read
or holds no token is an error; development stays open, saying so loudly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.http.auth import TokenFileError, create_token, tokens_file_checked
from streams.settings import OpenApi, SettingsError, WorkerSettings

PRODUCTION = {"ENDUSERS_ENV": "production", "ENDUSERS_SECRET": "s3cr3t-digest-key-0123456789"}


def settings(**environ: str) -> WorkerSettings:
    return WorkerSettings.from_environment({**PRODUCTION, **environ})


@pytest.mark.parametrize("tokens_file", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_production_without_a_token_file_refuses_naming_the_variable(tokens_file: str | None) -> None:
    environ = {} if tokens_file is None else {"ENDUSERS_API_TOKENS_FILE": tokens_file}
    with pytest.raises(OpenApi, match="ENDUSERS_API_TOKENS_FILE is not set.*ENDUSERS_WEB_AUTH=none"):
        tokens_file_checked(settings(**environ))


def test_web_auth_none_opens_the_api_on_purpose_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.http.auth"):
        assert tokens_file_checked(settings(ENDUSERS_WEB_AUTH="none")) is None
    assert "OPEN (ENDUSERS_WEB_AUTH=none)" in caplog.text


def test_the_gateway_opens_by_the_same_rule_and_says_what_an_open_gateway_lets_anyone_do(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(OpenApi, match="ENDUSERS_API_TOKENS_FILE is not set"):
        tokens_file_checked(settings(), "gateway")
    with caplog.at_level(logging.WARNING, logger="streams.http.auth"):
        assert tokens_file_checked(settings(ENDUSERS_WEB_AUTH="none"), "gateway") is None
    assert "the gateway is OPEN (ENDUSERS_WEB_AUTH=none): anyone who reaches it writes events" in caplog.text


def test_development_without_a_token_file_stays_open_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.http.auth"):
        assert tokens_file_checked(settings(ENDUSERS_ENV="development")) is None
    assert "OPEN (ENDUSERS_ENV=development" in caplog.text


def test_web_auth_none_with_a_token_file_is_a_contradiction(tmp_path: Path) -> None:
    create_token(tmp_path / "tokens", "admin", None)
    with pytest.raises(OpenApi, match="contradict"):
        tokens_file_checked(settings(ENDUSERS_WEB_AUTH="none", ENDUSERS_API_TOKENS_FILE=str(tmp_path / "tokens")))


def test_web_auth_takes_tokens_or_none_only() -> None:
    with pytest.raises(SettingsError, match="ENDUSERS_WEB_AUTH='open': allowed values: tokens, none"):
        settings(ENDUSERS_WEB_AUTH="open")


@pytest.mark.parametrize("content, complaint", [
    ("", "holds no valid token"),
    ("  \n\t\n", "holds no valid token"),
    ("# only a comment\nnot a token line\n", "holds no valid token"),
    (None, "cannot be read"),
], ids=["empty", "whitespace", "no-valid-line", "missing"])
def test_a_token_file_without_a_token_is_an_error_not_open(tmp_path: Path, content: str | None,
                                                           complaint: str) -> None:
    path = tmp_path / "tokens"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TokenFileError, match=complaint):
        tokens_file_checked(settings(ENDUSERS_API_TOKENS_FILE=str(path)))


def test_an_unreadable_token_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.mkdir()  # a directory cannot be read as a file, whoever runs the test (root reads any file)
    with pytest.raises(TokenFileError, match="cannot be read"):
        tokens_file_checked(settings(ENDUSERS_API_TOKENS_FILE=str(path)))


def test_a_token_file_with_a_token_is_used(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    create_token(path, "viewer", frozenset({"acme"}))
    assert tokens_file_checked(settings(ENDUSERS_API_TOKENS_FILE=str(path))) == str(path)


def test_a_production_worker_without_tokens_stops_before_it_connects() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENDUSERS_")}
    env.update(PRODUCTION, ENDUSERS_KAFKA="kafka://127.0.0.1:1")  # it must stop before it connects
    run = subprocess.run([sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert b"ENDUSERS_API_TOKENS_FILE is not set" in run.stderr
