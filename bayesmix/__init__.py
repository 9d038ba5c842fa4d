"""bayesmix: Bayesian Gaussian mixtures with PyMC and ArviZ."""
