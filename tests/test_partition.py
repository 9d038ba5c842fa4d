"""Tests for bayesmix.posterior.partition (distances, PSM, SALSO, credible ball)."""

import math

import numpy as np
import pytest

from bayesmix.posterior.partition import (
    adjusted_rand_index,
    binder_distance,
    credible_ball,
    expected_binder,
    expected_vi,
    expected_vi_lb,
    membership_certainty,
    psm,
    psm_subset,
    salso,
    vi_distance,
)

# Hand-computed cases (a, b, VI in bits, Binder = disagreeing pairs / C(N, 2)):
# (0,0,1) vs (0,1,1): H(a) = H(b) = H(1/3, 2/3), joint cells 1,1,1 -> H = log2 3,
#   VI = 2 log2 3 - 2 H(1/3, 2/3) = 4/3; together-pairs {01} vs {12} -> 2 of 3 pairs.
# (0,0,1,1) vs (0,0,0,0): VI = 2 H(a,b) - H(a) - H(b) = 2 - 1 - 0 = 1;
#   together-pairs {01, 23} vs all 6 -> 4 of 6.
# (0,0,1,1) vs (0,1,0,1): H(a) = H(b) = 1, four singleton cells -> H = 2, VI = 4 - 2 = 2;
#   {01, 23} vs {02, 13} -> 4 of 6.
# (0,0,0,1) vs (0,0,1,1): H(a) = 2 - (3/4) log2 3, H(b) = 1, cells 2,1,1 -> H = 3/2,
#   VI = 3 - H(a) - 1 = (3/4) log2 3; {01, 02, 12} vs {01, 23} -> 3 of 6.
HAND = [
    ((0, 0, 1), (0, 1, 1), 4 / 3, 2 / 3),
    ((0, 0, 1, 1), (0, 0, 0, 0), 1.0, 4 / 6),
    ((0, 0, 1, 1), (0, 1, 0, 1), 2.0, 4 / 6),
    ((0, 0, 0, 1), (0, 0, 1, 1), 0.75 * math.log2(3), 3 / 6),
]


@pytest.mark.parametrize(("a", "b", "vi", "binder"), HAND)
def test_distances_hand_cases(a, b, vi, binder):
    assert vi_distance(a, b) == pytest.approx(vi, abs=1e-12)
    assert vi_distance(b, a) == pytest.approx(vi, abs=1e-12)
    assert binder_distance(a, b) == pytest.approx(binder, abs=1e-12)
    assert binder_distance(b, a) == pytest.approx(binder, abs=1e-12)


def test_distances_label_invariance_and_identity():
    a = np.array([1, 1, 2, 5, 5, 5])
    b = np.array([7, 7, 0, 3, 3, 3])  # same partition, other labels
    assert vi_distance(a, b) == 0.0
    assert binder_distance(a, b) == 0.0
    assert adjusted_rand_index(a, b) == 1.0
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 4, 40), rng.integers(0, 3, 40)
    assert vi_distance(x, y) == pytest.approx(vi_distance(y, x))
    assert vi_distance(x, y) > 0


def test_adjusted_rand_index_hand_case():
    # (0,0,1,1) vs (0,1,0,1): sum_ij C(n_ij,2) = 0, sum_a = sum_b = 2, C(4,2) = 6,
    # expected = 2*2/6 = 2/3, max = 2 -> ARI = (0 - 2/3) / (2 - 2/3) = -1/2
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def _noisy_draws(truth, s, p_move, n_labels, seed):
    rng = np.random.default_rng(seed)
    z = np.tile(truth, (s, 1))
    move = rng.random(z.shape) < p_move
    z[move] = rng.integers(0, n_labels, move.sum())
    return z


def test_psm_brute_force_blocked_and_diagonal():
    z = np.random.default_rng(0).integers(0, 5, size=(37, 23))
    brute = (z[:, :, None] == z[:, None, :]).mean(axis=0)
    full = psm(z, block=1000)
    np.testing.assert_allclose(full, brute, atol=1e-14)
    np.testing.assert_allclose(psm(z, block=4), full, atol=0)
    np.testing.assert_allclose(psm(z, block=1), full, atol=0)
    np.testing.assert_array_equal(np.diagonal(full), 1.0)
    np.testing.assert_array_equal(full, full.T)
    sub, idx = psm_subset(z, max_n=10, rng=1)
    assert idx.shape == (10,) and np.all(np.diff(idx) > 0)
    np.testing.assert_allclose(sub, full[np.ix_(idx, idx)])


def test_expected_losses_match_draw_averages():
    z = _noisy_draws(np.repeat(np.arange(3), 8), 60, 0.2, 4, seed=1)
    p = psm(z)
    c = np.repeat(np.arange(3), 8)
    assert expected_binder(c, p) == pytest.approx(np.mean([binder_distance(c, r) for r in z]))
    exact = np.mean([vi_distance(c, r) for r in z])
    assert expected_vi(c, z) == pytest.approx(exact)
    assert expected_vi_lb(c, p) <= exact + 1e-12
    # a subsample: the mean over the 20 draws it picks (sorted, fixed seed), VI by entropies
    rows = np.sort(np.random.default_rng(0).choice(len(z), 20, replace=False))
    want = np.mean([_vi_by_entropies(c, z[r]) for r in rows])
    assert expected_vi(c, z, max_draws=20, seed=0) == pytest.approx(want, rel=1e-12)


def _vi_by_entropies(a, b) -> float:
    """VI = H(a) + H(b) - 2 I(a; b) = 2 H(a, b) - H(a) - H(b) in bits, from label counts."""

    def h(labels):
        _, counts = np.unique(labels, axis=0, return_counts=True)
        q = counts / counts.sum()
        return float(-np.sum(q * np.log2(q)))

    a, b = np.asarray(a), np.asarray(b)
    return 2 * h(np.column_stack([a, b])) - h(a) - h(b)


def test_expected_vi_hand_case_and_subsample():
    c = (0, 0, 1, 1)
    # VI to c from HAND: 1 (one block), 2 (crossed), 0 (relabelled), (3/4) log2 3
    z = np.array([(0, 0, 0, 0), (0, 1, 0, 1), (5, 5, 7, 7), (0, 0, 0, 1)])
    vis = np.array([1.0, 2.0, 0.0, 0.75 * math.log2(3)])
    np.testing.assert_allclose([_vi_by_entropies(c, r) for r in z], vis, atol=1e-12)
    assert expected_vi(c, z) == pytest.approx(vis.mean(), abs=1e-12)
    assert expected_vi(c, z, max_draws=4) == pytest.approx(vis.mean(), abs=1e-12)
    for seed in range(3):
        rows = np.sort(np.random.default_rng(seed).choice(4, 2, replace=False))
        got = expected_vi(c, z, max_draws=2, seed=seed)
        assert got == pytest.approx(vis[rows].mean(), abs=1e-12), (seed, rows, got)


def test_membership_certainty():
    p = np.array(
        [
            [1.0, 0.8, 0.2, 0.0],
            [0.8, 1.0, 0.4, 0.1],
            [0.2, 0.4, 1.0, 0.3],
            [0.0, 0.1, 0.3, 1.0],
        ]
    )
    # clusters {0, 1, 2}, {3}: item 0 -> (0.8 + 0.2) / 2, item 1 -> (0.8 + 0.4) / 2,
    # item 2 -> (0.2 + 0.4) / 2, item 3 is a singleton -> 1
    np.testing.assert_allclose(membership_certainty([5, 5, 5, 9], p), [0.5, 0.6, 0.3, 1.0])


def test_salso_recovers_truth_and_beats_every_draw():
    truth = np.repeat(np.arange(3), 20)
    z = _noisy_draws(truth, 300, 0.1, 4, seed=2)
    p = psm(z)
    est, loss = salso(z, loss="VI", seed=1)
    assert adjusted_rand_index(est, truth) == 1.0
    np.testing.assert_array_equal(np.bincount(est), [20, 20, 20])
    assert loss == pytest.approx(expected_vi_lb(est, p))
    draws = np.unique(z, axis=0)
    assert expected_vi(est, z) <= min(expected_vi(r, z) for r in draws) + 1e-12
    assert loss <= min(expected_vi_lb(r, p) for r in draws) + 1e-12
    est_b, loss_b = salso(z, loss="binder", seed=1)
    assert adjusted_rand_index(est_b, truth) == 1.0
    assert loss_b == pytest.approx(expected_binder(est_b, p))
    again, _ = salso(z, loss="VI", seed=1)
    np.testing.assert_array_equal(again, est)


@pytest.mark.parametrize("loss", ["VI", "binder"])
def test_salso_never_worse_than_best_draw_on_diffuse_posterior(loss):
    z = np.random.default_rng(4).integers(0, 4, size=(80, 30))
    p = psm(z)
    score = expected_vi_lb if loss == "VI" else expected_binder
    est, value = salso(z, loss=loss, n_runs=2, seed=0)
    assert value == pytest.approx(score(est, p))
    assert value <= min(score(r, p) for r in z) + 1e-12
    assert list(np.bincount(est)) == sorted(np.bincount(est), reverse=True)


def test_credible_ball_identical_draws_has_zero_radius():
    c = np.array([0, 0, 1, 1, 2])
    z = np.tile([3, 3, 0, 0, 1], (50, 1))
    ball = credible_ball(c, z)
    assert ball["radius"] == 0.0
    for key in ("upper", "lower", "horizontal"):
        assert ball[key]["distance"] == 0.0
        assert ball[key]["n_clusters"] == 3
        assert adjusted_rand_index(ball[key]["labels"], c) == 1.0


def test_credible_ball_bounds_within_radius():
    truth = np.repeat(np.arange(3), 10)
    z = _noisy_draws(truth, 200, 0.15, 5, seed=5)
    ball = credible_ball(truth, z, level=0.9)
    d = np.array([vi_distance(truth, r) for r in z])
    k = np.array([len(np.unique(r)) for r in z])
    radius = np.sort(d)[math.ceil(0.9 * len(d)) - 1]
    assert ball["radius"] == pytest.approx(radius)
    assert np.mean(d <= ball["radius"] + 1e-12) >= 0.9
    inside = d <= radius + 1e-12
    for key in ("upper", "lower", "horizontal"):
        b = ball[key]
        assert b["distance"] <= ball["radius"] + 1e-12
        assert b["distance"] == pytest.approx(vi_distance(truth, b["labels"]))
    assert ball["horizontal"]["distance"] == pytest.approx(radius)
    assert ball["upper"]["n_clusters"] == k[inside].min()
    assert ball["lower"]["n_clusters"] == k[inside].max()
    assert ball["upper"]["distance"] == pytest.approx(d[inside & (k == k[inside].min())].max())
    assert ball["lower"]["distance"] == pytest.approx(d[inside & (k == k[inside].max())].max())
