"""Recount cost of an owned-domains change: it depends on the distinct signatures, not on the records.

Builds a ``SubscriptionState`` with N records spread over 20,000 email domains (normalized changes fed
straight to ``counters.engine.apply``), then applies config changes of the owned domains and times each
recount. Run at 100,000, 300,000 and 1,000,000 records: the figures stay flat. It also times two
runtime-version changes: an upgrade within the same counting policy (11.14.0 -> 11.16.0), which
changes no record's facts and costs nothing, and, for contrast, a downgrade across 11.11.3, which
changes dedup eligibility and regroups every record (O(records), and rare).

Usage: ``.venv/bin/python -m tests.bench.reconfigure [--records N ...] [--domains N]``
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

from counters import engine
from counters import Digester
from counters.state import SubscriptionState
from schemas.changes import Change, ConfigFields

SUBSCRIPTION = "bench"
RUNTIMES = ("prod-eu", "prod-us", "prod-ap")
PROVIDERS = ("Users", "AzureAD", "Okta")
ORGS = 100


def domain_of(n: int) -> str:
    return f"d{n}.org{n % ORGS}.example"


def config(time_us: int, **fields: Any) -> Change:
    return Change(kind="config", subscription=SUBSCRIPTION, time=time_us, event_id=f"cfg-{time_us}", config=ConfigFields(**fields))


def build(records: int, domains: int) -> tuple[SubscriptionState, float]:
    """A state with ``records`` countable records; one in five shares its email with the record before it."""
    digest, state = Digester(), SubscriptionState(SUBSCRIPTION)
    engine.apply(state, config(1, capacity={"internal": records // 2, "external": records // 2},
                               runtimes={r: [11, 14, 0] for r in RUNTIMES}))
    started = time.perf_counter()
    for i in range(records):
        person = i // 5 * 4 + (0, 0, 1, 2, 3)[i % 5]  # dense person numbers; records 5k and 5k+1 share one
        domain = domain_of(person % domains)
        email = f"user{person}@{domain}"
        change = Change(
            kind="login", subscription=SUBSCRIPTION, time=10 + i, event_id=f"ev-{i}",
            record=digest(RUNTIMES[i % 3], "default", PROVIDERS[i % 3], str(i)),
            runtime=RUNTIMES[i % 3], provider=PROVIDERS[i % 3],
            fields={"email": [digest(email), domain], "username": [digest(f"login{i}"), None]},
        )
        engine.apply(state, change)
    return state, time.perf_counter() - started


def domain_configs(domains: int) -> list[tuple[str, list[str]]]:
    """Owned-domain settings to cycle through (each differs from the one before it)."""
    return [
        ("1,000 exact domains", sorted(domain_of(n) for n in range(0, domains, domains // 1000))),
        ("10 wildcards (*.orgN.example)", sorted(f"*.org{n}.example" for n in range(10))),
        ("10,000 exact + 5 wildcards", sorted([domain_of(n) for n in range(1, domains, 2)][:10_000]
                                              + [f"*.org{n}.example" for n in range(50, 55)])),
        ("none (everyone internal)", []),
    ]


def bench(records: int, domains: int, rounds: int) -> dict[str, Any]:
    gc.collect()
    state, build_s = build(records, domains)
    whole = state.scopes[None]
    result: dict[str, Any] = {"records": len(state.records), "build_s": build_s,
                              "signatures": len(whole.histogram), "individuals": sum(whole.histogram.values())}
    timings: dict[str, list[float]] = {}
    now = 10 + records
    gc.disable()  # measure the recount, not a collection the build left pending
    try:
        for _ in range(rounds):
            for label, owned in domain_configs(domains):
                now += 1
                started = time.perf_counter()
                engine.apply(state, config(now, domains=owned))
                timings.setdefault(label, []).append((time.perf_counter() - started) * 1000)
                result.setdefault("counts", {})[label] = (state.count("internal"), state.count("external"))
        for key, version in (("version_upgrade_ms", [11, 16, 0]), ("version_change_ms", [11, 10, 0])):
            now += 1
            started = time.perf_counter()
            engine.apply(state, config(now, runtimes={"prod-us": version}))
            result[key] = (time.perf_counter() - started) * 1000
    finally:
        gc.enable()
    result["domain_change_ms"] = {label: statistics.median(values) for label, values in timings.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--domains", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    results = []
    for records in args.records:
        result = bench(records, args.domains, args.rounds)
        results.append(result)
        print(f"{result['records']:>9,} records ({result['individuals']:,} individuals, "
              f"{result['signatures']:,} distinct signatures), built in {result['build_s']:.1f} s")
        for label, ms in result["domain_change_ms"].items():
            internal, external = result["counts"][label]
            print(f"    owned domains -> {label:<32} {ms:8.2f} ms (median of {args.rounds})"
                  f"   internal {internal:,} external {external:,}")
        print(f"    runtime upgrade 11.14.0 -> 11.16.0 (same policy) {result['version_upgrade_ms']:8.2f} ms")
        print(f"    runtime version 11.16.0 -> 11.10.0 (regroups all){result['version_change_ms']:8.0f} ms")
        del result["counts"]

    print()
    labels = list(results[0]["domain_change_ms"])
    print(f"{'recount after a domains change (ms)':<40}" + "".join(f"{r['records']:>12,}" for r in results))
    for label in labels:
        print(f"  {label:<38}" + "".join(f"{r['domain_change_ms'][label]:>12.2f}" for r in results))
    print(f"  {'runtime upgrade, same policy':<38}" + "".join(f"{r['version_upgrade_ms']:>12.2f}" for r in results))
    print(f"  {'runtime version across 11.11.3':<38}" + "".join(f"{r['version_change_ms']:>12.0f}" for r in results))


if __name__ == "__main__":
    main()
