"""Shared fixtures: synthetic data sets with known clusters and small CSV files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def three_clusters_1d(n: int = 300) -> np.ndarray:
    """Three well-separated 1-D Gaussian clusters (means -6, 0, 6; sd 1), equal sizes.

    A stratified sample (the normal quantiles at (i - 1/2)/m) rather than random draws: its
    largest |z| is 2.6. Random draws of N = 300 usually hold a 3-sigma point, and a DP
    mixture then rightly gives real mass to an extra singleton cluster (the exact posterior
    from both Gibbs engines puts P(K+ = 3) near 0.49 for one such sample; Miller & Harrison
    2013), which is a property of the DP, not something an end-to-end test should hinge on.
    """
    from scipy import stats

    m = n // 3
    q = stats.norm.ppf((np.arange(m) + 0.5) / m)
    return np.concatenate([mean + q for mean in (-6.0, 0.0, 6.0)])


def three_clusters_2d(n: int = 300, seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three elongated, correlated 2-D clusters; returns (x, true labels, true means)."""
    rng = np.random.default_rng(seed)
    means = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
    covs = [
        np.array([[4.0, 1.8], [1.8, 1.0]]),
        np.array([[1.0, -0.85], [-0.85, 1.0]]),
        np.array([[1.0, 1.7], [1.7, 4.0]]),
    ]
    labels = np.repeat(np.arange(3), n // 3)
    parts = []
    for k in range(3):
        # Noise re-centred so each cluster's sample mean equals its true mean exactly: then a
        # 90% interval of the mean should cover the truth, whatever the seed.
        eps = rng.multivariate_normal(np.zeros(2), covs[k], size=n // 3)
        parts.append(means[k] + eps - eps.mean(axis=0))
    return np.vstack(parts), labels, means


@pytest.fixture
def small_csv(tmp_path):
    """A small 1-D CSV with two clusters, plus a text column."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-3, 1, 30), rng.normal(3, 1, 30)])
    path = tmp_path / "small.csv"
    pd.DataFrame({"value": x, "label": ["a"] * 60}).to_csv(path, index=False)
    return path
