"""Is the kernel family the right one? EM + BIC across covariance families, against the fit.

mclust's habit (Fraley & Raftery 2002) is to choose the covariance family by BIC. A Bayesian
fit with one family can be confidently wrong when another describes the data far better: in
20-D with N = 500, 230 parameters per full-covariance component are too many and the
posterior merges clear clusters. A BIC difference above 10 is "very strong" evidence (Kass &
Raftery 1995).
"""

from __future__ import annotations

BIC_MARGIN = 10.0
# the bayesmix kernel (kernel.covariance) of each EM covariance family (mclust VVV, VVI, VII)
NEAREST_KERNEL = {"full": "full", "diag": "diag", "spherical": "spherical"}
FAMILY_WORDS = {"full": "full", "diag": "diagonal", "spherical": "spherical"}


def kernel_family_check(classical: dict, fitted: str, kplus_mode: int) -> dict:
    """Compare the best BIC of every EM family with that of the ``fitted`` family.

    Returns {"status": "ok" | "warn" | "not_applicable", "best_family", "bic_gain",
    "k_best", "k_fitted", "warning"}. It warns when another family's best BIC is lower by more
    than ``BIC_MARGIN``, its BIC choice of K differs from the posterior mode of K+, and it maps
    to a different bayesmix kernel (``kernel.covariance``).
    """
    fams = classical.get("families") or {}
    if len(fams) < 2 or fitted not in fams:
        return {"status": "not_applicable", "reason": "one covariance family (1-D data)"}
    best_bic = {f: min(v["bic"]) for f, v in fams.items()}
    best = min(best_bic, key=best_bic.get)
    gain = best_bic[fitted] - best_bic[best]
    out = {
        "status": "ok",
        "fitted_family": fitted,
        "best_family": best,
        "bic_gain": float(gain),
        "k_best": int(fams[best]["best_bic"]),
        "k_fitted": int(fams[fitted]["best_bic"]),
        "best_bic": {f: float(v) for f, v in best_bic.items()},
    }
    kernel = NEAREST_KERNEL[best]
    if gain > BIC_MARGIN and out["k_best"] != kplus_mode and kernel != NEAREST_KERNEL[fitted]:
        out["status"] = "warn"
        out["warning"] = (
            f"EM + BIC with {FAMILY_WORDS[best]} covariances fits these data far better than "
            f"with {FAMILY_WORDS[fitted]} ones (BIC lower by {gain:,.0f}) and finds "
            f"{out['k_best']} groups, where this model's most probable K+ is {kplus_mode}: "
            f'the kernel family may be wrong for these data; refit with covariance = "{kernel}" '
            "in the spec's [kernel] table"
        )
    return out


def choose_covariance(classical: dict) -> dict:
    """``kernel.covariance = "auto"``: the bayesmix kernel of the EM covariance family
    with the lowest BIC (each family at its own best K), as mclust chooses its model (Fraley &
    Raftery 2002). A cheap screen on the data before sampling, so the choice does not depend on
    the Bayesian fit. Returns {"criterion", "best_family", "covariance", "best_bic", "k_best"}.
    """
    fams = classical.get("families") or {}
    if len(fams) < 2:
        return {"criterion": "one covariance family (1-D data)", "covariance": "full"}
    best_bic = {f: float(min(v["bic"])) for f, v in fams.items()}
    best = min(best_bic, key=best_bic.get)
    return {
        "criterion": "lowest EM + BIC across covariance families (each at its best K = 1..10)",
        "best_family": best,
        "covariance": NEAREST_KERNEL[best],
        "best_bic": best_bic,
        "k_best": {f: int(v["best_bic"]) for f, v in fams.items()},
    }
