"""Model specs: the shipped ones parse; unknown keys and bad values name the key."""

from __future__ import annotations

import pytest

from bayesmix.errors import InputError
from bayesmix.spec import builtin_model_names, load_spec, parse_spec


def test_shipped_specs():
    names = builtin_model_names()
    for required in ("dp", "dp_fixed_alpha", "finite", "sparse_finite"):
        assert required in names
    dp = load_spec("dp")
    assert dp.mixing.type == "dp" and dp.mixing.n_components == 20
    assert dp.mixing.concentration_prior.shape == 1.0 and dp.mixing.concentration_prior.rate == 1.0
    assert load_spec("dp_fixed_alpha").mixing.concentration == 1.0
    fin = load_spec("finite")
    assert (fin.mixing.type, fin.mixing.n_components, fin.mixing.concentration) == (
        "finite",
        10,
        1.0,
    )
    assert load_spec("sparse_finite").mixing.concentration == 0.01


def test_names_resolve_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_spec("dp").name == "dp"


def test_spec_from_path(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[mixing]\ntype = "finite"\nK = 4\ngamma_prior = [2.0, 3.0]\n[kernel]\nb0 = 0.5\n')
    spec = load_spec(p)
    assert spec.name == "mine" and spec.mixing.n_components == 4
    assert spec.mixing.concentration_prior.rate == 3.0 and spec.kernel.b0 == 0.5


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"mixin": {}}, "key 'mixin': unknown key"),
        ({"mixing": {"type": "dp", "alpha": 1, "foo": 2}}, "key 'mixing.foo': unknown key"),
        (
            {"mixing": {"type": "pitman", "alpha": 1}},
            "key 'mixing.type': must be one of dp, finite",
        ),
        ({"mixing": {"type": "dp", "alpha": -1}}, "key 'mixing.alpha': must be > 0"),
        ({"mixing": {"type": "dp", "alpha": "one"}}, "key 'mixing.alpha': must be a number"),
        ({"mixing": {"type": "dp", "alpha": 1, "alpha_prior": [1, 1]}}, "not both"),
        ({"mixing": {"type": "dp"}}, "key 'mixing.alpha': give alpha"),
        ({"mixing": {"type": "dp", "alpha": 1, "K": 3}}, "key 'mixing.K': does not apply"),
        ({"mixing": {"type": "finite", "gamma": 1, "K": 1}}, "key 'mixing.K': must be at least 2"),
        (
            {"mixing": {"type": "finite", "gamma": 1, "K": 2.5}},
            "key 'mixing.K': must be an integer",
        ),
        ({"mixing": {"type": "dp", "alpha_prior": {"shape": 1}}}, "needs both 'shape' and 'rate'"),
        (
            {"mixing": {"type": "dp", "alpha_prior": {"shape": 1, "rate": 0}}},
            "alpha_prior.rate': must be > 0",
        ),
        ({"mixing": {"type": "dp", "alpha": 1}, "kernel": {"prior": "flat"}}, "key 'kernel.prior'"),
        ({"mixing": {"type": "dp", "alpha": 1}, "kernel": {"kappa0": 0}}, "key 'kernel.kappa0'"),
        (
            {"mixing": {"type": "dp", "alpha": 1}, "kernel": {"covariance": "sphere"}},
            "kernel.covariance",
        ),
        ({"mixing": {"type": "dp", "alpha": 1}, "sampler": {"chains": 0}}, "key 'sampler.chains'"),
        (
            {"mixing": {"type": "dp", "alpha": 1}, "sampler": {"engine": "hmc"}},
            "key 'sampler.engine'",
        ),
        ({"mixing": "dp"}, "key 'mixing': must be a table"),
        (
            {"mixing": {"type": "dp", "alpha": 1}, "kernel": {"c0": 2.0}},
            "key 'kernel.c0': applies only to prior = 'semi_conjugate'",
        ),
        (
            {
                "mixing": {"type": "dp", "alpha": 1},
                "kernel": {"prior": "semi_conjugate", "scale": "learned"},
            },
            "key 'kernel.scale': must be one of hierarchical, fixed",
        ),
        (
            {
                "mixing": {"type": "dp", "alpha": 1},
                "kernel": {"prior": "semi_conjugate", "G0": -1.0},
            },
            "key 'kernel.G0': must be > 0",
        ),
        (
            {
                "mixing": {"type": "dp", "alpha": 1},
                "kernel": {"prior": "semi_conjugate", "mean_centre": "mean"},
            },
            "key 'kernel.mean_centre': must be one of midrange, median",
        ),
        (
            {
                "mixing": {"type": "dp", "alpha": 1},
                "kernel": {"prior": "semi_conjugate", "data_scaled": "yes"},
            },
            "key 'kernel.data_scaled': must be true or false",
        ),
        (
            {"mixing": {"type": "dp", "alpha": 1}, "sampler": {"gibbs_thin": 0}},
            "key 'sampler.gibbs_thin'",
        ),
    ],
)
def test_bad_specs_name_the_key(table, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(table, where="bad.toml")


def test_unknown_model_name_and_bad_toml(tmp_path):
    with pytest.raises(InputError, match="unknown model 'nonsense'.*built-in models: dp"):
        load_spec("nonsense")
    p = tmp_path / "broken.toml"
    p.write_text("[mixing\n")
    with pytest.raises(InputError, match="broken.toml: not valid TOML"):
        load_spec(p)
    with pytest.raises(InputError, match="model spec file not found"):
        load_spec(tmp_path / "missing.toml")
