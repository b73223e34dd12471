"""Audit entries keep what a config changed, key by key, within a bounded size (streams/store/audit.py)."""

from __future__ import annotations

import orjson

from counters import SubscriptionSettings
from schemas.changes import Change
from streams.cli.present import audit_lines
from streams.store.audit import AUDIT_ENTRY_BYTES, entry


def settings(**values: object) -> dict[str, object]:
    return {**SubscriptionSettings().to_dict(), **values}


def config_change() -> Change:
    return Change(kind="config", time=0, subscription="acme", origin=["t.config", 0, 7, "alice"])


def test_an_entry_keeps_only_the_runtime_that_changed_not_the_whole_settings() -> None:
    runtimes = {f"runtime-{n:04}-{'x' * 20}": [11, 14, 0] for n in range(1000)}
    before = settings(runtimes=runtimes)
    after = settings(runtimes={**runtimes, "runtime-0007-" + "x" * 20: [11, 20, 1]})
    item = entry(config_change(), before, after)
    assert item["diff"] == {"runtimes.runtime-0007-" + "x" * 20: {"before": [11, 14, 0], "after": [11, 20, 1]}}
    assert item["changed"] == ["runtimes"] and "before" not in item and "after" not in item
    assert len(orjson.dumps(item)) < 1000 < len(orjson.dumps(before))


def test_a_domains_change_is_what_was_added_and_removed() -> None:
    item = entry(config_change(), settings(domains=["a.example", "b.example"]),
                 settings(domains=["b.example", "c.example"]))
    assert item["diff"] == {"domains": {"added": ["c.example"], "removed": ["a.example"],
                                        "added_count": 1, "removed_count": 1}}
    assert audit_lines(item) == ["domains: +c.example -a.example (1 added, 1 removed)"]


def test_an_entry_is_bounded_with_the_counts_kept_whole() -> None:
    domains = [f"d{n}-{'y' * 40}.example" for n in range(10_000)]
    item = entry(config_change(), settings(), settings(domains=domains, thresholds=[50]))
    assert len(orjson.dumps(item["diff"])) <= AUDIT_ENTRY_BYTES and item["cut"] is True
    assert item["diff"]["domains"]["added_count"] == 10_000 and len(item["diff"]["domains"]["added"]) == 10
    assert item["diff"]["thresholds"] == {"before": [80, 90, 100], "after": [50]}


def test_the_printed_entry_names_each_changed_key() -> None:
    item = entry(config_change(), settings(), settings(capacity={"internal": 10, "external": None}))
    assert audit_lines(item) == ["capacity.internal: null -> 10"]
    assert audit_lines({"changed": [], "diff": {}}) == ["(no setting changed)"]
