"""Runs ``python -m streams ...`` with a gc callback that logs every collection: its pause (wall clock) and its CPU time (bench diagnostics only).

    python tests/bench/gcwatch.py worker -l warning      # BENCH_GC_LOG=/path/to/file (one line per collection)
"""

from __future__ import annotations

import gc
import os
import runpy
import sys
import time

_log = open(os.environ.get("BENCH_GC_LOG", "gc.log"), "a", buffering=1)
_started = [0.0, 0.0]


def _callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started[0], _started[1] = time.perf_counter(), time.thread_time()
        return
    pause = (time.perf_counter() - _started[0]) * 1000
    cpu = (time.thread_time() - _started[1]) * 1000  # what the collection cost, however starved the worker
    _log.write(f"{time.time():.3f} gen{info['generation']} {pause:.1f}ms collected={info['collected']} cpu={cpu:.2f}ms\n")


gc.callbacks.append(_callback)
sys.argv = ["streams", *sys.argv[1:]]
runpy.run_module("streams", run_name="__main__", alter_sys=True)
