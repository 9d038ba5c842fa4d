"""The prior of K+ at large n (bayesmix.numerics.kplus_fast): exact rational checks at small
n, agreement with the old recursions at moderate n, proper pmfs at n = 10^6 for every shipped
spec. No timing assertions (reports/benchmarks/prior_k_large_n.md has the figures)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import bayesmix.partition_priors as pp
import bayesmix.priors as P
from bayesmix import mixings
from bayesmix.numerics import kplus_fast as kf
from bayesmix.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(ROOT.glob("models/*.toml")) + sorted(ROOT.glob("models/compare*/*.toml"))


def _rising(x: Fraction, n: int) -> Fraction:
    return math.prod((x + i for i in range(n)), start=Fraction(1))


def _finite_exact(n: int, K: int, g: Fraction) -> list[float]:
    """P(K+ = k) = C(K,k) sum_j (-1)^j C(k,j) ((k-j) g)^(n) / (K g)^(n), in rationals."""
    den = _rising(K * g, n)
    return [
        float(
            math.comb(K, k)
            * sum((-1) ** j * math.comb(k, j) * _rising((k - j) * g, n) for j in range(k + 1))
            / den
        )
        for k in range(1, min(K, n) + 1)
    ]


def _stirling1(n: int) -> list[int]:
    """|s(n, k)|, k = 0..n, by the integer recurrence."""
    s = [1]
    for m in range(n):
        s = [m * (s[k] if k < len(s) else 0) + (s[k - 1] if k >= 1 else 0) for k in range(m + 2)]
    return s


# ---------------------------------------------------------------- exact, in rationals


@pytest.mark.parametrize(
    ("n", "K", "g"), [(10, 4, Fraction(1, 2)), (25, 6, Fraction(3, 10)), (40, 3, Fraction(7, 2))]
)
def test_fast_finite_pmf_is_the_inclusion_exclusion_formula(n, K, g):
    got = kf.finite_pmf_fast(n, K, np.array([float(g)]))[0]
    np.testing.assert_allclose(got, _finite_exact(n, K, g), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n", "alpha"), [(30, Fraction(5, 2)), (60, Fraction(1, 10))])
def test_table_count_fft_is_stirling_over_rising_factorial(n, alpha):
    s = _stirling1(n)
    rising = _rising(alpha, n)
    exact = [float(s[k] * alpha**k / rising) for k in range(1, n + 1)]
    got = kf.crp_table_pmf(n, np.array([float(alpha)]), n)[0]
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-13)


@pytest.mark.parametrize("z", [3.5, 0.02 + 0.01j, 250.0 * np.exp(0.7j), 1e-9 * np.exp(2.0j)])
def test_log_rising_ratio_against_a_direct_sum(z):
    """log[(z)^(n)/(a)^(n)] = sum_i log1p((z - a)/(a + i)), summed exactly (fsum), n = 2e5."""
    n, a = 200_000, abs(z)
    terms = kf._log1p_complex((z - a) / (a + np.arange(n, dtype=float)).astype(complex))
    want = complex(math.fsum(terms.real), math.fsum(terms.imag))
    got = complex(kf.log_rising_ratio(n, np.array([z]), np.array([a]))[0])
    assert abs(got - want) < 1e-10


def test_occupancy_chain_matches_its_matrix():
    K, c_top = 7, 60
    occ = kf.occupancy_matrix(K, c_top)
    q = np.random.default_rng(1).dirichlet(np.ones(c_top))
    np.testing.assert_allclose(kf.occupancy_mix(K, q), q @ occ, rtol=0, atol=1e-15)
    # 3 balls in 7 boxes: P(t = 1, 2, 3) = 1/49, 18/49, 30/49
    np.testing.assert_allclose(occ[2, :3], [1 / 49, 18 / 49, 30 / 49], rtol=0, atol=1e-15)


# ---------------------------------------------------------------- new path = old path


def _old(monkeypatch, module, name: str, fn, *args, **kwargs):
    monkeypatch.setattr(module, name, 10**12)
    try:
        return fn(*args, **kwargs)
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize(("K", "g"), [(10, 1.0), (10, 0.01), (30, 3.0), (3, 1e-6)])
def test_finite_fast_path_matches_the_urn(K, g, monkeypatch):
    n = 6000
    fast = P.finite_k_pmf(n, K, g)
    old = _old(monkeypatch, P, "FINITE_FAST_N", P.finite_k_pmf, n, K, g)
    np.testing.assert_allclose(fast, old, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("K", "a", "b"), [(10, 1.0, 1.0), (30, 2.0, 5.0), (10, 0.5, 50.0)])
def test_finite_gamma_fast_path_matches_the_urn(K, a, b, monkeypatch):
    """gamma ~ Gamma(a, b): the point-mass MFM's shared grid against the adaptive quadrature
    of the urn chain (Gamma(0.5, 50): a sparse finite mixture, E[gamma] = 0.01)."""
    n = 6000
    fast = P.finite_gamma_k_pmf(n, K, a, b)
    old = _old(monkeypatch, P, "FINITE_FAST_N", P.finite_gamma_k_pmf, n, K, a, b)
    np.testing.assert_allclose(fast, old, rtol=0, atol=1e-10)


def _spec_log_pk(name: str) -> np.ndarray:
    return mixings.k_prior_log_pmf(load_spec(name).mixing)[1:]


@pytest.mark.parametrize("n", [8, 300, 2000])
def test_static_mfm_fast_path_matches_the_gibbs_coefficients(n, monkeypatch):
    """The shipped p(K) (BNB(1, 4, 3) cut at K = 498), gamma = 1 and gamma ~ Gamma(1, 1)."""
    log_pk = _spec_log_pk("mfm")
    monkeypatch.setattr(pp, "MFM_FAST_N", 0)
    fast = pp.mfm_kplus_pmf(n, 1.0, log_pk)
    fast_g = pp.mfm_kplus_pmf(n, k_prior=log_pk, gamma_prior=("gamma", 1.0, 1.0))
    monkeypatch.undo()
    np.testing.assert_allclose(fast, pp.mfm_kplus_pmf(n, 1.0, log_pk), rtol=0, atol=1e-10)
    if n <= 300:  # the old Gamma mixture costs seconds at n = 2000 (checked by hand: 3e-13)
        old_g = pp.mfm_kplus_pmf(n, k_prior=log_pk, gamma_prior=("gamma", 1.0, 1.0))
        np.testing.assert_allclose(fast_g, old_g, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [8, 2000])
@pytest.mark.parametrize("prior", [("f", 6.0, 3.0), ("gamma", 2.0, 1.0), None])
def test_dynamic_mfm_fast_path_matches_the_occupancy_mixture(n, prior, monkeypatch):
    log_pk = _spec_log_pk("telescope")
    kw = {"alpha_prior": prior} if prior else {"alpha": 1.5}
    monkeypatch.setattr(pp, "MFM_FAST_N", 0)
    fast = pp.dynamic_mfm_kplus_pmf(n, k_prior=log_pk, **kw)
    monkeypatch.undo()
    old = pp.dynamic_mfm_kplus_pmf(n, k_prior=log_pk, **kw)
    np.testing.assert_allclose(fast, old, rtol=0, atol=1e-10)


def test_mfm_fast_path_with_point_mass_is_the_finite_mixture():
    n, K, g = 50_000, 6, 0.4
    point = pp.k_prior_log_pmf("point", {"k": K})[1]
    want = np.zeros(n)
    want[:K] = P.finite_k_pmf(n, K, g)
    np.testing.assert_allclose(pp.mfm_kplus_pmf(n, g, point), want, rtol=0, atol=1e-13)
    np.testing.assert_allclose(pp.dynamic_mfm_kplus_pmf(n, g * K, point), want, atol=1e-13)


def test_trapezoid_step_is_converged_at_a_million_rows():
    """Halving the log-grid step changes the static MFM's prior by < 1e-12."""
    n = 10**6
    w = np.exp(_spec_log_pk("mfm"))
    w /= w.sum()
    lo, hi, log_pdf = pp._gamma_range(1.0, 1.0, 1e-16)
    coarse = kf.mfm_static_gamma_pmf(n, w, lo, hi, log_pdf, h=kf.GRID_STEP)
    fine = kf.mfm_static_gamma_pmf(n, w, lo, hi, log_pdf, h=kf.GRID_STEP / 2)
    assert np.abs(coarse - fine).max() < 1e-12


# ---------------------------------------------------------------- n = 10^6, every shipped spec


def _distinct_mixings() -> dict[str, object]:
    out: dict[str, object] = {}
    for path in SHIPPED:
        spec = load_spec(path)
        out.setdefault(repr(spec.mixing), spec)
    return out


@pytest.mark.parametrize("spec", list(_distinct_mixings().values()), ids=lambda s: s.mixing.type)
def test_every_shipped_spec_at_a_million_rows(spec):
    n = 10**6
    if spec.mixing.type == "pitman_yor":  # not computed past PRIOR_EXACT_MAX_N: said so
        assert "not computed" in P.prior_k_skipped(n, spec)
        return
    assert P.prior_k_skipped(n, spec) is None
    prior = P.prior_k_from_spec(n, spec)
    assert prior.pmf.min() >= 0.0 and abs(prior.pmf.sum() - 1.0) < 1e-9
    m = spec.mixing
    if m.type == "finite" and m.concentration_prior is None:  # E[K+] in closed form
        want = P.expected_k_finite(n, m.n_components, m.concentration)
        assert prior.mean == pytest.approx(want, rel=1e-10)
    if m.type == "mfm" and m.concentration_prior is None:  # sum_K p(K) E[K+ | K]
        w = np.exp(mixings.k_prior_log_pmf(m)[1:])
        with np.errstate(divide="ignore"):  # K = 1: log1p(-1) in P(n_j = 0) = 0
            e = [P.expected_k_finite(n, K, m.concentration) for K in range(1, len(w) + 1)]
        assert prior.mean == pytest.approx(float(np.dot(w, e) / w.sum()), rel=1e-10)
