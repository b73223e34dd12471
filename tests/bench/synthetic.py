"""A synthetic identity provider: realistic event streams for demos and benchmarks.

About 90% logins with Zipf-like repeats (a few people log in all the time), 10% profile churn
(email changes, deactivations, new users), over many users, domains, runtimes and subscriptions.
Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from schemas.outputs import format_instant

START_US = 1_780_000_000_000_000  # 2026-05-28T20:26:40Z


def configs(subscriptions: int, users: int) -> list[dict[str, Any]]:
    out = []
    for s in range(subscriptions):
        out.append({
            "type": "config", "id": f"cfg-{s}", "subscription": f"client-{s}",
            "platform": "odc" if s % 5 == 4 else "o11",
            "domains": [f"client{s}.example", f"*.client{s}.example"],
            "capacity": {"internal": max(1, users // subscriptions // 6), "external": max(1, users // subscriptions // 4)},
            "runtimes": {"prod-eu": {"version": "11.14.0"}, "prod-us": {"version": "11.12.1"},
                         "legacy": {"version": "11.10.0"}},
        })
    return out


def events(count: int, subscriptions: int = 10, users: int = 20_000, domains: int = 50,
           seed: int = 1) -> Iterator[dict[str, Any]]:
    """``count`` events after the configs; users are spread over subscriptions and runtimes."""
    rng = random.Random(seed)
    runtimes = ("prod-eu", "prod-eu", "prod-us", "legacy")
    providers = ("Users", "AzureAD", "Okta")
    # Zipf-like popularity: weight 1/rank^1.1 over a shuffled user list, sampled by bisect
    weights, total = [], 0.0
    for rank in range(1, users + 1):
        total += 1.0 / rank**1.1
        weights.append(total)
    import bisect

    def person() -> int:
        return bisect.bisect_left(weights, rng.random() * total)

    email_domain = {}
    for n in range(count):
        user = person()
        sub = user % subscriptions
        base = {"subscription": f"client-{sub}", "runtime": runtimes[(user // subscriptions) % len(runtimes)],
                "provider": providers[(user // 7) % len(providers)], "user_id": str(user), "id": f"ev-{n}",
                "time": format_instant(START_US + n * 1000)}
        if user not in email_domain:
            email_domain[user] = (f"client{sub}.example" if rng.random() < 0.4 else f"ext{rng.randrange(domains)}.example")
        roll = rng.random()
        if roll < 0.88:
            yield {"type": "login", **base, "username": f"user{user}", "email": f"user{user}@{email_domain[user]}"}
        elif roll < 0.90:
            shared = {"email": f"visitor{n % 97}@mail.example"} if rng.random() < 0.2 else {}
            yield {"type": "visit", "subscription": base["subscription"], "session_id": f"s{rng.randrange(10**9)}",
                   "id": base["id"], "time": base["time"], **shared}
        elif roll < 0.95:
            email_domain[user] = f"ext{rng.randrange(domains)}.example" if rng.random() < 0.5 else f"client{sub}.example"
            yield {"type": "profile", "op": "upsert", **base, "email": f"user{user}@{email_domain[user]}"}
        elif roll < 0.98:
            yield {"type": "profile", "op": "deactivate", **base}
        else:
            yield {"type": "profile", "op": "activate", **base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscriptions", type=int, default=10)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    out = sys.stdout.buffer
    for event in configs(args.subscriptions, args.users):
        out.write(orjson.dumps(event) + b"\n")
    for event in events(args.events, args.subscriptions, args.users, seed=args.seed):
        out.write(orjson.dumps(event) + b"\n")


if __name__ == "__main__":
    main()
