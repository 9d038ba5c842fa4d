"""BayesianGMM: a scikit-learn estimator over the bayesmix posterior."""

from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesmix.data import MIN_ROWS
from bayesmix.posterior.allocations import LOG_2PI

LEVEL = 0.9
CHUNK = 1 << 21  # (row, draw, cluster, feature) entries computed at once
COVARIANCE_TYPES = ("full", "diag", "spherical", "auto")
SEED_MAX = 2**31 - 1


def _params(
    ds, kept: np.ndarray | None = None, sanitize: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, K) w, (S, K, D) mu, (S, K, D, D) cov of a posterior-like Dataset, its draw axes
    (``chain``, ``draw`` or ``sample``) flattened; ``kept`` selects flat draws; ``sanitize``
    gives weightless components mu = 0 and Sigma = I (their log weight is -inf anyway)."""
    w = ds["w"].values
    k = w.shape[-1]
    w = w.reshape(-1, k)
    mu = ds["mu"].values.reshape(w.shape[0], k, -1)
    d = mu.shape[-1]
    if "sigma" in ds:
        cov = (ds["sigma"].values.reshape(w.shape[0], k) ** 2)[..., None, None]
    else:
        cov = ds["cov"].values.reshape(w.shape[0], k, d, d)
    if kept is not None:
        w, mu, cov = w[kept], mu[kept], cov[kept]
    empty = ~(w > 0)
    if sanitize and empty.any():
        mu, cov = mu.copy(), cov.copy()
        mu[empty] = 0.0
        cov[empty] = np.eye(d)
    return np.ascontiguousarray(w), np.ascontiguousarray(mu), np.ascontiguousarray(cov)


def _thin(n: int, max_draws: int | None) -> np.ndarray:
    """At most ``max_draws`` of the indices 0..n-1, evenly spaced (deterministic)."""
    if max_draws is None or n <= max_draws:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_draws).round().astype(np.int64))


class _Mixture:
    """S mixture draws, factorised once for log w_sk + log N(x | mu_sk, Sigma_sk).

    With Sigma = L L^T and A = L^-1: log N(x | mu, Sigma) = -D/2 log 2pi + log|A|
    - |A x - A mu|^2 / 2; A x for every (s, k) at once is one matrix product. Results are laid
    out (N, K, S) so that sums over the few components and over the draws stay vectorised.
    """

    def __init__(self, w: np.ndarray, mu: np.ndarray, cov: np.ndarray) -> None:
        self.w, self.mu, self.cov = w, mu, cov
        s, k, d = mu.shape
        self.shape = (s, k, d)
        with np.errstate(divide="ignore"):
            logw = np.log(w)
        if d == 1:
            sd = np.sqrt(cov[..., 0, 0])
            self.loc, self.inv_sd = mu[..., 0].T.copy(), (1.0 / sd).T.copy()  # (K, S)
            self.const = (logw - np.log(sd) - 0.5 * LOG_2PI).T.copy()
        else:
            a = np.linalg.inv(np.linalg.cholesky(cov))  # (S, K, D, D), lower triangular
            # a_t[e, (d, k, s)] = A_sk[d, e]; a_mu[d, k, s] = (A_sk mu_sk)[d]
            self.a_t = np.ascontiguousarray(a.transpose(3, 2, 1, 0).reshape(d, d * k * s))
            self.a_mu = np.einsum("skde,ske->dks", a, mu)
            logdet = np.log(np.diagonal(a, axis1=-2, axis2=-1)).sum(axis=-1)
            self.const = (logw + logdet - 0.5 * d * LOG_2PI).T.copy()  # (K, S)

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """log w_sk + log N(x_n | mu_sk, Sigma_sk) as an (N, K, S) array; log 0 = -inf."""
        s, k, d = self.shape
        if d == 1:
            r = (x[:, :1, None] - self.loc) * self.inv_sd
            return self.const - 0.5 * r * r
        y = (x @ self.a_t).reshape(len(x), d, k, s) - self.a_mu
        y *= y
        return self.const - 0.5 * y.sum(axis=1)

    def blocks(self, x: np.ndarray):
        """(rows, log_joint(x[rows])) over row blocks of about CHUNK entries each."""
        s, k, d = self.shape
        step = max(1, CHUNK // max(1, s * k * d))
        for a in range(0, len(x), step):
            rows = slice(a, min(len(x), a + step))
            yield rows, self.log_joint(x[rows])


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log sum exp over ``axis`` (all -inf gives -inf)."""
    top = a.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis) + np.log(np.exp(a - top).sum(axis=axis))


def _rng(random_state) -> np.random.Generator:
    """A numpy Generator from None, an int, a Generator or a RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(SEED_MAX)))
    return np.random.default_rng(random_state)


def _positive_int(name: str, value, minimum: int = 1, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        alt = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{alt}, got {value!r}")


def _quantiles(level: float) -> list[float]:
    """The ends (1 - level) / 2 and (1 + level) / 2 of an equal-tailed interval."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    return [(1 - level) / 2, (1 + level) / 2]


class BayesianGMM(ClusterMixin, DensityMixin, BaseEstimator):
    """Bayesian Gaussian mixture with a posterior over the number of clusters.

    ``fit`` samples the posterior with ``bayesmix.fit`` (data standardised internally; every
    answer is in data units). The clusters are the *identified solution*: the draws in which
    the number of occupied clusters K+ equals its posterior mode K̂, their K̂ occupied
    components relabelled, cluster 0 the heaviest.

    Parameters
    ----------
    model : built-in spec name ("dp", "finite", "sparse_finite", "dp_fixed_alpha"), a TOML
        path or a ``bayesmix.spec.ModelSpec``.
    n_components : K of a finite mixture or the truncation T of the DP
        (``mixing.n_components``; >= 1, the DP under NUTS >= 2; the collapsed engine's DP is
        untruncated and ignores it); None keeps the spec's.
    covariance_type : "full", "diag", "spherical" or "auto" (``kernel.covariance``: "auto"
        picks the family by EM + BIC across families); None keeps the spec's.
    engine : auto | nuts | gibbs | collapsed | subcluster; None: the spec's.
    chains, draws, tune : sampler settings; None: the spec's (Gibbs engines keep
        ``sampler.gibbs_draws`` draws per chain).
    random_state : int (0 <= seed < 2**32), RandomState, Generator or None. An int is the
        seed itself (same int, same draws); None, a RandomState or a Generator draws a fresh
        seed, as in scikit-learn. The seed used is ``seed_``.
    progress : show the sampler's progress bar.
    max_predictive_draws : at most this many draws (evenly thinned) enter the predictions:
        identified draws in ``predict_proba`` / ``predict``, posterior draws in
        ``score_samples``, ``score``, ``density`` and ``sample``; None: all.

    Attributes
    ----------
    idata_, summary_ : the DataTree and summary.json of the fit. seed_ : the seed used.
    n_clusters_pmf_ : {k: P(K+ = k | data)}. n_clusters_ : K̂, the identified number.
    weights_ (K̂,), means_ (K̂, D), covariances_ (K̂, D, D) : posterior means over the
        identified draws, in data units (``weights_`` sums to at most 1: the rest is the
        mean weight of the empty components).
    membership_ (N, K̂) : P(z_i = c | data, K+ = K̂) for the training rows.
    labels_ : argmax of ``membership_``. partition_ : SALSO point partition of the rows.
    n_features_in_, feature_names_in_ : as in scikit-learn.

    scikit-learn compatibility
    --------------------------
    A clusterer (``fit_predict``) and a density estimator: ``get_params`` / ``set_params`` /
    ``clone``, ``Pipeline`` and ``GridSearchCV`` (by ``score``, the mean log posterior
    predictive density) work. Feature names and counts are checked by every method taking X
    (reordered DataFrame columns raise ValueError). X must be 2-D (one feature:
    ``x[:, None]``), finite, with at least 5 rows and no constant column (ValueError
    otherwise). ``sklearn.utils.estimator_checks.check_estimator`` (scikit-learn 1.9, legacy
    checks included) passes with no expected failure, ``EXPECTED_FAILED_CHECKS = {}``, with
    a fixed int ``random_state`` (``check_array_api_input`` is skipped by scikit-learn
    unless SCIPY_ARRAY_API is set); so does ``check_dataframe_column_names_consistency``.
    ``random_state=None`` fits are deliberately not repeatable.
    """

    def __init__(
        self,
        model="dp",
        n_components=None,
        covariance_type=None,
        engine=None,
        chains=None,
        draws=None,
        tune=None,
        random_state=None,
        progress=False,
        max_predictive_draws=1000,
    ) -> None:
        self.model = model
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.engine = engine
        self.chains = chains
        self.draws = draws
        self.tune = tune
        self.random_state = random_state
        self.progress = progress
        self.max_predictive_draws = max_predictive_draws

    # -- fitting ---------------------------------------------------------------------------
    def _spec(self):
        """The ModelSpec: ``model`` with ``n_components`` / ``covariance_type`` applied."""
        from bayesmix.spec import ModelSpec, load_spec

        if isinstance(self.model, ModelSpec):
            spec = self.model
        elif isinstance(self.model, (str, Path)):
            spec = load_spec(self.model)
        else:
            raise ValueError(
                "model must be a built-in spec name, a TOML path or a ModelSpec, "
                f"got {type(self.model).__name__}"
            )
        if self.n_components is not None:
            _positive_int("n_components", self.n_components)
            mixing = dataclasses.replace(spec.mixing, n_components=int(self.n_components))
            spec = dataclasses.replace(spec, mixing=mixing)
        if self.covariance_type is not None:
            if self.covariance_type not in COVARIANCE_TYPES:
                raise ValueError(
                    "covariance_type must be 'full', 'diag', 'spherical', 'auto' or None, got "
                    f"{self.covariance_type!r}"
                )
            kernel = dataclasses.replace(spec.kernel, covariance=self.covariance_type)
            spec = dataclasses.replace(spec, kernel=kernel)
        if spec.mixing.type == "dp" and spec.mixing.n_components < 2:
            from bayesmix.engines.names import Engine
            from bayesmix.fit import resolve_engine

            if resolve_engine(spec, self.engine or spec.sampler.engine) is Engine.NUTS:
                raise ValueError("n_components (the DP truncation) must be >= 2 with NUTS")
        return spec

    def _validate_params(self) -> None:
        from bayesmix.engines.names import ENGINE_CHOICES

        if self.engine is not None and self.engine not in ENGINE_CHOICES:
            raise ValueError(
                f"engine must be one of {', '.join(ENGINE_CHOICES)} or None, got {self.engine!r}"
            )
        _positive_int("chains", self.chains)
        _positive_int("draws", self.draws)
        _positive_int("tune", self.tune, minimum=0)
        _positive_int("max_predictive_draws", self.max_predictive_draws)
        if not isinstance(self.progress, (bool, np.bool_)):
            raise ValueError(f"progress must be True or False, got {self.progress!r}")

    def _seed(self) -> int:
        """An int random_state is the seed; None, a RandomState or a Generator gives a drawn
        one (None: from numpy's global RandomState, as scikit-learn does)."""
        rs = self.random_state
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            check_random_state(rs)  # ValueError unless 0 <= rs < 2**32
            return int(rs)
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(SEED_MAX))
        try:
            return int(check_random_state(rs).randint(SEED_MAX))
        except ValueError:
            raise ValueError(
                f"random_state must be an int, a RandomState, a Generator or None, got {rs!r}"
            ) from None

    def fit(self, X, y=None) -> BayesianGMM:
        """Sample the posterior given X (n_samples >= 5, n_features); y is ignored."""
        import pandas as pd

        from bayesmix.fit import fit

        self._validate_params()
        spec = self._spec()
        x = validate_data(
            self, X, reset=True, dtype=np.float64, ensure_min_samples=MIN_ROWS, copy=True
        )
        names = getattr(self, "feature_names_in_", None)
        data = x
        if names is not None and len(set(names)) == len(names):
            data = pd.DataFrame(x, columns=[str(c) for c in names])
        seed = self._seed()
        result = fit(
            data,
            spec,
            engine=self.engine,
            chains=self.chains,
            draws=self.draws,
            tune=self.tune,
            seed=seed,
            progress=bool(self.progress),
            classical=False,
        )
        return self._adopt(result, seed)

    @classmethod
    def from_fit(cls, result, max_predictive_draws: int | None = 1000) -> BayesianGMM:
        """An estimator over an existing ``bayesmix.fit`` result (no re-sampling)."""
        seed = int(result.summary.get("seed", result.spec.sampler.seed))
        est = cls(result.spec, random_state=seed, max_predictive_draws=max_predictive_draws)
        est._validate_params()
        est.n_features_in_ = int(result.data.n_features)
        if result.data.source != "<array>":  # DataFrame, Series or file: real column names
            est.feature_names_in_ = np.asarray(result.data.columns, dtype=object)
        return est._adopt(result, seed)

    def _adopt(self, result, seed: int) -> BayesianGMM:
        idata, summary = result.idata, result.summary
        if "relabelled" not in idata.children:
            raise ValueError("the fit has no identified solution: run fit(analyse_clusters=True)")
        self.idata_ = idata
        self.summary_ = summary
        self.seed_ = int(seed)
        pmf = summary["n_clusters"]["pmf"]
        self.n_clusters_pmf_ = {int(k): float(pmf[k]) for k in sorted(pmf, key=int)}
        rel = idata["relabelled"]
        w, mu, cov = _params(rel, sanitize=False)
        self.n_clusters_ = int(w.shape[1])
        self.weights_ = w.mean(axis=0)
        self.means_ = mu.mean(axis=0)
        self.covariances_ = cov.mean(axis=0)
        self.membership_ = rel["membership"].values.copy()
        self.labels_ = self.membership_.argmax(axis=1).astype(np.int64)
        self.partition_ = idata["allocations"]["partition"].values.astype(np.int64)
        post = idata["posterior"]
        n_draws = int(np.prod(post["w"].shape[:-1]))
        self._identified = _Mixture(*_params(rel, _thin(len(w), self.max_predictive_draws)))
        self._predictive = _Mixture(*_params(post, _thin(n_draws, self.max_predictive_draws)))
        return self

    def _check_X(self, X, allow_1d: bool = False) -> np.ndarray:
        check_is_fitted(self)
        if allow_1d and self.n_features_in_ == 1:
            arr = np.asarray(X)
            if arr.ndim <= 1:
                X = arr.reshape(-1, 1)
        return validate_data(self, X, reset=False, dtype=np.float64)

    # -- cluster membership ----------------------------------------------------------------
    def _membership_blocks(self, x: np.ndarray):
        """Per identified draw s: p_s(c | x) = w_sc N(x | mu_sc, Sigma_sc) / sum_c' (...),
        (rows, K̂, S) arrays over row blocks of x."""
        for rows, lj in self._identified.blocks(x):
            p = np.exp(lj - lj.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            yield rows, p

    def predict_proba(self, X, return_interval: bool = False, level: float = LEVEL):
        """Posterior mean of p(x in cluster c), c over the K̂ identified clusters, (n, K̂).

        Per identified draw s, p_s(c | x) = w_sc N(x | mu_sc, Sigma_sc) / sum_c' (...),
        averaged over the draws. With ``return_interval`` also the equal-tailed ``level``
        interval of each entry: returns (mean, lower, upper).
        """
        x = self._check_X(X)
        k = self.n_clusters_
        mean = np.empty((len(x), k))
        lo, hi = np.empty_like(mean), np.empty_like(mean)
        q = _quantiles(level)
        for rows, probs in self._membership_blocks(x):
            mean[rows] = probs.mean(axis=2)
            if return_interval:
                lo[rows], hi[rows] = np.quantile(probs, q, axis=2)
        return (mean, lo, hi) if return_interval else mean

    def predict(self, X) -> np.ndarray:
        """The most probable identified cluster (0 = heaviest) of each row of X."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X).labels_``: each training row's most probable identified cluster."""
        return self.fit(X).labels_

    # -- densities -------------------------------------------------------------------------
    def _log_density_blocks(self, x: np.ndarray):
        """log p(x | theta_s) = logsumexp_k (log w_sk + log N(x | mu_sk, Sigma_sk)) for the
        kept posterior draws, (rows, S) arrays over row blocks of x."""
        for rows, lj in self._predictive.blocks(x):
            yield rows, _logsumexp(lj, axis=1)

    def score_samples(self, X) -> np.ndarray:
        """Log posterior predictive density log (1/S) sum_s p(x | theta_s) of each row of X,
        over (at most ``max_predictive_draws`` of) all posterior draws; not a plug-in."""
        x = self._check_X(X)
        out = np.empty(len(x))
        for rows, ld in self._log_density_blocks(x):
            out[rows] = _logsumexp(ld, axis=1) - np.log(ld.shape[1])
        return out

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density per row of X (higher is better)."""
        return float(np.mean(self.score_samples(X)))

    def density(self, grid, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Posterior mean of p(x | theta) at the ``grid`` rows and its equal-tailed ``level``
        band over the draws; a 1-D grid is accepted for 1-feature models."""
        x = self._check_X(grid, allow_1d=True)
        mean, lo, hi = np.empty(len(x)), np.empty(len(x)), np.empty(len(x))
        q = _quantiles(level)
        for rows, ld in self._log_density_blocks(x):
            dens = np.exp(ld)
            mean[rows] = dens.mean(axis=1)
            lo[rows], hi[rows] = np.quantile(dens, q, axis=1)
        return mean, lo, hi

    def sample(self, n_samples: int = 1, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw from the posterior predictive: theta_s at random among the kept draws, then
        z ~ w_s, x ~ N(mu_sz, Sigma_sz). Returns (X (n, D), component), the component
        indexing the draw's own components (not the identified clusters)."""
        check_is_fitted(self)
        _positive_int("n_samples", n_samples, allow_none=False)
        rng = _rng(random_state)
        mix = self._predictive
        w, mu, cov = mix.w, mix.mu, mix.cov
        s = rng.integers(len(w), size=n_samples)
        u = rng.random(n_samples)[:, None] * w[s].sum(axis=1, keepdims=True)
        comp = np.minimum((np.cumsum(w[s], axis=1) < u).sum(axis=1), w.shape[1] - 1)
        chol = np.linalg.cholesky(cov[s, comp])
        eps = rng.standard_normal((n_samples, mu.shape[-1]))
        return mu[s, comp] + np.einsum("nij,nj->ni", chol, eps), comp

    # -- notebooks -------------------------------------------------------------------------
    def _html_repr(self) -> str:
        from bayesmix import notebook

        if hasattr(self, "summary_"):
            return notebook.fit_html(self.summary_)
        return notebook.unfitted_html(type(self).__name__, self.get_params(deep=False))

    def _repr_html_(self) -> str:  # overrides scikit-learn's diagram (a property)
        """Jupyter: the answer, the K+ figure and the diagnostics light (or the parameters)."""
        return self._html_repr()


# check name -> why it is expected to fail in sklearn.utils.estimator_checks.check_estimator
# (with a fixed int random_state): none (see the class docstring)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}
