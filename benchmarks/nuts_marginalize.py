"""NUTS: our hand-written marginalised mixture graph against pymc-extras' ``marginalize``.

``python -m benchmarks.nuts_marginalize [--quick]`` needs pymc-extras, which the project's
environment does not have: pymc-extras 0.15.1 requires pymc < 6.4 and pytensor < 3.4, and
bayesmix runs on pymc 6.4. Run it from a separate virtual environment (the commands are in
``reports/benchmarks/nuts_marginalize.md``). It writes ``reports/benchmarks/nuts_marginalize.md``
and ``.json`` (atomically, after every step).

Two graphs of the same posterior, built and compared in one process:

* **ours**: ``bayesmix.model.build_model`` (the allocations summed out by hand: a
  ``CustomDist`` whose logp is a logsumexp over the components of log w_k plus the batched
  log-density of ``kernels.pymc.component_logpdf``);
* **pymc-extras**: the same priors with an explicit allocation z_i ~ Categorical(w) and
  x_i | z_i ~ Normal(mu[z_i], sigma[z_i]) (1-D) or MvNormal(mu[z_i], chol = L[z_i]) (2-D, L
  from the same per-cluster ``LKJCholeskyCov``), then ``pymc_extras.marginalize(model, ["z"])``.
  The weights come from ``bayesmix.mixings.pymc.weights`` itself; the kernel's priors are
  written out here (``bayesmix.kernels.pymc.weakly_informative`` returns the whitening factor,
  not the Cholesky factor MvNormal takes) with the same names, so that both graphs have the
  same free variables and one point serves both. Check (a) below is what makes the copy safe.

Per data set and spec:

(a) **graph equality** (an assertion, the run fails when it does not hold): the logp and its
    gradient of both nutpie-compiled graphs at the same unconstrained points (the EM + BIC
    start and perturbations of it), mapped by variable name;
(b) **time of one logp + gradient evaluation**: the numba C callback that nutpie's sampler
    calls (``CompiledPyMCModel.compiled_logp_func``, through ctypes), each call timed, both
    graphs alternated in rounds; also the pytensor function behind it (a Python call);
(c) **a short nutpie run** of each (same seed, same start): ``benchmarks.nuts_study.run_cell``
    for both, so K+, the log-likelihood, ESS, R-hat and divergences come from the functions
    ``fit`` uses (``Settings.sample`` says which cells and graphs: on Old Faithful only ours,
    see there);
(d) **allocations**: ``pymc_extras.marginal.recover`` (``recover_marginals`` is its deprecated
    alias in 0.15.1) draws z from p(z | x, theta) on the pymc-extras run's draws (ours' where
    only ours ran: both graphs have the same free variables); the
    probabilities p(z_i = k | x, theta) come from the Categorical that
    ``pymc_extras.marginal.conditional`` builds, and are compared with bayesmix's
    (``posterior.allocations.log_joint_draws``, normalised) on the same draws; the recovered
    z's frequencies are compared with those probabilities, and K+ from them with K+ from z drawn
    by bayesmix's ``sample_categorical``. Times of each.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import provenance, write_json
from benchmarks.nuts_study import _f, _loads, load, reading, run_cell

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "reports" / "benchmarks"
SEED = 20261126
# graph equality: |logp_ours - logp_marg| <= LOGP_RTOL max(1, |logp|), and the same for each
# gradient entry against max(1, max |grad|)
LOGP_RTOL = 1e-9
GRAD_RTOL = 1e-7
# recovered z: |mean one-hot - mean p| per (i, k) over the draws; the Monte Carlo SE is at most
# 0.5 / sqrt(draws) for independent draws (0.011 at 2,000)
FREQ_TOL = 0.06
GRAPH_LABEL = {"ours": "ours", "marginalized": "pymc-extras"}
VENV_COMMANDS = (
    "python3.12 -m venv /tmp/venv-pe",
    "/tmp/venv-pe/bin/pip install pymc-extras==0.15.1 nutpie arviz numba scikit-learn pandas "
    "scipy matplotlib h5netcdf jinja2",
    "/tmp/venv-pe/bin/pip install -e . --no-deps",
    "/tmp/venv-pe/bin/python -m benchmarks.nuts_marginalize",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    chains: int = 4
    tune: int = 500
    draws: int = 500
    target_accept: float = 0.9
    cores: int = 2
    n_points: int = 5  # points of the equality check
    rounds: int = 7  # timing rounds (the graphs alternate)
    evals: int = 1000  # timed logp + gradient calls per graph per round
    cells: tuple[tuple[str, str], ...] = (
        ("galaxy", "sparse_wi"),
        ("faithful", "sparse_wi"),
        ("galaxy", "dp_wi"),
        ("faithful", "dp_wi"),
    )
    # cells that are also sampled, (c), with the graphs named, and then (d) on the draws of the
    # pymc-extras run (of ours where only ours is sampled); the others get (a) and (b) only.
    # Old Faithful: pymc-extras' logp + gradient took 34x ours (5.4 ms) in a first run, so
    # 4 x (500 + 500) draws would take hours on two cores: only ours is sampled there.
    sample: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        ("galaxy", "sparse_wi", ("ours", "marginalized")),
        ("faithful", "sparse_wi", ("ours",)),
        ("galaxy", "dp_wi", ("ours", "marginalized")),
    )
    timing_round_s: float = 2.0  # at most about this long per graph per timing round


FULL = Settings()
QUICK = Settings(
    chains=2,
    tune=100,
    draws=100,
    n_points=3,
    rounds=3,
    evals=200,
    cells=(("galaxy", "sparse_wi"),),
    sample=(("galaxy", "sparse_wi", ("ours", "marginalized")),),
)


# --------------------------------------------------------------------------
# The explicit-z graph and its marginalisation
# --------------------------------------------------------------------------


def explicit_model(spec, x: np.ndarray):
    """The model of ``build_model(spec, x)`` with the allocations z_i ~ Categorical(w) explicit.

    Weakly informative kernel only (the one ``sparse_wi`` and ``dp_wi`` use): mu ~ N(m0,
    mu_sd^2); 1-D: sigma_raw ~ HalfNormal(sigma_sd), x_i ~ N(mu[z_i], sigma_raw[z_i]); full
    covariance: one ``LKJCholeskyCov`` per cluster (as bayesmix builds them), x_i ~
    MvNormal(mu[z_i], chol = L[z_i]). ``factor`` (the whitening factor A_k, Sigma_k^-1 = A_k
    A_k') is a Deterministic, as in ours, so that ``engines.nuts.sample_nuts`` reads the draws
    of either graph alike; it is not part of the logp."""
    import pymc as pm
    import pytensor.tensor as pt

    from bayesmix.mixings import pymc as mixings

    kern = spec.kernel
    if kern.prior != "weakly_informative" or (x.shape[1] > 1 and kern.covariance != "full"):
        raise ValueError("explicit_model: weakly informative kernel, 1-D or full covariance")
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    k = spec.mixing.n_components
    coords = {"cluster": np.arange(k), "feature": np.arange(d), "obs_id": np.arange(n)}
    with pm.Model(coords=coords) as model:
        x_data = pm.Data("x_data", x, dims=("obs_id", "feature"))
        w = mixings.weights(spec.mixing, non_centred_sticks=spec.sampler.sticks == "non_centred")
        mu = pm.Normal("mu", mu=kern.m0, sigma=kern.mu_sd, shape=(k, d))
        z = pm.Categorical("z", p=w, dims="obs_id")
        if d == 1:
            sigma = pm.HalfNormal("sigma_raw", sigma=kern.sigma_sd, shape=(k, d))
            pm.Deterministic("factor", (1.0 / sigma)[:, :, None] * pt.eye(d)[None, :, :])
            pm.Normal("x", mu=mu[z], sigma=sigma[z], observed=x_data, dims=("obs_id", "feature"))
        else:
            chols = []
            for j in range(k):
                chol, _, _ = pm.LKJCholeskyCov(
                    f"chol_{j}",
                    n=d,
                    eta=kern.lkj_eta,
                    sd_dist=pm.HalfNormal.dist(kern.sigma_sd, shape=d),
                    compute_corr=True,
                )
                chols.append(chol)
            big_l = pt.stack(chols)
            inv = pt.linalg.solve_triangular(big_l, pt.eye(d)[None, :, :], lower=True)
            pm.Deterministic("factor", pt.swapaxes(inv, -1, -2))
            pm.MvNormal("x", mu=mu[z], chol=big_l[z], observed=x_data, dims=("obs_id", "feature"))
    return model


def marginal_model(spec, x: np.ndarray):
    """(``pymc_extras.marginalize(explicit_model(spec, x), ["z"])``, seconds it took)."""
    import pymc_extras as pmx

    explicit = explicit_model(spec, x)
    t0 = time.perf_counter()
    marg = pmx.marginalize(explicit, ["z"])
    return marg, time.perf_counter() - t0


# --------------------------------------------------------------------------
# Flat points of nutpie's compiled models
# --------------------------------------------------------------------------


def free_layout(compiled) -> dict[str, slice]:
    """Name -> slice of the free (unconstrained) variables in a nutpie model's flat vector."""
    names, slices, _ = compiled.shape_info
    out, total = {}, 0
    for name, sl in zip(names, slices, strict=True):
        if total >= compiled.n_dim:
            break
        out[name] = slice(int(sl.start), int(sl.stop))
        total = int(sl.stop)
    return out


def to_flat(compiled, values: dict[str, np.ndarray]) -> np.ndarray:
    lay = free_layout(compiled)
    if set(lay) != set(values):
        raise AssertionError(f"free variables differ: {sorted(lay)} vs {sorted(values)}")
    flat = np.empty(compiled.n_dim)
    for name, sl in lay.items():
        flat[sl] = np.ravel(values[name])
    return flat


def from_flat(compiled, flat: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.array(flat[sl]) for name, sl in free_layout(compiled).items()}


def logp_grad(compiled, flat: np.ndarray) -> tuple[float, np.ndarray]:
    logp, grad = compiled.logp_func(np.ascontiguousarray(flat, dtype=np.float64))
    return float(logp), np.asarray(grad, dtype=np.float64)


def check_equal(co, cm, points: list[dict[str, np.ndarray]]) -> dict:
    """(a): logp and gradient of both graphs at the same points (by name). Raises
    AssertionError (after the figures are made) when they differ beyond float error."""
    rows = []
    for p in points:
        lo, go = logp_grad(co, to_flat(co, p))
        lm, gm = logp_grad(cm, to_flat(cm, p))
        go_d, gm_d = from_flat(co, go), from_flat(cm, gm)
        gdiff = max(float(np.max(np.abs(go_d[n] - gm_d[n]))) for n in go_d)
        gscale = max(1.0, max(float(np.max(np.abs(v))) for v in go_d.values()))
        rows.append(
            {
                "logp_ours": lo,
                "logp_marginalized": lm,
                "abs_diff": abs(lo - lm),
                "rel_diff": abs(lo - lm) / max(1.0, abs(lo)),
                "grad_max_abs_diff": gdiff,
                "grad_rel_diff": gdiff / gscale,
            }
        )
    ok = all(r["rel_diff"] <= LOGP_RTOL and r["grad_rel_diff"] <= GRAD_RTOL for r in rows)
    return {
        "points": rows,
        "max_abs_diff": max(r["abs_diff"] for r in rows),
        "max_rel_diff": max(r["rel_diff"] for r in rows),
        "max_grad_rel_diff": max(r["grad_rel_diff"] for r in rows),
        "passed": bool(ok),
    }


def equality_points(co, n_points: int, seed: int) -> list[dict[str, np.ndarray]]:
    """The start nutpie would use (EM + BIC initial values) and perturbations of it, N(0, 0.5^2)
    in the unconstrained space."""
    base = np.asarray(co.initial_point_func(seed), dtype=np.float64)
    rng = np.random.default_rng(seed)
    flats = [base] + [base + 0.5 * rng.standard_normal(base.size) for _ in range(n_points - 1)]
    return [from_flat(co, f) for f in flats]


# --------------------------------------------------------------------------
# (b) timing
# --------------------------------------------------------------------------


class CLogp:
    """nutpie's compiled logp + gradient C callback, callable from Python through ctypes."""

    def __init__(self, compiled, flat: np.ndarray):
        proto = ctypes.CFUNCTYPE(
            ctypes.c_int64,
            ctypes.c_uint64,
            ctypes.POINTER(ctypes.c_double),
            ctypes.POINTER(ctypes.c_double),
            ctypes.POINTER(ctypes.c_double),
            ctypes.c_void_p,
        )
        self.fn = proto(compiled.compiled_logp_func.address)
        self.compiled = compiled  # keeps user_data alive
        self.n = compiled.n_dim
        self.x = np.ascontiguousarray(flat, dtype=np.float64).copy()
        self.grad = np.zeros(self.n)
        self.logp = np.zeros(1)
        self.args = (
            ctypes.c_uint64(self.n),
            self.x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            self.grad.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            self.logp.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            ctypes.c_void_p(compiled.user_data.ctypes.data),
        )

    def __call__(self) -> float:
        rc = self.fn(*self.args)
        if rc != 0:
            raise RuntimeError(f"nutpie logp callback returned {rc}")
        return float(self.logp[0])


def _time_calls(f, evals: int) -> np.ndarray:
    out = np.empty(evals)
    clock = time.perf_counter
    for i in range(evals):
        t0 = clock()
        f()
        out[i] = clock() - t0
    return out


def time_logp(co, cm, point: dict[str, np.ndarray], st: Settings) -> dict:
    """(b): per-call times of logp + gradient, both graphs alternated over ``st.rounds``
    rounds of ``st.evals`` calls each (after a warm-up). Medians in microseconds."""
    fo, fm = CLogp(co, to_flat(co, point)), CLogp(cm, to_flat(cm, point))
    if abs(fo() - fm()) > LOGP_RTOL * max(1.0, abs(fo())):
        raise AssertionError("the C callbacks disagree on logp at the timing point")
    xo, xm = to_flat(co, point), to_flat(cm, point)
    py_o, py_m = (lambda: co.logp_func(xo)), (lambda: cm.logp_func(xm))
    warm = [float(np.median(_time_calls(f, max(st.evals // 10, 10)))) for f in (fo, fm)]
    # the same number of calls for both graphs, capped so that the slower one's round takes
    # about st.timing_round_s
    evals = int(min(st.evals, max(50, st.timing_round_s / max(warm))))
    c_o, c_m, p_o, p_m, rounds = [], [], [], [], []
    for _ in range(st.rounds):
        a, b = _time_calls(fo, evals), _time_calls(fm, evals)
        c_o.append(a)
        c_m.append(b)
        p_o.append(_time_calls(py_o, max(evals // 4, 10)))
        p_m.append(_time_calls(py_m, max(evals // 4, 10)))
        rounds.append([1e6 * float(np.median(a)), 1e6 * float(np.median(b))])
    med = {
        k: 1e6 * float(np.median(np.concatenate(v)))
        for k, v in (("c_ours", c_o), ("c_marg", c_m), ("py_ours", p_o), ("py_marg", p_m))
    }
    return {
        "c_ours_us": med["c_ours"],
        "c_marginalized_us": med["c_marg"],
        "c_ratio": med["c_marg"] / med["c_ours"],
        "py_ours_us": med["py_ours"],
        "py_marginalized_us": med["py_marg"],
        "py_ratio": med["py_marg"] / med["py_ours"],
        "round_medians_us": rounds,
        "calls_per_graph": st.rounds * evals,
    }


# --------------------------------------------------------------------------
# (c) sampling and (d) allocations
# --------------------------------------------------------------------------


@contextlib.contextmanager
def capture_nutpie_trace():
    """Keep the DataTree that ``nutpie.sample`` returns inside ``engines.nuts.sample_nuts``
    (which returns only ``Draws``), for the allocation step."""
    import nutpie

    box: dict[str, Any] = {}
    original = nutpie.sample

    def sample(*args, **kwargs):
        box["dt"] = original(*args, **kwargs)
        return box["dt"]

    nutpie.sample = sample
    try:
        yield box
    finally:
        nutpie.sample = original


def sample_both(ds_name, dataset, spec, graphs: dict, st: Settings) -> tuple[dict, Any, str]:
    """(c): ``nuts_study.run_cell`` for each graph in ``graphs``, one after the other, same seed
    and start. Returns the cells, the nutpie DataTree of the pymc-extras run (of ours when
    only ours ran) and which graph it came from."""
    from benchmarks import nuts_study

    nst = nuts_study.Settings(chains=st.chains, tune=st.tune, draws=st.draws, cores=st.cores)
    out, dt, source = {}, None, None
    for label in graphs:
        cell = {
            "graph": label,
            "init": "em",
            "target_accept": st.target_accept,
            "chains": st.chains,
            "factor": "marginalisation",
        }
        print(f"[nuts_marginalize] {ds_name} {spec.name}: sampling {label}", file=sys.stderr)
        with capture_nutpie_trace() as box:
            res = run_cell(cell, dataset, spec, graphs[label], nst, SEED)
        out[label] = res
        dt, source = box["dt"], label  # the last graph sampled: pymc-extras' where it ran
    return out, dt, source


def conditional_probabilities(marg, post, names: list[str]) -> tuple[np.ndarray, float, float]:
    """p(z_i = k | x, theta) for every draw, from the Categorical that
    ``pymc_extras.marginal.conditional`` puts in place of z: its probability graph, with the
    free variables replaced by batched inputs (``vectorize_graph``) and compiled once.
    Returns (probabilities (S, N, K), build + compile seconds, evaluation seconds)."""
    import pytensor
    from pymc_extras.marginal import conditional
    from pytensor.graph.replace import vectorize_graph

    t0 = time.perf_counter()
    cond = conditional(marg, "z")
    zrv = cond["z"]
    [p] = zrv.owner.op.dist_params(zrv.owner)
    rvs = [cond[n] for n in names]
    core_in = [rv.type() for rv in rvs]
    p_core = pytensor.graph.replace.graph_replace(p, dict(zip(rvs, core_in, strict=True)))
    batched = [pytensor.tensor.tensor(dtype=rv.dtype, shape=(None, *rv.type.shape)) for rv in rvs]
    p_batched = vectorize_graph(p_core, replace=dict(zip(core_in, batched, strict=True)))
    fn = pytensor.function(batched, p_batched, on_unused_input="ignore")
    arrays = [np.ascontiguousarray(post[n], dtype=np.float64) for n in names]
    fn(*[a[:2] for a in arrays])
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    probs = np.asarray(fn(*arrays))
    return probs, build_s, time.perf_counter() - t1


def allocation_check(marg, dt, x: np.ndarray, spec, seed: int) -> dict:
    """(d) on the draws in ``dt`` (see the module docstring)."""
    from pymc_extras.marginal import recover
    from scipy.special import logsumexp

    from bayesmix.engines.nuts import covariance_from_factor
    from bayesmix.posterior.allocations import log_joint_draws, sample_categorical

    out: dict[str, Any] = {}
    try:
        import pymc_extras as pmx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            pmx.recover_marginals(dt.copy(), model=marg, return_samples=False)
        out["recover_marginals_lp"] = "returned"
    except Exception as exc:  # the answer to "does it give the probabilities"
        out["recover_marginals_lp"] = f"{type(exc).__name__}: {exc}"

    post = {n: np.asarray(v.values) for n, v in dt["posterior"].data_vars.items()}
    c, s = post["w"].shape[:2]
    flat = {n: v.reshape(c * s, *v.shape[2:]) for n, v in post.items()}
    names = [rv.name for rv in marg.free_RVs]

    # pymc-extras' probabilities
    p_pmx, build_s, eval_s = conditional_probabilities(marg, flat, names)
    out["conditional_build_s"], out["conditional_eval_s"] = build_s, eval_s

    # bayesmix's, on the same draws
    t0 = time.perf_counter()
    cov = covariance_from_factor(flat["factor"])
    lj = log_joint_draws(x, flat["w"], flat["mu"], cov)
    p_bm = np.exp(lj - logsumexp(lj, axis=-1, keepdims=True))
    out["bayesmix_prob_s"] = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    z_bm = sample_categorical(lj, rng)
    out["bayesmix_draw_s"] = time.perf_counter() - t0
    out["prob_max_abs_diff"] = float(np.max(np.abs(p_pmx - p_bm)))
    out["prob_shape"] = list(p_pmx.shape)

    # recover (z draws)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rec = recover(dt.copy(), model=marg, random_seed=seed, extend_inferencedata=False)
    out["recover_s"] = time.perf_counter() - t0
    z_rec = np.asarray(rec["z"].values).reshape(c * s, -1)
    k = p_bm.shape[-1]
    freq = np.stack([(z_rec == j).mean(axis=0) for j in range(k)], axis=-1)
    out["recover_freq_max_abs_diff"] = float(np.max(np.abs(freq - p_bm.mean(axis=0))))
    kp_rec = np.array([len(np.unique(r)) for r in z_rec])
    kp_bm = np.array([len(np.unique(r)) for r in z_bm])
    out["kplus_mean_recover"], out["kplus_mean_bayesmix"] = (
        float(kp_rec.mean()),
        float(kp_bm.mean()),
    )
    out["kplus_pmf_recover"] = _pmf(kp_rec)
    out["kplus_pmf_bayesmix"] = _pmf(kp_bm)
    out["passed"] = bool(
        out["prob_max_abs_diff"] < 1e-8 and out["recover_freq_max_abs_diff"] < FREQ_TOL
    )
    return out


def _pmf(v: np.ndarray) -> dict[int, float]:
    vals, counts = np.unique(v, return_counts=True)
    return {int(a): float(b) / v.size for a, b in zip(vals, counts, strict=True)}


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def compile_graph(model, init):
    import nutpie

    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model, initial_points=init)
    return compiled, time.perf_counter() - t0


def run_one(ds_name: str, spec_name: str, st: Settings, report: dict, flush) -> None:
    from bayesmix.engines.nuts import NutsGraph
    from bayesmix.model import build_model, initial_values
    from bayesmix.spec import load_spec

    spec = load_spec(spec_name)
    dataset = load(ds_name)
    x = dataset.standardized
    res: dict[str, Any] = {"data": ds_name, "spec": spec_name, "n_obs": dataset.n_obs}
    res["n_features"] = dataset.n_features
    report["cells"].append(res)
    print(f"[nuts_marginalize] {ds_name} {spec_name}: build + compile", file=sys.stderr)
    try:
        marg, res["marginalize_s"] = marginal_model(spec, x)
    except Exception as exc:
        res["error"] = f"marginalize: {type(exc).__name__}: {exc}"
        flush()
        return
    ours = build_model(spec, x)
    init = initial_values(spec, x, SEED)
    co, res["compile_s_ours"] = compile_graph(ours, init)
    flush()
    try:
        cm, res["compile_s_marginalized"] = compile_graph(marg, init)
    except Exception as exc:
        res["error"] = f"nutpie compile of the marginalised graph: {type(exc).__name__}: {exc}"
        flush()
        return
    res["n_dim"] = co.n_dim
    points = equality_points(co, st.n_points, SEED)
    res["equality"] = check_equal(co, cm, points)
    flush()
    if not res["equality"]["passed"]:
        raise AssertionError(
            f"{ds_name} {spec_name}: the marginalised logp differs from ours: "
            f"max rel |d logp| {res['equality']['max_rel_diff']:.3g}, max rel |d grad| "
            f"{res['equality']['max_grad_rel_diff']:.3g}"
        )
    print(f"[nuts_marginalize] {ds_name} {spec_name}: timing", file=sys.stderr)
    res["timing"] = time_logp(co, cm, points[0], st)
    flush()
    which = next((g for d, s, g in st.sample if (d, s) == (ds_name, spec_name)), None)
    if which is None:
        return
    built = {
        "ours": NutsGraph(ours, init, co, res["compile_s_ours"]),
        "marginalized": NutsGraph(marg, init, cm, res["compile_s_marginalized"]),
    }
    graphs = {g: built[g] for g in which}
    res["sampling"], dt, source = sample_both(ds_name, dataset, spec, graphs, st)
    flush()
    print(f"[nuts_marginalize] {ds_name} {spec_name}: allocations", file=sys.stderr)
    res["allocations"] = allocation_check(marg, dt, x, spec, SEED)
    res["allocations"]["draws_of"] = source
    flush()


def run(st: Settings, out_dir: Path, name: str, argv: list[str]) -> dict:
    from importlib import metadata

    report: dict[str, Any] = {
        "provenance": provenance(argv),
        "pymc_extras": metadata.version("pymc-extras"),
        "settings": dataclasses.asdict(st),
        "seed": SEED,
        "tolerances": {"logp_rtol": LOGP_RTOL, "grad_rtol": GRAD_RTOL, "freq_tol": FREQ_TOL},
        "venv_commands": list(VENV_COMMANDS),
        "load_start": list(os.getloadavg()),
        "cells": [],
    }
    t_start = time.perf_counter()

    def flush():
        report["elapsed_s"] = time.perf_counter() - t_start
        report["load_end"] = list(os.getloadavg())
        write_outputs(report, out_dir, name)

    for ds_name, spec_name in st.cells:
        run_one(ds_name, spec_name, st, report, flush)
        flush()
    report["verdict"] = verdict(report)
    flush()
    return report


def verdict(report: dict) -> dict:
    """The issue's rule: adopt pymc-extras' marginalisation only if it is at least as fast.
    'At least as fast' = its median logp + gradient time (the sampler's C callback) is at most
    ours in every cell measured (5% allowed for timing noise), and so is its sampling wall time
    in every sampled cell."""
    cells = [c for c in report["cells"] if "timing" in c]
    ratios = [c["timing"]["c_ratio"] for c in cells]
    samp = [
        c["sampling"]["marginalized"]["sampling_s"] / c["sampling"]["ours"]["sampling_s"]
        for c in cells
        if "marginalized" in c.get("sampling", {})
    ]
    failed = [c for c in report["cells"] if "error" in c]
    fast = bool(ratios) and max(ratios) <= 1.05 and (not samp or max(samp) <= 1.05)
    return {
        "logp_ratio_min": min(ratios) if ratios else None,
        "logp_ratio_max": max(ratios) if ratios else None,
        "sampling_ratio_min": min(samp) if samp else None,
        "sampling_ratio_max": max(samp) if samp else None,
        "failed_cells": len(failed),
        "adopt": bool(fast and not failed),
    }


def write_outputs(report: dict, out_dir: Path, name: str) -> None:
    from bayesmix.io import write_text

    write_json(out_dir / f"{name}.json", report)
    write_text(out_dir / f"{name}.md", render_markdown(report) + reading(out_dir, name))


def _fig(c: dict, label: str, q: str, key: str, fmt: str) -> str:
    return _f(c["sampling"][label]["figures"].get(q, {}).get(key), fmt)


def render_markdown(report: dict) -> str:
    st, pv = report["settings"], report["provenance"]
    lines = [
        "# NUTS: our marginalised mixture graph against pymc-extras' `marginalize`",
        "",
        f"`{pv['command']}`, {pv['date']}; git {pv['git']}; {pv['machine']}; load average at "
        f"start / last write {_loads(report.get('load_start'))} / "
        f"{_loads(report.get('load_end'))} (a shared 2-core machine: compare the two graphs "
        "within this run, not with other reports). Versions: "
        + ", ".join(f"{k} {v}" for k, v in pv["versions"].items())
        + f", pymc-extras {report['pymc_extras']}. Seed {report['seed']}; elapsed "
        f"{_f(report.get('elapsed_s'))} s.",
        "",
        "**Environment.** pymc-extras 0.15.1 (the newest) requires pymc < 6.4 and pytensor < "
        "3.4, so this runs in its own virtual environment with pymc "
        f"{pv['versions'].get('pymc')} (bayesmix itself runs on pymc 6.4; both graphs here are "
        "built and timed under the same pymc and pytensor):",
        "",
        "```",
        *report["venv_commands"],
        "```",
        "",
        "**Graphs.** *ours* = `bayesmix.model.build_model` (z summed out by hand: logsumexp of "
        "log w_k + the batched component log-density in one `CustomDist`). *pymc-extras* = the "
        "same priors with z_i ~ Categorical(w) and x_i ~ Normal(mu[z_i], sigma[z_i]) (1-D) or "
        "MvNormal(mu[z_i], chol = L[z_i]) (2-D, one `LKJCholeskyCov` per cluster), then "
        "`pymc_extras.marginalize(model, ['z'])`. Both compiled by nutpie (numba), started "
        "at the EM + BIC initial values. Specs: `sparse_wi` (finite K = 10, gamma ~ Gamma(10, "
        "200)) and `dp_wi` (truncated DP, T = 20, alpha ~ Gamma(1, 1)), weakly informative "
        "kernel; galaxy (1-D, N = 82) and Old Faithful (2-D, N = 272), standardised as `fit` "
        "does.",
        "",
        "## (a) Same logp and gradient (assertion)",
        "",
        f"At {st['n_points']} unconstrained points (the start and N(0, 0.5^2) perturbations): "
        f"passes when |d logp| <= {report['tolerances']['logp_rtol']:g} max(1, |logp|) and "
        f"every |d grad| <= {report['tolerances']['grad_rtol']:g} max(1, max |grad|).",
        "",
        "| data | spec | free dims | logp at start | max abs d logp | max rel d grad | "
        "marginalize s | passed |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in report["cells"]:
        if "error" in c:
            lines.append(f"| {c['data']} | {c['spec']} | {c['error']} |" + " |" * 5)
            continue
        e = c.get("equality")
        if e is None:
            continue
        lines.append(
            f"| {c['data']} | {c['spec']} | {c['n_dim']} | {e['points'][0]['logp_ours']:.6f} | "
            f"{e['max_abs_diff']:.2g} | {e['max_grad_rel_diff']:.2g} | "
            f"{c['marginalize_s']:.2f} | {'yes' if e['passed'] else '**NO**'} |"
        )
    lines += [
        "",
        "## (b) One logp + gradient evaluation",
        "",
        "Median per call, microseconds, at the start point: *C* = nutpie's compiled callback "
        "(what its sampler calls; through ctypes), *Python* = the pytensor function behind it "
        f"(`logp_func`). {st['rounds']} rounds x {st['evals']} calls per graph, the graphs "
        "alternated. Ratio = pymc-extras / ours (> 1: ours is faster). Compile = "
        "`nutpie.compile_pymc_model` seconds (the numba cache state of each is what this run "
        "found).",
        "",
        "| data | spec | C ours | C pymc-extras | ratio | Python ours | Python pymc-extras | "
        "ratio | round medians (ours / pymc-extras) | compile s ours / pymc-extras |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in report["cells"]:
        t = c.get("timing")
        if t is None:
            continue
        rm = " ".join(f"{a:.0f}/{b:.0f}" for a, b in t["round_medians_us"])
        lines.append(
            f"| {c['data']} | {c['spec']} | {t['c_ours_us']:.1f} | {t['c_marginalized_us']:.1f} "
            f"| {t['c_ratio']:.2f} | {t['py_ours_us']:.1f} | {t['py_marginalized_us']:.1f} | "
            f"{t['py_ratio']:.2f} | {rm} | {c['compile_s_ours']:.0f} / "
            f"{c['compile_s_marginalized']:.0f} |"
        )
    lines += [
        "",
        "## (c) Short nutpie runs",
        "",
        f"{st['chains']} chains x ({st['tune']} tune + {st['draws']} draws), target_accept "
        f"{st['target_accept']}, seed {report['seed']}, same start, {st['cores']} cores; one "
        "graph after the other. Figures from `benchmarks.nuts_study.run_cell` (K+ from z drawn "
        "per draw by `build_datatree`, the total log-likelihood, ArviZ ESS / R-hat through "
        "`posterior.diagnostics.diagnose`); ESS/s = ESS bulk / sampling seconds (tuning "
        "included, compile excluded). conc. = gamma (sparse_wi) or alpha (dp_wi).",
        "",
        "| data | spec | graph | sampling s | divergences | ESS conc. | ESS/s conc. | ESS K+ | "
        "ESS/s K+ | ESS loglik | ESS/s loglik | max R-hat | E[K+] | mean tree depth |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["cells"]:
        if "sampling" not in c:
            continue
        for label, shown in GRAPH_LABEL.items():
            r = c["sampling"].get(label)
            if r is None:
                est = c["sampling"]["ours"]["sampling_s"] * c["timing"]["c_ratio"]
                lines.append(
                    f"| {c['data']} | {c['spec']} | {shown} | not sampled: about {est:,.0f} s "
                    "expected (ours' sampling s x the C ratio of (b)) |" + " |" * 10
                )
                continue
            if "error" in r:
                lines.append(f"| {c['data']} | {c['spec']} | {shown} | {r['error']} |" + " |" * 10)
                continue
            lines.append(
                f"| {c['data']} | {c['spec']} | {shown} | {r['sampling_s']:.1f} | "
                f"{r['divergences']} | {_fig(c, label, 'concentration', 'ess_bulk', '.0f')} | "
                f"{_fig(c, label, 'concentration', 'ess_per_s', '.1f')} | "
                f"{_fig(c, label, 'K+', 'ess_bulk', '.0f')} | "
                f"{_fig(c, label, 'K+', 'ess_per_s', '.1f')} | "
                f"{_fig(c, label, 'log_likelihood', 'ess_bulk', '.0f')} | "
                f"{_fig(c, label, 'log_likelihood', 'ess_per_s', '.1f')} | "
                f"{_f(r['max_r_hat'], '.3f')} | {_fig(c, label, 'K+', 'mean', '.2f')} | "
                f"{_f(r['mean_tree_depth'], '.2f')} |"
            )
    lines += [
        "",
        "## (d) Allocations: `recover` and `conditional` against bayesmix",
        "",
        "On the pymc-extras run's draws (on ours' where only ours was sampled: the two graphs "
        "have the same free variables). *p* = p(z_i = k | x, theta) from the Categorical that "
        "`pymc_extras.marginal.conditional` builds (its probability graph vectorised over the "
        "draws), against bayesmix's `log_joint_draws` normalised (what `build_datatree` draws "
        "z from). *freq* = max over (i, k) of |share of draws with recovered z_i = k - mean p|"
        f" (passes below {report['tolerances']['freq_tol']}). E[K+] from the recovered z and "
        "from z drawn by bayesmix's `sample_categorical` on the same draws. Times in seconds: "
        "`recover` (including its compile), `conditional` build + compile / evaluation, "
        "bayesmix probabilities / z draws (numpy + numba).",
        "",
        "| data | spec | draws of | max abs d p | freq | E[K+] recover / bayesmix | recover s | "
        "conditional s (build / eval) | bayesmix s (p / z) | passed |",
        "|---|---|---|---:|---:|---|---:|---|---|---|",
    ]
    notes = set()
    for c in report["cells"]:
        a = c.get("allocations")
        if a is None:
            continue
        notes.add(a["recover_marginals_lp"])
        lines.append(
            f"| {c['data']} | {c['spec']} | "
            f"{GRAPH_LABEL[a['draws_of']]} | "
            f"{a['prob_max_abs_diff']:.2g} | "
            f"{a['recover_freq_max_abs_diff']:.3f} | {a['kplus_mean_recover']:.2f} / "
            f"{a['kplus_mean_bayesmix']:.2f} | {a['recover_s']:.1f} | "
            f"{a['conditional_build_s']:.1f} / {a['conditional_eval_s']:.2f} | "
            f"{a['bayesmix_prob_s']:.2f} / {a['bayesmix_draw_s']:.3f} | "
            f"{'yes' if a['passed'] else '**NO**'} |"
        )
    if notes:
        lines += [
            "",
            "`pmx.recover_marginals(..., return_samples=False)` (the old way to get the "
            "log-probabilities lp_z): " + "; ".join(f"`{n}`" for n in sorted(notes)),
        ]
    v = report.get("verdict")
    if v:
        lines += [
            "",
            "## Verdict (computed)",
            "",
            "Rule (issue 17): adopt pymc-extras' marginalisation only if it is at least as fast "
            "(here: median C logp + gradient time and sampling wall time each at most 1.05 x "
            "ours in every cell).",
            f"logp + gradient ratio pymc-extras / ours: {_f(v['logp_ratio_min'], '.2f')} to "
            f"{_f(v['logp_ratio_max'], '.2f')}; sampling-time ratio: "
            f"{_f(v['sampling_ratio_min'], '.2f')} to {_f(v['sampling_ratio_max'], '.2f')}; "
            f"cells that failed: {v['failed_cells']}. **Adopt: {'yes' if v['adopt'] else 'no'}.**",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.nuts_marginalize", description=__doc__)
    p.add_argument("--quick", action="store_true", help="galaxy sparse_wi only, short runs")
    p.add_argument("--out", default=str(OUT_DIR), help="output directory")
    p.add_argument("--name", default=None, help="output file stem")
    p.add_argument("--render", default=None, help="only re-render the .md from this .json")
    args = p.parse_args(argv)
    if args.render:
        import json

        from bayesmix.io import write_text

        src = Path(args.render)
        report = json.loads(src.read_text())
        write_text(src.with_suffix(".md"), render_markdown(report) + reading(src.parent, src.stem))
        return 0
    try:
        import pymc_extras  # noqa: F401
    except ImportError:
        print(
            "pymc-extras is not installed (it needs pymc < 6.4): make its own environment:\n  "
            + "\n  ".join(VENV_COMMANDS),
            file=sys.stderr,
        )
        return 2
    st = QUICK if args.quick else FULL
    name = args.name or ("nuts_marginalize_quick" if args.quick else "nuts_marginalize")
    run(st, Path(args.out), name, ["benchmarks.nuts_marginalize", *argv])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
