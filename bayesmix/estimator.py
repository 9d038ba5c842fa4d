"""BayesianGMM: a scikit-learn-style estimator over the bayesmix posterior."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from bayesmix.posterior.allocations import log_joint


def _as_2d(X, n_features: int | None = None) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None] if n_features in (None, 1) else x[None, :]
    if x.ndim != 2:
        raise ValueError(f"X must be 1-D or 2-D, got shape {x.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"X has {x.shape[1]} features, but the model was fitted with {n_features}")
    if not np.isfinite(x).all():
        raise ValueError("X contains NaN or infinite values")
    return x


def _draw_arrays(ds, max_draws: int | None, seed: int) -> tuple[np.ndarray, ...]:
    """(S, K) w, (S, K, D) mu, (S, K, D, D) cov from a posterior-like Dataset, thinned."""
    w = ds["w"].values
    c, s, k = w.shape
    w = w.reshape(c * s, k)
    mu = ds["mu"].values.reshape(c * s, k, -1)
    d = mu.shape[-1]
    if "sigma" in ds:
        cov = (ds["sigma"].values ** 2).reshape(c * s, k, 1, 1)
    else:
        cov = ds["cov"].values.reshape(c * s, k, d, d)
    if max_draws is not None and len(w) > max_draws:
        idx = np.sort(np.random.default_rng(seed).choice(len(w), max_draws, replace=False))
        w, mu, cov = w[idx], mu[idx], cov[idx]
    return w, mu, cov


class BayesianGMM:
    """Bayesian Gaussian mixture with a posterior over the number of clusters.

    Parameters mirror ``bayesmix fit``: ``model`` is a built-in spec name, a TOML path or a
    ModelSpec; ``engine`` is auto | nuts | gibbs | collapsed.

    Attributes after ``fit``: ``idata_`` (the DataTree), ``summary_`` (summary.json),
    ``n_clusters_pmf_`` ({k: P(K+ = k | data)}), ``partition_`` (point partition of the
    training rows, SALSO/VI), ``labels_`` (``predict`` on the training rows),
    ``n_clusters_`` (the relabelled clusters occupied in most draws), ``cluster_weights_``.
    """

    def __init__(
        self,
        model="dp",
        *,
        engine: str | None = None,
        chains: int | None = None,
        draws: int | None = None,
        tune: int | None = None,
        random_state: int | None = None,
        progress: bool = False,
        max_predictive_draws: int = 1000,
    ) -> None:
        self.model = model
        self.engine = engine
        self.chains = chains
        self.draws = draws
        self.tune = tune
        self.random_state = random_state
        self.progress = progress
        self.max_predictive_draws = max_predictive_draws

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X, y=None) -> BayesianGMM:
        """Sample the posterior given X (n_samples, n_features); returns self."""
        from bayesmix.fit import fit

        x = _as_2d(X)
        result = fit(
            x,
            self.model,
            engine=self.engine,
            chains=self.chains,
            draws=self.draws,
            tune=self.tune,
            seed=self.random_state,
            progress=self.progress,
        )
        return self._adopt(result)

    @classmethod
    def from_fit(cls, result, max_predictive_draws: int = 1000) -> BayesianGMM:
        """An estimator over an existing ``bayesmix.fit`` result (no re-sampling)."""
        est = cls(result.spec, max_predictive_draws=max_predictive_draws)
        return est._adopt(result)

    def _adopt(self, result) -> BayesianGMM:
        self.idata_ = result.idata
        self.summary_ = result.summary
        self.n_features_in_ = result.data.n_features
        self.n_clusters_pmf_ = {int(k): p for k, p in result.summary["n_clusters"]["pmf"].items()}
        self.partition_ = result.idata["allocations"]["partition"].values.copy()
        rel = result.idata["relabelled"]
        self._relabelled = _draw_arrays(rel, None, 0)
        occupied = [c["cluster"] for c in result.summary["clusters"] if not c["empty_mostly"]]
        mean_w = self._relabelled[0].mean(axis=0)
        self._main = np.array(sorted(occupied, key=lambda c: -mean_w[c]), dtype=int)
        self.n_clusters_ = len(self._main)
        self._posterior = _draw_arrays(result.idata["posterior"], self.max_predictive_draws, 1)
        self.cluster_weights_ = mean_w[self._main]
        self.labels_ = self.predict(result.data.values)
        return self

    def _check(self) -> None:
        if not hasattr(self, "idata_"):
            raise AttributeError("this BayesianGMM is not fitted yet: call fit(X) first")

    # -- cluster membership ----------------------------------------------------------------
    def _membership_draws(self, x: np.ndarray) -> np.ndarray:
        """Per relabelled draw s: p_s(cluster c | x) over the main clusters, (S, n, C)."""
        w, mu, cov = self._relabelled
        out = np.empty((len(w), len(x), len(self._main)))
        for s in range(len(w)):
            lj = log_joint(x, w[s], mu[s], cov[s])[:, self._main]
            out[s] = np.exp(lj - logsumexp(lj, axis=1, keepdims=True))
        return out

    def predict_proba(self, X, return_interval: bool = False, level: float = 0.9):
        """Posterior mean P(x belongs to cluster c), over the ``n_clusters_`` main clusters.

        Per draw, p(c | x, theta_s) = w_c N(x | mu_c, Sigma_c) / sum_c' (...) over the main
        relabelled clusters; averaged over draws. With ``return_interval`` also returns the
        equal-tailed ``level`` interval of each entry as (mean, lower, upper).
        """
        self._check()
        probs = self._membership_draws(_as_2d(X, self.n_features_in_))
        mean = probs.mean(axis=0)
        if not return_interval:
            return mean
        lo, hi = np.quantile(probs, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return mean, lo, hi

    def predict(self, X) -> np.ndarray:
        """Most probable main cluster (0 = heaviest) by the posterior predictive assignment."""
        return self.predict_proba(X).argmax(axis=1)

    # -- densities -------------------------------------------------------------------------
    def _log_density_draws(self, x: np.ndarray) -> np.ndarray:
        """log p(x | theta_s) for every kept posterior draw, (S, n)."""
        w, mu, cov = self._posterior
        return np.stack(
            [logsumexp(log_joint(x, w[s], mu[s], cov[s]), axis=1) for s in range(len(w))]
        )

    def score_samples(self, X) -> np.ndarray:
        """Log posterior predictive density log (1/S) sum_s p(x | theta_s) (not a plug-in)."""
        self._check()
        ld = self._log_density_draws(_as_2d(X, self.n_features_in_))
        return logsumexp(ld, axis=0) - np.log(ld.shape[0])

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density per sample."""
        return float(np.mean(self.score_samples(X)))

    def density(self, grid, level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior mean density at ``grid`` points and its equal-tailed ``level`` band."""
        self._check()
        dens = np.exp(self._log_density_draws(_as_2d(grid, self.n_features_in_)))
        lo, hi = np.quantile(dens, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return dens.mean(axis=0), lo, hi

    def sample(self, n_samples: int = 1, random_state: int | None = None):
        """Draw from the posterior predictive: theta_s at random, then z ~ w_s, x ~ N(mu_z, Sigma_z).

        Returns (X, component) like scikit-learn; component indexes the draw's components.
        """
        self._check()
        rng = np.random.default_rng(random_state)
        w, mu, cov = self._posterior
        s = rng.integers(len(w), size=n_samples)
        u = rng.random(n_samples)[:, None]
        comp = np.minimum((np.cumsum(w[s], axis=1) < u).sum(axis=1), w.shape[1] - 1)
        chol = np.linalg.cholesky(cov[s, comp])
        eps = rng.standard_normal((n_samples, mu.shape[-1]))
        return mu[s, comp] + np.einsum("nij,nj->ni", chol, eps), comp
