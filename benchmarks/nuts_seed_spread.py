"""How much NUTS's answer on the conjugate 2-D DP depends on the seed, at target_accept 0.8 and 0.9.

``python -m benchmarks.nuts_seed_spread`` fits the data of ``tests/test_end_to_end_nuts.py``
(``conftest.three_clusters_2d``: three elongated 2-D clusters, N = 300, numpy seed 2) with
``models/dp.toml`` by NUTS (nutpie, 2 chains x (500 tune + 500 draws), the test's settings)
for seeds 13, 14 and 15 at target_accept 0.8 and 0.9, and by the collapsed and blocked Gibbs
engines (their defaults, seed 13) for the exact-model reference, and writes
``reports/benchmarks/nuts_seed_spread.md`` / ``.json``: P(K+ = 3), the mode of K+ and the
number of clusters the summary reports as mostly occupied.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "benchmarks" / "nuts_seed_spread"
SEEDS = (13, 14, 15)
TARGETS = (0.8, 0.9)
SAMPLING = dict(chains=2, draws=500, tune=500, progress=False)


def _row(result, **cols) -> dict:
    s = result.summary["n_clusters"]
    real = sum(not c["empty_mostly"] for c in result.summary["clusters"])
    return dict(cols, p3=s["pmf"].get("3", 0.0), mode=s["mode"], mostly_occupied=real)


def run() -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import three_clusters_2d

    from bayesmix.fit import fit
    from bayesmix.spec import load_spec

    x, _, _ = three_clusters_2d()
    base = load_spec("dp")
    rows = []
    for eng in ("collapsed", "gibbs"):
        rows.append(_row(fit(x, base, seed=13, engine=eng, progress=False), engine=eng, seed=13))
    for seed in SEEDS:
        for ta in TARGETS:
            spec = dataclasses.replace(
                base, sampler=dataclasses.replace(base.sampler, target_accept=ta)
            )
            t0 = time.perf_counter()
            r = fit(x, spec, seed=seed, engine="nuts", **SAMPLING)
            rows.append(
                _row(r, engine="nuts", seed=seed, target_accept=ta, s=time.perf_counter() - t0)
            )
            print(rows[-1], file=sys.stderr, flush=True)
    return {"rows": rows}


def render(report: dict) -> str:
    pv = report["provenance"]
    lines = [
        "# NUTS on the conjugate 2-D DP: the spread over seeds",
        "",
        f"`{pv['command']}`, {pv['date']}; git {pv['git']}; {pv['machine']}. "
        + __doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
        "",
        "| engine | seed | target_accept | P(K+ = 3) | mode of K+ | mostly occupied clusters |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        ta = r.get("target_accept", "–")
        lines.append(
            f"| {r['engine']} | {r['seed']} | {ta} | {r['p3']:.3f} | {r['mode']} | "
            f"{r['mostly_occupied']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bayesmix.io import write_text
    from benchmarks.common import provenance, write_json

    argv = sys.argv[1:] if argv is None else argv
    report = {"provenance": provenance(["benchmarks.nuts_seed_spread", *argv]), **run()}
    write_json(OUT.with_suffix(".json"), report)
    write_text(OUT.with_suffix(".md"), render(report))
    print(f"wrote {OUT.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
