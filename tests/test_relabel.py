"""Tests for bayesmix.posterior.relabel (ECR, Stephens, classification probs, summaries)."""

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from bayesmix.posterior.relabel import (
    apply_permutation,
    classification_probs,
    cluster_summary,
    ecr,
    inverse_permutation,
    stephens,
)


def _random_perms(s, k, seed):
    rng = np.random.default_rng(seed)
    return np.array([rng.permutation(k) for _ in range(s)])


def _fraction_undone(perms, true_perms):
    """Share of draws where perms undoes true_perms up to one global relabelling sigma:
    perms[s, true_perms[s, k]] = sigma[k] for the most common sigma."""
    comp = np.take_along_axis(perms, true_perms, axis=1)
    _, counts = np.unique(comp, axis=0, return_counts=True)
    return counts.max() / len(comp)


def test_apply_permutation_convention_and_inverse():
    rng = np.random.default_rng(0)
    s, k, n, d = 6, 4, 9, 2
    perms = _random_perms(s, k, 1)
    z = rng.integers(0, k, (s, n))
    w = rng.dirichlet(np.ones(k), s)
    mu = rng.normal(size=(s, k, d))
    cov = rng.normal(size=(s, k, d, d))
    z2, w2, mu2, cov2 = apply_permutation(perms, z=z, w=w, mu=mu, cov=cov)
    for t in range(s):
        for j in range(k):
            assert w2[t, perms[t, j]] == w[t, j]
            np.testing.assert_array_equal(mu2[t, perms[t, j]], mu[t, j])
            np.testing.assert_array_equal(cov2[t, perms[t, j]], cov[t, j])
        np.testing.assert_array_equal(z2[t], perms[t][z[t]])
    inv = inverse_permutation(perms)
    back = apply_permutation(inv, z=z2, w=w2)
    np.testing.assert_array_equal(back[0], z)
    np.testing.assert_array_equal(back[1], w)
    assert back[2] is None and back[3] is None
    with pytest.raises(ValueError):
        apply_permutation(np.array([[0, 0, 1]]), w=np.ones((1, 3)))


def test_ecr_undoes_known_permutations():
    truth = np.repeat(np.arange(4), 25)
    rng = np.random.default_rng(1)
    s = 400
    z = np.tile(truth, (s, 1))
    move = rng.random(z.shape) < 0.1
    z[move] = rng.integers(0, 4, move.sum())
    true_perms = _random_perms(s, 4, 2)
    z_obs = np.take_along_axis(true_perms, z, axis=1)  # observed label of true label k
    perms = ecr(z_obs)
    assert _fraction_undone(perms, true_perms) >= 0.99
    z_new = apply_permutation(perms, z=z_obs)[0]
    assert np.mean(z_new == z_new[0]) > 0.8
    # an explicit pivot (the truth) gives the identity relabelling of the truth itself
    perms_t = ecr(z_obs, pivot=truth)
    assert np.mean(np.all(np.take_along_axis(perms_t, true_perms, 1) == np.arange(4), 1)) >= 0.99


def test_stephens_undoes_known_permutations():
    rng = np.random.default_rng(3)
    s, n, k = 300, 60, 3
    truth = np.repeat(np.arange(k), n // k)
    base = np.full((n, k), 0.1)
    base[np.arange(n), truth] = 0.8
    probs = rng.dirichlet(np.ones(k), size=(s, n)) * 0.3 + 0.7 * base  # rows still sum to 1
    true_perms = _random_perms(s, k, 4)
    observed = np.empty_like(probs)
    observed[np.arange(s)[:, None], :, true_perms] = probs.transpose(0, 2, 1)
    perms = stephens(observed)
    assert _fraction_undone(perms, true_perms) >= 0.99
    assert _fraction_undone(stephens(observed.astype(np.float32)), true_perms) >= 0.99
    # starting from ECR-style perms that are already right leaves them alone
    perms2 = stephens(observed, init_perms=inverse_permutation(true_perms))
    np.testing.assert_array_equal(perms2, inverse_permutation(true_perms))


def test_classification_probs_matches_scipy():
    rng = np.random.default_rng(5)
    s, k, d, n = 3, 4, 2, 25
    w = rng.dirichlet(np.ones(k), s)
    mu = rng.normal(size=(s, k, d)) * 2
    a = rng.normal(size=(s, k, d, d))
    cov = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
    x = rng.normal(size=(n, d)) * 2
    dens = np.array(
        [
            [[w[t, j] * multivariate_normal(mu[t, j], cov[t, j]).pdf(xi) for j in range(k)]
             for xi in x]
            for t in range(s)
        ]
    )  # fmt: skip
    ref = dens / dens.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(classification_probs(w, mu, cov, x), ref, atol=1e-12)
    np.testing.assert_allclose(
        classification_probs(w, mu, cov, x, dtype=np.float32), ref, atol=1e-6
    )
    np.testing.assert_allclose(np.exp(classification_probs(w, mu, cov, x, log=True)), ref)
    # univariate form: mu (S, K), cov (S, K) variances, x (N,)
    var = rng.uniform(0.5, 2.0, (s, k))
    x1 = x[:, 0]
    dens1 = w[:, None, :] * norm.pdf(x1[None, :, None], mu[:, None, :, 0], np.sqrt(var)[:, None])
    np.testing.assert_allclose(
        classification_probs(w, mu[..., 0], var, x1),
        dens1 / dens1.sum(2, keepdims=True),
        atol=1e-12,
    )
    # far-away points do not underflow to NaN
    far = classification_probs(w, mu, cov, np.full((1, d), 1e3))
    assert np.all(np.isfinite(far)) and np.allclose(far.sum(-1), 1.0)


def test_cluster_summary_structure():
    rng = np.random.default_rng(6)
    s, n, k, d = 400, 40, 3, 2
    w = rng.dirichlet([60, 30, 1], s)
    mu = rng.normal(size=(s, k, d)) * 0.1 + np.array([[0, 0], [5, 5], [9, 0]])
    cov = np.broadcast_to(np.eye(d), (s, k, d, d)).copy()
    z = rng.choice(2, size=(s, n), p=[0.6, 0.4])
    z[: s // 4, 0] = 2  # component 2 occupied in a quarter of the draws
    perms = np.tile(np.arange(k), (s, 1))
    out = cluster_summary(w, mu, cov, z, perms, chains=4)
    json.dumps(out)
    assert [e["cluster"] for e in out] == [0, 1, 2]
    assert out[0]["weight"]["mean"] >= out[1]["weight"]["mean"] >= out[2]["weight"]["mean"]
    assert out[0]["occupancy"] == 1.0 and not out[0]["empty_mostly"]
    assert out[2]["occupancy"] == pytest.approx(0.25) and out[2]["empty_mostly"]
    assert "mu" not in out[2] and "mu" in out[0]
    first = out[0]
    assert first["weight"]["lower"] <= first["weight"]["mean"] <= first["weight"]["upper"]
    assert len(first["mu"]["mean"]) == d and first["sd"]["mean"] == [1.0, 1.0]
    assert np.allclose(first["corr"]["mean"], np.eye(d))
    assert 0.9 < first["weight"]["rhat"] < 1.1 and first["weight"]["ess_bulk"] > 100
    assert len(first["mu"]["rhat"]) == d
    # a 30% occupancy threshold drops component 2; no chains -> diagnostics are None
    out2 = cluster_summary(w, mu, cov, z, perms, min_occupancy=0.3)
    assert [e["cluster"] for e in out2] == [0, 1]
    assert out2[0]["weight"]["rhat"] is None
    # relabelling is applied before summarising
    swap = np.tile([1, 0, 2], (s, 1))
    out3 = cluster_summary(w, mu, cov, z, swap)
    assert out3[0]["cluster"] == 1 and out3[0]["weight"]["mean"] == out[0]["weight"]["mean"]
