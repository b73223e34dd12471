"""A controlled background load for the benchmark (``run.py --background-load N``): N busy processes, each a
pure-Python CPU loop, so the latency figure can be measured as a shared node behaves (other tenants'
processes competing for the cores) and compared with the same run on an otherwise idle machine."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator

BUSY_LOOP = "while True:\n    pass\n"
"""One busy process: an interpreter spinning in bytecode, as a CPU-bound neighbour does (no sleep, no I/O)."""


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Starts ``count`` busy processes and always stops them on the way out, an error included: a busy
    loop left behind would load every later measurement (and the other users of the machine)."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        for process in processes:
            process.wait(timeout=10)
