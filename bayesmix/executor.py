"""One executor for every loop of independent fits: fit-many, compare, SBC, recovery.

``Executor(workers, scheduler)`` runs ``fn(*args)`` for keyed tasks and yields an
:class:`Outcome` per task, in completion order:

* ``scheduler=None`` (the default): in this process when ``workers <= 1``, else ``workers``
  local worker processes ("spawn"), one single-process pool per worker slot, so a worker
  that dies is known by the one task it was running; nothing to start or manage;
* ``scheduler="local"``: a Dask ``LocalCluster`` on the loopback interface, one thread per
  worker process;
* ``scheduler="tcp://host:8786"`` (or ``host:port``): a running Dask scheduler.

Every worker runs one thread (PyTensor's compilation is not thread-safe, PyMC #7819) with
one BLAS/OpenMP/Numba thread, so N workers use N cores, and its own PyTensor
``base_compiledir`` (under the user cache, so it stays warm from run to run). Numba's
on-disk cache races when several processes compile the same function at once (Numba
issues #4807, #10128): ``prepare`` (fit-many: compiling the kernels) runs once in this
process before the fan-out, or on each remote worker in turn, so workers load a filled cache.

A task whose worker process dies is retried ``retries`` times (default once), then its
outcome carries :class:`WorkerLost`. An exception raised by ``fn`` comes back in
``Outcome.error``; nothing is retried then. Leaving the ``with`` block early (Ctrl-C, an
error, a ``break``) cancels the queued tasks and stops the workers: finished outcomes stay.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayesmix.errors import InputError

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
LOCAL = "local"
_ADDRESS = re.compile(r"^([a-z]+://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")
CONNECT_TIMEOUT_S = 15


class WorkerLost(BrokenExecutor):
    """The worker process running a task died (killed, out of memory, a crash) on every try."""


@dataclass
class Outcome:
    """The result of one task: ``value``, or the ``error`` it raised; ``attempts`` tries."""

    key: Hashable
    value: Any = None
    error: BaseException | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    def result(self) -> Any:
        """The value, or the task's exception raised here."""
        if self.error is not None:
            raise self.error
        return self.value


def check_scheduler(scheduler: str | None) -> str | None:
    """None, "local" or a scheduler address ("tcp://host:8786", "host:8786"); else InputError."""
    if scheduler is None or scheduler == LOCAL:
        return scheduler
    if not _ADDRESS.match(scheduler):
        raise InputError(
            f"--scheduler {scheduler!r}: expected 'local' (a Dask LocalCluster on this machine) "
            "or a Dask scheduler address such as tcp://host:8786"
        )
    return scheduler


def describe(workers: int, scheduler: str | None) -> str:
    """The executor in words, for logs and saved results."""
    if scheduler == LOCAL:
        return f"Dask LocalCluster, {workers} worker process(es)"
    if scheduler:
        return f"Dask scheduler {scheduler}"
    if workers <= 1:
        return "in this process"
    return f"{workers} local worker processes"


def default_workers() -> int:
    """CPUs this process may run on."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, n or 1)


def compiledir_root() -> Path:
    """Where the workers' PyTensor compile directories live (one per worker)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bayesmix" / "pytensor"


def worker_env(name: str, compiledir: bool = True) -> dict[str, str]:
    """Environment for a worker process: one thread each and (``compiledir``) its own
    PyTensor compile directory, unless the user set these variables already."""
    env = {var: os.environ.get(var, "1") for var in THREAD_VARS}
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if compiledir and "base_compiledir" not in flags:
        own = f"base_compiledir={compiledir_root() / f'worker-{name}'}"
        env["PYTENSOR_FLAGS"] = f"{flags},{own}" if flags else own
    return env


def setup_worker(name: str) -> None:
    """In a worker: apply ``worker_env`` for libraries not imported yet, and cap the BLAS
    pools of those already loaded at one thread."""
    import sys

    for var, value in worker_env(name).items():
        if var != "PYTENSOR_FLAGS":
            os.environ.setdefault(var, value)
        elif "pytensor" not in sys.modules:  # once imported, it keeps the compiledir it has
            os.environ[var] = value
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


# --------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------


class _Inline:
    """Tasks one after another in this process; with ``single_thread``, BLAS capped at one
    thread during each, as in the workers."""

    def __init__(self, single_thread: bool) -> None:
        self.single_thread = single_thread

    def run(self, fn: Callable, tasks: Iterable[tuple[Hashable, tuple]]) -> Iterator[Outcome]:
        from contextlib import nullcontext

        from threadpoolctl import threadpool_limits

        for key, args in tasks:
            with threadpool_limits(1) if self.single_thread else nullcontext():
                try:
                    value = fn(*args)
                except Exception as exc:  # the task's own error: reported, the loop goes on
                    yield Outcome(key, error=exc)
                    continue
            yield Outcome(key, value)

    def close(self, interrupted: bool) -> None:
        pass


class _Processes:
    """``workers`` spawned processes, each in its own one-process pool: a broken pool names
    the one task whose worker died, which is retried on a fresh process."""

    def __init__(self, workers: int, retries: int) -> None:
        self.workers = workers
        self.retries = retries
        self.pools: list = [None] * workers

    def _pool(self, slot: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if self.pools[slot] is None:
            self.pools[slot] = ProcessPoolExecutor(
                max_workers=1,
                mp_context=mp.get_context("spawn"),
                initializer=setup_worker,
                initargs=(str(slot),),
            )
        return self.pools[slot]

    def _submit(self, slot: int, fn: Callable, args: tuple) -> Future:
        """Submit to a slot's pool; the worker process starts here, with its environment."""
        from concurrent.futures.process import BrokenProcessPool

        for _ in range(2):
            pool = self._pool(slot)
            env = worker_env(str(slot))
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                return pool.submit(fn, *args)
            except BrokenProcessPool:  # its process died while idle: a fresh one
                self._drop(slot, terminate=True)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        raise WorkerLost(f"worker slot {slot}: could not start a worker process")

    def _drop(self, slot: int, terminate: bool) -> None:
        pool, self.pools[slot] = self.pools[slot], None
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values()) if terminate else []
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
        pool.shutdown(wait=not terminate, cancel_futures=True)

    def run(self, fn: Callable, tasks: Iterable[tuple[Hashable, tuple]]) -> Iterator[Outcome]:
        from concurrent.futures.process import BrokenProcessPool

        queue = deque((key, args, 0) for key, args in tasks)
        running: dict[Future, tuple[int, Hashable, tuple, int]] = {}
        free = deque(range(self.workers))
        while queue or running:
            while queue and free:
                slot = free.popleft()
                key, args, tried = queue.popleft()
                running[self._submit(slot, fn, args)] = (slot, key, args, tried)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                slot, key, args, tried = running.pop(fut)
                free.append(slot)
                try:
                    value = fut.result()
                except BrokenProcessPool:
                    self._drop(slot, terminate=True)
                    if tried < self.retries:
                        queue.appendleft((key, args, tried + 1))
                        continue
                    yield Outcome(key, error=lost_worker(key, tried + 1), attempts=tried + 1)
                except Exception as exc:
                    yield Outcome(key, error=exc, attempts=tried + 1)
                else:
                    yield Outcome(key, value, attempts=tried + 1)

    def close(self, interrupted: bool) -> None:
        for slot in range(self.workers):
            self._drop(slot, terminate=interrupted)


def lost_worker(key: Hashable, tries: int) -> WorkerLost:
    times = "once" if tries == 1 else f"{tries} times"
    return WorkerLost(
        f"the worker process died {times} while running task {key} "
        "(killed, out of memory or a crash)"
    )


# --------------------------------------------------------------------------
# The executor
# --------------------------------------------------------------------------


class Executor:
    """Run keyed tasks on the chosen backend; use as a context manager::

    with Executor(workers=2) as ex:
        for outcome in ex.map(fn, [(key, args), ...]):
            ...
    """

    def __init__(
        self,
        workers: int | None = None,
        scheduler: str | None = None,
        *,
        retries: int = 1,
        prepare: Callable[[], Any] | None = None,
        single_thread: bool = True,
    ) -> None:
        self.scheduler = check_scheduler(scheduler)
        self.workers = max(1, workers or default_workers())
        self.retries = retries
        self.prepare = prepare
        self.single_thread = single_thread
        self._backend: Any = None

    @property
    def label(self) -> str:
        return describe(self.workers, self.scheduler)

    def __enter__(self) -> Executor:
        if self.scheduler is None and self.workers <= 1:
            self._backend = _Inline(self.single_thread)
            return self
        if self.prepare is not None and self.scheduler in (None, LOCAL):
            self.prepare()  # fill the shared caches once, before the workers start
        if self.scheduler is None:
            self._backend = _Processes(self.workers, self.retries)
        else:
            from bayesmix.executor_dask import DaskBackend

            self._backend = DaskBackend(self.workers, self.scheduler, self.retries)
            if self.prepare is not None and self.scheduler != LOCAL:
                self._backend.prepare(self.prepare)
        return self

    def map(self, fn: Callable, tasks: Iterable[tuple[Hashable, tuple]]) -> Iterator[Outcome]:
        """``fn(*args)`` for each ``(key, args)``; outcomes in completion order."""
        if self._backend is None:
            raise RuntimeError("use the Executor in a with block")
        return self._backend.run(fn, list(tasks))

    def __exit__(self, exc_type, exc, tb) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close(interrupted=exc_type is not None)


def run_all(
    fn: Callable,
    tasks: Iterable[tuple[Hashable, tuple]],
    workers: int | None = None,
    scheduler: str | None = None,
    **kwargs: Any,
) -> Iterator[Outcome]:
    """Generator form: the executor lives while the outcomes are consumed (closed with it)."""
    with Executor(workers, scheduler, **kwargs) as ex:
        yield from ex.map(fn, tasks)
