"""Markdown report of one fit: the answer in one sentence, then the tables."""

from __future__ import annotations

from bayesmix.posterior.summary import answer_sentence


def _fmt_interval(iv: list[float], digits: int = 3) -> str:
    return f"[{iv[0]:.{digits}g}, {iv[1]:.{digits}g}]"


def fit_markdown(summary: dict) -> str:
    """Render summary.json as Markdown (answer first)."""
    s = summary
    lines = [f"# bayesmix fit: {s['model']}", "", answer_sentence(s), ""]
    lines += ["## Posterior of the number of occupied clusters K+", "", "| K+ | probability |", "|---|---|"]
    lines += [f"| {k} | {p:.3f} |" for k, p in s["n_clusters"]["pmf"].items()]
    nc = s["n_clusters"]
    lines += ["", f"Mode {nc['mode']}, mean {nc['mean']:.2f}, 90% credible set {nc['credible_set_90']}.", ""]
    ab = s["n_components_above"]
    ek = s["effective_k"]
    lines += [
        f"Components with weight > {ab['threshold']}: mode {ab['mode']}, mean {ab['mean']:.2f}. "
        f"Effective number of components exp(H(w)): mean {ek['mean']:.2f}, "
        f"90% interval {_fmt_interval(ek['interval_90'])}.",
        "",
        "## Sorted weights",
        "",
        "| rank | mean | 90% interval |",
        "|---|---|---|",
    ]
    lines += [f"| {w['rank']} | {w['mean']:.3f} | {_fmt_interval(w['interval_90'])} |" for w in s["weights"]]
    if s.get("concentration"):
        c = s["concentration"]
        lines += ["", f"Concentration {c['name']}: mean {c['mean']:.3g}, 90% interval {_fmt_interval(c['interval_90'])}."]
    d = s["diagnostics"]
    lines += ["", "## Diagnostics", "", "| quantity | R-hat | ESS bulk | ESS tail |", "|---|---|---|---|"]
    for name, q in d["quantities"].items():
        lines.append(f"| {name} | {q['r_hat']:.3f} | {q['ess_bulk']:.0f} | {q['ess_tail']:.0f} |")
    div = "not applicable" if d["divergences"] is None else str(d["divergences"])
    lines += ["", f"Divergences: {div}."]
    if "truncation" in s:
        t = s["truncation"]
        lines.append(
            f"Truncation T = {t['T']}: leftover stick mass mean {t['leftover_mass_mean']:.2g}, "
            f"99th percentile {t['leftover_mass_q99']:.2g}."
        )
    if d["warnings"]:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in d["warnings"]]
    data = s["data"]
    lines += [
        "",
        "## Reproduce",
        "",
        f"- Command: `{s.get('command', '')}`",
        f"- Engine: {s['engine']}; seed {s['seed']}",
        f"- Data: {data['source']} ({data['n_obs']} rows, columns {', '.join(data['columns'])}), "
        f"sha256 {data['sha256'][:16]}…",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in s.get('versions', {}).items())}",
        "",
    ]
    return "\n".join(lines)
