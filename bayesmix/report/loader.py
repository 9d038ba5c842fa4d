"""Read a fit directory (summary.json, posterior.nc, assignments.csv) into plain numpy arrays.

Everything optional is None when absent, so the report can say "not available" instead of
failing. Draws are flattened to a leading axis S = chain * draw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr


@dataclass
class Params:
    """Mixture parameters per draw: w (S, K), mu (S, K, D), cov (S, K, D, D)."""

    w: np.ndarray
    mu: np.ndarray
    cov: np.ndarray

    @property
    def n_components(self) -> int:
        return self.w.shape[1]

    def mean(self) -> Params:
        """Posterior means of each parameter (a single pseudo-draw)."""
        return Params(self.w.mean(0)[None], self.mu.mean(0)[None], self.cov.mean(0)[None])


@dataclass
class FitData:
    """What a report needs from a fit directory (arrays in the data's own units)."""

    fit_dir: Path
    summary: dict
    x: np.ndarray | None = None  # (N, D)
    columns: list[str] = field(default_factory=list)
    row_labels: np.ndarray | None = None  # (N,) source row numbers
    posterior: Params | None = None
    relabelled: Params | None = None
    z: np.ndarray | None = None  # (S, N)
    n_chains: int = 1
    kplus: np.ndarray | None = None  # (chain, draw)
    concentration: tuple[str, np.ndarray] | None = None  # (name, (chain, draw))
    partition: np.ndarray | None = None  # (N,) SALSO point partition
    co_clustering: np.ndarray | None = None  # (N,) mean co-clustering with its partition cluster
    membership: np.ndarray | None = None  # (N, K̂) P(z_i = c | data, K+ = K̂), identified clusters
    assignments: list[dict] | None = None
    loo_elpd: np.ndarray | None = None  # (N,) pointwise PSIS-LOO elpd
    relabel_method: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_obs(self) -> int:
        return 0 if self.x is None else self.x.shape[0]

    @property
    def n_features(self) -> int:
        return 0 if self.x is None else self.x.shape[1]

    @property
    def assignment(self) -> np.ndarray | None:
        """Each observation's most probable identified cluster (0 = heaviest)."""
        return None if self.membership is None else self.membership.argmax(axis=1)

    @property
    def membership_probability(self) -> np.ndarray | None:
        """P(observation in its most probable identified cluster | data)."""
        return None if self.membership is None else self.membership.max(axis=1)


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape((-1,) + a.shape[2:])


def _params(ds: xr.Dataset | None) -> Params | None:
    """w, mu and sigma | cov of a posterior-like group, flattened over (chain, draw) (or over
    ``sample``, the identified draws of the ``relabelled`` group)."""
    if ds is None or "w" not in ds or "mu" not in ds:
        return None
    lead = ("sample",) if "sample" in ds["w"].dims else ("chain", "draw")
    flat = (lambda a: a) if lead == ("sample",) else _flat
    w = flat(np.asarray(ds["w"].values, dtype=float))
    mu = flat(np.asarray(ds["mu"].transpose(*lead, "cluster", "feature").values))
    if "cov" in ds:
        cov = flat(np.asarray(ds["cov"].values, dtype=float))
    elif "sigma" in ds:
        sigma = flat(np.asarray(ds["sigma"].values, dtype=float))
        cov = (sigma**2)[..., None, None]
    else:
        return None
    return Params(w, mu.astype(float), cov)


def _group(dt: xr.DataTree, name: str) -> xr.Dataset | None:
    return dt[name].to_dataset() if name in dt.children else None


def _read_assignments(path: Path) -> list[dict] | None:
    if not path.exists():
        return None
    import pandas as pd

    try:
        return pd.read_csv(path).to_dict(orient="records")
    except Exception:  # a broken optional file must not stop the report
        return None


def load_fit(fit_dir: str | Path, dt: xr.DataTree | None = None) -> FitData:
    """summary.json (required) plus whatever posterior.nc and assignments.csv hold.

    ``dt``: the fit's DataTree already in memory (then posterior.nc is not read). From disk,
    posterior.nc is opened lazily: only the arrays the report uses are read.
    """
    fit_dir = Path(fit_dir)
    summary_path = fit_dir / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path}: not found (is this a bayesmix fit directory?)")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    data = FitData(fit_dir=fit_dir, summary=summary)
    data.assignments = _read_assignments(fit_dir / "assignments.csv")
    nc = fit_dir / "posterior.nc"
    if dt is not None:
        _fill(data, dt)
    elif not nc.exists():
        data.notes.append("posterior.nc is missing: figures that need the draws are left out")
        data.columns = [str(c) for c in summary.get("data", {}).get("columns", [])]
        return data
    else:
        opened = xr.open_datatree(nc, engine="h5netcdf")
        try:
            _fill(data, opened)
        finally:
            opened.close()
    return data


def _fill(data: FitData, dt: xr.DataTree) -> None:
    """Copy the arrays the report needs from a (possibly lazily opened) DataTree."""
    obs = _group(dt, "observed_data")
    if obs is not None and "x" in obs:
        data.x = np.asarray(obs["x"].values, dtype=float)
        if data.x.ndim == 1:
            data.x = data.x[:, None]
        data.columns = [str(c) for c in obs["feature"].values] if "feature" in obs else []
    if not data.columns:
        data.columns = [f"x{j}" for j in range(data.n_features)]
    labels = dt.attrs.get("row_labels")
    try:
        data.row_labels = np.asarray(json.loads(labels)) if labels else None
    except (TypeError, ValueError):
        data.row_labels = None
    if data.row_labels is None or len(data.row_labels) != data.n_obs:
        data.row_labels = np.arange(1, data.n_obs + 1)
    post = _group(dt, "posterior")
    data.posterior = _params(post)
    rel = _group(dt, "relabelled")
    data.relabelled = _params(rel)
    if rel is not None:
        data.relabel_method = str(rel.attrs.get("method", ""))
        if "membership" in rel:
            data.membership = np.asarray(rel["membership"].values, dtype=float)
    if post is not None:
        for name in ("alpha", "gamma"):
            if name in post:
                data.concentration = (name, np.asarray(post[name].values, dtype=float))
                break
        data.n_chains = int(post.sizes.get("chain", 1))
    alloc = _group(dt, "allocations")
    if alloc is not None:
        if "z" in alloc:
            data.z = _flat(np.asarray(alloc["z"].transpose("chain", "draw", "obs_id").values))
        if "n_clusters" in alloc:
            data.kplus = np.asarray(alloc["n_clusters"].values)
        if "partition" in alloc:
            data.partition = np.asarray(alloc["partition"].values).astype(np.int64)
        for name in ("co_clustering", "certainty"):  # "certainty": files before 0.2
            if name in alloc and data.co_clustering is None:
                data.co_clustering = np.asarray(alloc[name].values, dtype=float)
        if "loo_elpd" in alloc:
            data.loo_elpd = np.asarray(alloc["loo_elpd"].values, dtype=float)
