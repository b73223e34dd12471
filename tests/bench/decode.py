"""Decode and validate: microseconds per event of ``schemas.codec.decode`` on the pipeline's synthetic events.

Two figures from one run, on the same lines (``tests/bench/synthetic.py``: 88% logins, then visits and
profile changes, each with an RFC 3339 time):

- baseline: ``orjson.loads`` of every line (parsing only, no validation);
- decode: ``schemas.codec.decode`` (parse, validate, convert the time), every line accepted.

The median of ``--repeat`` passes is printed, as JSON on the last line.

Usage: ``.venv/bin/python -m tests.bench.decode [--events N] [--repeat N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from schemas.codec import Rejection, decode
from tests.bench.synthetic import events


def per_event_us(function: Callable[[bytes], Any], lines: list[bytes], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        for line in lines:
            function(line)
        timings.append((time.perf_counter() - started) / len(lines) * 1e6)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lines = [orjson.dumps(event) for event in events(args.events)]
    rejected = [line for line in lines if isinstance(decode(line), Rejection)]
    assert not rejected, rejected[:3]
    baseline = per_event_us(orjson.loads, lines, args.repeat)
    decoded = per_event_us(decode, lines, args.repeat)
    print(f"{len(lines)} events: orjson.loads {baseline:.2f} µs/event, codec.decode {decoded:.2f} µs/event")
    print(orjson.dumps({"events": len(lines), "orjson_loads_us": round(baseline, 2),
                        "decode_us": round(decoded, 2)}).decode())


if __name__ == "__main__":
    main()
