"""Mixings (priors on the weights, as Gibbs-type partition priors): one module each, with the
urn, the weights for blocked samplers and the hyperparameter updates; PyMC graphs in ``pymc``."""
