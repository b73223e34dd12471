"""The Helm chart (deploy/helm/endusers), linted and rendered by a real Helm, and the rendered objects
checked for what a Kubernetes operator relies on: probes, the secret reference, replicas within the
partitions, the non-root security context, the pod name as Kafka instance id, the test hook.

Helm is the version deploy/local/helm pins, built once with `go install` and cached.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "endusers"
PRODUCTION = CHART / "values-production.yaml"
RULES_FILE = REPO / "deploy" / "monitoring" / "endusers.rules.yml"


@cache
def helm_binary() -> str:
    """The pinned Helm, installed by the project's own script when missing (a few minutes, once)."""
    proc = subprocess.run([str(REPO / "deploy" / "local" / "helm"), "--path"], capture_output=True, text=True,
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


def render(*args: str, release: str = "endusers") -> list[dict[str, Any]]:
    """The objects `helm template` renders (release "endusers" unless named), hooks included."""
    output = helm("template", release, str(CHART), "--namespace", "licensing", *args).stdout
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
    result = helm("lint", "--strict", str(CHART), *values)
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
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (9093, "TCP"), (6380, "TCP")}


def test_monitoring_objects_are_optional(default: list[dict[str, Any]], production: list[dict[str, Any]]) -> None:
    assert not [o for o in default if o["kind"] in ("ServiceMonitor", "PrometheusRule")]
    monitor = one(production, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
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
