"""The Helm chart (deploy/helm/endusers), linted and rendered by a real Helm, and the rendered objects
checked for what a Kubernetes operator relies on: probes, the secret reference, replicas within the
partitions, the non-root security context, the pod name as Kafka instance id, the test hook, the HTTP
tokens, allowed hosts, Alertmanager push, and the gateway (with SCIM: Redis, the secret, one replica).
Where the worker reads what the chart renders (the token file, the allowed hosts, the severities), the
worker's own code reads the rendered value.

Helm is the version deploy/local/helm pins, built once with `go install` and cached. Without it the tests
that run Helm are skipped, unless ``ENDUSERS_REQUIRE_HELM`` is set (deploy/local/test sets it after
installing Helm): then a Helm that cannot be installed fails them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import WorkerSettings
from streams.worker.alerts import Severities
from streams.http.auth import Access, TokenFile, create_token

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "endusers"
PRODUCTION = CHART / "values-production.yaml"
RULES_FILE = REPO / "deploy" / "monitoring" / "endusers.rules.yml"
HELM_SCRIPT = REPO / "deploy" / "local" / "helm"
HELM_MISSING = ("Helm is not installed: `deploy/local/helm --path` installs the pinned version (needs Go, a few "
                "minutes once); deploy/local/test does, and sets ENDUSERS_REQUIRE_HELM=1 to fail instead of skipping")


def helm_installed() -> bool:
    """Whether the pinned Helm is in deploy/local/helm's cache (asked without installing it)."""
    return subprocess.run([str(HELM_SCRIPT), "--installed"], capture_output=True, timeout=30,
                          stdin=subprocess.DEVNULL).returncode == 0


pytestmark = pytest.mark.deploy


@cache
def helm_binary() -> str:
    """The pinned Helm. When it is missing, the test that needs it is skipped; with ENDUSERS_REQUIRE_HELM
    the project's own script installs it (a few minutes, once), and a failure to install fails the test."""
    if not os.environ.get("ENDUSERS_REQUIRE_HELM") and not helm_installed():
        pytest.skip(HELM_MISSING)
    proc = subprocess.run([str(HELM_SCRIPT), "--path"], capture_output=True, text=True,
                          timeout=1800, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"deploy/local/helm could not provide Helm:\n{proc.stderr}", pytrace=False)
    return proc.stdout.strip()


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin",
                                                         "HELM_CACHE_HOME": "/tmp/endusers-helm/cache",
                                                         "HELM_CONFIG_HOME": "/tmp/endusers-helm/config",
                                                         "HELM_DATA_HOME": "/tmp/endusers-helm/data"})
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}"
    return proc


OPEN = ("--set", "auth.open=true")
"""The chart needs a choice about HTTP tokens (a token Secret, or an open API on purpose): the tests that
give none render the open API, as the chart's defaults did."""


def chosen(args: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``args`` with :data:`OPEN` added unless they choose tokens (auth.tokensSecret, the production
    values) or say auth.open themselves."""
    if any("auth.tokensSecret" in a or "auth.open" in a or a == str(PRODUCTION) for a in args):
        return tuple(args)
    return (*OPEN, *args)


def render(*args: str, release: str = "endusers") -> list[dict[str, Any]]:
    """The objects `helm template` renders (release "endusers" unless named), hooks included."""
    output = helm("template", release, str(CHART), "--namespace", "licensing", *chosen(args)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1
    return found[0]


def worker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = workload(objects)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["worker"]
    return containers[0]  # type: ignore[no-any-return]


def env(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or name -> valueFrom."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def expanded_env(container: dict[str, Any], fields: dict[str, str]) -> dict[str, str]:
    """The variables as the kubelet hands them to the process: ``fieldRef``s from ``fields``, and
    ``$(NAME)`` in a value replaced by an earlier variable's value (a later or unknown one stays as is).
    Variables from Secrets are left out."""
    resolved: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            resolved[entry["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                                              lambda m: resolved.get(m[1], m[0]), entry["value"])
        elif "fieldRef" in entry["valueFrom"]:
            resolved[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return resolved


def notes(tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it. Helm renders the notes only when it installs (which needs a
    cluster), so a copy of the chart renders them into a ConfigMap instead."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    text = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "NOTES.txt").unlink()
    (copy / "templates" / "_notes.tpl").write_text('{{- define "notes" -}}\n' + text + "{{- end -}}\n")
    (copy / "templates" / "notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n  labels: {}\n'
        'data:\n  notes: {{ include "notes" . | quote }}\n')
    output = helm("template", "endusers", str(copy), "--namespace", "licensing", "--show-only",
                  "templates/notes.yaml", *chosen(args)).stdout
    return str(yaml.safe_load(output)["data"]["notes"])


def refusal(*args: str) -> str:
    """Helm's complaint when it refuses to render with these values."""
    result = helm("template", "endusers", str(CHART), "--namespace", "licensing", *chosen(args), check=False)
    assert result.returncode != 0, f"{' '.join(args)} was accepted"
    return result.stderr


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render("-f", str(PRODUCTION))


# --- lint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_chart_lints_cleanly(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *chosen(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


# --- the worker pods ----------------------------------------------------------------------------


def test_default_runs_two_workers_as_a_deployment_within_four_partitions(default: list[dict[str, Any]]) -> None:
    deployment = one(default, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert env(worker(default))["ENDUSERS_PARTITIONS"] == "4"


def test_production_runs_a_statefulset_of_three_workers_on_twelve_partitions(
        production: list[dict[str, Any]]) -> None:
    statefulset = one(production, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["serviceName"] == "endusers-headless"
    assert one(production, "Service", "endusers-headless")["spec"]["clusterIP"] == "None"
    variables = env(worker(production))
    assert (variables["ENDUSERS_PARTITIONS"], variables["ENDUSERS_REPLICATION_FACTOR"]) == ("12", "3")


def test_production_counts_only_declared_subscriptions(production: list[dict[str, Any]]) -> None:
    assert env(worker(production))["ENDUSERS_SUBSCRIPTIONS"] == "declared"
    assert env(worker(render()))["ENDUSERS_SUBSCRIPTIONS"] == "any"
    refused = helm("template", "endusers", str(CHART), "--set", "subscriptions=some", check=False)
    assert refused.returncode != 0 and "subscriptions" in refused.stderr


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_probes_liveness_on_healthz_readiness_on_readyz(values: list[str]) -> None:
    container = worker(render(*values))
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # HTTP comes up only once Kafka answers: the startup probe holds liveness back until then
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 120
    assert {"name": "http", "containerPort": 6066, "protocol": "TCP"} in container["ports"]


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_secret_from_a_kubernetes_secret_and_web_on_all_interfaces(values: list[str]) -> None:
    variables = env(worker(render(*values)))
    assert variables["ENDUSERS_SECRET"] == {"secretKeyRef": {"name": "endusers", "key": "secret"}}
    assert variables["ENDUSERS_WEB_HOST"] == "0.0.0.0"
    assert variables["ENDUSERS_WEB_PORT"] == "6066"


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_instance_id_is_the_pod_name(values: list[str]) -> None:
    assert env(worker(render(*values)))["ENDUSERS_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_runs_as_non_root_with_a_read_only_root_filesystem(values: list[str]) -> None:
    objects = render(*values)
    pod = workload(objects)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    context = worker(objects)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    # the only writable places are volumes: Faust's data folder and /tmp
    mounts = {m["mountPath"] for m in worker(objects)["volumeMounts"] if not m.get("readOnly")}
    assert mounts == {"/var/lib/endusers", "/tmp"}
    assert env(worker(objects))["ENDUSERS_DATA_DIR"].startswith("/var/lib/endusers/")


def test_production_takes_kafka_and_redis_credentials_from_secrets(production: list[dict[str, Any]]) -> None:
    variables = env(worker(production))
    assert variables["ENDUSERS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert variables["ENDUSERS_KAFKA_PASSWORD"] == {"secretKeyRef": {"name": "endusers-kafka", "key": "password"}}
    assert variables["ENDUSERS_REDIS"] == {"secretKeyRef": {"name": "endusers-redis", "key": "url"}}
    assert variables["ENDUSERS_KAFKA_CAFILE"] == "/etc/endusers/kafka-ca/ca.crt"
    assert {"name": "kafka-ca", "mountPath": "/etc/endusers/kafka-ca", "readOnly": True} in worker(production)["volumeMounts"]


# --- refusals -----------------------------------------------------------------------------------


def test_more_replicas_than_partitions_is_refused() -> None:
    result = helm("template", "endusers", str(CHART), "--set", "replicaCount=5", "--set", "partitions=4", check=False)
    assert result.returncode != 0
    assert "replicaCount (5) must be at most partitions (4)" in result.stderr


def test_as_many_replicas_as_partitions_is_accepted() -> None:
    assert one(render("--set", "replicaCount=4", "--set", "partitions=4"), "Deployment")["spec"]["replicas"] == 4


@pytest.mark.parametrize("setting, complaint", [
    ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
    ("kind=DaemonSet", "kind"),
    ("secret.name=", "secret"),
    ("kafka.securityProtocol=TLS", "securityProtocol"),
    ("replicationFactor=0", "replicationFactor"),
])
def test_schema_refuses_bad_values(setting: str, complaint: str) -> None:
    result = helm("template", "endusers", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0, f"--set {setting} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr and complaint in result.stderr


# --- the other objects --------------------------------------------------------------------------


def test_service_selects_the_workers_only(default: list[dict[str, Any]]) -> None:
    service = one(default, "Service", "endusers")
    labels = workload(default)["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], labels)
    assert service["spec"]["ports"] == [{"name": "http", "port": 6066, "targetPort": "http", "protocol": "TCP"}]
    hook = one(default, "Pod")
    assert not selects(service["spec"]["selector"], hook["metadata"]["labels"])


def test_disruption_budget_allows_one_worker_down(default: list[dict[str, Any]]) -> None:
    budget = one(default, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert selects(budget["spec"]["selector"]["matchLabels"], workload(default)["spec"]["template"]["metadata"]["labels"])


def test_network_policy_admits_http_and_lets_out_dns_kafka_and_redis(production: list[dict[str, Any]]) -> None:
    policy = one(production, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    # the helm test pod may always call /readyz, even when ingress is restricted
    test_pod = one(production, "Pod")["metadata"]["labels"]
    assert any(selects(peer.get("podSelector", {}).get("matchLabels", {"-": "-"}), test_pod) for peer in ingress["from"])
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (9093, "TCP"), (6380, "TCP"), (6066, "TCP")}


def test_workers_reach_each_other_at_a_url_that_survives_a_restart(production: list[dict[str, Any]]) -> None:
    """An admission check is forwarded to the worker that counts the subscription, at the URL that
    worker announced (ENDUSERS_WEB_ADVERTISED_URL); the NetworkPolicy lets it through both ways."""
    variables = env(worker(production))
    kind = workload(production)["kind"]
    expected = ("http://$(ENDUSERS_INSTANCE_ID).endusers-headless:6066" if kind == "StatefulSet"
                else "http://$(POD_IP):6066")
    assert variables["ENDUSERS_WEB_ADVERTISED_URL"] == expected
    pods = workload(production)["spec"]["template"]["metadata"]["labels"]
    policy = one(production, "NetworkPolicy")["spec"]
    [ingress] = policy["ingress"]
    assert any(selects(peer.get("podSelector", {}).get("matchLabels", {"-": "-"}), pods) for peer in ingress["from"])
    [to_workers] = [rule for rule in policy["egress"] if rule["ports"] == [{"port": 6066, "protocol": "TCP"}]]
    assert all(selects(peer["podSelector"]["matchLabels"], pods) for peer in to_workers["to"])


def test_monitoring_objects_are_optional(default: list[dict[str, Any]], production: list[dict[str, Any]]) -> None:
    assert not [o for o in default if o["kind"] in ("ServiceMonitor", "PrometheusRule")]
    monitor = one(production, "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert {k: endpoint[k] for k in ("port", "path", "interval", "scrapeTimeout")} == {
        "port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    rules = one(production, "PrometheusRule")["spec"]["groups"]
    alerts = {rule["alert"] for group in rules for rule in group["rules"]}
    assert "EndusersCapacityExceeded" in alerts
    # Prometheus' own template syntax passes through Helm untouched
    assert any("{{ $labels.subscription }}" in rule["annotations"]["summary"] for group in rules for rule in group["rules"])


def test_the_scrape_job_is_named_as_the_alert_rules_expect() -> None:
    """The Prometheus Operator names a ServiceMonitor's job after the Service (the release's name)
    unless ``jobLabel`` names a label of the Service: the chart points it at the chart's name, the
    ``job="endusers"`` that ``EndUsersNoWorkerUp`` watches, for a release of any name."""
    objects = render("--set", "serviceMonitor.enabled=true", release="licensing")
    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    assert service["metadata"]["name"] != "endusers"
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "endusers"
    if RULES_FILE.is_file():
        assert 'up{job="endusers"}' in RULES_FILE.read_text()


def test_prometheus_rule_takes_a_rule_file(tmp_path: Path) -> None:
    """With --set-file the rules come from a Prometheus rule file: the project's own
    (deploy/monitoring/endusers.rules.yml) when the checkout has it, else a small one written here."""
    path = RULES_FILE
    if not path.is_file():
        path = tmp_path / "rules.yml"
        path.write_text("groups:\n  - name: from-file\n    rules:\n      - alert: Probe\n        expr: vector(1)\n"
                        "        annotations:\n          summary: \"{{ $value }}\"\n")
    objects = render("--set", "prometheusRule.enabled=true", "--set-file", f"prometheusRule.rulesFile={path}")
    assert one(objects, "PrometheusRule")["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]


def test_helm_test_hook_calls_readyz_through_the_service(default: list[dict[str, Any]]) -> None:
    pod = one(default, "Pod", "endusers-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    [container] = pod["spec"]["containers"]
    assert container["image"] == worker(default)["image"]
    assert "http://endusers:6066/readyz" in " ".join(container["command"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["restartPolicy"] == "Never"


def test_every_object_carries_the_release_labels(production: list[dict[str, Any]]) -> None:
    for item in production:
        labels = item["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "endusers", item["metadata"]["name"]


def _all_values(values: Any) -> Iterator[Any]:
    if isinstance(values, dict):
        for value in values.values():
            yield from _all_values(value)
    elif isinstance(values, list):
        for value in values:
            yield from _all_values(value)
    else:
        yield values


def test_values_files_hold_no_secret_material() -> None:
    for path in (CHART / "values.yaml", PRODUCTION):
        for value in _all_values(yaml.safe_load(path.read_text())):
            assert not (isinstance(value, str) and "://" in value and "@" in value), f"{path.name}: {value}"


# --- HTTP tokens --------------------------------------------------------------------------------

TOKENS_DIR = "/etc/endusers/api-tokens"


def test_without_a_tokens_secret_the_chart_refuses_unless_open_is_chosen() -> None:
    complaint = helm("template", "endusers", str(CHART), "--namespace", "licensing", check=False)
    assert complaint.returncode != 0 and "auth.tokensSecret is required" in complaint.stderr
    assert "contradict" in refusal("--set", "auth.open=true", "--set", "auth.tokensSecret=endusers-tokens")


def test_an_open_api_is_said_to_the_worker_and_the_notes_warn(
        default: list[dict[str, Any]], tmp_path: Path) -> None:
    container = worker(default)  # auth.open=true
    variables = env(container)
    assert "ENDUSERS_API_TOKENS_FILE" not in variables and variables["ENDUSERS_WEB_AUTH"] == "none"
    assert not [m for m in container["volumeMounts"] if m["mountPath"].startswith(TOKENS_DIR)]
    text = notes(tmp_path)
    assert "WARNING: no HTTP tokens" in text and "anyone who" in text
    # the worker starts with these variables: an open API on purpose, not by default
    settings = WorkerSettings.from_environment(expanded_env(container, POD), environment="production")
    assert settings.web_tokens_file() is None


def test_production_mounts_the_tokens_secret_read_only_and_names_the_file(
        production: list[dict[str, Any]], tmp_path: Path) -> None:
    container = worker(production)
    path = env(container)["ENDUSERS_API_TOKENS_FILE"]
    assert path == f"{TOKENS_DIR}/tokens"
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "api-tokens"]
    # the directory, not a subPath: a subPath mount never sees the kubelet's updates of the Secret
    assert mount == {"name": "api-tokens", "mountPath": TOKENS_DIR, "readOnly": True}
    [volume] = [v for v in workload(production)["spec"]["template"]["spec"]["volumes"] if v["name"] == "api-tokens"]
    assert volume["secret"] == {"secretName": "endusers-tokens", "items": [{"key": "tokens", "path": "tokens"}]}
    assert "WARNING" not in notes(tmp_path, "-f", str(PRODUCTION))
    assert "ENDUSERS_WEB_AUTH" not in env(container)


def test_tokens_key_names_the_mounted_file() -> None:
    objects = render("--set", "auth.tokensSecret=api", "--set", "auth.tokensKey=api-tokens.txt")
    assert env(worker(objects))["ENDUSERS_API_TOKENS_FILE"] == f"{TOKENS_DIR}/api-tokens.txt"


def _kubelet_writes(mount: Path, generation: int, content: str) -> None:
    """What the kubelet does to a Secret volume: the keys are links into ``..data``, a link to a dated
    folder, and an update writes a new folder and swaps ``..data`` in one rename."""
    folder = mount / f"..2026_11_29_00_00_0{generation}.{generation}"
    folder.mkdir()
    (folder / "tokens").write_text(content)
    (mount / "..data_tmp").symlink_to(folder.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    if not (mount / "tokens").is_symlink():
        (mount / "tokens").symlink_to("..data/tokens")


def test_worker_rereads_the_mounted_token_file_when_the_secret_changes(
        production: list[dict[str, Any]], tmp_path: Path) -> None:
    """A token added to (or deleted from) the Secret works (or stops) without a restart, because the
    chart mounts the Secret's folder and the worker re-reads the file the link points to."""
    path = env(worker(production))["ENDUSERS_API_TOKENS_FILE"]
    mount = tmp_path / path.removeprefix("/").rsplit("/", 1)[0]
    mount.mkdir(parents=True)
    first_file, second_file = tmp_path / "first", tmp_path / "second"
    first = create_token(first_file, "viewer", None)  # `endusers token create --file ...`
    second = create_token(second_file, "admin", frozenset({"acme"}))
    _kubelet_writes(mount, 1, first_file.read_text())
    tokens = TokenFile(tmp_path / path.removeprefix("/"))
    assert tokens.lookup(first) is not None and tokens.lookup(second) is None
    _kubelet_writes(mount, 2, second_file.read_text())  # the first token revoked, the second added
    assert tokens.lookup(first) is None
    grant = tokens.lookup(second)
    assert grant is not None and grant.admin and grant.sees("acme") and not grant.sees("globex")


def test_service_monitor_sends_a_token_when_the_workers_require_one(production: list[dict[str, Any]]) -> None:
    [endpoint] = one(production, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "endusers-scrape", "key": "token"}}


def test_service_monitor_without_a_token_is_refused_when_the_workers_require_one() -> None:
    complaint = refusal("--set", "serviceMonitor.enabled=true", "--set", "auth.tokensSecret=endusers-tokens")
    assert "serviceMonitor.tokenSecret is required with auth.tokensSecret" in complaint


# --- allowed hosts ------------------------------------------------------------------------------

POD = {"metadata.name": "endusers-0", "status.podIP": "10.42.0.7"}
SERVICE_NAMES = {"endusers", "endusers.licensing", "endusers.licensing.svc", "endusers.licensing.svc.cluster.local"}


def allowed_hosts(objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> frozenset[str] | None:
    """The Host names the worker answers to, read by the worker's own code from the rendered env."""
    settings = WorkerSettings.from_environment(expanded_env(worker(objects), POD), web_host="0.0.0.0")
    return Access.configured(settings.web_host, settings.api_tokens_file, settings.web_allowed_hosts).allowed_hosts


def test_allowed_hosts_keep_the_in_cluster_clients_and_add_the_service_names(
        default: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart lists what a pod answers to (loopback for kubectl port-forward, the pod's IP that
    Prometheus scrapes by, its name; the worker adds the same defaults itself) and the Service's
    names, by which clients in the cluster reach the workers."""
    hosts = allowed_hosts(default, monkeypatch)
    assert hosts is not None
    assert {"localhost", "127.0.0.1", "::1", "10.42.0.7", "endusers-0"} | SERVICE_NAMES <= hosts
    listed = expanded_env(worker(default), POD)["ENDUSERS_WEB_ALLOWED_HOSTS"].split(",")
    assert {"localhost", "127.0.0.1", "::1", "10.42.0.7", "endusers-0"} | SERVICE_NAMES == set(listed)
    # Kubernetes expands $(POD_IP) only when POD_IP is defined earlier in the list
    names = [e["name"] for e in worker(default)["env"]]
    assert names.index("POD_IP") < names.index("ENDUSERS_WEB_ALLOWED_HOSTS")
    assert names.index("ENDUSERS_INSTANCE_ID") < names.index("ENDUSERS_WEB_ALLOWED_HOSTS")
    assert env(worker(default))["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_allowed_hosts_of_a_statefulset_add_the_headless_and_pod_names(
        production: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = allowed_hosts(production, monkeypatch)
    assert hosts is not None and SERVICE_NAMES <= hosts
    assert {"endusers-headless.licensing.svc", "endusers-0.endusers-headless",
            "endusers-0.endusers-headless.licensing.svc.cluster.local"} <= hosts


def test_allowed_hosts_add_the_values_and_the_dashboard_host(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render("--set", "web.allowedHosts={counts.example.com,10.0.0.1}", "--set", "clusterDomain=corp.local",
                     "--set", "alerting.dashboardUrl=https://Board.example.com:8443/endusers/")
    hosts = allowed_hosts(objects, monkeypatch)
    assert hosts is not None
    assert {"counts.example.com", "10.0.0.1", "board.example.com", "endusers.licensing.svc.corp.local",
            "10.42.0.7"} <= hosts


def test_allowed_hosts_star_answers_any_host(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = render("--set", "web.allowedHosts={*}")
    assert env(worker(objects))["ENDUSERS_WEB_ALLOWED_HOSTS"] == "*"
    assert allowed_hosts(objects, monkeypatch) is None


# --- Alertmanager push --------------------------------------------------------------------------

ALERT_VARIABLES = ("ENDUSERS_ALERTMANAGER_URL", "ENDUSERS_ALERT_SEVERITIES", "ENDUSERS_ALERT_INTERVAL",
                   "ENDUSERS_DASHBOARD_URL")


@pytest.mark.parametrize("values", [[], ["-f", str(PRODUCTION)]], ids=["default", "production"])
def test_alerting_is_off_and_the_worker_keeps_its_defaults_unless_set(values: list[str]) -> None:
    objects = render(*values)
    assert not set(ALERT_VARIABLES) & set(env(worker(objects)))
    # DNS, Kafka, Redis, the other workers: no rule for Alertmanager
    assert len(one(objects, "NetworkPolicy")["spec"]["egress"]) == 4


def test_alerting_values_become_the_workers_settings_and_open_the_alertmanager_port() -> None:
    objects = render("--set", "alerting.alertmanagerUrls={http://am-0.am:9093,http://am-1.am:9093}",
                     "--set", "alerting.severities=10:info\\,100:page", "--set", "alerting.interval=30",
                     "--set", "alerting.dashboardUrl=https://endusers.example.com/",
                     "--set-json", 'networkPolicy.egress.alertmanager.to=[{"podSelector": {"matchLabels": {"app": "am"}}}]')
    variables = env(worker(objects))
    assert variables["ENDUSERS_ALERTMANAGER_URL"] == "http://am-0.am:9093,http://am-1.am:9093"
    assert Severities.parse(variables["ENDUSERS_ALERT_SEVERITIES"]).tiers == ((10, "info"), (100, "page"))
    assert float(variables["ENDUSERS_ALERT_INTERVAL"]) == 30
    assert variables["ENDUSERS_DASHBOARD_URL"] == "https://endusers.example.com/"
    egress = one(objects, "NetworkPolicy")["spec"]["egress"]
    [rule] = [r for r in egress if r["ports"] == [{"port": 9093, "protocol": "TCP"}]]
    assert rule["to"] == [{"podSelector": {"matchLabels": {"app": "am"}}}]


def test_alertmanager_url_on_a_port_the_network_policy_closes_is_refused() -> None:
    complaint = refusal("--set", "alerting.alertmanagerUrls={https://alertmanager.example.com}")
    assert "https://alertmanager.example.com uses port 443" in complaint
    # without the NetworkPolicy, or with the port opened, the same URL is fine
    for extra in (["--set", "networkPolicy.enabled=false"], ["--set", "networkPolicy.egress.alertmanager.ports={443}"]):
        objects = render("--set", "alerting.alertmanagerUrls={https://alertmanager.example.com}", *extra)
        assert env(worker(objects))["ENDUSERS_ALERTMANAGER_URL"] == "https://alertmanager.example.com"


@pytest.mark.parametrize("severities, valid", [
    ("1:warning,100:critical", True),
    (" 1 : warn , 50:crit", True),
    ("5:sev:1", True),
    ("warning", False),
    ("1:", False),
    (":critical", False),
    ("1:warning,", False),
    ("x:warning", False),
])
def test_schema_takes_the_severities_the_worker_parses(severities: str, valid: bool) -> None:
    """The schema refuses at install time what would stop every worker at start."""
    args = ("--set-json", f"alerting.severities={json.dumps(severities)}")
    if valid:
        assert env(worker(render(*args)))["ENDUSERS_ALERT_SEVERITIES"] == severities
        Severities.parse(severities)
    else:
        assert "alerting/severities" in refusal(*args)
        with pytest.raises(ValueError):
            Severities.parse(severities)


@pytest.mark.parametrize("setting, complaint", [
    ('web.allowedHosts=["a.example,b.example"]', "allowedHosts"),
    ('web.allowedHosts="counts.example.com"', "allowedHosts"),
    ('alerting.alertmanagerUrls=["alertmanager:9093"]', "alertmanagerUrls"),
    ('alerting.alertmanagerUrls="http://am:9093"', "alertmanagerUrls"),
    ("alerting.interval=0", "interval"),
    ('alerting.dashboardUrl="endusers.example.com"', "dashboardUrl"),
    ('auth.tokensKey=""', "tokensKey"),
    ("networkPolicy.egress.alertmanager.ports=[]", "alertmanager"),
])
def test_schema_refuses_bad_security_and_alerting_values(setting: str, complaint: str) -> None:
    text = refusal("--set-json", setting)
    assert "values don't meet the specifications of the schema" in text and complaint in text


GATEWAY = ("--set", "gateway.enabled=true", "--set", "auth.tokensSecret=endusers-tokens")


def test_the_gateway_is_off_by_default(default: list[dict[str, Any]]) -> None:
    assert not [o for o in default if o["metadata"]["name"].endswith("-gateway")]


def test_the_gateway_is_a_deployment_with_its_own_service_reaching_only_kafka() -> None:
    objects = render(*GATEWAY)
    deployment = one(objects, "Deployment", "endusers-gateway")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["gateway"]
    variables = env(container)
    assert variables["ENDUSERS_GATEWAY_HOST"] == "0.0.0.0" and variables["ENDUSERS_GATEWAY_PORT"] == "6068"
    assert variables["ENDUSERS_API_TOKENS_FILE"] == "/etc/endusers/api-tokens/tokens"
    assert variables["ENDUSERS_KAFKA"] == "kafka://kafka:9092"
    assert "ENDUSERS_REDIS" not in variables and "ENDUSERS_SECRET" not in variables  # it needs Kafka only
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service", "endusers-gateway")
    assert selects(service["spec"]["selector"], labels) and service["spec"]["ports"][0]["port"] == 6068
    worker_service = one(objects, "Service", "endusers")
    assert not selects(worker_service["spec"]["selector"], labels), "the workers' Service must not reach the gateway"
    policy = one(objects, "NetworkPolicy", "endusers-gateway")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    assert [rule["ports"][0]["port"] for rule in policy["spec"]["egress"]] == [53, 9092]
    assert not [o for o in objects if o["kind"] == "Ingress"]


def test_the_gateway_ingress_routes_only_the_event_paths_and_its_host_is_allowed() -> None:
    objects = render(*GATEWAY, "--set", "gateway.ingress.enabled=true", "--set", "gateway.ingress.host=events.example.com",
                     "--set", "gateway.ingress.tlsSecret=events-tls")
    ingress = one(objects, "Ingress", "endusers-gateway")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "events.example.com"
    assert [p["path"] for p in rule["http"]["paths"]] == ["/v1/subscriptions/"]
    assert ingress["spec"]["tls"] == [{"hosts": ["events.example.com"], "secretName": "events-tls"}]
    [container] = one(objects, "Deployment", "endusers-gateway")["spec"]["template"]["spec"]["containers"]
    assert "events.example.com" in env(container)["ENDUSERS_WEB_ALLOWED_HOSTS"].split(",")


def test_a_gateway_ingress_without_a_host_is_refused() -> None:
    assert "gateway.ingress.host is required" in refusal(*GATEWAY, "--set", "gateway.ingress.enabled=true")


EXPOSED = (*GATEWAY, "--set", "gateway.ingress.enabled=true", "--set", "gateway.ingress.host=events.example.com",
           "--set-json", 'networkPolicy.egress.redis.to=[{"podSelector": {"matchLabels": {"app": "redis"}}}]')
"""A gateway behind an Ingress, with the production values' Redis port (6380) and a peer for Redis."""
SCIM = (*EXPOSED, "--set", "gateway.scim.enabled=true")


def redis_rule(policy: dict[str, Any], port: int) -> list[dict[str, Any]]:
    """The egress rules of a NetworkPolicy that open ``port`` (Redis's)."""
    return [rule for rule in policy["spec"]["egress"] if {"port": port, "protocol": "TCP"} in rule["ports"]]


def test_gateway_scim_gets_redis_and_the_secret_as_the_workers_do_and_its_ingress_path() -> None:
    """SCIM resources are kept in Redis and sealed with a key derived from ENDUSERS_SECRET: the gateway
    gets both variables, its NetworkPolicy the workers' Redis egress (the same values), the Ingress
    /scim/v2/, and the replicas asked for, rolled as usual (a lease in Redis serializes the writes of a
    subscription across them)."""
    objects = render("-f", str(PRODUCTION), *SCIM)
    deployment = one(objects, "Deployment", "endusers-gateway")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [worker_container] = one(objects, "StatefulSet", "endusers")["spec"]["template"]["spec"]["containers"]
    gateway, workers = env(container), env(worker_container)
    assert gateway["ENDUSERS_REDIS"] == workers["ENDUSERS_REDIS"] == {"secretKeyRef": {"name": "endusers-redis", "key": "url"}}
    assert gateway["ENDUSERS_SECRET"] == workers["ENDUSERS_SECRET"] == {"secretKeyRef": {"name": "endusers", "key": "secret"}}
    assert deployment["spec"]["replicas"] == 2 and "strategy" not in deployment["spec"]
    [to_redis] = redis_rule(one(objects, "NetworkPolicy", "endusers-gateway"), 6380)
    assert [to_redis] == redis_rule(one(objects, "NetworkPolicy", "endusers"), 6380)
    assert to_redis["to"] == [{"podSelector": {"matchLabels": {"app": "redis"}}}]
    [rule] = one(objects, "Ingress", "endusers-gateway")["spec"]["rules"]
    assert [p["path"] for p in rule["http"]["paths"]] == ["/v1/subscriptions/", "/scim/v2/"]
    assert {p["backend"]["service"]["name"] for p in rule["http"]["paths"]} == {"endusers-gateway"}


def test_gateway_without_scim_gets_no_redis_no_secret_and_no_scim_path() -> None:
    objects = render("-f", str(PRODUCTION), *EXPOSED)
    deployment = one(objects, "Deployment", "endusers-gateway")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert not {"ENDUSERS_REDIS", "ENDUSERS_SECRET"} & set(env(container))
    assert "strategy" not in deployment["spec"] and deployment["spec"]["replicas"] == 2
    assert redis_rule(one(objects, "NetworkPolicy", "endusers-gateway"), 6380) == []
    [rule] = one(objects, "Ingress", "endusers-gateway")["spec"]["rules"]
    assert [p["path"] for p in rule["http"]["paths"]] == ["/v1/subscriptions/"]
