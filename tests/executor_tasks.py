"""Task functions for the executor tests (importable by spawned and Dask worker processes)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"task {x} is bad")
    return x * x


def die_once(x: int, marker: str) -> int:
    """Kill this worker process the first time (a marker file remembers), then return x*x."""
    m = Path(marker)
    if not m.exists():
        m.write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def die_always(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def mark_and_sleep(x: int, folder: str, seconds: float) -> int:
    """Leave a marker that the task started, then sleep (task 0 returns at once)."""
    Path(folder, f"started-{x}").write_text(str(os.getpid()))
    if x:
        time.sleep(seconds)
    return x


def env_of(var: str) -> str | None:
    return os.environ.get(var)


ENV_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "PYTENSOR_FLAGS")


def mark_worker(folder: str) -> None:
    """A ``prepare`` step: leave a marker named after this process."""
    Path(folder, f"prepared-{os.getpid()}").write_text("ok")
