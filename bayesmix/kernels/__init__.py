"""Gaussian kernels: the conjugate families' numerics for the Gibbs engines (``niw``) and the
PyMC graphs for NUTS (``pymc``, imported only when a PyMC model is built)."""
