"""Allocations z | theta against a hand computation; K+ and weight summaries on hand-made arrays."""

from __future__ import annotations

import numpy as np
from scipy import stats

from bayesmix.posterior import clusters
from bayesmix.posterior.allocations import (
    allocations,
    component_log_density,
    log_joint_draws,
    n_clusters,
)


def test_component_density_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 2))
    mu = np.array([[0.0, 1.0], [2.0, -1.0]])
    cov = np.array([[[1.0, 0.3], [0.3, 2.0]], [[0.5, -0.1], [-0.1, 0.4]]])
    got = component_log_density(x, mu, cov)
    want = np.column_stack([stats.multivariate_normal(mu[k], cov[k]).logpdf(x) for k in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_allocation_probabilities_by_hand():
    # One observation x = 0.5; components N(0, 1) and N(2, 0.5^2) with weights 0.3, 0.7:
    # p(z=0) = 0.3 phi(0.5) / (0.3 phi(0.5) + 0.7 phi((0.5-2)/0.5)/0.5).
    a = 0.3 * stats.norm.pdf(0.5)
    b = 0.7 * stats.norm.pdf(0.5, loc=2, scale=0.5)
    p0 = a / (a + b)
    s = 40_000
    w = np.tile([0.3, 0.7], (s, 1))
    mu = np.tile([[0.0], [2.0]], (s, 1, 1))
    cov = np.tile(np.array([[[1.0]], [[0.25]]]), (s, 1, 1, 1))
    x = np.array([[0.5]])
    z, loglik = allocations(x, w, mu, cov, np.random.default_rng(1), chunk=1000)
    np.testing.assert_allclose(loglik[:, 0], np.log(a + b), rtol=1e-12)
    # Monte Carlo: the share of z = 0 is within 4 binomial SDs of p0.
    sd = np.sqrt(p0 * (1 - p0) / s)
    assert abs(np.mean(z[:, 0] == 0) - p0) < 4 * sd


def test_batched_log_joint_matches_per_draw_computation():
    rng = np.random.default_rng(2)
    for d in (1, 3):
        s, k, n = 5, 4, 9
        x = rng.normal(size=(n, d))
        w = rng.dirichlet(np.ones(k), size=s)
        w[0, 1] = 0.0
        mu = rng.normal(size=(s, k, d))
        a = rng.normal(size=(s, k, d, d))
        cov = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
        got = log_joint_draws(x, w, mu, cov)
        for j in range(s):
            want = np.log(w[j])[None, :] + np.column_stack(
                [stats.multivariate_normal(mu[j, c], cov[j, c]).logpdf(x) for c in range(k)]
            )
            np.testing.assert_allclose(got[j], want, rtol=1e-10)
        _, ll = allocations(x, w, mu, cov, rng, chunk=7)  # several blocks
        np.testing.assert_allclose(ll, np.log(np.exp(got).sum(-1)), rtol=1e-10)
        z = rng.integers(0, k, size=(s, n))  # native allocations: the compiled path
        z_kept, ll_native = allocations(x, w, mu, cov, rng, z=z)
        np.testing.assert_array_equal(z_kept, z)
        np.testing.assert_allclose(ll_native, ll, rtol=1e-12)


def test_native_allocations_are_kept():
    w = np.array([[0.5, 0.5]])
    mu = np.array([[[0.0], [5.0]]])
    cov = np.ones((1, 2, 1, 1))
    z_in = np.array([[1, 1, 0]])
    z, _ = allocations(np.zeros((3, 1)), w, mu, cov, np.random.default_rng(0), z=z_in)
    np.testing.assert_array_equal(z, z_in)


def test_zero_weight_component_is_never_chosen():
    w = np.array([[1.0, 0.0]])
    mu = np.array([[[0.0], [0.0]]])
    cov = np.ones((1, 2, 1, 1))
    z, _ = allocations(np.zeros((50, 1)), w, mu, cov, np.random.default_rng(0))
    assert (z == 0).all()


def test_n_clusters_on_hand_made_arrays():
    z = np.array([[0, 0, 0, 0], [0, 1, 0, 1], [3, 1, 2, 0], [5, 5, 9, 5]])
    np.testing.assert_array_equal(n_clusters(z), [1, 2, 4, 2])
    np.testing.assert_array_equal(n_clusters(z.reshape(2, 2, 4)), [[1, 2], [4, 2]])


def test_count_summary_and_credible_set():
    k = np.array([3] * 70 + [4] * 22 + [2] * 5 + [5] * 3)
    s = clusters.count_summary(k)
    assert s["mode"] == 3 and s["pmf"]["4"] == 0.22
    assert s["credible_set_90"] == [3, 4]
    assert abs(s["mean"] - (3 * 70 + 4 * 22 + 2 * 5 + 5 * 3) / 100) < 1e-12
    assert clusters.credible_set({1: 0.5, 2: 0.3, 3: 0.2}, 0.9) == [1, 2, 3]


def test_effective_k_and_weights_above():
    w = np.array([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.97, 0.015, 0.015]])
    np.testing.assert_allclose(clusters.effective_k(w)[:2], [2.0, 3.0])
    np.testing.assert_array_equal(clusters.n_components_above(w, 0.02), [2, 3, 1])
    ranked = clusters.sorted_weights(w)
    assert ranked[0]["mean"] == np.mean([0.5, 1 / 3, 0.97])
