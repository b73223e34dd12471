"""Grouping cost when many records share one identifier (issue 9, item 1).

Replays N profile upserts with distinct user ids through the ``endusers replay`` path (decode,
validate, normalize, engine), once with every record holding the same email (``noreply@corp.example``,
a placeholder that real user tables contain) and once, as the baseline of the same run, with distinct
emails. Then, inside the shared group of N records, it times single changes applied to the engine:

- ``join``: a new record with the shared email;
- ``leave``: a member deactivated;
- ``email_change``: a member's email changed away from the shared one;
- ``bridge_removal``: deleting a member that is the only link between the shared email and a record
  that holds only its username. This is the case that splits a group, and so regroups it: O(group).

Targets (issue 9): N = 100,000 replays in under 10 s; one change inside the group costs under 50 ms;
the distinct-email stream is at most 3 times faster than the shared one.

Usage: ``.venv/bin/python -m tests.bench.shared_identifiers [--records N] [--out FILE.json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from counters import engine
from counters import Digester
from counters.replay import Replay
from counters.state import SubscriptionState
from schemas.changes import Change

SUBSCRIPTION = "bench"
SHARED = "noreply@corp.example"


def upserts(records: int, shared: bool) -> list[bytes]:
    return [orjson.dumps({
        "type": "profile", "subscription": SUBSCRIPTION, "op": "upsert", "id": f"ev-{i}", "user_id": f"u{i}",
        "username": f"login{i}", "email": SHARED if shared else f"user{i}@corp.example",
    }) for i in range(records)]


def replay(lines: list[bytes]) -> tuple[float, float, Replay]:
    """Wall-clock and CPU seconds of one replay: on a shared machine the CPU time of this process is
    the steadier figure."""
    gc.collect()
    run = Replay()
    started, cpu = time.perf_counter(), time.process_time()
    run.feed_lines(lines)
    return time.perf_counter() - started, time.process_time() - cpu, run


def single_changes(state: SubscriptionState, records: int, rounds: int) -> dict[str, float]:
    """Median milliseconds of one change of each kind inside the shared group."""
    digest = Digester()
    shared_email = [digest(SHARED), "corp.example"]
    now = 10**16  # after every arrival time of the replay
    clock = iter(range(now, now + 10**6))

    def record_change(kind: str, user: str, **fields: Any) -> Change:
        return Change(kind=kind, subscription=SUBSCRIPTION, time=next(clock), event_id=f"x-{user}",  # type: ignore[arg-type]
                      record=digest("default", "default", "default", user), runtime="default",
                      provider="default", fields=fields)

    def timed(apply: Callable[[int], None]) -> float:
        samples = []
        for n in range(rounds):
            started = time.perf_counter()
            apply(n)
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    def join(n: int) -> None:
        engine.apply(state, record_change("upsert", f"joiner{n}", email=list(shared_email)))

    def leave(n: int) -> None:
        engine.apply(state, record_change("deactivate", f"u{n}"))

    def email_change(n: int) -> None:
        engine.apply(state, record_change("upsert", f"u{100 + n}", email=[digest(f"moved{n}@corp.example"),
                                                                        "corp.example"]))

    def bridge_removal(n: int) -> None:
        # u{200+n} holds the shared email and its username; "lone{n}" holds only that username.
        bridge, login = f"u{200 + n}", [digest(f"login{200 + n}"), None]
        engine.apply(state, record_change("upsert", f"lone{n}", username=login))
        gc.collect()
        started = time.perf_counter()
        engine.apply(state, record_change("delete", bridge))
        bridge_ms.append((time.perf_counter() - started) * 1000)

    bridge_ms: list[float] = []
    gc.disable()
    try:
        result = {"join_ms": timed(join), "leave_ms": timed(leave), "email_change_ms": timed(email_change)}
        for n in range(rounds):
            bridge_removal(n)
        result["bridge_removal_ms"] = statistics.median(bridge_ms)
    finally:
        gc.enable()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()

    distinct_s, distinct_cpu_s, distinct = replay(upserts(args.records, shared=False))
    shared_s, shared_cpu_s, shared = replay(upserts(args.records, shared=True))
    for run, individuals in ((distinct, args.records), (shared, 1)):
        counts = run.document()["subscriptions"][SUBSCRIPTION]
        assert counts["records"] == args.records and counts["internal"] == individuals, counts
    figures = {
        "records": args.records,
        "shared_replay_s": round(shared_s, 3),
        "distinct_replay_s": round(distinct_s, 3),
        "shared_replay_cpu_s": round(shared_cpu_s, 3),
        "distinct_replay_cpu_s": round(distinct_cpu_s, 3),
        "shared_over_distinct": round(shared_s / distinct_s, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        **{k: round(v, 3) for k, v in single_changes(shared.states[SUBSCRIPTION], args.records, args.rounds).items()},
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(figures, indent=2))
    print(f"{args.records:,} upserts sharing one email: replayed in {shared_s:.2f} s, {shared_cpu_s:.2f} s CPU "
          f"({shared_s / distinct_s:.2f}x the {distinct_s:.2f} s of distinct emails, target: distinct at most 3x "
          f"faster, and < 10 s); "
          f"one change in the group: join {figures['join_ms']:.3f} ms, leave {figures['leave_ms']:.3f} ms, "
          f"email change {figures['email_change_ms']:.3f} ms, bridge removal {figures['bridge_removal_ms']:.1f} ms "
          f"(target < 50 ms)")
    if args.out:
        with open(args.out, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
