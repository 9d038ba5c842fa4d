"""The sub-cluster engine over Dask data shards: points and labels stay on the workers, only
cluster parameters and sufficient statistics travel (Dinari et al. 2019; the sweep and the
split-merge move of ``engines/gibbs/subcluster.py``, distributed as ``gibbs/shard_chain.py``
describes).

Layout rule (``data.parquet_pieces``): a directory of Parquet files is one shard per file, in
file-name order; a single file is one shard per row group.  Each shard is a Dask actor
(``ParquetShard``) on one worker (shard s on the s-th worker modulo their number, workers in
address order); it reads its own file or row group with only the model's columns, checks them,
standardises its rows with the data set's centre and scale, and keeps x and z.  The same seed
and shard layout give identical draws whatever the number of workers; a different layout gives
draws equal in distribution (tested by enumeration in tests/test_sharded.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayesmix import mixings
from bayesmix.data import MIN_ROWS, parquet_pieces
from bayesmix.engines.base import Draws
from bayesmix.engines.gibbs import driver
from bayesmix.engines.gibbs.shard_chain import LocalShards, Meter, Shard, run_sharded_chain
from bayesmix.errors import InputError
from bayesmix.executor import LOCAL, check_scheduler
from bayesmix.spec import ModelSpec


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_piece(path: str, row_group: int | None, columns: Sequence[str] | None,
               dropna: bool) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """One shard's rows of the chosen columns (every numeric column when None) as float64,
    read by pyarrow with column selection; InputError naming the file for a missing file or
    column, a non-numeric column or (without ``dropna``) a NaN / inf value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = path if row_group is None else f"{path} (row group {row_group})"
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (on the worker that reads this shard)") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot parse file as Parquet ({_first_line(exc)})") from None
    schema = pf.schema_arrow
    names = [n for n in schema.names if not n.startswith("__index_level_")]
    if columns:
        for c in columns:
            if c not in names:
                raise InputError(f"{path}: column '{c}' not found (available: {', '.join(names)})")
            typ = schema.field(c).type
            if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
                raise InputError(f"{path}: column '{c}' is not numeric ({typ})")
        cols = list(columns)
    else:
        cols = [n for n in names if pa.types.is_integer(schema.field(n).type)
                or pa.types.is_floating(schema.field(n).type)]  # fmt: skip
        if not cols:
            raise InputError(f"{path}: no numeric columns (columns: {', '.join(names)})")
    try:
        table = pf.read(columns=cols) if row_group is None else pf.read_row_group(row_group, columns=cols)  # fmt: skip
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"{where}: cannot read ({_first_line(exc)})") from None
    x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
                         for c in cols]) if table.num_rows else np.zeros((0, len(cols)))  # fmt: skip
    ok = np.isfinite(x).all(axis=1)
    if not ok.all():
        if not dropna:
            i = int(np.flatnonzero(~ok)[0])
            j = int(np.flatnonzero(~np.isfinite(x[i]))[0])
            raise InputError(
                f"{where}: row {i + 1} of the shard, column '{cols[j]}' is {x[i, j]} "
                "(use --dropna to drop rows with missing or infinite values)"
            )
        x = x[ok]
    return np.ascontiguousarray(x), cols


class ParquetShard(Shard):
    """A Dask actor: one shard, read by the worker itself (``read_piece``); ``setup`` then
    standardises it and makes it a ``Shard``."""

    def __init__(self, path: str, row_group: int | None, columns: Sequence[str] | None,
                 dropna: bool) -> None:  # fmt: skip
        self.raw, self.columns = read_piece(path, row_group, columns, dropna)

    def summary(self) -> tuple[int, list[str], np.ndarray, np.ndarray]:
        """(rows, columns, column sums, centred sums of squares) for the pooled centre and
        scale (Chan, Golub & LeVeque 1979)."""
        m = self.raw.shape[0]
        mean = self.raw.mean(axis=0) if m else np.zeros(self.raw.shape[1])
        return m, self.columns, self.raw.sum(axis=0), ((self.raw - mean) ** 2).sum(axis=0)

    def warm(self, cfg: driver.ChainConfig, d: int) -> float:
        """Load (or compile) the kernels in this worker process: seconds."""
        self._threads()
        return _warm(cfg, d)

    def setup(self, off: int, n_total: int, hyp: np.ndarray, fam: int, center: np.ndarray,
              scale: np.ndarray, threads: int) -> int:  # fmt: skip
        """x <- (raw - center) / scale; the shard starts at global index ``off``."""
        x = (self.raw - center) / scale
        del self.raw
        Shard.__init__(self, x, off, n_total, hyp, fam, threads)
        return self.m


def pooled_moments(parts: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(mean, sd with ddof = 1) of the union of shards given (rows, sums, centred sums of
    squares) of each (the pairwise update of Chan, Golub & LeVeque 1979)."""
    n, mean, m2 = 0, None, None
    for m, s, q in parts:
        if m == 0:
            continue
        mb = s / m
        if mean is None:
            n, mean, m2 = m, mb, q.copy()
            continue
        delta = mb - mean
        tot = n + m
        mean = mean + delta * m / tot
        m2 = m2 + q + delta**2 * n * m / tot
        n = tot
    return mean, np.sqrt(m2 / (n - 1))


class DaskShards:
    """The shards as Dask actors (``ShardSet``): one call per shard, issued together."""

    def __init__(self, client: Any, pieces: Sequence[tuple[str, int | None]],
                 columns: Sequence[str] | None, dropna: bool) -> None:  # fmt: skip
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise InputError("the Dask scheduler has no workers")
        futs = [
            client.submit(
                ParquetShard,
                path,
                rg,
                columns,
                dropna,
                actor=True,
                workers=[workers[s % len(workers)]],
                allow_other_workers=False,
                pure=False,
            )  # fmt: skip
            for s, (path, rg) in enumerate(pieces)
        ]
        self.actors = [f.result() for f in futs]
        self.n_workers = len(workers)
        self.offsets = np.zeros(1, np.int64)

    def call(self, calls: Sequence[tuple[int, str, tuple]]) -> list[Any]:
        futs = [getattr(self.actors[s], name)(*args) for s, name, args in calls]
        return [f.result() for f in futs]

    def warm(self, cfg: driver.ChainConfig, d: int) -> float:
        """The kernels loaded on every worker, one shard after another (numba's cache races
        when processes compile at once: numba issues #4807, #10128); seconds."""
        t0 = time.perf_counter()
        for actor in self.actors:
            actor.warm(cfg, d).result()
        return time.perf_counter() - t0

    def each(self, name: str, args: Sequence[tuple]) -> list[Any]:
        """``name(*args[s])`` on every shard s (setup calls, no kernel timing)."""
        futs = [getattr(a, name)(*arg) for a, arg in zip(self.actors, args, strict=True)]
        return [f.result() for f in futs]


@contextlib.contextmanager
def dask_client(scheduler: str, workers: int, processes: bool = True) -> Iterator[Any]:
    """A Dask client: a LocalCluster of ``workers`` one-thread workers (``"local"``) or a
    running scheduler, with the executor's worker setup (``executor_dask.DaskBackend``)."""
    from bayesmix.executor_dask import DaskBackend

    backend = DaskBackend(workers, scheduler, retries=0, processes=processes, direct=True)
    try:
        with backend.client.as_current():  # actor handles find their client through it
            yield backend.client
    finally:
        backend.close(interrupted=False)


def _warm(cfg: driver.ChainConfig, d: int) -> float:
    """Compile (or load) the master's and the shards' kernels on a tiny in-process run."""
    t0 = time.perf_counter()
    xt = np.ascontiguousarray(np.linspace(-1.5, 1.5, 8 * d).reshape(8, d) ** 3)
    small = dataclasses.replace(cfg, draws=2, tune=1, thin=1, z_rows=0)
    shards = LocalShards([Shard(xt[:4], 0, 8, np.asarray(cfg.hyp), cfg.fam),
                          Shard(xt[4:], 4, 8, np.asarray(cfg.hyp), cfg.fam)])  # fmt: skip
    state0 = np.zeros(mixings.STATE_SIZE)
    state0[0] = 1.0
    if cfg.kind == mixings.MFM:
        state0[mixings.K_SLOT] = min(3, cfg.n_components)
    out = driver._alloc(small, 8, d, 2)
    run_sharded_chain(shards, small, 0, (1, 2), state0, out, cap=driver.subcluster_cap(small, 8))
    return time.perf_counter() - t0


def sample_on_shards(
    spec: ModelSpec,
    shards: Any,
    *,
    d: int,
    chains: int = 1,
    draws: int = 1000,
    tune: int = 500,
    thin: int = 1,
    seed: int = 0,
    progress: bool = False,
    split_merge: int = 1,
    z_draws: int | None = None,
    meter: Meter | None = None,
    method: str = "in-process shards",
    workers: int = 1,
) -> Draws:
    """The sub-cluster engine over a ``ShardSet`` (set up, ``offsets`` known): chains one after
    another, each with its own labels on the shards; the driver's Draws."""
    n = int(shards.offsets[-1])
    if not (isinstance(chains, int) and chains >= 1):
        raise InputError(f"chains must be a positive integer, got {chains!r}")
    cfg = driver._config(
        spec, np.zeros((0, d)), "subcluster", draws, tune, thin, True, split_merge
    )  # fmt: skip  (x: only the semi-conjugate kernel reads it)
    if z_draws is not None and 0 < int(z_draws) < draws:
        cfg = dataclasses.replace(cfg, z_rows=int(z_draws))
    seeds, rngs, state0 = driver.chain_seeds(spec, cfg, seed, chains)
    compile_s = _warm(cfg, d)
    if hasattr(shards, "warm"):  # shards in other processes load the kernels too
        compile_s += shards.warm(cfg, d)
    t0 = time.perf_counter()
    results = []
    for c in range(chains):
        out = driver._alloc(cfg, n, d, cfg.draws)
        results.append(run_sharded_chain(shards, cfg, c, seeds[c], state0[c], out,
                                         cap=driver.subcluster_cap(cfg, n), progress=progress,
                                         meter=meter))  # fmt: skip
    driver.trim_slots(cfg, results, rngs)
    sampling_s = time.perf_counter() - t0
    dr = driver.assemble_draws(spec, cfg, results, algorithm="subcluster", seed=seed,
                               seeds=seeds, method=method, workers=workers, n=n, d=d,
                               compile_s=compile_s, sampling_s=sampling_s)  # fmt: skip
    dr.info["shards"] = len(shards.offsets) - 1
    dr.info["shard_rows"] = np.diff(shards.offsets).tolist()
    dr.info["threads_per_chain"] = 1
    return dr


def sample_sharded(
    spec: ModelSpec,
    data: str | Path,
    *,
    scheduler: str = LOCAL,
    workers: int | None = None,
    columns: Sequence[str] | None = None,
    dropna: bool = False,
    center: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    threads: int = 1,
    processes: bool = True,
    meter: Meter | None = None,
    expect_rows: int | None = None,
    **kwargs: Any,
) -> Draws:
    """Sample ``spec`` on the Parquet data set ``data`` (file or directory: module docstring)
    with the data in Dask actors, on a LocalCluster of ``workers`` one-thread workers
    (``scheduler="local"``) or a running scheduler's workers; standardised with ``center`` and
    ``scale`` (default: the pooled mean and sd of the shards); ``expect_rows``: the rows the
    caller read itself (an InputError if the shards hold another number).  ``kwargs``: chains, draws,
    tune, thin, seed, progress, split_merge, z_draws (``sample_on_shards``)."""
    scheduler = check_scheduler(scheduler) or LOCAL
    pieces = parquet_pieces(data)
    n_workers = max(1, int(workers or min(len(pieces), 2)))
    with dask_client(scheduler, n_workers, processes) as client:
        shards = DaskShards(client, pieces, columns, dropna)
        parts = shards.each("summary", [()] * len(pieces))
        cols = parts[0][1]
        for (path, _), p in zip(pieces, parts, strict=True):
            if p[1] != cols:
                raise InputError(f"{path}: columns {', '.join(p[1])} differ from {', '.join(cols)}")
        rows = np.array([p[0] for p in parts], np.int64)
        n, d = int(rows.sum()), len(cols)
        if expect_rows is not None and n != expect_rows:
            raise InputError(
                f"{data}: the workers read {n} rows, this process {expect_rows} (do they see the "
                "same files?)"
            )
        if n < MIN_ROWS:
            raise InputError(f"{data}: only {n} usable row(s); at least {MIN_ROWS} are needed")
        if center is None or scale is None:
            mean, sd = pooled_moments([(p[0], p[2], p[3]) for p in parts])
            center = mean if center is None else center
            scale = sd if scale is None else scale
        center, scale = np.asarray(center, np.float64), np.asarray(scale, np.float64)
        for j in np.flatnonzero(~(scale > 0)):
            raise InputError(f"{data}: column '{cols[j]}' is constant")
        offsets = np.concatenate([[0], np.cumsum(rows)])
        cfg = driver._config(spec, np.zeros((0, d)), "subcluster", 1, 0, 1)
        shards.each("setup", [(int(offsets[s]), n, np.asarray(cfg.hyp), cfg.fam, center, scale,
                               threads) for s in range(len(pieces))])  # fmt: skip
        shards.offsets = offsets
        where = "LocalCluster" if scheduler == LOCAL else f"scheduler {scheduler}"
        dr = sample_on_shards(spec, shards, d=d, meter=meter, method=f"dask actors ({where})",
                              workers=shards.n_workers, **kwargs)  # fmt: skip
    dr.info["columns"] = cols
    return dr
