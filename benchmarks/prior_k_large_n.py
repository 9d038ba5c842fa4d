"""Cost of the exact prior of K+ (``bayesmix.priors.prior_k_from_spec``) at large N.

For every shipped spec (models/*.toml, models/compare*/*.toml; the prior depends only on the
[mixing] table, so specs with the same mixing are timed once and listed together), at
N = 1e3, 1e4, 1e5, 1e6:

* first call: a fresh Python process (imports done before the clock starts), so it includes
  loading the numba kernels from their on-disk cache; one cold-cache compile is timed apart;
* warm: the median of REPEATS further calls in that process;
* old: the recursions used before ``numerics.kplus_fast`` (FINITE_FAST_N and MFM_FAST_N
  raised past N), one call, where that is feasible (OLD_MAX_N), and max |fast - old| with
  the fast path forced (below FINITE_FAST_N = 5000 and MFM_FAST_N = 200 the shipped path
  is the old one).

The Pitman-Yor prior has no fast path: it is timed at N = 1e3 and is not computed past
PRIOR_EXACT_MAX_N (``prior_k_skipped``).

Usage: ``python -m benchmarks.prior_k_large_n`` (writes reports/benchmarks/prior_k_large_n.md
and .json; about 5 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, provenance, write_json

NS = (10**3, 10**4, 10**5, 10**6)
REPEATS = 5
PY_N = 10**3  # the Pitman-Yor prior is timed here only (13 s; hours at 2e4)
# largest N at which the old path is run, by (type, hyperprior on the concentration)
OLD_MAX_N = {
    ("finite", False): 10**5,
    ("finite", True): 10**4,
    ("mfm", False): 10**5,
    ("mfm", True): 10**4,
}
OUT = ROOT / "reports" / "benchmarks"


# --------------------------------------------------------------------------
# Pure measurement helpers
# --------------------------------------------------------------------------


def shipped_specs() -> list[Path]:
    """models/*.toml and models/compare*/*.toml, sorted."""
    return sorted(ROOT.glob("models/*.toml")) + sorted(ROOT.glob("models/compare*/*.toml"))


def group_by_mixing(paths: list[Path]) -> list[tuple[Any, list[str]]]:
    """[(spec, [relative paths])] with one spec per distinct [mixing] table."""
    from bayesmix.spec import load_spec

    groups: dict[str, tuple[Any, list[str]]] = {}
    for p in paths:
        spec = load_spec(p)
        groups.setdefault(repr(spec.mixing), (spec, []))[1].append(str(p.relative_to(ROOT)))
    return list(groups.values())


@contextmanager
def switch_over(at: int):
    """FINITE_FAST_N and MFM_FAST_N set to ``at``: 0 forces ``numerics.kplus_fast``, 10**12
    the recursions in use before it."""
    import bayesmix.partition_priors as pp
    import bayesmix.priors as P

    saved = P.FINITE_FAST_N, pp.MFM_FAST_N
    P.FINITE_FAST_N = pp.MFM_FAST_N = at
    try:
        yield
    finally:
        P.FINITE_FAST_N, pp.MFM_FAST_N = saved


def timed(fn) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def first_call(path: str, n: int, cache_dir: str | None = None) -> float:
    """Seconds of the first prior_k_from_spec call in a fresh process."""
    code = (
        "import time, bayesmix.priors as P; from bayesmix.spec import load_spec; "
        f"s = load_spec({path!r}); t = time.perf_counter(); P.prior_k_from_spec({n}, s); "
        "print(time.perf_counter() - t)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise RuntimeError(res.stderr)
    return float(res.stdout.strip().splitlines()[-1])


def measure(spec: Any, path: str, n: int) -> dict[str, Any]:
    """First-call, warm and (where feasible) old-path seconds and max |new - old| at n."""
    import bayesmix.priors as P

    m = spec.mixing
    row: dict[str, Any] = {"n": n}
    if P.prior_k_skipped(n, spec):
        return row | {"skipped": P.prior_k_skipped(n, spec)}
    row["first_s"] = first_call(path, n)
    P.prior_k_from_spec(n, spec)
    warm, cpu = [], []
    for _ in range(REPEATS):
        c0 = time.process_time()
        t, new = timed(lambda: P.prior_k_from_spec(n, spec))
        cpu.append(time.process_time() - c0)
        warm.append(t)
    row["warm_s"] = statistics.median(warm)
    row["warm_cpu_s"] = statistics.median(cpu)
    row["sum_minus_1"] = float(new.pmf.sum() - 1.0)
    row["min"] = float(new.pmf.min())
    row["mean"] = new.mean
    row["description"] = new.description
    if n <= OLD_MAX_N.get((m.type, m.concentration_prior is not None), 0):
        with switch_over(0):
            fast = P.prior_k_from_spec(n, spec)
        with switch_over(10**12):
            t, old = timed(lambda: P.prior_k_from_spec(n, spec))
        a = np.zeros(max(len(old.pmf), len(fast.pmf)))
        b = a.copy()
        a[: len(fast.pmf)] = fast.pmf
        b[: len(old.pmf)] = old.pmf
        row["old_s"] = t
        row["max_abs_diff"] = float(np.abs(a - b).max())
    return row


def _k_weights(spec: Any) -> np.ndarray:
    from bayesmix import mixings

    w = np.exp(mixings.k_prior_log_pmf(spec.mixing)[1:])
    return w / w.sum()


def accuracy() -> list[dict[str, Any]]:
    """Which of fast and old is right where they differ: against references built otherwise.

    rg97 (gamma = 1, K ~ U{1..30}) at N = 1e5: the pmf against sum_K p(K) x the finite urn
    chain (probability space, O(N K)). Static MFM, gamma ~ Gamma(1, 1), at N = 1e4: E[K+]
    against the Gamma quadrature of the closed form sum_K p(K) K (1 - P(n_j = 0 | K, gamma))."""
    import bayesmix.priors as P
    from bayesmix.spec import load_spec

    out = []
    spec, n = load_spec("rg97"), 10**5
    w = _k_weights(spec)
    with switch_over(10**12):
        ref = sum(w[K - 1] * np.pad(P.finite_k_pmf(n, K, 1.0), (0, 30 - K)) for K in range(1, 31))
        old = P.prior_k_from_spec(n, spec).pmf
    with switch_over(0):
        fast = P.prior_k_from_spec(n, spec).pmf
    out.append(
        {"check": "rg97, N = 1e5: max abs pmf - sum_K p(K) urn_K", "n": n,
         "fast": float(np.abs(fast - ref).max()), "old": float(np.abs(old - ref).max())}
    )  # fmt: skip
    spec, n = load_spec("mfm"), 10**4
    w = _k_weights(spec)
    ks = np.arange(1, len(w) + 1)

    def mean_fn(g: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):  # K = 1: log1p(-1)
            return np.array(
                [[np.dot(w, [P.expected_k_finite(n, int(K), x) for K in ks])] for x in g]
            )

    small = P._TAIL_MASS / (float(np.dot(ks - 1, w)) * P._harmonic(n - 1))
    ref_mean = float(P._gamma_mixture(mean_fn, np.ones(1), 1.0, 1.0, small, tol=1e-13)[0])
    with switch_over(10**12):
        old_mean = P.prior_k_from_spec(n, spec).mean
    with switch_over(0):
        fast_mean = P.prior_k_from_spec(n, spec).mean
    out.append(
        {"check": "static MFM gamma ~ Gamma(1, 1), N = 1e4: abs E[K+] - closed-form quadrature",
         "n": n, "fast": abs(fast_mean - ref_mean), "old": abs(old_mean - ref_mean)}
    )  # fmt: skip
    return out


def run() -> dict[str, Any]:
    rows = []
    for spec, paths in group_by_mixing(shipped_specs()):
        ns = (PY_N,) if spec.mixing.type == "pitman_yor" else NS
        for n in ns:
            r = measure(spec, paths[0], n) | {"specs": paths, "type": spec.mixing.type}
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "specs"}), file=sys.stderr)
    mfm = next(p for s, p in group_by_mixing(shipped_specs()) if s.mixing.type == "mfm")
    with tempfile.TemporaryDirectory() as cold:
        compile_s = first_call(mfm[0], 10**6, cache_dir=cold)
    return {
        "rows": rows,
        "cold_compile": {"spec": mfm[0], "n": 10**6, "first_s": compile_s},
        "accuracy": accuracy(),
    }


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _s(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def render(rep: dict[str, Any]) -> str:
    prov = rep["provenance"]
    lines = [
        "# Prior of K+ at large N: prior_k_from_spec for every shipped spec",
        "",
        f"`{prov['command']}`, {prov['date']}.",
        "",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in prov['versions'].items())}.",
        f"- git {prov['git']}; machine {prov['machine']}; load average at start "
        f"{[round(v, 2) for v in rep['load_average']['start']]}, at end "
        f"{[round(v, 2) for v in rep['load_average']['end']]}.",
        "- first: the first call in a fresh process (numba kernels loaded from the on-disk "
        f"cache); warm: median of {REPEATS} calls (wall, and CPU of this process: the "
        "machine is shared, so wall times carry other jobs' load); old: the recursions before "
        "`numerics.kplus_fast`, one call, where feasible; |fast - old|: max abs over k, the "
        "fast path forced (the shipped path is the old one for N <= 5,000 (finite) and "
        "N <= 200 (MFM)).",
        f"- Cold numba cache (compile included), {rep['cold_compile']['spec']} at N = 1e6: "
        f"{rep['cold_compile']['first_s']:.2f} s.",
        "",
        "| mixing (specs) | N | first s | warm s | warm CPU s | old s | max abs fast - old "
        "| sum - 1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["rows"]:
        name = r.get("description", r["type"]).rsplit(", N=", 1)[0]
        label = f"{name} ({', '.join(Path(p).stem for p in r['specs'])})"
        if "skipped" in r:
            lines.append(f"| {label} | {r['n']:,} | not computed | | | | | |")
            continue
        diff = "" if "max_abs_diff" not in r else f"{r['max_abs_diff']:.1e}"
        lines.append(
            f"| {label} | {r['n']:,} | {_s(r['first_s'])} | {_s(r['warm_s'])} | "
            f"{_s(r['warm_cpu_s'])} | {_s(r.get('old_s'))} | {diff} | {r['sum_minus_1']:.1e} |"
        )
    lines += [
        "",
        "Where fast and old differ (N >= 1e4), against references computed otherwise:",
        "",
        "| check | fast | old |",
        "|---|---:|---:|",
        *(f"| {a['check']} | {a['fast']:.1e} | {a['old']:.1e} |" for a in rep["accuracy"]),
        "",
        "The Pitman-Yor prior (generalised Stirling numbers, O(N k_top) per discount node) has "
        "no fast path; past N = 20,000 it is not computed (`prior_k_skipped`).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    load0 = os.getloadavg()
    rep = run()
    rep["provenance"] = provenance(["benchmarks.prior_k_large_n", *(argv or sys.argv[1:])])
    rep["load_average"] = {"start": load0, "end": os.getloadavg()}
    write_json(OUT / "prior_k_large_n.json", rep)
    from bayesmix.io import write_text

    write_text(OUT / "prior_k_large_n.md", render(rep))
    print(f"wrote {OUT / 'prior_k_large_n.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
