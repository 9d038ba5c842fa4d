"""build_model(spec, x) -> pm.Model: a Gaussian mixture with the allocations summed out."""

from __future__ import annotations

import numpy as np
import pymc as pm

from bayesmix.kernels import pymc as kernels
from bayesmix.mixings import pymc as mixings
from bayesmix.spec import ModelSpec


def _likelihood_logp(value, w, mu, factor):
    # With signature=, parameters arrive with leading size-1 batch dimensions.
    while w.ndim > 1:
        w, mu, factor = w[0], mu[0], factor[0]
    return kernels.mixture_logp(value, w, mu, factor)


def build_model(spec: ModelSpec, x: np.ndarray) -> pm.Model:
    """p(x | w, mu, Sigma) = prod_n sum_k w_k N(x_n | mu_k, Sigma_k) with priors from ``spec``.

    ``x`` is the standardised data (N, D). No discrete variable: z is summed out.
    The whitening factor ``factor`` (Sigma_k^{-1} = A_k A_k') is kept as a Deterministic
    so that covariances can be recovered from the draws.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    k = spec.mixing.n_components
    coords = {"cluster": np.arange(k), "feature": np.arange(d), "obs_id": np.arange(n)}
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", x, dims=("obs_id", "feature"))
        w = mixings.weights(spec.mixing)
        mu, factor = kernels.build_kernel(spec.kernel, k, d, x)
        pm.Deterministic("factor", factor)
        pm.CustomDist(
            "x",
            w,
            mu,
            factor,
            logp=_likelihood_logp,
            signature="(k),(k,d),(k,d,e)->(d)",
            observed=x_data,
            dims=("obs_id", "feature"),
        )
    return model


def em_bic_centres(x: np.ndarray, max_k: int, seed: int, max_n: int = 2000) -> np.ndarray:
    """Means of the EM fit (full covariance) with the best BIC over K = 1..max_k.

    Fitted on a random subset of at most ``max_n`` rows; used only to start samplers.
    """
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(seed)
    sub = x if len(x) <= max_n else x[rng.choice(len(x), max_n, replace=False)]
    best, best_bic = None, np.inf
    for k in range(1, min(max_k, len(sub) // 5) + 1):
        gm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-4).fit(sub)
        bic = gm.bic(sub)
        if bic < best_bic:
            best, best_bic = gm, bic
    return best.means_


def initial_values(spec: ModelSpec, x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Start NUTS at the EM + BIC means; random data points fill the remaining components.

    Quantile- or jitter-based starts can settle in modes that merge clusters, and
    starting with too many occupied components leaves NUTS stuck with split clusters.
    """
    rng = np.random.default_rng(seed)
    k = spec.mixing.n_components
    centres = em_bic_centres(x, min(k, 10), seed)
    n_centres = len(centres)
    extra = x[rng.choice(len(x), size=k - n_centres, replace=len(x) < k - n_centres)]
    mu = np.vstack([centres, extra])
    init: dict[str, np.ndarray] = {"mu": mu}
    if spec.mixing.type in ("dp", "pitman_yor"):
        # Sticks that put most mass on the EM centres, little on the others.
        v = np.full(k - 1, 0.5)
        v[: n_centres - 1] = 1.0 / (n_centres - np.arange(n_centres - 1))
        v[n_centres - 1] = 0.9
        init["v"] = np.clip(v, 0.05, 0.95)
    else:
        w = np.full(k, 0.1 / max(k - n_centres, 1))
        w[:n_centres] = 0.9 / n_centres
        init["w"] = w / w.sum()
    init.update(kernel_initial_values(spec, x))
    return init


def kernel_initial_values(spec: ModelSpec, x: np.ndarray) -> dict[str, np.ndarray]:
    """The kernel's scale hyperparameters at their prior means (given the data scale, for the
    semi-conjugate kernel): beta = C0 = g0 / G0 (diag; full: the Bartlett factors of
    C0 = g0 G0^{-1}), b0 or psi0 = shape / rate. The other kernel variables start at
    PyMC's defaults."""
    kern = spec.kernel
    d = np.asarray(x).reshape(len(x), -1).shape[1]
    if kern.prior == "conjugate" and kern.scale_prior is not None:
        name = "psi0" if d > 1 and kern.covariance == "full" else "b0"
        return {name: np.asarray(kern.scale_prior.shape / kern.scale_prior.rate)}
    if kern.prior != "semi_conjugate":
        return {}
    from bayesmix.kernels.semiconj import data_hyper

    h = data_hyper(kern, np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    if not h.hierarchical:
        return {}
    if d == 1 or kern.covariance == "diag":
        return {"beta": h.g0 / np.asarray(h.G0)}
    # C0 = M M', M = diag((2 G0)^-1/2) A: A = sqrt(2 g0) I gives C0 = g0 G0^{-1}
    return {
        "C0_bartlett_c": np.full(d, 2.0 * h.g0),
        "C0_bartlett_z": np.zeros(d * (d - 1) // 2),
    }
