"""build_model(spec, x) -> pm.Model: a Gaussian mixture with the allocations summed out."""

from __future__ import annotations

import numpy as np
import pymc as pm

from bayesmix.errors import InputError
from bayesmix.kernels import pymc as kernels
from bayesmix.mixings import pymc as mixings
from bayesmix.spec import ModelSpec


def _likelihood_logp(value, w, mu, factor):
    # With signature=, parameters arrive with leading size-1 batch dimensions.
    while w.ndim > 1:
        w, mu, factor = w[0], mu[0], factor[0]
    return kernels.mixture_logp(value, w, mu, factor)


def check_graph_options(spec: ModelSpec, d: int) -> None:
    """An InputError where a NUTS graph option of ``spec.sampler`` cannot apply (never ignored):
    ``parametrization = "non_centred"`` needs the conjugate kernel (the semi-conjugate and
    weakly informative priors make mu independent of Sigma: there is no funnel to remove);
    ``ordered_means`` needs 1-D data and a finite mixture (exchangeable components: the
    stick-breaking weights are not), and a centred parametrization."""
    opts = spec.sampler
    if opts.sticks == "non_centred" and spec.mixing.type != "dp":
        raise InputError(
            "sampler.sticks = 'non_centred' applies to the DP's sticks v_k ~ Beta(1, alpha) "
            f"(mixing.type = 'dp'), not to mixing.type = '{spec.mixing.type}'"
        )
    if opts.parametrization == "non_centred" and spec.kernel.prior != "conjugate":
        raise InputError(
            "sampler.parametrization = 'non_centred' applies to kernel.prior = 'conjugate' "
            f"(mu | Sigma ~ N(m0, Sigma / kappa0)); with prior = '{spec.kernel.prior}' mu and "
            "Sigma are independent a priori, so there is no funnel: leave it 'centred'"
        )
    if not opts.ordered_means:
        return
    if d != 1:
        raise InputError(f"sampler.ordered_means applies to 1-D data (these have {d} columns)")
    if spec.mixing.type != "finite":
        raise InputError(
            "sampler.ordered_means needs exchangeable components (mixing.type = 'finite'); "
            f"the '{spec.mixing.type}' weights depend on the labels' order"
        )
    if opts.parametrization == "non_centred":
        raise InputError(
            "sampler.ordered_means orders mu itself: use it with parametrization = 'centred'"
        )


def build_model(spec: ModelSpec, x: np.ndarray) -> pm.Model:
    """p(x | w, mu, Sigma) = prod_n sum_k w_k N(x_n | mu_k, Sigma_k) with priors from ``spec``.

    ``x`` is the standardised data (N, D). No discrete variable: z is summed out.
    The whitening factor ``factor`` (Sigma_k^{-1} = A_k A_k') is kept as a Deterministic
    so that covariances can be recovered from the draws. The graph options of
    ``spec.sampler`` (``parametrization``, ``ordered_means``) change the variables NUTS moves
    in, not the posterior (``check_graph_options``).
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    check_graph_options(spec, d)
    k = spec.mixing.n_components
    coords = {"cluster": np.arange(k), "feature": np.arange(d), "obs_id": np.arange(n)}
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", x, dims=("obs_id", "feature"))
        w = mixings.weights(spec.mixing, non_centred_sticks=spec.sampler.sticks == "non_centred")
        mu, factor = kernels.build_kernel(
            spec.kernel,
            k,
            d,
            x,
            non_centred=spec.sampler.parametrization == "non_centred",
            ordered=spec.sampler.ordered_means,
        )
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
    return graph_initial_values(spec, init)


def graph_initial_values(spec: ModelSpec, init: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Initial values given for ``mu``, ``w`` and ``v`` mapped onto the free variables of the
    graph options: ``stick_u`` = (1 - v)^alpha at alpha's prior mean (then set explicitly),
    ``mu_sorted`` (the means sorted, the weights permuted alike, ties broken by a
    small increment) or ``mu_z`` = the standardised means at the kernel's initial scales
    (which are then set explicitly: tau, or the Bartlett factors, at their prior means)."""
    opts, kern = spec.sampler, spec.kernel
    init = dict(init)
    if opts.sticks == "non_centred" and "v" in init:
        mix = spec.mixing
        if mix.concentration is not None:
            alpha = float(mix.concentration)
        else:
            alpha = mix.concentration_prior.shape / mix.concentration_prior.rate
            init[mix.concentration_name] = np.asarray(alpha)
        init["stick_u"] = (1.0 - np.asarray(init.pop("v"))) ** alpha  # v = 1 - u^(1/alpha)
    mu = np.asarray(init["mu"], dtype=np.float64)
    if opts.ordered_means:
        order = np.argsort(mu[:, 0], kind="stable")
        srt = mu[order, 0]
        srt = srt + 1e-6 * np.arange(len(srt))  # strictly increasing
        srt = np.maximum.accumulate(srt)
        del init["mu"]
        init["mu_sorted"] = srt
        if "w" in init:
            init["w"] = np.asarray(init["w"])[order]
    if opts.parametrization == "non_centred" and kern.prior == "conjugate":
        k, d = mu.shape
        full = d > 1 and kern.covariance == "full"
        sp = kern.scale_prior
        scale = 1.0 if sp is None else sp.shape / sp.rate  # b0 or psi0 initial value
        if full:
            c = np.broadcast_to(kern.nu0_for(d) - np.arange(d), (k, d)).copy()
            init["bartlett_c"] = c
            init["bartlett_z"] = np.zeros((k, d * (d - 1) // 2))
            # P = diag(sqrt(c)) / sqrt(psi0): z = sqrt(kappa0) P' (mu - m0)
            prec_sd = np.sqrt(c) / np.sqrt(kern.psi0 if sp is None else scale)
        else:
            width = 1 if d > 1 and kern.covariance == "spherical" else d
            if sp is None:
                tau = np.full((k, width), kern.a0 / kern.b0)
                init["tau"] = tau
            else:
                init["tau_std"] = np.full((k, width), kern.a0)
                tau = init["tau_std"] / scale
            prec_sd = np.sqrt(np.repeat(tau, d // width, axis=1))
        del init["mu"]
        init["mu_z"] = np.sqrt(kern.kappa0) * prec_sd * (mu - kern.m0)
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
