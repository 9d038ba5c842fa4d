"""The executor: outcomes and errors, a worker killed mid-task (retried once, then lost),
Ctrl-C cancelling queued tasks, on local processes and a loopback Dask LocalCluster; group
seeds and directory names."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import executor_tasks as T  # noqa: E402

from bayesmix.errors import InputError  # noqa: E402
from bayesmix.executor import Executor, WorkerLost, check_scheduler  # noqa: E402
from bayesmix.many.groups import group_dir_name, group_seed  # noqa: E402

BACKENDS = [(1, None), (2, None), (2, "local")]
PARALLEL = [(2, None), (2, "local")]


def _ids(b):
    return f"{b[0]}-{b[1] or 'processes'}"


@pytest.mark.parametrize("backend", BACKENDS, ids=_ids)
def test_values_and_errors_come_back_per_task(backend):
    with Executor(*backend) as ex:
        outs = {o.key: o for o in ex.map(T.fail_on, [(i, (i, 3)) for i in range(6)])}
    assert sorted(outs) == list(range(6))
    assert {k: o.value for k, o in outs.items() if o.ok} == {0: 0, 1: 1, 2: 4, 4: 16, 5: 25}
    assert isinstance(outs[3].error, ValueError) and "task 3 is bad" in str(outs[3].error)
    with pytest.raises(ValueError):
        outs[3].result()


@pytest.mark.parametrize("backend", PARALLEL, ids=_ids)
def test_killed_worker_retried_once_then_lost(backend, tmp_path):
    marker = tmp_path / "died"
    tasks = [("once", (2, str(marker))), ("fine", (3, str(tmp_path / "never") + "x"))]
    (tmp_path / "neverx").write_text("exists: this task never dies")
    with Executor(*backend) as ex:
        outs = {o.key: o for o in ex.map(T.die_once, tasks)}
        lost = list(ex.map(T.die_always, [("always", (1,))]))
    assert marker.exists()  # its first worker really died
    assert outs["once"].ok and outs["once"].value == 4
    assert outs["fine"].ok and outs["fine"].value == 9
    if backend[1] is None:  # the local pool counts the tries itself
        assert outs["once"].attempts == 2 and outs["fine"].attempts == 1
    (o,) = lost
    assert isinstance(o.error, WorkerLost) and o.attempts == 2
    assert "died 2 times" in str(o.error)


def _started(folder: Path) -> dict[int, int]:
    return {int(p.name.split("-")[1]): int(p.read_text()) for p in folder.glob("started-*")}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_interrupt_cancels_queued_tasks_and_stops_workers(tmp_path):
    tasks = [(i, (i, str(tmp_path), 120.0)) for i in range(6)]
    with pytest.raises(KeyboardInterrupt):
        with Executor(2) as ex:
            for o in ex.map(T.mark_and_sleep, tasks):
                assert o.key == 0  # the one quick task
                raise KeyboardInterrupt
    started = _started(tmp_path)
    assert 0 in started and len(started) <= 3  # the queued tasks never started
    assert all(_gone(pid) for pid in started.values())


def test_benchmark_run_tasks_stops_queued_tasks_when_closed(tmp_path):
    from benchmarks.common import run_tasks

    gen = run_tasks(T.mark_and_sleep, [(i, str(tmp_path), 120.0) for i in range(6)], jobs=2)
    assert next(gen) == 0
    gen.close()  # what Ctrl-C in the consuming loop does to the generator
    started = _started(tmp_path)
    assert len(started) <= 3
    assert all(_gone(pid) for pid in started.values())


def test_workers_run_one_thread_and_own_compiledir():
    with Executor(2) as ex:
        outs = {o.key: o.value for o in ex.map(T.env_of, [(v, (v,)) for v in T.ENV_VARS])}
    assert outs["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS", "1")
    assert outs["NUMBA_NUM_THREADS"] == os.environ.get("NUMBA_NUM_THREADS", "1")
    if "base_compiledir" not in os.environ.get("PYTENSOR_FLAGS", ""):
        assert "base_compiledir=" in outs["PYTENSOR_FLAGS"]
        assert "worker-" in outs["PYTENSOR_FLAGS"]


def test_scheduler_values():
    assert check_scheduler(None) is None
    assert check_scheduler("local") == "local"
    assert check_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert check_scheduler("scheduler-host:8786") == "scheduler-host:8786"
    with pytest.raises(InputError, match="expected 'local'"):
        check_scheduler("locla")


def test_group_seed_is_stable_and_depends_on_key_and_run_seed():
    assert group_seed(1, "setosa") == group_seed(1, "setosa")
    assert group_seed(1, "setosa") == 3861369612  # pinned: sha256 + SeedSequence, not hash()
    seeds = {group_seed(1, k) for k in ("a", "b", "c", "setosa")}
    assert len(seeds) == 4
    assert group_seed(2, "setosa") != group_seed(1, "setosa")


def test_group_dir_names_are_safe_and_unique():
    assert group_dir_name("setosa") == "setosa"
    a, b = group_dir_name("a/b"), group_dir_name("a_b")
    assert a != b and "/" not in a and a.startswith("a_b-")
    assert group_dir_name("..") not in ("", ".", "..")
    assert group_dir_name("Old Faithful").startswith("Old_Faithful-")


def test_sbc_batches_on_a_local_cluster_match_in_process():
    """benchmarks.sbc through the executor: a 2-worker LocalCluster gives the ranks that the
    in-process loop gives (each replication's seed is its own)."""
    from benchmarks.sbc import Config, Settings, run_studies

    st = Settings(seed=7, bins=10)
    cfg = Config("dp", 1, "collapsed", 4, index=0)

    def ranks(by_cfg):
        return sorted((r["rep"], r["ranks"]) for r in by_cfg[cfg.key])

    here = run_studies([cfg], st, jobs=1, batch=2)
    dask = run_studies([cfg], st, jobs=2, batch=2, scheduler="local")
    assert len(ranks(here)) == 4
    assert ranks(dask) == ranks(here)


def test_scheduler_address_runs_tasks_and_prepares_each_worker(tmp_path):
    """A running cluster reached by its address (as a remote one would be): the prepare
    step runs on each of its workers, one after another, and the tasks come back."""
    from functools import partial

    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        prepare = partial(T.mark_worker, str(tmp_path))
        with Executor(scheduler=cluster.scheduler_address, prepare=prepare) as ex:
            outs = {o.key: o.value for o in ex.map(T.square, [(i, (i,)) for i in range(4)])}
    assert outs == {0: 0, 1: 1, 2: 4, 3: 9}
    assert len(list(tmp_path.glob("prepared-*"))) == 2


def test_unreachable_scheduler_is_an_input_error(monkeypatch):
    import bayesmix.executor as E

    monkeypatch.setattr(E, "CONNECT_TIMEOUT_S", 1)
    import bayesmix.executor_dask as D

    monkeypatch.setattr(D, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InputError, match="cannot reach a Dask scheduler"):
        with Executor(scheduler="tcp://127.0.0.1:9"):
            pass
