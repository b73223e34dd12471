"""deploy/monitoring: the Prometheus rules pass promtool's checks and unit tests, every rule is tested
firing and not firing and has a runbook section, and the Grafana dashboard's PromQL parses and uses
only metrics the worker exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from streams.observe import metrics
from tests.fixtures.monitoring import AMTOOL, MONITORING, PROMTOOL, promtool, requires

REPO = MONITORING.parents[1]
RULES = MONITORING / "endusers.rules.yml"
RULE_TESTS = MONITORING / "endusers.rules.test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RUNBOOK = REPO / "docs" / "runbook.md"

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$subscription": ".*"}
"""What Grafana puts in place of its variables before a query reaches Prometheus."""


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@requires(PROMTOOL)
def test_rules_pass_promtool_check() -> None:
    run = promtool("check", "rules", RULES.name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in run.stdout


@requires(PROMTOOL)
def test_rules_pass_their_promtool_unit_tests() -> None:
    run = promtool("test", "rules", RULE_TESTS.name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tested: dict[str, set[bool]] = {}
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            tested.setdefault(check["alertname"], set()).add(bool(check.get("exp_alerts")))
    for rule in _rules():
        assert tested.get(rule["alert"]) == {True, False}, f"{rule['alert']} needs a firing and a not-firing test"
    severities = {(rule["alert"], rule["labels"]["severity"]) for rule in _rules()}
    tests_text = RULE_TESTS.read_text()
    for alert, severity in severities:
        assert re.search(rf"severity: {severity}\b", tests_text), f"{alert} with severity {severity} is untested"


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    anchors = _anchors(RUNBOOK.read_text())
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        runbook = rule["annotations"]["runbook"]
        path, _, anchor = runbook.partition("#")
        assert path == "docs/runbook.md" and anchor in anchors, f"{rule['alert']}: {runbook} names no section"
        assert anchor == rule["alert"].lower(), f"{rule['alert']}: its runbook section is named after it"


def _panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def _as_prometheus_sees_it(expr: str) -> str:
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable without a stand-in in {expr!r}"
    return expr


def _exported_sample_names() -> set[str]:
    """Every sample name the worker's registry can export (a counter ``x`` exports ``x_total``, a
    histogram ``x_bucket``, ``x_count`` and ``x_sum``)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",)}
    return {family.name + suffix for family in metrics.REGISTRY.collect()
            for suffix in suffixes[family.type]}


@requires(PROMTOOL)
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool has no expression checker, but it parses every expression of a rule file."""
    queries = _panel_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{n}", "expr": _as_prometheus_sees_it(expr)} for n, (_, expr) in enumerate(queries)]}]}
    (tmp_path / "dashboard.rules.yml").write_text(json.dumps(rules))  # JSON is YAML
    run = promtool("check", "rules", "dashboard.rules.yml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(queries)} rules found" in run.stdout


def test_dashboard_uses_only_metrics_the_worker_exports() -> None:
    exported = _exported_sample_names()
    assert {"endusers_users", "endusers_level", "endusers_batch_seconds_bucket",
            "endusers_events_processed_total"} <= exported
    titles = set()
    for title, expr in _panel_queries():
        used = set(re.findall(r"\bendusers_[a-z0-9_]+", expr))
        assert used or 'up{job="endusers"}' in expr, f"{title}: {expr!r} reads no metric of the worker"
        assert used <= exported, f"{title}: {sorted(used - exported)} are not exported by streams/observe/metrics.py"
        titles.add(title)
    wanted = {"End users vs capacity", "Capacity level", "Consumer lag", "Throughput", "Batch latency",
              "Dead letters and rejections", "Anonymous sessions"}
    assert wanted <= titles


def test_dashboard_panels_have_unique_ids_and_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "subscription"}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


@requires(AMTOOL)
def test_the_alertmanager_example_is_a_valid_configuration() -> None:
    run = subprocess.run([AMTOOL, "check-config", "alertmanager.example.yml"], cwd=MONITORING, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


@requires(PROMTOOL)
def test_the_prometheus_example_is_a_valid_configuration_with_the_rules() -> None:
    run = promtool("check", "config", "prometheus.example.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 1 rule files found" in run.stdout


def test_the_alerting_page_shows_the_alertmanager_example_as_shipped() -> None:
    page = (REPO / "docs" / "alerting.md").read_text()
    example = (MONITORING / "alertmanager.example.yml").read_text()
    configuration = "\n".join(line for line in example.splitlines() if not line.startswith("#")).strip()
    assert configuration in page, "docs/alerting.md's Alertmanager example differs from deploy/monitoring/alertmanager.example.yml"
