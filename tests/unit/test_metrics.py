"""streams/observe/metrics.py: rejection categories and the per-subscription count gauges."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.codec import Rejection, Source, decode, too_far_ahead
from schemas.events import parse_rfc3339
from streams.observe import metrics
from tests.unit.fake_counts import counts


def samples(name: str, subscription: str) -> dict[tuple[tuple[str, str], ...], float]:
    body, _ = metrics.render()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("subscription") == subscription:
                found[tuple(sorted((k, v) for k, v in sample.labels.items() if k != "subscription"))] = sample.value
    return found


@pytest.mark.parametrize("raw, category", [
    (b"{", "not_json"),
    (b"[1]", "not_object"),
    (b'{"type": "zap", "subscription": "s"}', "unknown_type"),
    (b'{"subscription": "s"}', "missing_type"),
    (b'{"type": "login", "subscription": "s"}', "missing_field"),
    (b'{"type": "profile", "subscription": "s", "user_id": "u", "op": "zap"}', "unknown_op"),
    (b'{"type": "login", "subscription": "s", "user_id": "u", "time": "yesterday"}', "bad_time"),
    (b'{"type": "login", "subscription": "s", "user_id": "u", "name": "' + b"x" * 300 + b'"}', "too_large"),
    (b'{"type": "login", "subscription": "s", "user_id": true}', "invalid"),
    (b'{"type": "config", "subscription": "s", "runtimes": {' + b",".join(b'"r%d": {}' % n for n in range(1001)) + b"}}",
     "too_large"),
])
def test_each_codec_rejection_carries_the_category_its_metric_is_labelled_with(raw: bytes, category: str) -> None:
    rejection = decode(raw)
    assert isinstance(rejection, Rejection) and rejection.category == category


def test_observe_counts_sets_and_removes_series() -> None:
    value = counts(10, 3, runtimes={"prod": {"internal": 8, "external": 3, "records": 11},
                                    "dev": {"internal": 2, "external": 0, "records": 2}},
                   providers={"default": 12, "visitor": 1}, anonymous=5, levels={"internal": 80, "external": 0})
    metrics.observe_counts("m1", value, {"internal": 12, "external": None}, shared_identifiers=2)
    assert samples("endusers_users", "m1") == {(("user_class", "internal"),): 10, (("user_class", "external"),): 3}
    assert samples("endusers_shared_identifiers", "m1") == {(): 2}
    assert samples("endusers_records", "m1") == {(): 13}
    assert samples("endusers_anonymous_sessions", "m1") == {(): 5}
    assert samples("endusers_capacity", "m1") == {(("user_class", "internal"),): 12}
    assert samples("endusers_level", "m1")[(("user_class", "internal"),)] == 80
    assert samples("endusers_runtime_records", "m1") == {(("runtime", "dev"),): 2, (("runtime", "prod"),): 11}
    assert samples("endusers_runtime_users", "m1")[(("runtime", "prod"), ("user_class", "external"))] == 3
    assert samples("endusers_provider_records", "m1") == {(("provider", "default"),): 12,
                                                          (("provider", "visitor"),): 1}

    value = counts(9, 3, runtimes={"prod": {"internal": 9, "external": 3, "records": 12}},
                   providers={"default": 12})
    metrics.observe_counts("m1", value, {"internal": None, "external": None})
    assert samples("endusers_runtime_records", "m1") == {(("runtime", "prod"),): 12}
    assert set(samples("endusers_runtime_users", "m1")) == {(("runtime", "prod"), ("user_class", c))
                                                            for c in ("internal", "external")}
    assert samples("endusers_provider_records", "m1") == {(("provider", "default"),): 12}
    assert samples("endusers_capacity", "m1") == {}

    assert samples("endusers_shared_identifiers", "m1") == {(): 0}

    metrics.forget_subscription("m1")
    assert samples("endusers_users", "m1") == {}
    assert samples("endusers_shared_identifiers", "m1") == {}


def test_counters_and_histogram_render() -> None:
    metrics.REJECTIONS.labels("not_json").inc()
    metrics.DEAD_LETTERS.inc()
    metrics.CAPACITY_EVENTS.labels("m2", "internal", "up").inc()
    metrics.CONSUMER_LAG.labels("enduser.logins", "0").set(7)
    metrics.BATCH_SECONDS.labels("count").observe(0.003)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in ("endusers_rejections_total", "endusers_dead_letters_total", "endusers_capacity_events_total",
                 "endusers_consumer_lag", 'endusers_batch_seconds_bucket{le="0.005",stage="count"}'):
        assert name in text


def test_a_rebalance_drops_only_the_lag_of_that_consumers_partitions_it_lost() -> None:
    metrics.CONSUMER_LAG.labels("t.changes", "0").set(1)
    metrics.CONSUMER_LAG.labels("t.changes", "1").set(2)
    metrics.CONSUMER_LAG.labels("t.logins", "0").set(3)  # the ingest consumer's, not the count stage's

    metrics.keep_lag_of(["t.changes"], [("t.changes", 1)])

    body, _ = metrics.render()
    kept = {(s.labels["topic"], s.labels["partition"]) for family in text_string_to_metric_families(body.decode())
            for s in family.samples if s.name == "endusers_consumer_lag"}
    assert {("t.changes", "1"), ("t.logins", "0")} <= kept and ("t.changes", "0") not in kept


def test_future_times_wrong_topics_and_oversized_events_have_their_own_categories() -> None:
    event = decode(b'{"type": "login", "subscription": "s", "user_id": "u", "time": "9999-01-01T00:00:00Z"}')
    assert not isinstance(event, Rejection)
    future = too_far_ahead(event, parse_rfc3339("2026-11-29T00:00:00Z"), 86_400_000_000)
    assert future is not None and future.category == "future_time"
    wrong_topic = decode(b'{"type": "config", "subscription": "s"}', Source("enduser.logins", "login"))
    assert isinstance(wrong_topic, Rejection) and wrong_topic.category == "wrong_topic"
    too_large = decode(b" " * 2_000_000)
    assert isinstance(too_large, Rejection) and too_large.category == "too_large"


def test_runtimes_and_providers_beyond_the_label_cap_are_summed_under_other() -> None:
    runtimes = {f"rt-{n:03d}": {"internal": n, "external": 1, "records": n + 1} for n in range(120)}
    providers = {f"idp-{n:03d}": n for n in range(120)}
    metrics.observe_counts("capped", counts(0, 0, runtimes=runtimes, providers=providers), {})

    records = samples("endusers_runtime_records", "capped")
    assert len(records) == 51, "the 50 largest runtimes (ENDUSERS_METRICS_MAX_LABELS default) and other"
    assert {labels[0][1] for labels in records} == {f"rt-{n:03d}" for n in range(70, 120)} | {"other"}
    assert records[(("runtime", "other"),)] == sum(n + 1 for n in range(70))
    users = samples("endusers_runtime_users", "capped")
    assert users[(("runtime", "other"), ("user_class", "internal"))] == sum(range(70))
    assert users[(("runtime", "other"), ("user_class", "external"))] == 70
    assert len(users) == 102
    by_provider = samples("endusers_provider_records", "capped")
    assert len(by_provider) == 51 and by_provider[(("provider", "other"),)] == sum(range(70))
    assert sum(records.values()) == sum(n + 1 for n in range(120)), "nothing is lost, only grouped"

    metrics.cap_labels(3)
    try:
        runtimes = {"a": {"internal": 5, "external": 0, "records": 5}, "other": {"internal": 1, "external": 0, "records": 1},
                    "b": {"internal": 4, "external": 0, "records": 4}, "c": {"internal": 3, "external": 0, "records": 3},
                    "d": {"internal": 2, "external": 0, "records": 2}}
        metrics.observe_counts("capped", counts(0, 0, runtimes=runtimes, providers={"x": 1}), {})
        assert samples("endusers_runtime_records", "capped") == {
            (("runtime", "a"),): 5, (("runtime", "b"),): 4, (("runtime", "c"),): 3, (("runtime", "other"),): 3}
        assert samples("endusers_provider_records", "capped") == {(("provider", "x"),): 1}
        with pytest.raises(ValueError, match="ENDUSERS_METRICS_MAX_LABELS"):
            metrics.cap_labels(0)
    finally:
        metrics.cap_labels(50)
        metrics.forget_subscription("capped")
