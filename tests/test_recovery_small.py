"""The K-recovery study (benchmarks/recovery.py) on a small scale: the data constructions
(means exactly ``sep`` apart in D >= 3, unequal weights, the first version's data sets
unchanged), the grids, the targets, and a tiny end-to-end run through ``run_study`` (the
code path of ``python -m benchmarks.recovery``) with its partial file, errors, Ctrl-C and
``--resume``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from benchmarks import recovery as R
from benchmarks.recovery import Case, Settings

# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [3, 10, 20])
@pytest.mark.parametrize("k0", [2, 3, 5, 8])
@pytest.mark.parametrize("sep", [6.0, 2.5])
def test_means_min_distance_exactly_sep(dim: int, k0: int, sep: float) -> None:
    for seed in range(5):
        m = R.make_means(k0, dim, sep, np.random.default_rng(seed))
        assert m.shape == (k0, dim)
        d = pdist(m)
        assert abs(d.min() - sep) < 1e-12
        np.testing.assert_allclose(m.mean(axis=0), 0.0, atol=1e-12)
        if k0 <= dim:  # regular simplex: every pair exactly sep apart
            np.testing.assert_allclose(d, sep, rtol=0, atol=1e-12)


def test_means_random_orientation() -> None:
    a = R.make_means(3, 10, 6.0, np.random.default_rng(1))
    b = R.make_means(3, 10, 6.0, np.random.default_rng(2))
    assert not np.allclose(a, b)


class _ZeroNoise:
    """A Generator whose Gaussian noise is zero: x = the means of the assigned components."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def standard_normal(self, size):
        return np.zeros(size)

    def __getattr__(self, name):
        return getattr(self.rng, name)


@pytest.mark.parametrize(
    "n, counts", [(100, [50, 30, 15, 5]), (300, [150, 90, 45, 15]), (1000, [500, 300, 150, 50])]
)
def test_unequal_weights_counts(n: int, counts: list[int]) -> None:
    assert R.component_sizes(n, 4, "unequal").tolist() == counts
    for dim in (1, 2):
        case = Case(4, dim, "overlap", n, 0, "unequal")
        x, means = R.make_data(case, _ZeroNoise(3))
        got = [int(np.sum(np.all(np.isclose(x, mu), axis=1))) for mu in means]
        assert got == counts
    with pytest.raises(ValueError):
        R.component_sizes(100, 3, "unequal")


def test_equal_weights_counts() -> None:
    assert R.component_sizes(100, 3).tolist() == [34, 33, 33]
    assert R.component_sizes(300, 8).tolist() == [38] * 4 + [37] * 4


# sha256 of x (and the seed drawn after it) from the first version of the study (git
# b54467a); the seeds are also those recorded in reports/validation/recovery.json.
OLD = [
    (
        Case(1, 1, "well", 100, 0),
        "93319e5146f87c9be0840627568101ec1326a2c5ad5083a9e2027f3691df9749",
        309114395,
    ),  # fmt: skip
    (
        Case(3, 2, "well", 100, 0),
        "50d3105b4b630c42d7da7ffe3e1adf582419fd2e11515690754192211894fa16",
        1636039349,
    ),  # fmt: skip
    (
        Case(5, 2, "overlap", 1000, 7),
        "938cb0e2fd25ff9a13ee252f30ba343dcbb1f1fff19f4a25fa48eb7833898cd4",
        1129547502,
    ),  # fmt: skip
    (
        Case(8, 1, "overlap", 1000, 19),
        "af850c0e1a30a927482ca403b9324f4a99c76271144cbc6129c7d2271954b020",
        489335555,
    ),  # fmt: skip
]


@pytest.mark.parametrize("case, sha, seed", OLD)
def test_old_cases_unchanged(case: Case, sha: str, seed: int) -> None:
    st = Settings()
    x, _, entropy, got_seed = R.case_data(case, st)
    assert entropy == [st.seed, case.dim, list(R.SEPARATIONS).index(case.sep), case.n, case.k0, case.rep]  # fmt: skip
    assert hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest() == sha
    assert got_seed == seed
    # the first version's methods keep their seeds
    assert R.method_seed("bayesmix_dp", seed, entropy) == seed
    assert R.method_seed("bayesmix_sparse", seed, entropy) == seed
    assert R.method_seed("em_bic", seed, entropy) == seed % (2**31 - 1)


def test_entropy_and_seeds() -> None:
    st = Settings()
    eq, uneq = Case(4, 2, "well", 300, 0), Case(4, 2, "well", 300, 0, "unequal")
    assert len(R.case_entropy(eq, st)) == 6
    assert R.case_entropy(uneq, st) == [*R.case_entropy(eq, st), 1]
    e = R.case_entropy(uneq, st)
    seeds = {m: R.method_seed(m, 123, e) for m in R.METHODS}
    new = [seeds[m] for m in R.METHODS if m not in ("bayesmix_dp", "bayesmix_sparse", "em_bic", "vb_dp")]  # fmt: skip
    assert len(set(new)) == len(new) and all(0 <= s < 2**31 for s in new)
    assert seeds == {m: R.method_seed(m, 123, e) for m in R.METHODS}  # deterministic


def test_grids() -> None:
    default = R.cases(20, 20, "default")
    extended = R.cases(20, 20, "extended")
    cells = {(c.dim, c.sep, c.n, c.k0, c.weights) for c in extended}
    assert len(default) == 800 and len(extended) == 1640 and len(cells) == 82
    assert set(default) <= set(extended)
    assert {c.k0 for c in extended if c.weights == "unequal"} == {4}
    assert {c.dim for c in extended} == {1, 2, 3, 10, 20}
    assert {c.n for c in extended if c.dim >= 3} == {300}
    assert len(R.cases(3, 1, "extended", dims=(20,), k0s=(3,))) == 2


# --------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------


def _res(k0: int, sep: str, answers: dict[str, int], covered: bool = True) -> dict:
    r = {"case": {"k0": k0, "dim": 1, "sep": sep, "n": 100, "rep": 0}, "entropy": [k0, sep]}
    for m, a in answers.items():
        r[m] = {"answer": a, "seconds": 1.0}
        if m in R.BAYES:
            r[m] |= {"covered": covered, "p_true": 0.5, "credible_set_90": [a]}
    return r


def test_targets() -> None:
    # cell A (well, K0 = 2): BIC right 2/2, DP right 2/2; cell B (well, K0 = 3): BIC 1/2
    # (< 80%: not a target cell), DP 2/2; cell C (overlap, K0 = 3): BIC 0/2, DP 2/2.
    res = []
    for rep in range(2):
        res.append(_res(2, "well", {"bayesmix_dp": 2, "em_bic": 2}) | {"entropy": [2, 0, rep]})
        res.append(_res(3, "well", {"bayesmix_dp": 3, "em_bic": 3 if rep else 2}) | {"entropy": [3, 0, rep]})  # fmt: skip
        res.append(_res(3, "overlap", {"bayesmix_dp": 3, "em_bic": 1}, covered=rep == 0) | {"entropy": [3, 1, rep]})  # fmt: skip
    s = R.summarise(res)
    t = s["targets"]["bayesmix_dp"]
    assert t["well_cells"]["cells"] == 1 and t["well_cells"]["met"]
    assert t["overall"]["accuracy"] == 1.0 and t["overall"]["bic"] == pytest.approx(0.5)
    assert t["overall"]["met"]
    assert t["coverage"]["coverage_90"] == pytest.approx(5 / 6) and not t["coverage"]["met"]
    assert t["n_met"] == 2 and not t["all_met"]
    # one miss in the target cell breaks (1)
    res[0]["bayesmix_dp"]["answer"] = 1
    t = R.summarise(res)["targets"]["bayesmix_dp"]
    assert not t["well_cells"]["met"] and len(t["well_cells"]["failing"]) == 1


def test_targets_against_the_family_baseline() -> None:
    # the same results judged against BIC over families, which is right where full BIC is not
    res = []
    for rep in range(2):
        ans = {"bayesmix_dp": 2, "em_bic": 1, "em_bic_families": 2}
        res.append(_res(2, "well", ans) | {"entropy": [2, 0, rep]})
    s = R.summarise(res)
    full, fam = s["targets"]["bayesmix_dp"], s["targets_families"]["bayesmix_dp"]
    assert full["well_cells"]["cells"] == 0 and full["overall"]["bic"] == 0.0
    assert fam["well_cells"]["cells"] == 1 and fam["overall"]["bic"] == 1.0
    assert not fam["overall"]["met"]  # 100% is not >= 100% + 5 points
    md = R._targets_lines(s["targets_families"], "families")
    assert any("## Targets against families" in line for line in md)


def test_em_bic_over_families() -> None:
    # 10-D, 3 spherical clusters, N = 90: full covariances have too many parameters for BIC
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(8.0 * j, 1.0, size=(30, 10)) for j in range(3)])
    st = Settings(max_k=4, n_init=1)
    fam = R.run_em_bic(x, st, 1, R.EM_FAMILIES)
    assert set(fam["bic_by_family"]) == set(R.EM_FAMILIES)
    flat = {(f, k + 1): b for f, v in fam["bic_by_family"].items() for k, b in enumerate(v)}
    best_family, best_k = min(flat, key=flat.get)
    assert (fam["family"], fam["answer"]) == (best_family, best_k)
    assert fam["bic"] == fam["bic_by_family"][best_family]
    assert fam["answer"] == 3 and fam["family"] != "full"
    full = R.run_em_bic(x, st, 1)
    assert full["bic"] == fam["bic_by_family"]["full"] and "family" not in full
    # 1-D: the families coincide, only full is fitted
    one = R.run_em_bic(x[:, :1], st, 1, R.EM_FAMILIES)
    assert list(one["bic_by_family"]) == ["full"]


# --------------------------------------------------------------------------
# End to end: run_study, the partial file, errors, Ctrl-C, --resume
# --------------------------------------------------------------------------

TINY = Settings(seed=5, tune=30, draws=60, draws_large=60, tune_gibbs=30, draws_gibbs=60)
TODO = [Case(2, 1, "well", 100, 0), Case(1, 2, "well", 100, 0)]


def _records(out: Path) -> list[dict]:
    return R.read_partial(out / R.PARTIAL)[1]


def test_end_to_end_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    methods = ["bayesmix_sparse_semi", "em_bic"]  # one semi-conjugate (blocked Gibbs)
    summary, n, stopped = R.run_study(tmp_path, TINY, TODO, methods)
    assert (n, stopped) == (4, False)
    recs = _records(tmp_path)
    assert len(recs) == 4 and all(R._ok(r["result"]) for r in recs)
    semi = [r["result"] for r in recs if r["method"] == "bayesmix_sparse_semi"]
    assert all(r["target"] == "K+" and r["engine"] for r in semi)
    md = (tmp_path / "recovery.md").read_text()
    assert "## Targets" in md and "sparse finite, semi-conjugate kernel" in md
    saved = json.loads((tmp_path / "recovery.json").read_text())
    assert len(saved["results"]) == 2 and "bayesmix_sparse_semi" in saved["summary"]["targets"]
    assert (tmp_path / "recovery.png").exists()

    # resume: nothing left to do
    _, n, _ = R.run_study(tmp_path, TINY, TODO, methods, resume=True)
    assert n == 0 and len(_records(tmp_path)) == 4

    # a new method whose fits fail: recorded as errors, the study goes on and reports them
    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(R, "run_vb", broken)
    summary, n, _ = R.run_study(tmp_path, TINY, TODO, [*methods, "vb_dp"], resume=True)
    assert n == 2
    errs = [r for r in _records(tmp_path) if "error" in r["result"]]
    assert len(errs) == 2 and all("boom" in r["result"]["error"] for r in errs)
    assert summary["headline"]["vb_dp"]["errors"] == 2
    assert "## Failed fits" in (tmp_path / "recovery.md").read_text()
    # errors count as finished ...
    _, n, _ = R.run_study(tmp_path, TINY, TODO, [*methods, "vb_dp"], resume=True)
    assert n == 0
    # ... unless retried; the later record replaces the error
    monkeypatch.undo()
    summary, n, _ = R.run_study(
        tmp_path, TINY, TODO, [*methods, "vb_dp"], resume=True, retry_errors=True
    )
    assert n == 2 and summary["headline"]["vb_dp"]["errors"] == 0

    # other settings: refused
    with pytest.raises(SystemExit):
        R.run_study(tmp_path, Settings(seed=6), TODO, methods, resume=True)

    # the partial file lost (it is not committed): --resume rebuilds it from recovery.json,
    # reruns nothing, and adds a new method's fits only
    before = json.loads((tmp_path / "recovery.json").read_text())["results"]
    (tmp_path / R.PARTIAL).unlink()
    _, n, _ = R.run_study(tmp_path, TINY, TODO, [*methods, "vb_dp"], resume=True)
    assert n == 0
    assert R.assemble(_records(tmp_path)) == before
    _, n, _ = R.run_study(tmp_path, TINY, TODO, [*methods, "vb_dp", "em_bic_families"], resume=True)
    assert n == 2
    after = json.loads((tmp_path / "recovery.json").read_text())["results"]
    assert [{k: v for k, v in r.items() if k != "em_bic_families"} for r in after] == [
        r
        | {
            "method_seeds": r["method_seeds"]
            | {"em_bic_families": mine["method_seeds"]["em_bic_families"]}
        }
        for r, mine in zip(before, after, strict=True)
    ]


def test_interrupt_keeps_finished_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = R.run_method

    def stop_second(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(R, "run_method", stop_second)
    summary, n, stopped = R.run_study(tmp_path, TINY, TODO, ["em_bic"])
    assert (n, stopped) == (1, True)
    assert summary is not None and (tmp_path / "recovery.md").exists()  # rendered anyway
    monkeypatch.undo()
    _, n, stopped = R.run_study(tmp_path, TINY, TODO, ["em_bic"], resume=True)
    assert (n, stopped) == (1, False)
    assert len(_records(tmp_path)) == 2
    # a new run without --resume keeps the old partial file under another name
    R.run_study(tmp_path, TINY, TODO[:1], ["em_bic"])
    assert len(list(tmp_path.glob("recovery_partial.*.jsonl"))) == 1
    assert len(_records(tmp_path)) == 1


def test_partial_survives_a_cut_line(tmp_path: Path) -> None:
    R.run_study(tmp_path, TINY, TODO, ["em_bic"])
    with open(tmp_path / R.PARTIAL, "a") as f:
        f.write('{"case": {"k0": 2, "di')  # a line cut short by a stop
    header, recs, sessions, bad = R.read_partial(tmp_path / R.PARTIAL)
    assert header["settings"] == json.loads(json.dumps(R.dataclasses.asdict(TINY)))
    assert (len(recs), len(sessions), bad) == (2, 1, 1)
    _, n, _ = R.run_study(tmp_path, TINY, TODO, ["em_bic"], resume=True)
    assert n == 0
