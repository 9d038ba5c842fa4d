"""One reconciled table of the different counts of groups, each with what it answers.

The numbers differ for good reasons: K+ counts the clusters the data occupy, with its
posterior probability; the weight threshold leaves out tiny clusters; the point partition is
one clustering of these rows that merges groups it cannot tell apart; EM + BIC and AIC give
one maximum-likelihood answer each. Built from summary.json entries (pure; no arrays).
"""

from __future__ import annotations

from bayesmix.posterior.kernel_check import FAMILY_WORDS

KPLUS_MEANING = "how many groups the data fill, and how sure: the answer to 'how many groups?'"
COMPONENTS_MEANING = (
    "how many components the model has, empty ones included: K+ counts those that hold data, "
    "K can be larger when a component would only be filled by more data"
)


def _set(values: list[int]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def _or(ks: list[int]) -> str:
    s = [str(k) for k in ks]
    return s[0] if len(s) == 1 else f"{', '.join(s[:-1])} or {s[-1]}"


def _posterior_count_row(entry: dict, name: str, meaning: str) -> dict:
    """A posterior count (K+ or K): its mode (or tied values) with their probabilities."""
    tied = entry.get("tied_with_mode") or [entry["mode"]]
    probs = ", ".join(f"P({k}) = {100 * entry['pmf'][str(k)]:.0f}%" for k in tied)
    return {
        "name": name,
        "value": _or(tied),
        "detail": f"{probs}; 90% credible set {_set(entry.get('credible_set_90', []))}",
        "meaning": meaning,
    }


def count_table(summary: dict) -> list[dict]:
    """Rows {name, value, detail, meaning} for K+, the identified clusters, components above
    the weight threshold, the point partition, and EM + BIC / AIC per covariance family."""
    rows = []
    for key, name, meaning in (
        ("n_clusters", "K+, occupied clusters (posterior)", KPLUS_MEANING),
        ("n_components", "K, components of the mixture (posterior)", COMPONENTS_MEANING),
    ):
        entry = summary.get(key)  # n_components: a mixture of finite mixtures only
        if entry:
            rows.append(_posterior_count_row(entry, name, meaning))
    ident = summary.get("identified")
    if ident:
        rows.append(
            {
                "name": "Clusters in the cluster table",
                "value": str(ident["k"]),
                "detail": f"from the {100 * ident['share']:.0f}% of draws with K+ = {ident['k']}",
                "meaning": "the solution whose clusters are described one by one",
            }
        )
    above = summary.get("n_components_above")
    if above:
        rows.append(
            {
                "name": f"Components with weight > {above['threshold']:g}",
                "value": str(above["mode"]),
                "detail": f"posterior mode; mean {above['mean']:.2f}",
                "meaning": "leaves out clusters too small to matter (a few points each)",
            }
        )
    part = summary.get("partition")
    if part and part.get("n_clusters") is not None:
        ball = part.get("credible_ball_95") or {}
        lo = (ball.get("upper") or {}).get("n_clusters")
        hi = (ball.get("lower") or {}).get("n_clusters")
        rows.append(
            {
                "name": "Point partition (SALSO, VI loss)",
                "value": str(part["n_clusters"]),
                "detail": f"95% credible ball: {lo} to {hi} clusters" if lo is not None else "",
                "meaning": "the one clustering of these rows closest to the posterior on "
                "average; merges groups it cannot tell apart",
            }
        )
    classical = summary.get("classical")
    if classical:
        fitted = classical.get("fitted_family", "full")
        fams = classical.get("families") or {fitted: classical}
        best = min(fams, key=lambda f: min(fams[f]["bic"]))
        for fam, res in fams.items():
            words = FAMILY_WORDS.get(fam, fam)
            extra = []
            if len(fams) > 1:
                extra.append("lowest BIC of the families" if fam == best else "")
                if fam == fitted:
                    extra.append("the family of this model")
            rows.append(
                {
                    "name": f"EM + BIC, {words} covariances",
                    "value": str(res["best_bic"]),
                    "detail": "; ".join(e for e in extra if e),
                    "meaning": "one maximum-likelihood answer without uncertainty; BIC's "
                    "penalty favours fewer components",
                }
            )
        res = fams[fitted]
        rows.append(
            {
                "name": f"EM + AIC, {FAMILY_WORDS.get(fitted, fitted)} covariances",
                "value": str(res["best_aic"]),
                "detail": "",
                "meaning": "a lighter penalty than BIC: tends to more components",
            }
        )
    return rows
