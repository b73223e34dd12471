"""One validated settings object (streams/settings.py): every ENDUSERS_* variable is read there, once;
a wrong value stops a command at start with one line naming the variable and what it accepts;
``endusers settings`` shows the effective values, secrets masked, and where each came from."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.http.auth import Access
from streams.settings import (DigestScope, Environment, SaslMechanism, SecurityProtocol, SettingsError, TopicLayout,
                              WorkerSettings, describe, kafka_connection)
from streams.store.connect import BadRedisUrl, masked, parse
from streams.store.redis_store import RedisStore

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-digest-key-0123456789"
KAFKA_PASSWORD = "kafka-pa55word"
SENTINEL_PASSWORD = "sentinel-pa55word"
REDIS_PASSWORD = "redis-pa55word"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ENDUSERS_* variable of the machine running the tests leaks into them."""
    for name in [n for n in os.environ if n.startswith("ENDUSERS_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# --- wrong values -----------------------------------------------------------------------------------

ENUMS = [
    ("ENDUSERS_TOPIC_LAYOUT", "per-subscriptoin", "shared, per-subscription"),
    ("ENDUSERS_DIGEST_SCOPE", "shard", "subscription, shared"),
    ("ENDUSERS_ENV", "dev", "production, development"),
    ("ENDUSERS_KAFKA_SECURITY_PROTOCOL", "sasl_ssl", "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ("ENDUSERS_KAFKA_SASL_MECHANISM", "SCRAM-SHA-1", "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ("ENDUSERS_DEADLETTER_RAW", "yes", "0, 1"),
]


@pytest.mark.parametrize(("variable", "value", "allowed"), ENUMS)
def test_a_wrong_choice_names_the_variable_and_the_allowed_values(variable: str, value: str, allowed: str) -> None:
    status, out, err = run("settings", env={variable: value})
    assert status == 2 and out == ""
    assert err == f"endusers: invalid setting {variable}={value!r}: allowed values: {allowed}\n"


def test_the_enums_are_the_documented_choices() -> None:
    assert [m.value for m in TopicLayout] == ["shared", "per-subscription"]
    assert [m.value for m in DigestScope] == ["subscription", "shared"]
    assert [m.value for m in Environment] == ["production", "development"]
    assert [m.value for m in SecurityProtocol] == ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    assert [m.value for m in SaslMechanism] == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("ENDUSERS_PARTITIONS", "four", "expected a whole number"),
    ("ENDUSERS_PARTITIONS", "0", "expected at least 1"),
    ("ENDUSERS_WEB_PORT", "70000", "expected at most 65535"),
    ("ENDUSERS_SESSION_TIMEOUT", "ten", "expected a number"),
    ("ENDUSERS_MAX_FUTURE", "1y", "expected a duration like 30s, 15m, 24h or 2d, got '1y'"),
    ("ENDUSERS_ALERT_SEVERITIES", "warning", "'warning' is not level:severity (e.g. 100:critical)"),
    ("ENDUSERS_ALERTMANAGER_URL", "http://am-0:9093,am-1:9093", "'am-1:9093' is not an http:// or https:// URL"),
    ("ENDUSERS_REDIS", "redis+cluster://a:1,b:2/3", "Redis Cluster has only database 0"),
])
def test_a_wrong_value_names_the_variable_and_why(variable: str, value: str, reason: str) -> None:
    status, _, err = run("settings", env={variable: value})
    assert status == 2
    assert err == f"endusers: invalid setting {variable}={value!r}: {reason}\n"


def test_every_wrong_variable_is_named_at_once() -> None:
    status, _, err = run("counts", env={"ENDUSERS_TOPIC_LAYOUT": "x", "ENDUSERS_BATCH_SIZE": "many"})
    assert status == 2
    assert err.splitlines() == ["endusers: invalid setting ENDUSERS_TOPIC_LAYOUT='x': allowed values: shared, per-subscription",
                                "endusers: invalid setting ENDUSERS_BATCH_SIZE='many': expected a whole number"]


def test_a_bad_redis_url_is_refused_at_start_without_showing_its_password() -> None:
    url = f"http://worker:{REDIS_PASSWORD}@redis.example:6379/0"
    status, _, err = run("settings", env={"ENDUSERS_REDIS": url})
    assert status == 2 and REDIS_PASSWORD not in err
    assert err.startswith("endusers: invalid setting ENDUSERS_REDIS='http://worker:****@redis.example:6379/0': "
                          "unknown scheme 'http'; allowed schemes: redis, rediss, unix, redis+cluster")
    with pytest.raises(BadRedisUrl) as caught:
        parse(f"redis+sentinel://worker:{REDIS_PASSWORD}@a:1,b/endusers")
    assert REDIS_PASSWORD not in str(caught.value) and "'b' is not host:port" in str(caught.value)


def test_the_settings_error_has_one_problem_per_line(clean: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as caught:
        WorkerSettings.from_environment({"ENDUSERS_DIGEST_SCOPE": "shard", "ENDUSERS_PARTITIONS": "4.5"})
    assert caught.value.problems == ["ENDUSERS_PARTITIONS='4.5': expected a whole number",
                                     "ENDUSERS_DIGEST_SCOPE='shard': allowed values: subscription, shared"]
    assert str(caught.value) == "\n".join(caught.value.problems)
    clean.setenv("ENDUSERS_ENV", "staging")
    with pytest.raises(SettingsError, match="ENDUSERS_ENV='staging': allowed values: production, development"):
        WorkerSettings(topic_prefix="p")


def test_the_worker_stops_before_connecting_to_anything() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENDUSERS_")}
    env.update({"ENDUSERS_KAFKA": "kafka://127.0.0.1:1", "ENDUSERS_REDIS": "redis://127.0.0.1:1/0",
                "ENDUSERS_ENV": "development", "ENDUSERS_TOPIC_LAYOUT": "per-subscriptoin"})
    process = subprocess.run([sys.executable, "-m", "streams", "worker"], env=env, capture_output=True, text=True,
                             timeout=60, cwd=REPO)
    assert process.returncode == 2, process.stderr
    assert process.stderr == ("endusers: invalid setting ENDUSERS_TOPIC_LAYOUT='per-subscriptoin': "
                              "allowed values: shared, per-subscription\n")


def test_the_worker_command_reports_a_non_integer_partition_count(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.worker.app as worker

    def connects(*_: object) -> None:
        raise AssertionError("the worker connected before its settings were checked")

    monkeypatch.setattr(worker, "create_topics", connects)
    status, _, err = run("worker", env={"ENDUSERS_PARTITIONS": "four", "ENDUSERS_ENV": "development"})
    assert status == 2
    assert err == "endusers: invalid setting ENDUSERS_PARTITIONS='four': expected a whole number\n"


# --- endusers settings ------------------------------------------------------------------------------

SECRETS = {"ENDUSERS_SECRET": SECRET, "ENDUSERS_KAFKA_PASSWORD": KAFKA_PASSWORD,
           "ENDUSERS_REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
           "ENDUSERS_REDIS": f"redis+sentinel://worker:{REDIS_PASSWORD}@s1:26379,s2:26379/endusers/0"}


def test_settings_prints_every_variable_with_its_value_and_source() -> None:
    status, out, _ = run("settings", env={"ENDUSERS_PARTITIONS": "12", "ENDUSERS_TOPIC_LAYOUT": "per-subscription"})
    assert status == 0
    lines = {line.split("=", 1)[0]: line for line in out.splitlines()}
    assert set(lines) == {str(spec.validation_alias) for spec in WorkerSettings.model_fields.values()}
    assert lines["ENDUSERS_PARTITIONS"].split() == ["ENDUSERS_PARTITIONS=12", "environment"]
    assert lines["ENDUSERS_TOPIC_LAYOUT"].split() == ["ENDUSERS_TOPIC_LAYOUT=per-subscription", "environment"]
    assert lines["ENDUSERS_KAFKA"].split() == ["ENDUSERS_KAFKA=kafka://127.0.0.1:9092", "default"]
    assert lines["ENDUSERS_MAX_FUTURE"].split() == ["ENDUSERS_MAX_FUTURE=24h", "default"]
    assert lines["ENDUSERS_SECRET"].split() == ["ENDUSERS_SECRET=", "default"]


def test_settings_masks_the_secrets_and_the_redis_password() -> None:
    status, out, _ = run("settings", env=SECRETS)
    assert status == 0
    for secret in (SECRET, KAFKA_PASSWORD, SENTINEL_PASSWORD, REDIS_PASSWORD):
        assert secret not in out
    lines = {line.split("=", 1)[0]: line.split() for line in out.splitlines()}
    for variable in ("ENDUSERS_SECRET", "ENDUSERS_KAFKA_PASSWORD", "ENDUSERS_REDIS_SENTINEL_PASSWORD"):
        assert lines[variable] == [f"{variable}=********", "environment"]
    assert lines["ENDUSERS_REDIS"] == ["ENDUSERS_REDIS=redis+sentinel://worker:****@s1:26379,s2:26379/endusers/0",
                                       "environment"]


def test_settings_as_json() -> None:
    status, out, _ = run("settings", "--json", env={**SECRETS, "ENDUSERS_DEADLETTER_RAW": "1"})
    assert status == 0
    document = orjson.loads(out)
    assert document["ENDUSERS_SECRET"] == {"value": "********", "source": "environment"}
    assert document["ENDUSERS_DEADLETTER_RAW"] == {"value": "1", "source": "environment"}
    assert document["ENDUSERS_APP_ID"] == {"value": "endusers", "source": "default"}
    assert document["ENDUSERS_KAFKA_SASL_MECHANISM"] == {"value": "", "source": "default"}
    assert not any(secret in out for secret in (SECRET, KAFKA_PASSWORD, SENTINEL_PASSWORD, REDIS_PASSWORD))


def test_masked_keeps_everything_but_the_password() -> None:
    assert masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert masked("rediss://user:pw@host:6380/0") == "rediss://user:****@host:6380/0"
    assert masked("redis://:pw@host:6379/0?password=other&db=1") == "redis://:****@host:6379/0?password=****&db=1"
    assert masked("redis+cluster://u:p@a:1,b:2") == "redis+cluster://u:****@a:1,b:2"
    _, out, _ = run("settings", env={"ENDUSERS_ALERTMANAGER_URL": "https://am:pw1@am-0:9093,http://am-1:9093"})
    assert "ENDUSERS_ALERTMANAGER_URL=https://am:****@am-0:9093,http://am-1:9093 " in out and "pw1" not in out


def test_no_secret_shows_in_the_repr() -> None:
    settings = WorkerSettings.from_environment(SECRETS)
    for text in (repr(settings), str(settings)):
        for secret in (SECRET, KAFKA_PASSWORD, SENTINEL_PASSWORD, REDIS_PASSWORD):
            assert secret not in text
    assert settings.sentinel_password() == SENTINEL_PASSWORD


def test_arguments_come_before_the_environment_and_say_so(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("ENDUSERS_APP_ID", "from-the-process")
    assert WorkerSettings().app_id == "from-the-process" and WorkerSettings().source("app_id") == "environment"
    assert WorkerSettings.from_environment({}).app_id == "endusers"  # another environment: not the process's
    settings = WorkerSettings.from_environment({"ENDUSERS_TOPIC_PREFIX": "env", "ENDUSERS_APP_ID": "a"},
                                               topic_prefix="given")
    assert (settings.topic_prefix, settings.app_id) == ("given", "a")
    sources = {variable: source for variable, _, source in describe(settings)}
    assert (sources["ENDUSERS_TOPIC_PREFIX"], sources["ENDUSERS_APP_ID"], sources["ENDUSERS_KAFKA"]) == (
        "argument", "environment", "default")


# --- same names, defaults and meanings as before ----------------------------------------------------

def test_defaults_are_unchanged() -> None:
    settings = WorkerSettings.from_environment({})
    assert (settings.kafka, settings.redis, settings.topic_prefix, settings.topic_layout) == (
        "kafka://127.0.0.1:9092", "redis://127.0.0.1:6379/0", "enduser", "shared")
    assert (settings.web_port, settings.web_host, settings.partitions, settings.replication_factor) == (
        6066, "127.0.0.1", 4, 1)
    assert (settings.app_id, settings.instance_id, settings.secret, settings.digest_scope, settings.environment) == (
        "endusers", "", None, "subscription", "production")
    assert (settings.raw_dead_letters, settings.batch_size, settings.session_timeout, settings.stall_seconds) == (
        False, 5000, 10.0, 30.0)
    assert (settings.web_redis_connections, settings.web_max_streams, settings.batch_within) == (20, 100, 0.05)
    assert (settings.max_future, settings.metrics_max_labels) == (24 * 3600 * 1_000_000, 50)
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism, settings.kafka_username) == (
        "PLAINTEXT", None, "")
    assert (settings.alertmanager_urls, str(settings.severities), settings.alert_interval) == (
        [], "1:warning,100:critical", 60.0)
    assert (settings.redis_min_replicas, settings.redis_wait_timeout_ms, settings.sentinel_password()) == (0, 1000, None)
    assert (settings.api_tokens_file, settings.web_allowed_hosts) == ("", "")
    assert settings.data_dir.endswith(os.path.join(".local", "share", "endusers", "worker"))


def test_values_reach_their_users_as_parameters() -> None:
    settings = WorkerSettings.from_environment({
        "ENDUSERS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ENDUSERS_KAFKA_USERNAME": "worker",
        "ENDUSERS_KAFKA_PASSWORD": KAFKA_PASSWORD, "ENDUSERS_REDIS_MIN_REPLICAS": "1",
        "ENDUSERS_REDIS_WAIT_TIMEOUT_MS": "250", "ENDUSERS_WEB_ALLOWED_HOSTS": " counts.example ",
        "ENDUSERS_ALERTMANAGER_URL": "http://am-0:9093, http://am-1:9093", "ENDUSERS_DEADLETTER_RAW": "1",
        "ENDUSERS_MAX_FUTURE": "15m"})
    options = kafka_connection(settings).client_options()
    assert (options["security_protocol"], options["sasl_mechanism"], options["sasl_plain_password"]) == (
        "SASL_PLAINTEXT", "PLAIN", KAFKA_PASSWORD)
    store = RedisStore.from_settings(settings)
    assert (store.replicas, store.wait_ms) == (1, 250)
    access = Access.configured(settings.web_host, settings.api_tokens_file, settings.web_allowed_hosts)
    assert access.allowed_hosts is not None and "counts.example" in access.allowed_hosts and access.tokens is None
    assert settings.alertmanager_urls == ["http://am-0:9093", "http://am-1:9093"]
    assert settings.raw_dead_letters is True and settings.max_future == 15 * 60 * 1_000_000


# --- nothing else reads the environment ------------------------------------------------------------

def _environment_reads(path: Path) -> list[tuple[int, str]]:
    """``os.environ``, ``os.getenv``, ``os.putenv``, ``from os import environ/getenv`` and click's
    ``envvar="ENDUSERS_..."`` (click reads the variable itself) in one file."""
    names = ("environ", "environb", "getenv", "getenvb", "putenv")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.keyword) and node.arg == "envvar" and isinstance(node.value, ast.Constant) \
                and str(node.value.value).startswith("ENDUSERS_"):
            found.append((node.value.lineno, f"envvar={node.value.value}"))
        elif isinstance(node, ast.Attribute) and node.attr in names:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [(node.lineno, f"from os import {alias.name}") for alias in node.names if alias.name in names]
    return sorted(found)


def test_only_the_settings_module_reads_the_environment() -> None:
    reads = [f"{path.relative_to(REPO)}:{line}: {what}" for package in ("streams", "counters", "schemas")
             for path in sorted((REPO / package).rglob("*.py")) if path != REPO / "streams" / "settings.py"
             for line, what in _environment_reads(path)]
    assert reads == [], "read the environment in streams/settings.py only, and pass the value in:\n" + "\n".join(reads)
    assert _environment_reads(REPO / "streams" / "settings.py")  # the scan sees a read where there is one


def test_the_scan_sees_each_way_of_reading_the_environment(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("import os\nfrom os import getenv\nos.environ.get('A')\nos.getenv('B')\nos.path.join('c')\n"
                      "option('--x', envvar='ENDUSERS_X')\noption('--actor', envvar='USER')\n")
    assert _environment_reads(source) == [(2, "from os import getenv"), (3, ".environ"), (4, ".getenv"),
                                          (6, "envvar=ENDUSERS_X")]


@pytest.mark.parametrize("variable", ["ENDUSERS_SESSION_TIMEOUT", "ENDUSERS_STALL_SECONDS", "ENDUSERS_BATCH_WITHIN",
                                      "ENDUSERS_ALERT_INTERVAL"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_number_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable}='{value}': expected a finite number"):
        WorkerSettings.from_environment({variable: value})
