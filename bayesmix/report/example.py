"""A synthetic fit directory built without MCMC, for tests, demos and template work.

Posterior draws are simulated around known clusters (no label switching), then assembled by
the package's own ``build_datatree`` and ``summarize``, so the layout is the real one. With
``extras`` the package's own ``analyse`` adds the optional parts: the ``relabelled`` group
(identified clusters and membership), ``allocations/partition`` and
``allocations/co_clustering``, and the summary's ``identified``, ``clusters``, ``membership``,
``partition``, ``loo`` and ``counts``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ALT_COLUMNS = ["x", "y"]


def synthetic_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian clusters (sizes 50%, 30%, 20%) in d dimensions: (x (n, d), labels)."""
    rng = np.random.default_rng(seed)
    sizes = [n // 2, (3 * n) // 10]
    sizes.append(n - sum(sizes))
    centres = np.array([[-4.0] * d, [0.0] + [3.0] * (d - 1), [4.0] + [-2.0] * (d - 1)])[:, :d]
    labels = np.repeat(np.arange(3), sizes)
    x = centres[labels] + rng.normal(size=(n, d)) * (0.9 if d == 1 else 1.0)
    if d >= 2:
        x[labels == 0, 1] += 0.6 * (x[labels == 0, 0] - centres[0, 0])  # a tilted cluster
    return x, labels


def _draws(xs: np.ndarray, labels: np.ndarray, chains: int, draws: int, k: int, rng):
    """Draws near the per-cluster estimates on the standardised scale; spare components are
    nearly empty (weight ~ 1e-3) with means from the prior."""
    n, d = xs.shape
    m = int(labels.max()) + 1
    shape = (chains, draws)
    counts = np.bincount(labels, minlength=m).astype(float)
    w = np.empty(shape + (k,))
    base = np.concatenate([counts, np.full(k - m, 0.15)])
    w[:] = rng.dirichlet(base + 0.5, size=shape)
    mu = rng.normal(0.0, 1.5, size=shape + (k, d))
    cov = np.broadcast_to(np.eye(d) * 0.3, shape + (k, d, d)).copy()
    for c in range(m):
        pts = xs[labels == c]
        mean = pts.mean(0)
        cv = np.cov(pts.T).reshape(d, d) + 1e-6 * np.eye(d)
        chol = np.linalg.cholesky(cv / len(pts))
        mu[..., c, :] = mean + rng.normal(size=shape + (d,)) @ chol.T
        scale = rng.gamma(len(pts), 1.0 / len(pts), size=shape)[..., None, None]
        cov[..., c, :, :] = cv * scale
    alpha = rng.gamma(3.0, 1.0 / 4.0, size=shape)
    return w, mu, cov, alpha


def write_example_fit(
    out: str | Path,
    d: int = 1,
    n: int = 120,
    columns: list[str] | None = None,
    extras: bool = True,
    clusters_format: str = "brief",
    chains: int = 2,
    draws: int = 150,
    k: int = 6,
    seed: int = 0,
    loo: bool = False,
) -> Path:
    """Write posterior.nc and summary.json of a synthetic fit into ``out`` (see module doc).

    ``clusters_format``: "brief" ({"label", "mean": {"mean", "interval_90"}, ...}) or
    "relabel" (the output of ``bayesmix.posterior.identified.summarise_clusters``).
    """
    import xarray as xr

    from bayesmix.data import Dataset
    from bayesmix.engines.base import Draws
    from bayesmix.io import write_datatree, write_json
    from bayesmix.posterior.analysis import analyse
    from bayesmix.posterior.assemble import build_datatree
    from bayesmix.posterior.counts import count_table
    from bayesmix.posterior.summary import summarize
    from bayesmix.priors import prior_k_from_spec
    from bayesmix.spec import load_spec
    from bayesmix.versions import versions

    out = Path(out)
    rng = np.random.default_rng(seed)
    x, labels = synthetic_data(n, d, seed)
    cols = list(columns) if columns else (["velocity"] if d == 1 else [f"f{j}" for j in range(d)])
    data = Dataset(values=x, columns=cols, source="synthetic.csv", row_labels=np.arange(2, n + 2))
    w, mu, cov, alpha = _draws(data.standardized, labels, chains, draws, k, rng)
    div = np.zeros((chains, draws), dtype=bool)
    div[0, :3] = True
    draws_obj = Draws(w, mu, cov, alpha, engine="nuts", sample_stats={"diverging": div})
    spec = load_spec("dp")
    command = f"bayesmix fit synthetic.csv --chains {chains} --draws {draws}"
    dt = build_datatree(draws_obj, data, spec, seed, attrs={"command": command})
    summary = summarize(dt)
    summary["prior_n_clusters"] = prior_k_from_spec(n, spec).to_dict()
    summary["versions"] = versions()
    summary["command"] = command
    summary["data"]["notes"] = []
    if extras:
        dt, extra = analyse(dt, seed=seed, tied=summary["n_clusters"]["tied_with_mode"])
        summary.update(extra)
        if clusters_format == "brief":
            summary["clusters"] = _brief(summary["clusters"])
        summary["counts"] = count_table(summary)
    if loo:
        summary["loo"] = {"elpd": -250.0, "se": 8.0, "n_pareto_k_bad": 2}
    write_datatree(out / "posterior.nc", dt)
    write_json(out / "summary.json", summary)
    assert isinstance(dt, xr.DataTree)
    return out


def _brief(clusters: list[dict]) -> list[dict]:
    """The cluster entries in an older key layout ({"label", "mean": {"mean", "interval_90"}}),
    which the report must read too."""

    def conv(e: dict | None) -> dict | None:
        if e is None:
            return None
        lo, hi = np.asarray(e["lower"]), np.asarray(e["upper"])
        return {"mean": e["mean"], "interval_90": np.stack([lo, hi], -1).tolist()}

    out = []
    for c in clusters:
        entry = {
            "label": c["cluster"],
            "occupancy": c["occupancy"],
            "empty_mostly": c["empty_mostly"],
            "weight": conv(c["weight"]),
            "r_hat": c["weight"].get("rhat"),
            "ess_bulk": c["weight"].get("ess_bulk"),
        }
        for key, src in (("mean", "mu"), ("sd", "sd"), ("corr", "corr"), ("size", "size")):
            if src in c:
                entry[key] = conv(c[src])
        out.append(entry)
    return out
