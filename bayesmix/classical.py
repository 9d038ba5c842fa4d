"""What classical model selection says: EM (scikit-learn GaussianMixture) with BIC and AIC.

``em_selection`` returns plain numbers; ``cached_em_selection`` stores them as classical.json
in the fit directory, keyed by the data hash and the settings, so re-rendering is quick.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from bayesmix.io import write_json

SCHEMA = "bayesmix.classical/1"
CACHE_NAME = "classical.json"


def em_selection(x: np.ndarray, k_max: int = 10, random_state: int = 0, n_init: int = 3) -> dict:
    """Fit full-covariance Gaussian mixtures by EM for K = 1..k_max; BIC and AIC of each.

    The data are standardised for numerical stability; log-likelihood, BIC and AIC are
    reported in the data's own units (the Jacobian only shifts every K alike).
    """
    from sklearn import __version__ as sk_version
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n, d = x.shape
    scale = x.std(axis=0, ddof=1)
    scale[~(scale > 0)] = 1.0
    xs = (x - x.mean(axis=0)) / scale
    jac = float(np.log(scale).sum()) * n
    ks, bic, aic, loglik, n_params, converged = [], [], [], [], [], []
    for k in range(1, min(k_max, n) + 1):
        gm = GaussianMixture(
            n_components=k, covariance_type="full", n_init=n_init, random_state=random_state
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(xs)
        ll = float(gm.score(xs)) * n - jac
        p = int(gm._n_parameters())
        ks.append(k)
        loglik.append(ll)
        n_params.append(p)
        bic.append(-2 * ll + p * np.log(n))
        aic.append(-2 * ll + 2 * p)
        converged.append(bool(gm.converged_))
    return {
        "schema": SCHEMA,
        "method": "EM, scikit-learn GaussianMixture, full covariance",
        "settings": settings(k_max, random_state, n_init) | {"sklearn": sk_version},
        "k": ks,
        "loglik": loglik,
        "n_params": n_params,
        "bic": [float(v) for v in bic],
        "aic": [float(v) for v in aic],
        "converged": converged,
        "best_bic": int(ks[int(np.argmin(bic))]),
        "best_aic": int(ks[int(np.argmin(aic))]),
    }


def settings(k_max: int, random_state: int, n_init: int) -> dict:
    return {"k_max": k_max, "random_state": random_state, "n_init": n_init}


def cached_em_selection(
    fit_dir: str | Path,
    x: np.ndarray,
    data_sha256: str,
    k_max: int = 10,
    random_state: int = 0,
    n_init: int = 3,
) -> dict:
    """``em_selection`` read from fit_dir/classical.json when the data hash and settings match,
    otherwise computed and written there (atomically)."""
    path = Path(fit_dir) / CACHE_NAME
    wanted = settings(k_max, random_state, n_init)
    if path.exists():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            same = {k: cached.get("settings", {}).get(k) for k in wanted} == wanted
            if cached.get("data_sha256") == data_sha256 and same and cached.get("schema") == SCHEMA:
                return cached
        except (ValueError, OSError):
            pass
    result = em_selection(x, k_max, random_state, n_init) | {"data_sha256": data_sha256}
    try:
        write_json(path, result)
    except OSError:  # a read-only fit directory still gets its report numbers
        pass
    return result
