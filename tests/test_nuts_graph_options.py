"""NUTS graph options (``[sampler] parametrization``, ``ordered_means``): the same density.

* non-centred conjugate kernel: the free variable is z with mu = m0 + S z / sqrt(kappa0)
  (S = 1 / sqrt(tau) in 1-D / diag, P^-T in full); at any point, the non-centred model's
  log-density (value space, Jacobians included) equals the centred model's at mu(z) plus
  log |d mu / d z| = sum log(1 / sqrt(kappa0 tau)) (1-D, diag) or
  -sum log diag(P) - D/2 log kappa0 per component (full).
* ordered 1-D means: the free variable is y with x_1 = y_1, x_i = x_{i-1} + exp(y_i); the
  ordered model's log-density at y equals the unordered one's at mu = x plus sum_{i>1} y_i.

Both comparisons fail if the option is ignored (the free variables would not be there, and a
model built without it gives another number). The initial values map onto the new variables
so that the graph starts at the same means, and the options refuse where they cannot apply.
Compilation: PyTensor's FAST_COMPILE mode (no numba JIT).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesmix.errors import InputError
from bayesmix.model import build_model, initial_values
from bayesmix.spec import GammaPrior, KernelSpec, MixingSpec, ModelSpec, SamplerSpec, load_spec

RTOL = 1e-9
MODE = "FAST_COMPILE"


def make_spec(kernel: KernelSpec, mixing: MixingSpec | None = None, **opts) -> ModelSpec:
    mixing = mixing or MixingSpec("dp", 4, None, GammaPrior(2.0, 3.0))
    return ModelSpec(mixing=mixing, kernel=kernel, sampler=SamplerSpec(**opts))


def random_point(model, rng) -> dict[str, np.ndarray]:
    """A random point of the model's value (unconstrained) space around its initial point
    (whose ordered coordinates are -inf without initial values: started at 0 here)."""
    ip = model.initial_point()
    return {
        k: np.where(np.isfinite(v), v, 0.0) + rng.normal(scale=0.5, size=np.shape(v))
        for k, v in ip.items()
    }


def start_point(model, init: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's initial point with ``init``'s constrained values mapped onto the value
    variables by the model's own transforms."""
    ip = model.initial_point()
    for rv in model.free_RVs:
        if rv.name in init:
            val, tr = model.rvs_to_values[rv], model.rvs_to_transforms[rv]
            v = np.asarray(init[rv.name], dtype=float)
            ip[val.name] = tr.forward(v, *rv.owner.inputs).eval() if tr is not None else v
    return ip


def evaluate(model, names, point):
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(
        outs,
        inputs=model.value_vars,
        point_fn=True,
        mode=MODE,
        on_unused_input="ignore",
    )
    return fn(point)


KERNELS = {
    "1d": (KernelSpec(m0=0.3, kappa0=0.05, a0=2.5, b0=0.4), 1),
    "1d_scale_prior": (KernelSpec(kappa0=0.02, scale_prior=GammaPrior(2.0, 5.0)), 1),
    "diag_2d": (KernelSpec(covariance="diag", kappa0=0.1), 2),
    "spherical_2d": (KernelSpec(covariance="spherical", kappa0=0.1), 2),
    "full_2d": (KernelSpec(covariance="full", kappa0=0.03, psi0=0.5), 2),
}


@pytest.mark.parametrize("case", list(KERNELS))
def test_non_centred_density_is_the_centred_one_plus_the_jacobian(case):
    kernel, d = KERNELS[case]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(15, d))
    centred = build_model(make_spec(kernel), x)
    nc = build_model(make_spec(kernel, parametrization="non_centred"), x)
    free_nc = {rv.name for rv in nc.free_RVs}
    assert "mu_z" in free_nc and "mu" not in free_nc  # the option is not ignored
    lp_c = centred.compile_logp(mode=MODE)
    lp_n = nc.compile_logp(mode=MODE)
    for _ in range(3):
        pt_n = random_point(nc, rng)
        mu, factor = evaluate(nc, ["mu", "factor"], pt_n)
        pt_c = {k: v for k, v in pt_n.items() if k != "mu_z"}
        pt_c["mu"] = mu
        diag = np.abs(np.diagonal(factor, axis1=-2, axis2=-1))  # sqrt(tau) or diag(P)
        log_jac = float(np.sum(-np.log(diag)) - mu.size * 0.5 * np.log(kernel.kappa0))
        np.testing.assert_allclose(lp_n(pt_n), lp_c(pt_c) + log_jac, rtol=RTOL)
        # and not the centred density itself (a silently centred graph would give this)
        assert abs(lp_n(pt_n) - lp_c(pt_c)) > 1e-3


def _finite(k: int = 5) -> MixingSpec:
    return MixingSpec("finite", k, None, GammaPrior(3.0, 4.0))


@pytest.mark.parametrize(
    "kernel",
    [
        KernelSpec(m0=0.2, kappa0=0.05),
        KernelSpec(prior="weakly_informative", m0=-0.1, mu_sd=1.5, sigma_sd=0.5),
        KernelSpec(prior="semi_conjugate"),
    ],
    ids=["conjugate", "weakly_informative", "semi_conjugate"],
)
def test_ordered_density_is_the_unordered_one_plus_the_jacobian(kernel):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(15, 1))
    plain = build_model(make_spec(kernel, _finite()), x)
    ordered = build_model(make_spec(kernel, _finite(), ordered_means=True), x)
    assert "mu_sorted" in {rv.name for rv in ordered.free_RVs}  # the option is not ignored
    assert "mu_sorted_ordered__" in {v.name for v in ordered.value_vars}
    lp_u = plain.compile_logp(mode=MODE)
    lp_o = ordered.compile_logp(mode=MODE)
    for _ in range(3):
        pt_o = random_point(ordered, rng)
        y = pt_o["mu_sorted_ordered__"]
        xs = y[0] + np.concatenate([[0.0], np.cumsum(np.exp(y[1:]))])
        (mu,) = evaluate(ordered, ["mu"], pt_o)
        np.testing.assert_allclose(mu[:, 0], xs, rtol=1e-12)
        assert np.all(np.diff(mu[:, 0]) > 0)
        pt_u = {k: v for k, v in pt_o.items() if k != "mu_sorted_ordered__"}
        pt_u["mu"] = xs[:, None]
        np.testing.assert_allclose(lp_o(pt_o), lp_u(pt_u) + y[1:].sum(), rtol=RTOL)


@pytest.mark.parametrize(
    ("kernel", "d", "opts"),
    [
        (KernelSpec(kappa0=0.05), 1, {"parametrization": "non_centred"}),
        (KernelSpec(covariance="full", psi0=0.5), 2, {"parametrization": "non_centred"}),
        (KernelSpec(covariance="diag"), 2, {"parametrization": "non_centred"}),
        (KernelSpec(prior="weakly_informative"), 1, {"ordered_means": True}),
        (KernelSpec(), 1, {"ordered_means": True}),
    ],
)
def test_initial_values_start_the_new_graph_at_the_same_means(kernel, d, opts):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(-2, 0.3, size=(30, d)), rng.normal(1.5, 0.5, size=(40, d))])
    mixing = _finite(6) if opts.get("ordered_means") else MixingSpec("dp", 6, 1.0, None)
    base = make_spec(kernel, mixing)
    spec = make_spec(kernel, mixing, **opts)
    want = initial_values(base, x, seed=1)
    init = initial_values(spec, x, seed=1)
    assert "mu" not in init
    model = build_model(spec, x)
    ip = start_point(model, init)
    (mu,) = evaluate(model, ["mu"], ip)
    if opts.get("ordered_means"):
        order = np.argsort(want["mu"][:, 0], kind="stable")
        np.testing.assert_allclose(mu[:, 0], want["mu"][order, 0], atol=1e-4)
        np.testing.assert_allclose(init["w"], want["w"][order])
    else:
        np.testing.assert_allclose(mu, want["mu"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("kernel", "mixing", "d", "opts", "match"),
    [
        (
            KernelSpec(prior="weakly_informative"),
            None,
            1,
            {"parametrization": "non_centred"},
            "no funnel",
        ),
        (
            KernelSpec(prior="semi_conjugate"),
            None,
            1,
            {"parametrization": "non_centred"},
            "no funnel",
        ),
        (KernelSpec(), None, 1, {"ordered_means": True}, "exchangeable"),
        (KernelSpec(), _finite(), 2, {"ordered_means": True}, "1-D"),
        (
            KernelSpec(),
            _finite(),
            1,
            {"ordered_means": True, "parametrization": "non_centred"},
            "centred",
        ),
    ],
)
def test_options_refuse_where_they_cannot_apply(kernel, mixing, d, opts, match):
    x = np.random.default_rng(0).normal(size=(10, d))
    with pytest.raises(InputError, match=match):
        build_model(make_spec(kernel, mixing, **opts), x)


def test_spec_keys_parse_and_validate(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(
        '[mixing]\ntype = "finite"\nK = 4\ngamma = 0.5\n'
        '[sampler]\nparametrization = "non_centred"\nordered_means = true\n'
    )
    s = load_spec(path)
    assert (s.sampler.parametrization, s.sampler.ordered_means) == ("non_centred", True)
    path.write_text('[mixing]\nalpha = 1.0\n[sampler]\nparametrization = "noncentered"\n')
    with pytest.raises(InputError, match="sampler.parametrization"):
        load_spec(path)
    path.write_text("[mixing]\nalpha = 1.0\n[sampler]\nordered_means = 1\n")
    with pytest.raises(InputError, match="sampler.ordered_means"):
        load_spec(path)
    path.write_text('[mixing]\nalpha = 1.0\n[sampler]\nsticks = "non_centred"\n')
    assert load_spec(path).sampler.sticks == "non_centred"
    assert SamplerSpec().parametrization == "centred" and not SamplerSpec().ordered_means
    assert SamplerSpec().sticks == "centred"


@pytest.mark.parametrize("name", ["dp_wi", "sparse_wi"])
def test_weakly_informative_specs_ship_and_build(name):
    s = load_spec(name)
    assert s.kernel.prior == "weakly_informative"
    assert s.mixing.concentration_prior is not None  # a concentration to diagnose
    for d in (1, 2):
        x = np.random.default_rng(1).normal(size=(20, d))
        build_model(dataclasses.replace(s), x)


@pytest.mark.parametrize(
    "mixing",
    [MixingSpec("dp", 5, None, GammaPrior(2.0, 3.0)), MixingSpec("dp", 5, 0.7, None)],
    ids=["alpha_gamma", "alpha_fixed"],
)
def test_non_centred_sticks_density_is_the_beta_one_plus_the_jacobian(mixing):
    """v = 1 - u^(1/alpha), u ~ U(0, 1), in logit space y_u, y_v: log p_nc(y_u) =
    log p_c(y_v) + log |dy_v / dy_u|, with |dy_v / dy_u| = |dv/du| u (1 - u) / (v (1 - v)),
    |dv/du| = u^(1/alpha - 1) / alpha."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(12, 1))
    kernel = KernelSpec(prior="weakly_informative")
    centred = build_model(make_spec(kernel, mixing), x)
    nc = build_model(make_spec(kernel, mixing, sticks="non_centred"), x)
    assert "stick_u" in {rv.name for rv in nc.free_RVs}  # the option is not ignored
    assert "v" not in {rv.name for rv in nc.free_RVs}
    lp_c = centred.compile_logp(mode=MODE)
    lp_n = nc.compile_logp(mode=MODE)
    for _ in range(3):
        pt_n = random_point(nc, rng)
        u = 1.0 / (1.0 + np.exp(-pt_n["stick_u_interval__"]))
        names = ["v"] + (["alpha"] if mixing.concentration is None else [])
        vals = evaluate(nc, names, pt_n)
        v = vals[0]
        alpha = vals[1] if len(vals) > 1 else mixing.concentration
        np.testing.assert_allclose(v, 1.0 - u ** (1.0 / alpha), rtol=1e-10)
        pt_c = {k: val for k, val in pt_n.items() if k != "stick_u_interval__"}
        pt_c["v_logodds__"] = np.log(v) - np.log1p(-v)
        log_jac = np.sum(
            (1.0 / alpha - 1.0) * np.log(u)
            - np.log(alpha)
            + np.log(u)
            + np.log1p(-u)
            - np.log(v)
            - np.log1p(-v)
        )
        np.testing.assert_allclose(lp_n(pt_n), lp_c(pt_c) + log_jac, rtol=RTOL)


def test_non_centred_sticks_start_at_the_same_weights():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-2, 0.3, size=(30, 1)), rng.normal(1.5, 0.5, size=(40, 1))])
    mixing = MixingSpec("dp", 6, None, GammaPrior(2.0, 3.0))
    kernel = KernelSpec(prior="weakly_informative")
    want = initial_values(make_spec(kernel, mixing), x, seed=1)
    spec = make_spec(kernel, mixing, sticks="non_centred")
    init = initial_values(spec, x, seed=1)
    assert "v" not in init and init["alpha"] == pytest.approx(2.0 / 3.0)
    model = build_model(spec, x)
    ip = start_point(model, init)
    (v,) = evaluate(model, ["v"], ip)
    np.testing.assert_allclose(v, want["v"], rtol=1e-10)


def test_non_centred_sticks_refuse_other_mixings():
    x = np.random.default_rng(0).normal(size=(10, 1))
    with pytest.raises(InputError, match="sticks"):
        build_model(make_spec(KernelSpec(), _finite(), sticks="non_centred"), x)
