"""Gibbs engines for conjugate Gaussian mixtures: the driver (chains, seeds, threads) and the
compiled algorithms (collapsed with split-merge, blocked), generic over mixing and kernel."""

from __future__ import annotations

from bayesmix.engines.gibbs.driver import ALGORITHMS, ChainConfig, sample_gibbs

__all__ = ["ALGORITHMS", "ChainConfig", "sample_gibbs"]
