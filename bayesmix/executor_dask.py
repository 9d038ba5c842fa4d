"""The Dask backend of :mod:`bayesmix.executor` (imported only when a scheduler is asked for)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from bayesmix.errors import InputError
from bayesmix.executor import (
    CONNECT_TIMEOUT_S,
    LOCAL,
    Outcome,
    lost_worker,
    setup_worker,
    worker_env,
)


class WorkerSetup(WorkerPlugin):
    """Dask worker plugin: ``setup_worker`` on every worker, also on a restarted one."""

    name = "bayesmix-worker-setup"

    def setup(self, worker) -> None:
        setup_worker(str(worker.name))

    def teardown(self, worker) -> None:
        pass


class DaskBackend:
    """A Dask LocalCluster (``scheduler="local"``) or a running scheduler at an address."""

    def __init__(
        self,
        workers: int,
        scheduler: str,
        retries: int,
        processes: bool = True,
        direct: bool = False,
    ) -> None:
        """``processes=False``: a LocalCluster of threads in this process (tests);
        ``direct``: the client talks to the workers directly, not through the scheduler (the
        sharded engine's actor calls: one hop instead of two)."""
        self.cluster = None
        if scheduler == LOCAL:
            # The scheduler runs in this process: a task whose worker dies is rescheduled
            # ``retries`` times, then fails with KilledWorker. One task at a time per
            # one-thread worker (saturation 1), so a death is charged to that task alone.
            config = {
                "distributed.scheduler.allowed-failures": retries,
                "distributed.scheduler.worker-saturation": 1.0,
                "logging.distributed": "error",  # also in the worker processes
            }
            with dask.config.set(config):
                # threads in this process (processes=False): TCP on the loopback too, and the
                # environment is this process's own
                extra = (
                    dict(env=worker_env("local", compiledir=False))
                    if processes
                    else dict(protocol="tcp://")
                )
                self.cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=processes,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.CRITICAL,  # failures are reported per task
                    **extra,
                )
            self.client = Client(
                self.cluster, set_as_default=False, direct_to_workers=direct or None
            )
        else:
            try:
                self.client = Client(
                    scheduler,
                    timeout=f"{CONNECT_TIMEOUT_S}s",
                    set_as_default=False,
                    direct_to_workers=direct or None,
                )
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({exc})"
                ) from None
        if processes or scheduler != LOCAL:  # threads here share this process's environment
            self.client.register_plugin(WorkerSetup())
        self.futures: list = []
        self.retries = retries

    def prepare(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the remote workers one at a time (their own caches)."""
        for addr in self.client.scheduler_info()["workers"]:
            self.client.run(fn, workers=[addr])

    def run(self, fn: Callable, tasks: Iterable[tuple[Hashable, tuple]]) -> Iterator[Outcome]:
        keys, futures = {}, []
        stamp = f"{os.getpid()}-{time.monotonic_ns()}"
        for i, (key, args) in enumerate(tasks):
            fut = self.client.submit(fn, *args, key=f"bayesmix-{stamp}-{i}", pure=False)
            keys[fut.key] = key
            futures.append(fut)
        self.futures = futures
        for fut in as_completed(futures, loop=self.client.loop):
            key = keys[fut.key]
            try:
                value = fut.result()
            except KilledWorker:
                n = self.retries + 1
                yield Outcome(key, error=lost_worker(key, n), attempts=n)
            except Exception as exc:
                yield Outcome(key, error=exc)
            else:
                yield Outcome(key, value)
            fut.release()

    def close(self, interrupted: bool) -> None:
        if interrupted and self.futures:
            self.client.cancel(self.futures, force=True)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
