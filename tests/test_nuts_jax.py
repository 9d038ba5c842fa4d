"""NUTS through JAX (``--sampler numpyro|blackjax``, the optional extra ``bayesmix[jax]``).

Without the extra: one clear message naming the package and the install command, exit 2 from
the CLI. With it: short runs on a small 1-D sparse finite mixture give Draws with the layout
nutpie's have, a sampler statistic per draw, the same posterior as nutpie for label-invariant
quantities (within Monte Carlo error), and the same draws for the same seed.
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pytest
from conftest import three_clusters_1d

from bayesmix.cli import main
from bayesmix.engines.nuts import JAX_EXTRA, _installed, check_sampler, sample_nuts
from bayesmix.errors import InputError
from bayesmix.posterior.assemble import build_datatree
from bayesmix.posterior.diagnostics import diagnose
from bayesmix.posterior.summary import label_invariant
from bayesmix.spec import load_spec, parse_spec

SEED = 5
CHAINS, DRAWS, TUNE = 2, 200, 200
# two means agree when they differ by less than Z combined MCSEs: for two independent,
# asymptotically normal estimates a false alarm has probability 2 (1 - Phi(4)) = 6e-5 per
# comparison; the MCSEs of 400 draws are themselves uncertain (ESS estimated from short
# chains), which the wide Z absorbs
Z = 4.0


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
@pytest.mark.parametrize("missing", ["jax", "backend"])
def test_missing_package_is_one_clear_input_error(sampler, missing, monkeypatch, capsys, small_csv):
    package = "jax" if missing == "jax" else sampler
    monkeypatch.setitem(sys.modules, package, None)  # what `import package` then refuses
    with pytest.raises(InputError) as err:
        check_sampler(sampler)
    msg = str(err.value)
    assert f"'{package}'" in msg and JAX_EXTRA in msg and "bayesmix[jax]" in msg
    code = main(
        ["fit", str(small_csv), "--columns", "value", "--model", "sparse_wi"]
        + ["--sampler", sampler, "--out", str(small_csv.parent / "out"), "--quiet"]
    )
    err_text = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err_text
    assert err_text.strip() == f"bayesmix: error: {msg}"
    assert not (small_csv.parent / "out").exists()


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_jax_samplers_are_spec_and_cli_choices(sampler):
    from bayesmix.cli import build_parser

    spec = parse_spec({"mixing": {"type": "dp", "alpha": 1}, "sampler": {"sampler": sampler}})
    assert spec.sampler.sampler == sampler
    args = build_parser().parse_args(["fit", "data.csv", "--sampler", sampler])
    assert args.sampler == sampler
    with pytest.raises(InputError, match="sampler.sampler.*numpyro, blackjax"):
        parse_spec({"mixing": {"type": "dp", "alpha": 1}, "sampler": {"sampler": "stan"}})


def _spec():
    """sparse_wi with K = 4 components: a small graph, quick to compile."""
    spec = load_spec("sparse_wi")
    return dataclasses.replace(spec, mixing=dataclasses.replace(spec.mixing, n_components=4))


@pytest.fixture(scope="module")
def data():
    from bayesmix.data import load_data

    return load_data(three_clusters_1d(150))


def _run(sampler, data, draws=DRAWS, tune=TUNE):
    d = sample_nuts(
        _spec(),
        data.standardized,
        sampler=sampler,
        chains=CHAINS,
        draws=draws,
        tune=tune,
        seed=SEED,
        progress=False,
    )
    q = label_invariant(build_datatree(d, data, _spec(), SEED))
    return d, q


@pytest.fixture(scope="module")
def nutpie_run(data):
    return _run("nutpie", data)


def _check_layout(d, q, sampler, draws):
    assert d.sampler == sampler
    assert d.w.shape == (CHAINS, draws, 4) and d.mu.shape == (CHAINS, draws, 4, 1)
    assert d.cov.shape == (CHAINS, draws, 4, 1, 1)
    assert d.concentration.shape == (CHAINS, draws)
    np.testing.assert_allclose(d.w.sum(-1), 1.0, atol=1e-8)
    assert d.sample_stats["diverging"].shape == (CHAINS, draws)
    assert d.sample_stats["diverging"].dtype == bool
    assert d.sample_stats["tree_depth"].shape == (CHAINS, draws)
    assert np.all(d.sample_stats["tree_depth"] >= 1)
    assert np.isfinite(q["log_likelihood"]).all() and q["log_likelihood"].shape == (CHAINS, draws)
    assert d.info["chain_method"] in ("parallel", "vectorized")
    t = d.timing
    assert t["jax_compile_s"] > 0 and t["compile_s"] >= t["jax_compile_s"] and t["sampling_s"] > 0


def _agree(q, ref, name):
    a, b = diagnose(q[name], name), diagnose(ref[name], name)
    gap = abs(float(np.mean(q[name])) - float(np.mean(ref[name])))
    tol = Z * math.hypot(a["mcse_mean"], b["mcse_mean"])
    assert gap < tol, (name, float(np.mean(q[name])), float(np.mean(ref[name])), tol)


@pytest.fixture
def jax_cache(tmp_path):
    """JAX's persistent compilation cache in a temporary directory, so that the repeated run
    loads the compiled sampler instead of compiling it again (10 s)."""
    jax = pytest.importorskip("jax")
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {k: getattr(jax.config, k) for k in keys}
    jax.config.update(keys[0], str(tmp_path / "jax_cache"))
    jax.config.update(keys[1], 0.0)
    yield
    for k, v in old.items():
        jax.config.update(k, v)


# skip before the fixtures run (the nutpie reference alone compiles for 15-30 s)
@pytest.mark.skipif(not _installed("numpyro"), reason="needs the extra bayesmix[jax]")
def test_numpyro_matches_nutpie_and_repeats(data, nutpie_run, jax_cache):
    d, q = _run("numpyro", data)
    _check_layout(d, q, "numpyro", DRAWS)
    _, ref = nutpie_run
    for name in ("log_likelihood", "gamma"):
        _agree(q, ref, name)
    again, _ = _run("numpyro", data)
    np.testing.assert_array_equal(again.mu, d.mu)
    np.testing.assert_array_equal(again.sample_stats["diverging"], d.sample_stats["diverging"])


@pytest.mark.skipif(not _installed("blackjax"), reason="needs the extra bayesmix[jax]")
def test_blackjax_matches_nutpie(data, nutpie_run):
    d, q = _run("blackjax", data)
    _check_layout(d, q, "blackjax", DRAWS)
    _, ref = nutpie_run
    _agree(q, ref, "log_likelihood")
