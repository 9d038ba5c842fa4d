"""The PyMC model's joint log-density equals an independent scipy/numpy implementation.

For every mixing and kernel that ``bayesmix.model.build_model`` supports, the compiled
``model.compile_logp(jacobian=False)`` (the log-density of the constrained variables, no
change-of-variables term) is evaluated at random points of the model's value space and compared
with the same joint density written here from the math of ``bayesmix.spec.MixingSpec`` and
``KernelSpec`` with scipy.stats:

    log p(free variables) + sum_i log sum_k w_k N(x_i | mu_k, Sigma_k).

The points are drawn in the constrained space and mapped to the value space with transforms
written here in numpy (log, log-odds, PyMC's centred-log simplex, the packed Cholesky with a log
diagonal); a wrong transform moves the point and the comparison fails, so the map is checked too.
Where the model writes a density through a reparametrisation, the reference starts from the
distribution the spec names and applies the Jacobian itself:

* NIG: the model's free variable is the precision tau; the reference is sigma^2 = 1/tau ~
  IG(a0, b0) times |d sigma^2 / d tau| = tau^-2, and mu | tau ~ N(m0, 1 / (kappa0 tau)).
* NIW: the model's free variables are the Bartlett factors (c, z) of Lambda = Sigma^-1 (and mu
  with a Flat prior plus a Potential).  The reference is Sigma ~ IW(nu0, psi0 I) as a density of
  Lambda (|d Sigma / d Lambda| = |Lambda|^-(D+1)), times the Jacobian of (c, z) -> P -> Lambda
  (P = B / sqrt(psi0) lower, B_ii = sqrt(c_i), B_ij = z; d(P P')/dP = 2^D prod_i P_ii^(D-i+1)),
  and mu | Sigma ~ MvNormal(m0, Sigma / kappa0) from scipy: the Bartlett decomposition itself is
  under test, not assumed.
* LKJ (weakly informative, full): the free variable is L = chol(Sigma).  The reference is
  sd_j ~ HalfNormal(sigma_sd), the D = 2 LKJ(eta) correlation r with (r + 1) / 2 ~ Beta(eta, eta),
  and the Jacobian of (sd, r) -> Sigma -> L: p(L) = p(sd) p(r) prod_i L_ii^(D-i+1) / prod_j sd_j^D.

Tolerance: 1e-8 relative.  The two agree to about 1e-14 except for one known effect: PyTensor
stores a Python float hyperparameter that float32 represents exactly (1.5, 2.5, 3.0, ...) as a
float32 constant, so constant-only terms such as log(sigma_sd) or gammaln(a0) are evaluated in
float32 (relative error ~6e-8 each).  That shifts the log-density by a constant (no effect on
the posterior) of up to ~1e-7 here, i.e. ~1e-9 relative.

Compilation uses PyTensor's FAST_COMPILE mode (a handful of evaluations; no numba JIT), under
1 s per model.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from bayesmix.model import build_model
from bayesmix.spec import GammaPrior, KernelSpec, MixingSpec, ModelSpec

N, T = 20, 4  # observations, components (DP truncation = finite K)
N_POINTS = 4
RTOL = 1e-8

MIXINGS = {
    "dp_fixed": MixingSpec("dp", T, 1.7, None),
    "dp_gamma": MixingSpec("dp", T, None, GammaPrior(2.5, 1.5)),
    "finite_fixed": MixingSpec("finite", T, 0.6, None),
    "finite_gamma": MixingSpec("finite", T, None, GammaPrior(3.0, 4.0)),
}
# Non-default hyperparameters throughout, so that a swapped rate/scale, sd/variance or a
# dropped m0 changes the density.
KERNELS = {
    "conj_1d": (KernelSpec(covariance="full", m0=0.3, kappa0=0.5, a0=2.5, b0=0.7), 1),
    "conj_full_2d": (KernelSpec(covariance="full", m0=-0.2, kappa0=0.4, nu0=5.5, psi0=0.6), 2),
    "conj_full_2d_nu0_default": (KernelSpec(covariance="full", m0=0.1, kappa0=0.3, psi0=0.35), 2),
    "conj_diag_2d": (KernelSpec(covariance="diag", m0=0.4, kappa0=0.2, a0=3.0, b0=0.4), 2),
    "conj_spherical_3d": (
        KernelSpec(covariance="spherical", m0=0.4, kappa0=0.2, a0=3.0, b0=0.4),
        3,
    ),
    "wi_1d": (KernelSpec(prior="weakly_informative", m0=0.5, mu_sd=1.5, sigma_sd=0.8), 1),
    "wi_diag_2d": (
        KernelSpec(prior="weakly_informative", covariance="diag", m0=-0.3, sigma_sd=1.3),
        2,
    ),
    "wi_spherical_2d": (
        KernelSpec(prior="weakly_informative", covariance="spherical", m0=-0.3, sigma_sd=1.3),
        2,
    ),
    "wi_full_2d": (
        KernelSpec(prior="weakly_informative", m0=0.2, mu_sd=1.2, sigma_sd=0.7, lkj_eta=2.5),
        2,
    ),
}


# --------------------------------------------------------------------------- random points
# Each returns (constrained values used by the reference, value-space point for PyMC).


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _mixing_point(mix: MixingSpec, rng) -> tuple[dict, dict]:
    vals, point = {}, {}
    if mix.concentration is None:
        conc = rng.uniform(0.3, 3.0)
        vals["conc"] = conc
        point[f"{mix.concentration_name}_log__"] = np.log(conc)
    else:
        vals["conc"] = mix.concentration
    if mix.type == "dp":
        v = rng.uniform(0.05, 0.95, T - 1)
        vals["v"] = v
        point["v_logodds__"] = _logit(v)
    else:
        w = rng.dirichlet(np.ones(T))
        vals["w"] = w
        lw = np.log(w)
        point["w_simplex__"] = lw[:-1] - lw.mean()  # PyMC's simplex transform (centred log)
    return vals, point


def _kernel_point(kernel: KernelSpec, d: int, rng) -> tuple[dict, dict]:
    mu = rng.normal(0.0, 1.5, (T, d))
    vals, point = {"mu": mu}, {"mu": mu}
    spherical = d > 1 and kernel.covariance == "spherical"
    if kernel.prior == "conjugate" and spherical:  # one precision per component
        tau = rng.uniform(0.3, 4.0, (T, 1))
        vals["tau"] = tau
        point["tau_log__"] = np.log(tau)
    elif kernel.prior == "weakly_informative" and spherical:
        sigma = rng.uniform(0.2, 2.5, (T, 1))
        vals["sigma"] = sigma
        point["sigma_raw_log__"] = np.log(sigma)
    elif kernel.prior == "conjugate" and (d == 1 or kernel.covariance == "diag"):
        tau = rng.uniform(0.3, 4.0, (T, d))
        vals["tau"] = tau
        point["tau_log__"] = np.log(tau)
    elif kernel.prior == "conjugate":
        c = rng.uniform(0.5, 6.0, (T, d))
        z = rng.normal(size=(T, d * (d - 1) // 2))
        vals["c"], vals["z"] = c, z
        point["bartlett_c_log__"], point["bartlett_z"] = np.log(c), z
    elif d == 1 or kernel.covariance == "diag":
        sigma = rng.uniform(0.2, 2.5, (T, d))
        vals["sigma"] = sigma
        point["sigma_raw_log__"] = np.log(sigma)
    else:
        assert d == 2
        chols = []
        for j in range(T):
            sd = rng.uniform(0.3, 2.0, 2)
            r = rng.uniform(-0.85, 0.85)
            cov = np.outer(sd, sd) * np.array([[1.0, r], [r, 1.0]])
            lo = np.linalg.cholesky(cov)
            chols.append(lo)
            packed = lo[np.tril_indices(2)]  # row-major lower triangle: L00, L10, L11
            packed[[0, 2]] = np.log(packed[[0, 2]])  # log of the diagonal
            point[f"chol_{j}_cholesky-cov-packed__"] = packed
        vals["chol"] = np.array(chols)
    return vals, point


# --------------------------------------------------------------------------- reference density


def _ref_mixing(mix: MixingSpec, vals: dict) -> tuple[float, np.ndarray]:
    """log p(concentration, v or w) and the weights w (T,)."""
    lp = 0.0
    conc = vals["conc"]
    if mix.concentration is None:
        prior = mix.concentration_prior
        lp += stats.gamma(a=prior.shape, scale=1.0 / prior.rate).logpdf(conc)
    if mix.type == "dp":
        v = vals["v"]
        lp += stats.beta(1.0, conc).logpdf(v).sum()
        w = np.empty(T)
        rest = 1.0
        for k in range(T - 1):
            w[k] = v[k] * rest
            rest *= 1.0 - v[k]
        w[T - 1] = rest  # the leftover stick
    else:
        w = vals["w"]
        lp += stats.dirichlet(np.full(T, conc)).logpdf(w)
    return float(lp), w


def _ref_kernel(kernel: KernelSpec, d: int, vals: dict) -> tuple[float, np.ndarray]:
    """log p(kernel free variables) and the covariances Sigma (T, D, D)."""
    mu, m0 = vals["mu"], np.full(d, kernel.m0)
    lp = 0.0
    spherical = d > 1 and kernel.covariance == "spherical"
    if spherical:  # one variance per component, shared by the d features: Sigma = s2 I
        if kernel.prior == "conjugate":
            s2 = 1.0 / vals["tau"][:, 0]
            ig = stats.invgamma(a=kernel.a0, scale=kernel.b0)
            lp += (ig.logpdf(s2) + 2 * np.log(s2)).sum()  # as a density of tau = 1/s2
            lp += stats.norm(kernel.m0, np.sqrt(s2 / kernel.kappa0)[:, None]).logpdf(mu).sum()
        else:
            sd = vals["sigma"][:, 0]
            s2 = sd**2
            lp += stats.halfnorm(scale=kernel.sigma_sd).logpdf(sd).sum()
            lp += stats.norm(kernel.m0, kernel.mu_sd).logpdf(mu).sum()
        cov = s2[:, None, None] * np.eye(d)[None]
    elif kernel.prior == "conjugate" and (d == 1 or kernel.covariance == "diag"):
        tau = vals["tau"]
        s2 = 1.0 / tau
        # sigma^2 ~ IG(a0, b0) as a density of tau = 1/sigma^2
        lp += (stats.invgamma(a=kernel.a0, scale=kernel.b0).logpdf(s2) - 2 * np.log(tau)).sum()
        lp += stats.norm(kernel.m0, np.sqrt(s2 / kernel.kappa0)).logpdf(mu).sum()
        cov = np.array([np.diag(row) for row in s2])
    elif kernel.prior == "conjugate":
        nu0 = kernel.nu0 if kernel.nu0 is not None else d + 2.0
        iw = stats.invwishart(df=nu0, scale=kernel.psi0 * np.eye(d))
        rows, cols = np.tril_indices(d, -1)
        cov = np.empty((T, d, d))
        for k in range(T):
            c, z = vals["c"][k], vals["z"][k]
            b = np.zeros((d, d))
            b[np.arange(d), np.arange(d)] = np.sqrt(c)
            b[rows, cols] = z
            p = b / np.sqrt(kernel.psi0)
            lam = p @ p.T
            sigma = np.linalg.inv(lam)
            cov[k] = sigma
            # Sigma ~ IW as a density of Lambda, then Lambda = P P' (Cholesky Jacobian),
            # P = B / sqrt(psi0) (d(d+1)/2 entries scaled), B_ii = sqrt(c_i).
            lp += iw.logpdf(sigma) - (d + 1) * np.linalg.slogdet(lam)[1]
            lp += d * np.log(2.0) + np.sum((d - np.arange(d)) * np.log(np.diag(p)))
            lp += -0.5 * (d * (d + 1) / 2) * np.log(kernel.psi0)
            lp += np.sum(-np.log(2.0 * np.sqrt(c)))
            lp += stats.multivariate_normal(m0, sigma / kernel.kappa0).logpdf(mu[k])
    elif d == 1 or kernel.covariance == "diag":
        sigma = vals["sigma"]
        lp += stats.halfnorm(scale=kernel.sigma_sd).logpdf(sigma).sum()
        lp += stats.norm(kernel.m0, kernel.mu_sd).logpdf(mu).sum()
        cov = np.array([np.diag(row**2) for row in sigma])
    else:
        lp += stats.norm(kernel.m0, kernel.mu_sd).logpdf(mu).sum()
        cov = np.empty((T, d, d))
        eta = kernel.lkj_eta
        for k in range(T):
            lo = vals["chol"][k]
            sigma = lo @ lo.T
            cov[k] = sigma
            sd = np.sqrt(np.diag(sigma))
            r = sigma[0, 1] / (sd[0] * sd[1])
            lp += stats.halfnorm(scale=kernel.sigma_sd).logpdf(sd).sum()
            lp += stats.beta(eta, eta).logpdf((r + 1) / 2) - np.log(2.0)  # LKJ for D = 2
            lp += np.sum((d - np.arange(d)) * np.log(np.diag(lo))) - d * np.log(sd).sum()
    return float(lp), cov


def _ref_loglik(x, w, mu, cov) -> float:
    comp = np.column_stack(
        [np.log(w[k]) + stats.multivariate_normal(mu[k], cov[k]).logpdf(x) for k in range(T)]
    )
    return float(logsumexp(comp, axis=1).sum())


# --------------------------------------------------------------------------- the test


@pytest.mark.parametrize("kernel_name", list(KERNELS))
@pytest.mark.parametrize("mixing_name", list(MIXINGS))
def test_logp_matches_scipy(mixing_name, kernel_name):
    mix = MIXINGS[mixing_name]
    kernel, d = KERNELS[kernel_name]
    seed = [*MIXINGS].index(mixing_name) * 100 + [*KERNELS].index(kernel_name)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, d)) * 1.3 + 0.2
    model = build_model(ModelSpec(mixing=mix, kernel=kernel), x)
    logp = model.compile_logp(jacobian=False, mode="FAST_COMPILE")
    names = sorted(v.name for v in model.value_vars)
    for _ in range(N_POINTS):
        mvals, mpoint = _mixing_point(mix, rng)
        kvals, kpoint = _kernel_point(kernel, d, rng)
        point = mpoint | kpoint
        assert sorted(point) == names  # the free variables are exactly the ones written here
        lp_mix, w = _ref_mixing(mix, mvals)
        lp_ker, cov = _ref_kernel(kernel, d, kvals)
        want = lp_mix + lp_ker + _ref_loglik(x, w, kvals["mu"], cov)
        got = float(logp(point))
        assert got == pytest.approx(want, rel=RTOL, abs=0.0), (got, want, got - want)
