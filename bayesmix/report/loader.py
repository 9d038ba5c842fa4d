"""Read a fit directory (summary.json, posterior.nc, assignments.csv) into plain numpy arrays.

Everything optional is None when absent, so the report can say "not available" instead of
failing. Draws are flattened to a leading axis S = chain * draw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
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


class _Group:
    """The variables of one group as numpy arrays, from a DataTree node or an HDF5 group."""

    def __init__(self, source, attrs: dict) -> None:
        self._source = source
        self.attrs = attrs

    def __contains__(self, name: str) -> bool:
        return name in self._source

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._source[name]
        arr = np.asarray(value.values if hasattr(value, "values") else value[()])
        if arr.dtype.kind == "S":  # HDF5 strings arrive as bytes
            arr = arr.astype(str)
        elif arr.dtype.kind == "O":  # variable-length strings: an object array of bytes
            arr = np.array([_text(v) for v in arr.ravel()], dtype=object).reshape(arr.shape)
        return arr


def _groups(dt) -> tuple[dict[str, _Group], dict]:
    """{group: _Group} and the root attributes of a DataTree or an open h5py.File."""
    if hasattr(dt, "children"):  # an xarray DataTree
        groups = {name: _Group(dt[name].to_dataset(), dict(dt[name].attrs)) for name in dt.children}
        return groups, dict(dt.attrs)
    groups = {name: _Group(dt[name], dict(dt[name].attrs)) for name in dt.keys()}
    return groups, {k: _text(v) for k, v in dt.attrs.items()}


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _params(g: _Group | None) -> Params | None:
    """w, mu and sigma | cov of a posterior-like group, flattened to one leading draw axis: over
    (chain, draw) in ``posterior``, over ``sample`` (the identified draws) in ``relabelled``."""
    if g is None or "w" not in g or "mu" not in g:
        return None
    w = g["w"].astype(float)
    lead = w.ndim - 1  # 2 leading axes (chain, draw) or 1 (sample)
    flat = _flat if lead == 2 else (lambda a: a)
    mu = flat(g["mu"].astype(float))
    if "cov" in g:
        cov = flat(g["cov"].astype(float))
    elif "sigma" in g:
        cov = (flat(g["sigma"].astype(float)) ** 2)[..., None, None]
    else:
        return None
    return Params(flat(w), *_fill_empty(mu, cov))


def _fill_empty(mu: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components stored as NaN (weight exactly 0, ``io.storage_tree``) get mu = 0 and
    Sigma = I, so that weighted sums over components stay finite (their weight is 0)."""
    bad = np.isnan(mu).any(axis=-1)
    if not bad.any():
        return mu, cov
    mu = np.where(bad[..., None], 0.0, mu)
    eye = np.broadcast_to(np.eye(cov.shape[-1]), cov.shape)
    cov = np.where(bad[..., None, None], eye, cov)
    return mu, cov


def _read_assignments(path: Path) -> list[dict] | None:
    if not path.exists():
        return None
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [dict(row) for row in csv.DictReader(fh)]
    except (OSError, ValueError, csv.Error):  # a broken optional file must not stop the report
        return None


def load_fit(fit_dir: str | Path, dt: xr.DataTree | None = None) -> FitData:
    """summary.json (required) plus whatever posterior.nc and assignments.csv hold.

    ``dt``: the fit's DataTree already in memory (then posterior.nc is not read). From disk,
    posterior.nc is read with h5py, and only the arrays the report uses (not xarray, which
    with pandas costs most of a second to import).
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
        import h5py

        with h5py.File(nc, "r") as opened:
            _fill(data, opened)
    return data


def _fill(data: FitData, dt) -> None:
    """Copy the arrays the report needs from a DataTree or an open posterior.nc."""
    groups, attrs = _groups(dt)
    obs = groups.get("observed_data")
    if obs is not None and "x" in obs:
        data.x = obs["x"].astype(float)
        if data.x.ndim == 1:
            data.x = data.x[:, None]
        data.columns = [str(c) for c in obs["feature"]] if "feature" in obs else []
    if not data.columns:
        data.columns = [f"x{j}" for j in range(data.n_features)]
    labels = attrs.get("row_labels")
    try:
        data.row_labels = np.asarray(json.loads(labels)) if labels else None
    except (TypeError, ValueError):
        data.row_labels = None
    if data.row_labels is None or len(data.row_labels) != data.n_obs:
        data.row_labels = np.arange(1, data.n_obs + 1)
    post = groups.get("posterior")
    data.posterior = _params(post)
    rel = groups.get("relabelled")
    data.relabelled = _params(rel)
    if rel is not None:
        data.relabel_method = str(_text(rel.attrs.get("method", "")))
        if "membership" in rel:
            data.membership = rel["membership"].astype(float)
    if post is not None:
        for name in ("alpha", "gamma"):
            if name in post:
                data.concentration = (name, post[name].astype(float))
                break
        if "w" in post:
            data.n_chains = int(post["w"].shape[0])
    alloc = groups.get("allocations")
    if alloc is not None:
        if "z" in alloc:
            data.z = _flat(alloc["z"])  # (chain, z_draw, obs_id) -> (S_z, N), stored dtype
        if "n_clusters" in alloc:
            data.kplus = alloc["n_clusters"]
        if "partition" in alloc:
            data.partition = alloc["partition"].astype(np.int64)
        for name in ("co_clustering", "certainty"):  # "certainty": files before 0.2
            if name in alloc and data.co_clustering is None:
                data.co_clustering = alloc[name].astype(float)
        if "loo_elpd" in alloc:
            data.loo_elpd = alloc["loo_elpd"].astype(float)
