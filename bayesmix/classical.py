"""What classical model selection says: EM (scikit-learn GaussianMixture) with BIC and AIC.

``em_selection`` fits K = 1..k_max components for each covariance family (full, diag,
spherical, as mclust's VVV, VVI, VII) and returns plain numbers; the family check of the fit
(``bayesmix.posterior.kernel_check``) and the report's "What classical methods say" both read
them. ``cached_em_selection`` stores them as classical.json in a fit directory.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from bayesmix.io import write_json

SCHEMA = "bayesmix.classical/2"
CACHE_NAME = "classical.json"
FAMILIES = ("full", "diag", "spherical")
EM_MAX_ROWS = 50_000  # EM + BIC on a fixed random subsample of this many rows beyond it


def families_for(d: int) -> tuple[str, ...]:
    """Covariance families worth comparing: all three for D >= 2; in 1-D they coincide."""
    return FAMILIES if d >= 2 else ("full",)


def _em_family(xs: np.ndarray, jac: float, family: str, k_max: int, random_state: int, n_init: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    n = xs.shape[0]
    out = {"k": [], "loglik": [], "n_params": [], "bic": [], "aic": [], "converged": []}
    for k in range(1, min(k_max, n) + 1):
        gm = GaussianMixture(
            n_components=k, covariance_type=family, n_init=n_init, random_state=random_state
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(xs)
        ll = float(gm.score(xs)) * n - jac
        p = int(gm._n_parameters())
        out["k"].append(k)
        out["loglik"].append(ll)
        out["n_params"].append(p)
        out["bic"].append(float(-2 * ll + p * np.log(n)))
        out["aic"].append(float(-2 * ll + 2 * p))
        out["converged"].append(bool(gm.converged_))
    out["best_bic"] = int(out["k"][int(np.argmin(out["bic"]))])
    out["best_aic"] = int(out["k"][int(np.argmin(out["aic"]))])
    return out


def em_selection(
    x: np.ndarray,
    k_max: int = 10,
    random_state: int = 0,
    n_init: int = 3,
    families: tuple[str, ...] | None = None,
    fitted: str = "full",
) -> dict:
    """EM fits for K = 1..k_max in each covariance family; BIC = -2 log L + p log n and
    AIC = -2 log L + 2 p of each (past EM_MAX_ROWS rows, on a fixed random subsample of that
    many, seeded by ``random_state``, with n its size; ``settings["rows"]`` says which).

    The data are standardised for numerical stability; log-likelihood, BIC and AIC are
    reported in the data's own units (the Jacobian only shifts every fit alike). The top-level
    ``k``, ``bic``, ``aic``, ``best_bic``, ``best_aic`` are those of the ``fitted`` family (the
    Bayesian model's); ``families`` holds every family's.
    """
    from sklearn import __version__ as sk_version

    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n_all, d = x.shape
    rows = ""
    if n_all > EM_MAX_ROWS:  # seconds instead of tens of minutes at N = 1e6; said in the method
        keep = np.sort(
            np.random.default_rng(random_state).choice(n_all, EM_MAX_ROWS, replace=False)
        )
        x = x[keep]
        rows = f", on a random {EM_MAX_ROWS:,} of the {n_all:,} rows (BIC with n = {EM_MAX_ROWS:,})"
    n = x.shape[0]
    scale = x.std(axis=0, ddof=1)
    scale[~(scale > 0)] = 1.0
    xs = (x - x.mean(axis=0)) / scale
    jac = float(np.log(scale).sum()) * n
    fams = families or families_for(d)
    per = {f: _em_family(xs, jac, f, k_max, random_state, n_init) for f in fams}
    em = {
        "schema": SCHEMA,
        "method": f"EM, scikit-learn GaussianMixture ({', '.join(fams)} covariances){rows}",
        "settings": settings(k_max, random_state, n_init, fams)
        | {"sklearn": sk_version, "rows": n, "of_rows": n_all},
        "families": per,
    }
    return em_with_fitted(em, fitted)


def em_with_fitted(em: dict, fitted: str) -> dict:
    """The ``em_selection`` result with its top-level entries taken from family ``fitted``."""
    per = em["families"]
    fitted = fitted if fitted in per else next(iter(per))
    return em | {
        "fitted_family": fitted,
        **{key: per[fitted][key] for key in ("k", "loglik", "n_params", "bic", "aic")},
        "converged": per[fitted]["converged"],
        "best_bic": per[fitted]["best_bic"],
        "best_aic": per[fitted]["best_aic"],
    }


def settings(k_max: int, random_state: int, n_init: int, families: tuple[str, ...]) -> dict:
    return {
        "k_max": k_max,
        "random_state": random_state,
        "n_init": n_init,
        "families": list(families),
    }


def cached_em_selection(
    fit_dir: str | Path,
    x: np.ndarray,
    data_sha256: str,
    k_max: int = 10,
    random_state: int = 0,
    n_init: int = 3,
    fitted: str = "full",
) -> dict:
    """``em_selection`` read from fit_dir/classical.json when the data hash and settings match,
    otherwise computed and written there (atomically)."""
    path = Path(fit_dir) / CACHE_NAME
    x = np.asarray(x, dtype=float)
    fams = families_for(x.shape[1] if x.ndim == 2 else 1)
    wanted = settings(k_max, random_state, n_init, fams)
    if path.exists():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            same = {k: cached.get("settings", {}).get(k) for k in wanted} == wanted
            if cached.get("data_sha256") == data_sha256 and same and cached.get("schema") == SCHEMA:
                return cached
        except (ValueError, OSError):
            pass
    result = em_selection(x, k_max, random_state, n_init, fams, fitted)
    result["data_sha256"] = data_sha256
    try:
        write_json(path, result)
    except OSError:  # a read-only fit directory still gets its report numbers
        pass
    return result
