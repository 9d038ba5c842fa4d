"""The answer in one sentence, from summary.json's ``n_clusters`` (pure text; no arrays)."""

from __future__ import annotations


def _words(ks: list[int]) -> str:
    """[3] -> '3'; [3, 4] -> '3 or 4'; [3, 4, 5] -> '3, 4 or 5'."""
    s = [str(k) for k in ks]
    return s[0] if len(s) == 1 else f"{', '.join(s[:-1])} or {s[-1]}"


def answer_sentence(summary: dict) -> str:
    """One plain sentence: the most probable K+ (or the values tied with it within Monte Carlo
    error), their probabilities and the 90% credible set."""
    nc = summary["n_clusters"]
    mode = nc["mode"]
    pmf = nc["pmf"]
    tied = nc.get("tied_with_mode") or [mode]
    cs = nc["credible_set_90"]
    set_text = ", ".join(str(k) for k in cs)
    tail = f"the 90% credible set for the number of occupied clusters is {{{set_text}}}."
    if len(tied) > 1:
        probs = " and ".join(f"{100 * pmf[str(k)]:.0f}%" for k in tied)
        return (
            f"The data hold {_words(tied)} groups, equally likely within Monte Carlo error "
            f"({probs} posterior probability); {tail}"
        )
    noun = "group" if mode == 1 else "groups"
    p = pmf[str(mode)]
    pct = f"{100 * p:.1f}%" if p > 0.995 else f"{100 * p:.0f}%"
    return f"The data most likely hold {mode} {noun} ({pct} posterior probability); {tail}"


def components_sentence(summary: dict) -> str:
    """For a mixture of finite mixtures: the posterior of K, the number of components, and how
    it differs from K+ (empty string for other mixings)."""
    nk = summary.get("n_components")
    if not nk:
        return ""
    tied = nk.get("tied_with_mode") or [nk["mode"]]
    probs = " and ".join(f"{100 * nk['pmf'][str(k)]:.0f}%" for k in tied)
    set_text = ", ".join(str(k) for k in nk["credible_set_90"])
    return (
        f"The mixture has {_words(tied)} components ({probs}; 90% credible set {{{set_text}}}): "
        "K counts the components of the model, K+ those that hold data, so K can exceed K+ "
        "when a component is too small to be filled by these observations."
    )
