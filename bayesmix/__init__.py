"""bayesmix: Bayesian Gaussian mixtures with PyMC and ArviZ.

Public API (imported lazily, so that light commands start fast):
``fit``, ``fit_many``, ``BayesianGMM``, ``load_data``, ``load_dataset``, ``load_spec``,
``prior_k``, ``calibrate_alpha``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from bayesmix import _numba_cache  # noqa: E402  (before anything imports numba)

_numba_cache.configure(__version__)

_EXPORTS = {
    "fit": "bayesmix.fit",
    "FitResult": "bayesmix.fit",
    "fit_many": "bayesmix.many.run",
    "BayesianGMM": "bayesmix.estimator",
    "load_data": "bayesmix.data",
    "load_dataset": "bayesmix.data",
    "load_spec": "bayesmix.spec",
    "prior_k": "bayesmix.priors",
    "calibrate_alpha": "bayesmix.priors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bayesmix' has no attribute {name!r}")
